"""Noise-level schedules.

A schedule maps ``t`` (an epoch or a step index, from 0) to a noise level.
:class:`~noisewise.NoiseScheduler` (:mod:`noisewise.layers.scheduler`)
evaluates it at the start of every epoch or step and sets the level of noise
layers (anything with ``set_level``/``get_level``: noisewise noise layers and
:class:`~noisewise.WeightNoise`). Levels are non-trainable variables, so a new level takes effect without recompiling.
Every argument of a schedule is a finite number (NaN and infinity are
refused), and the callback refuses a schedule that returns anything else.

Annealing the noise, strong early and weak late, is the idea of Geras and
Sutton (2015), "Scheduled Denoising Autoencoders", and of annealed gradient
noise (Neelakantan et al. 2015); curricula that raise the noise work the same way.
:func:`adaptive` is a schedule of another kind: it reads each validated
epoch's logs and moves the level with the gap between training and validation.
"""

import bisect
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from noisewise._core.validation import (
    _is_real, check_choice, check_int, check_non_negative, check_number, is_finite_number,
)


class Schedule:
    """Base class: ``schedule(t)`` returns the level at ``t`` as a float."""

    kind: str | None = None

    def __call__(self, t: float) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{self.kind}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(repr(self))


class Constant(Schedule):
    """``level`` at every ``t``.

    Example:
        >>> from noisewise import schedules
        >>> schedules.constant(0.1)(7)
        0.1
    """

    kind = "constant"

    def __init__(self, level: float) -> None:
        self.level = check_non_negative("level", level)

    def __call__(self, t):
        return self.level

    def get_config(self):
        return {"level": self.level}


def _progress(t, begin, steps):
    return min(max((t - begin) / steps, 0.0), 1.0)


class Linear(Schedule):
    """From ``start`` to ``end`` in a straight line over ``steps``, then ``end``.

    ``level(t) = start + (end - start) * clip((t - begin) / steps, 0, 1)``.

    Args:
        start: Level up to ``t = begin``, >= 0.
        end: Level from ``t = begin + steps`` on, >= 0.
        steps: Length of the ramp in epochs or steps (whatever ``t`` counts), >= 1.
        begin: ``t`` at which the ramp starts, >= 0.

    Example:
        >>> from noisewise import schedules
        >>> schedules.linear(1.0, 0.0, steps=4)(1)
        0.75
    """

    kind = "linear"

    def __init__(self, start: float, end: float, steps: int, begin: int = 0) -> None:
        self.start = check_non_negative("start", start)
        self.end = check_non_negative("end", end)
        self.steps = check_int("steps", steps, low=1)
        self.begin = check_int("begin", begin, low=0)

    def __call__(self, t):
        return self.start + (self.end - self.start) * _progress(t, self.begin, self.steps)

    def get_config(self):
        return {"start": self.start, "end": self.end, "steps": self.steps, "begin": self.begin}


class Cosine(Linear):
    """Half a cosine from ``start`` to ``end`` over ``steps``, then ``end``.

    ``level(t) = end + (start - end) * (1 + cos(pi * p)) / 2`` with
    ``p = clip((t - begin) / steps, 0, 1)`` (the shape of SGDR's learning-rate
    decay, Loshchilov and Hutter 2017). Arguments as for :class:`Linear`.

    Example:
        >>> from noisewise import schedules
        >>> schedules.cosine(1.0, 0.0, steps=4)(2)
        0.5
    """

    kind = "cosine"

    def __call__(self, t):
        p = _progress(t, self.begin, self.steps)
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * p))


