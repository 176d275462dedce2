"""Noise-level schedules, and the callback that drives noise layers with them.

A schedule maps ``t`` (an epoch or a step index, from 0) to a noise level.
:class:`NoiseScheduler` evaluates it at the start of every epoch or step and
sets the level of noise layers (anything with ``set_level``/``get_level``:
noisewise noise layers and :class:`~noisewise.WeightNoise`). Levels are
non-trainable variables, so a new level takes effect without recompiling.
Every argument of a schedule is a finite number (NaN and infinity are
refused), and the callback refuses a schedule that returns anything else.

Annealing the noise, strong early and weak late, is the idea of Geras and
Sutton (2015), "Scheduled Denoising Autoencoders", and of annealed gradient
noise (Neelakantan et al. 2015); curricula that raise the noise work the same way.
"""

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras

from noisewise._core import keras_compat
from noisewise._core.validation import (
    _is_real, check_choice, check_int, check_non_negative, is_finite_number,
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


# optax-style lowercase names: ``schedules.linear(0.5, 0.0, steps=10)``.
constant = Constant
linear = Linear
cosine = Cosine
exponential = Exponential
step = Step
piecewise = Step

KINDS = {cls.kind: cls for cls in (Constant, Linear, Cosine, Exponential, Step)}


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


def is_noise_layer(layer: Any) -> bool:
    """True for layers whose noise level can be scheduled (``get_level`` and ``set_level``)."""
    return callable(getattr(layer, "set_level", None)) and callable(getattr(layer, "get_level", None))


def find_noise_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Every schedulable noise layer in ``model``, recursively (nested models, wrappers)."""
    # Every tracked sublayer, also inside subclassed layers and models, which
    # `model.layers` does not reach.
    return [layer for layer in keras_compat.flatten_layers(model, include_self=False)
            if is_noise_layer(layer)]


def _layer_index(model):
    layers = keras_compat.flatten_layers(model, include_self=False)
    return layers, {layer.name: layer for layer in layers}


class NoiseScheduler(keras.callbacks.Callback):
    """Set noise layers' levels from a schedule at each epoch or step, and log them.

    At the start of every epoch (``by="epoch"``, ``t`` = the epoch index) or
    every training step (``by="step"``, ``t`` = the optimizer's step count at
    the start of ``fit`` plus the batches trained since, so it carries over
    between ``fit`` calls) the schedule is evaluated and the level
    set on the target layers; at the end of each epoch the level in use (for
    ``by="step"``, the last step's) is written to ``logs[log_name]``, so it
    appears in ``History.history``. With a per-layer dict of schedules the log
    keys are ``f"{log_name}/{layer.name}"``. Levels persist after training.

    On JAX, ``fit`` detaches the values of the model's variables and trains a
    private copy during an epoch: a level assigned mid-epoch would not reach
    the training step, and would be overwritten when the copy is written back
    at the epoch's end. For per-step changes the callback first calls
    ``model.jax_state_sync()``, which writes the copy back and marks it
    stale; ``fit`` then re-reads every variable, the new level included,
    before the next step. This is the hook Keras' JAX trainer provides for
    callbacks that touch state; it costs one pass over the variables, and
    only on steps where a level changes. With ``steps_per_execution > 1``,
    levels change once per execution block.

    Args:
        schedule: A schedule (see :mod:`noisewise.schedules`), any callable
            ``f(t) -> level``, a number, or a dict mapping layers (or layer
            names) to such schedules for per-layer levels (a dict with a
            ``"kind"`` key is a schedule config, see :func:`get`).
        layers: Layers or layer names to drive. Default: every layer of the
            model, searched recursively, that has ``set_level`` and
            ``get_level`` (noisewise noise layers and ``WeightNoise``). Not
            allowed with a per-layer dict.
        by: ``"epoch"`` or ``"step"``.
        log_name: Key of the level in the epoch logs.

    Example:
        >>> import keras, numpy as np, noisewise
        >>> from noisewise import schedules
        >>> model = keras.Sequential([keras.Input((4,)), noisewise.GaussianNoise(1.0),
        ...                           keras.layers.Dense(1)])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> cb = noisewise.NoiseScheduler(schedules.linear(1.0, 0.0, steps=2))
        >>> h = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=3, callbacks=[cb], verbose=0)
        >>> h.history["noise_level"]
        [1.0, 0.5, 0.0]
    """

    def __init__(self, schedule: Any, layers: Any = None, by: str = "epoch",
                 log_name: str = "noise_level") -> None:
        super().__init__()
        self.by = check_choice("by", by, ("epoch", "step"))
        if not isinstance(log_name, str) or not log_name:
            raise ValueError(f"`log_name` must be a non-empty string. Received: log_name={log_name!r}")
        self.log_name = log_name
        self.per_layer = isinstance(schedule, dict) and "kind" not in schedule
        if self.per_layer:
            if not schedule:
                raise ValueError("`schedule` must not be an empty dict. Received: schedule={}")
            if layers is not None:
                raise ValueError(
                    "Pass either a per-layer dict of schedules or `layers`, not both. "
                    f"Received: layers={layers!r}"
                )
            self.schedule = {key: get(value) for key, value in schedule.items()}
        else:
            self.schedule = get(schedule)
        if layers is not None:
            if isinstance(layers, (str, keras.layers.Layer)):
                layers = [layers]
            if not isinstance(layers, (list, tuple)) or not layers:
                raise ValueError(
                    "`layers` must be None or a non-empty list of layers or layer names. "
                    f"Received: layers={layers!r}"
                )
        self.layers = layers
        self._groups = []

    # -- targets ---------------------------------------------------------------
    def _resolve(self, item, index):
        all_layers, by_name = index
        layer = by_name.get(item) if isinstance(item, str) else item
        if layer is None:
            names = [layer.name for layer in all_layers if is_noise_layer(layer)]
            raise ValueError(
                f"No layer named {item!r} in model {self.model.name!r} "
                f"(its noise layers: {names}). Received: layers={item!r}"
            )
        if not is_noise_layer(layer):
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) has no `set_level`/"
                f"`get_level`, so its noise level cannot be scheduled. Received: layers={item!r}"
            )
        return layer

    def _build_groups(self):
        index = _layer_index(self.model)
        if self.per_layer:
            groups = []
            for key, schedule in self.schedule.items():
                layer = self._resolve(key, index)
                groups.append((f"{self.log_name}/{layer.name}", schedule, [layer]))
            return groups
        if self.layers is None:
            targets = [layer for layer in index[0] if is_noise_layer(layer)]
            if not targets:
                raise ValueError(
                    f"NoiseScheduler found no noise layers (with `set_level`) in model "
                    f"{self.model.name!r}. Received: layers=None"
                )
        else:
            targets = [self._resolve(item, index) for item in self.layers]
        return [(self.log_name, self.schedule, targets)]

    # -- setting levels ----------------------------------------------------------
    def _set_levels(self, t):
        synced = False
        for key, schedule, layers in self._groups:
            level = schedule(t)
            if not _is_real(level) or not math.isfinite(level):
                raise ValueError(
                    f"Schedule {schedule!r} must return a finite number; at {self.by} {t} "
                    f"it returned {level!r}."
                )
            level = float(level)
            if self._current.get(key) == level:
                continue
            if not synced:
                # JAX: write fit's private state back and mark it stale, so fit
                # re-reads the variables (and the new level) before the next step.
                sync = getattr(self.model, "jax_state_sync", None)
                if sync is not None:
                    sync()
                synced = True
            for layer in layers:
                try:
                    layer.set_level(level)
                except ValueError as err:
                    raise ValueError(
                        f"Schedule {schedule!r} gave level {level} at {self.by} {t}, "
                        f"which layer {layer.name!r} does not accept: {err}"
                    ) from None
            self._current[key] = level

    def on_train_begin(self, logs=None):
        self._groups = self._build_groups()
        self._current = {}
        optimizer = getattr(self.model, "optimizer", None)
        self._step_offset = 0
        if optimizer is not None:
            self._step_offset = int(keras.ops.convert_to_numpy(optimizer.iterations))
        self._steps_done = 0
        self._batches_this_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._steps_done += self._batches_this_epoch
        self._batches_this_epoch = 0
        if self.by == "epoch":
            self._set_levels(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.by == "step":
            self._set_levels(self._step_offset + self._steps_done + batch)

    def on_train_batch_end(self, batch, logs=None):
        self._batches_this_epoch = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for key, _, _ in self._groups:
                logs[key] = self._current.get(key)


__all__ = [
    "Constant", "Cosine", "Exponential", "Linear", "NoiseScheduler", "Schedule", "Step",
    "constant", "cosine", "exponential", "find_noise_layers", "get", "is_noise_layer",
    "linear", "piecewise", "serialize", "step",
]