class Exponential(Schedule):
    """``start * rate ** (t / steps)`` (with ``floor(t / steps)`` if ``staircase``).

    Args:
        start: Level at ``t = 0``, >= 0.
        rate: Factor applied every ``steps``, > 0 (< 1 decays, > 1 grows).
        steps: Number of epochs or steps per factor ``rate``, >= 1.
        staircase: If True, the level changes in jumps every ``steps``.

    Example:
        >>> from noisewise import schedules
        >>> schedules.exponential(1.0, rate=0.5, steps=2)(4)
        0.25
    """

    kind = "exponential"

    def __init__(self, start: float, rate: float, steps: int = 1,
                 staircase: bool = False) -> None:
        self.start = check_non_negative("start", start)
        self.rate = check_non_negative("rate", rate)
        if self.rate == 0.0:
            raise ValueError(f"`rate` must be > 0. Received: rate={rate!r}")
        self.steps = check_int("steps", steps, low=1)
        self.staircase = bool(staircase)

    def __call__(self, t):
        exponent = t / self.steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.start * self.rate**exponent

    def get_config(self):
        return {"start": self.start, "rate": self.rate, "steps": self.steps,
                "staircase": self.staircase}


class Step(Schedule):
    """Piecewise constant: ``values[i]`` from ``t = boundaries[i - 1]`` on.

    ``values[0]`` holds for ``t < boundaries[0]``, ``values[1]`` for
    ``boundaries[0] <= t < boundaries[1]``, and so on; so a boundary is the
    first epoch (or step) of the next value.

    Args:
        boundaries: Strictly increasing non-negative numbers.
        values: Levels (>= 0), one more than ``boundaries``.

    Example:
        >>> from noisewise import schedules
        >>> s = schedules.step([10, 20], [0.3, 0.1, 0.0])
        >>> s(9), s(10), s(25)
        (0.3, 0.1, 0.0)
    """

    kind = "step"

    def __init__(self, boundaries: Sequence[float], values: Sequence[float]) -> None:
        if not isinstance(boundaries, (list, tuple)) or not all(
                is_finite_number(b) for b in boundaries):
            raise ValueError(
                "`boundaries` must be a list of finite numbers. "
                f"Received: boundaries={boundaries!r}"
            )
        if any(b < 0 for b in boundaries) or any(
            b >= c for b, c in zip(boundaries, boundaries[1:])
        ):
            raise ValueError(
                "`boundaries` must be strictly increasing and >= 0. "
                f"Received: boundaries={list(boundaries)!r}"
            )
        if not isinstance(values, (list, tuple)) or len(values) != len(boundaries) + 1:
            raise ValueError(
                "`values` must be a list with one more entry than `boundaries` "
                f"({len(boundaries) + 1}). Received: values={values!r}"
            )
        self.boundaries = [b if isinstance(b, int) else float(b) for b in boundaries]
        self.values = [check_non_negative("values", v) for v in values]

    def __call__(self, t):
        return self.values[bisect.bisect_right(self.boundaries, t)]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values)}


# Direction and range of a metric from its name, as noisewise.study's statistics
# read them (a test keeps the two rules alike). Loss-like words count anywhere
# in a name; the calibration metrics' short names only as words ("test_mc_ece",
# not "piece").
_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "mape", "msle", "crossentropy", "hinge",
                    "divergence")
_LOWER_WORDS = re.compile(r"(?<![a-z])(ece|nll|brier|aurc)(?![a-z])")
_FRACTION = re.compile(r"(?<![a-z])(acc|accuracy|auc|prc|precision|recall|f1|fbeta|f1_score"
                       r"|iou|io_u|specificity|sensitivity)(?![a-z])")
MODES = ("auto", "max", "min")


def higher_is_better(metric: str) -> bool:
    """False for loss-, error- and miscalibration-like metric names (``loss``,
    ``mae``, ``test_ece``, ``test_mc_nll``, ``brier``, ``aurc``...), else True."""
    name = metric.lower()
    return not (any(word in name for word in _LOWER_IS_BETTER) or _LOWER_WORDS.search(name))


def is_fraction(metric: str) -> bool:
    """True for metrics valued in [0, 1] by their name (accuracy, auc, precision...)."""
    return bool(_FRACTION.search(metric.lower()))


class Adaptive(Schedule):
    """A level that follows how much the model overfits, updated after each validated epoch.

    After every epoch whose logs hold the validation metrics, with ``m`` the
    ``signal`` metric::

        gap  = m - val_m    if higher m is better (accuracy, auc, ...)
        gap  = val_m - m    if lower m is better (loss, mse, ...)
        next = clip(level + gain * (gap - target), low, high)

    so the level rises while the train-validation gap exceeds ``target`` and
    falls while it is below; epochs without validation leave it, and so does
    a gap that is not finite. The arithmetic is float32, the precision of the
    level variable, so a vectorised trainer computing the rule in its compiled
    program follows the same trajectory. This is the controller StyleGAN2-ADA
    uses for its augmentation probability (Karras et al. 2020, "Training
    Generative Adversarial Networks with Limited Data"), with its overfitting
    heuristic replaced by a metric's train-validation gap and its fixed step
    by a proportional one. The starting level is the layer's own; it must lie
    within ``bounds``. Drive layers with it through :class:`NoiseScheduler`.

    Args:
        signal: The metric's name in the training logs (``"loss"``,
            ``"accuracy"``, ...); its validation curve is ``"val_" + signal``.
        target: The gap to hold, finite; within [-1, 1] for a metric valued
            in [0, 1] (accuracy-like).
        gain: Level change per unit of gap above ``target``, > 0.
        bounds: ``(low, high)`` of the level, finite, ``low <= high``.
        mode: ``"max"`` (higher is better), ``"min"``, or ``"auto"``: from
            the name (``loss``, ``mse``, ``mae``, ``*error*``... are ``"min"``).

    Example:
        >>> from noisewise import schedules
        >>> ada = schedules.adaptive("accuracy", target=0.05, gain=0.5, bounds=(0.0, 1.0))
        >>> round(ada.update(0.2, {"accuracy": 0.95, "val_accuracy": 0.8}), 4)
        0.25
        >>> ada.update(0.2, {"accuracy": 0.8, "val_accuracy": 0.8})
        0.17499999701976776
    """

    kind = "adaptive"

    def __init__(self, signal: str = "accuracy", target: float = 0.0, gain: float = 1.0,
                 bounds: Sequence[float] = (0.0, 1.0), mode: str = "auto") -> None:
        if not isinstance(signal, str) or not signal or signal.startswith("val_"):
            raise ValueError("`signal` must be a metric's name in the training logs (its "
                             "validation curve is 'val_' + signal). "
                             f"Received: signal={signal!r}")
        self.signal = signal
        self.mode = check_choice("mode", mode, MODES)
        self.target = check_number("target", target)
        if is_fraction(signal) and not -1.0 <= self.target <= 1.0:
            raise ValueError(f"`target` must be in [-1, 1]: the gap of {signal!r}, valued in "
                             f"[0, 1], lies there. Received: target={target!r}")
        self.gain = check_number("gain", gain, low=0.0, low_open=True)
        if not isinstance(bounds, (list, tuple)) or len(bounds) != 2 or not all(
                is_finite_number(b) for b in bounds):
            raise ValueError("`bounds` must be a pair (low, high) of finite numbers. "
                             f"Received: bounds={bounds!r}")
        if bounds[0] > bounds[1]:
            raise ValueError(f"`bounds` must satisfy low <= high. Received: bounds={bounds!r}")
        self.bounds = (float(bounds[0]), float(bounds[1]))

    @property
    def higher_is_better(self) -> bool:
        return self.mode == "max" or (self.mode == "auto" and higher_is_better(self.signal))

    def __call__(self, t):
        raise TypeError("An adaptive schedule sets the level from each epoch's logs, not from "
                        "t: drive layers with NoiseScheduler(schedule), or call "
                        "schedule.update(level, logs).")

    def check_start(self, level: float, where: str = "the level") -> float:
        """``level`` if it lies within ``bounds``, else a ValueError naming ``where``."""
        low, high = self.bounds
        if not low <= level <= high:
            raise ValueError(f"The starting level of {where}, {level!r}, is outside the "
                             f"adaptive schedule's `bounds`. Received: bounds={self.bounds!r}")
        return level

    def missing(self, logs: dict) -> str | None:
        """Which of the signal's curves ``logs`` lack (None when both are there)."""
        names = [n for n in (self.signal, "val_" + self.signal) if n not in logs]
        return ", ".join(repr(n) for n in names) or None

    def update(self, level: float, logs: dict) -> float:
        """The next level from the current one and an epoch's logs (with validation)."""
        f = np.float32
        train, val = f(logs[self.signal]), f(logs["val_" + self.signal])
        gap = train - val if self.higher_is_better else val - train
        if not np.isfinite(gap):
            return float(level)
        low, high = self.bounds
        return float(np.clip(f(level) + f(self.gain) * (gap - f(self.target)), f(low), f(high)))

    def get_config(self):
        return {"signal": self.signal, "target": self.target, "gain": self.gain,
                "bounds": list(self.bounds), "mode": self.mode}


# optax-style lowercase names: ``schedules.linear(0.5, 0.0, steps=10)``.
constant = Constant
linear = Linear
cosine = Cosine
exponential = Exponential
step = Step
piecewise = Step
adaptive = Adaptive

KINDS = {cls.kind: cls for cls in (Constant, Linear, Cosine, Exponential, Step, Adaptive)}


def serialize(schedule: Schedule) -> dict[str, Any]:
    """A plain dict (``{"kind": ..., **arguments}``) that :func:`get` turns back into ``schedule``."""
    if not isinstance(schedule, Schedule):
        raise ValueError(
            "Only noisewise schedules can be serialized (a plain callable cannot). "
            f"Received: schedule={schedule!r}"
        )
    return {"kind": schedule.kind, **schedule.get_config()}


def get(identifier: Any) -> Schedule | Callable[[int], float]:
    """A schedule from a :class:`Schedule`, a callable ``f(t) -> level``, a number
    (constant level) or a dict ``{"kind": "linear", "start": ..., ...}``.

    Example:
        >>> from noisewise import schedules
        >>> schedules.get({"kind": "linear", "start": 0.5, "end": 0.0, "steps": 5})(5)
        0.0
    """
    if isinstance(identifier, Schedule) or (callable(identifier) and not isinstance(identifier, type)):
        return identifier
    if _is_real(identifier):
        return Constant(identifier)
    if isinstance(identifier, dict) and "kind" in identifier:
        config = dict(identifier)
        kind = check_choice("kind", config.pop("kind"), tuple(KINDS))
        try:
            return KINDS[kind](**config)
        except TypeError as err:
            raise ValueError(
                f"Bad arguments for a {kind!r} schedule: {err}. Received: {identifier!r}"
            ) from None
    raise ValueError(
        "`schedule` must be a noisewise schedule, a callable f(t) -> level, a "
        'number, or a dict such as {"kind": "linear", "start": 0.5, "end": 0.0, '
        f'"steps": 10}}. Received: schedule={identifier!r}'
    )


# The callback lives in noisewise.layers.scheduler; these names stay reachable here.
_CALLBACK_NAMES = ("NoiseScheduler", "find_noise_layers", "is_noise_layer")


def __getattr__(name):
    if name in _CALLBACK_NAMES:
        from noisewise.layers import scheduler  # it imports this module: not at the top

        return getattr(scheduler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Adaptive", "Constant", "Cosine", "Exponential", "Linear", "Schedule", "Step", "adaptive",
    "constant", "cosine", "exponential", "get", "higher_is_better", "is_fraction", "linear",
    "piecewise", "serialize", "step",
]
