"""The verdict of a study in words, shared by the HTML report and the terminal table.

Three things are read from the statistics and said plainly:

- each arm's **verdict** against the reference (``helps``, ``hurts`` or ``no
  detectable difference``, decided in :mod:`noisewise.study.stats`), with one
  sentence per arm: the paired difference, its interval, the number of
  paired seeds and the share of seeds on which the arm did better;
- the **reason no test was made**, where there is one, in place of a p-value;
- whether the validation metric is **still improving** at the end of
  training (:func:`still_improving`): then the verdict describes a model
  that has not finished learning, and the study should train longer.

The statistics module gains these fields in steps, so every one is read with
a default (``getattr(c, "verdict", None)``): a comparison without a verdict
gets a sentence without one, never a made-up verdict.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

HELPS, HURTS, NO_DIFFERENCE = "helps", "hurts", "no detectable difference"
VERDICTS = (HELPS, HURTS, NO_DIFFERENCE)
SHORT = {NO_DIFFERENCE: "no diff"}  # the terminal table's 80 columns
TAIL = 0.1  # "the end of training": the last tenth of the epochs
MIN_TAIL_POINTS = 3  # a slope from fewer validated epochs says little


def finite(x):
    """True for a real, finite number (not None, not NaN, not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def verdict(c):
    """The comparison's verdict (one of :data:`VERDICTS`), or None when it has none."""
    v = getattr(c, "verdict", None)
    return v if v in VERDICTS else None


def no_test_reason(c, test="t"):
    """Why the comparison has no t-test (``test="t"``; then no verdict either) or no
    Wilcoxon test (``test="wilcoxon"``), its p-value then None; or None."""
    if test == "wilcoxon":
        return getattr(c, "no_wilcoxon_reason", None) or no_test_reason(c)
    return getattr(c, "no_test_reason", None) or None


def decimals(scales, default=4):
    """Decimals that show the smallest positive ``scales`` (CI half-widths) to one digit.

    Example:
        >>> decimals([0.0081, 0.0042])
        3
        >>> decimals([1.5]), decimals([]), decimals([0.0])
        (1, 4, 4)
    """
    positive = [abs(s) for s in scales if finite(s) and s != 0]
    if not positive:
        return default
    return int(min(8, max(1, -math.floor(math.log10(min(positive))))))


def _signed(x, digits):
    return f"{x:+.{digits}f}"


def sentence(c, metric, digits=None):
    """One plain sentence of an arm against the reference.

    Example: ``hidden_post: +0.039 [+0.031, +0.047] val_accuracy over 30
    paired seeds, better on 95% of seeds: helps.``

    Args:
        c: A :class:`~noisewise.study.stats.Comparison`.
        metric: The metric name, as the sentence names it.
        digits: Decimals (default from the interval, :func:`decimals`).
    """
    if not c.n:
        return f"{c.arm}: no seed finished in both this arm and the reference, so no comparison."
    has_ci = finite(c.ci_low) and finite(c.ci_high)
    if digits is None:
        digits = decimals([(c.ci_high - c.ci_low) / 2 if has_ci else c.mean_diff])
    diff = _signed(c.mean_diff, digits) if finite(c.mean_diff) else "no difference"
    ci = f" [{_signed(c.ci_low, digits)}, {_signed(c.ci_high, digits)}]" if has_ci else ""
    seeds = "1 paired seed" if c.n == 1 else f"{c.n} paired seeds"
    better = (f", better on {c.prob_better:.0%} of seeds" if finite(c.prob_better) else "")
    text = f"{c.arm}: {diff}{ci} {metric} over {seeds}{better}"
    v, reason = verdict(c), no_test_reason(c)
    if v is not None:
        text += f": {v}"
    if reason:
        text += f" (no test: {reason})"
    return text + "."


@dataclass(frozen=True)
class Trend:
    """How a metric moved over the last epochs of an arm's runs.

    ``gain`` is the mean over seeds of each run's least-squares slope over
    epochs ``first_epoch`` to ``last_epoch``, times that span: what the
    metric gained (in its better direction, so a falling loss gains) over
    the window. ``ci_low``/``ci_high`` is its t-based interval over the
    ``n`` seeds; ``improving`` is True when that interval lies above zero.
    """

    arm: str
    metric: str
    n: int
    first_epoch: int
    last_epoch: int
    gain: float
    ci_low: float
    ci_high: float
    improving: bool


def _window(epochs, tail=TAIL, min_points=MIN_TAIL_POINTS):
    """Indices of the validated epochs in the last ``tail`` of training (at least
    the last ``min_points`` of them), or None when there are fewer points."""
    epochs = np.asarray(epochs)
    if epochs.size < min_points:
        return None
    inside = np.flatnonzero(epochs > (1 - tail) * epochs[-1])
    return inside if inside.size >= min_points else np.arange(epochs.size - min_points, epochs.size)


def trend(arm, epochs, matrix, metric, higher_is_better=True, tail=TAIL,
          min_points=MIN_TAIL_POINTS, confidence=0.95):
    """The :class:`Trend` of one arm's curves, or None when it cannot be measured.

    "Still improving" is defined on the seeds, which are independent (the
    epochs of one run are not): each run's curve over the last tenth of the
    epochs (at least its last ``min_points`` validated epochs) gets a
    least-squares slope; the arm is still improving when the t-based 95%
    interval of the mean slope over seeds excludes zero on the better side.
    It needs two seeds with at least two finite values in the window.

    Measured on the circles example (``make study``: 30 seeds, 4000 epochs,
    val_accuracy; ``noisewise show circles`` prints it): 3 of 13 arms are
    flagged, with gains over epochs 3601-4000 of +0.0030 [+0.0009, +0.0050]
    (hidden_pre), +0.0019 [+0.0002, +0.0036] (hidden_grid[stddev=0.3]) and
    +0.0120 [+0.0086, +0.0155] (hidden_grid[stddev=1.0]); the baseline's
    interval holds zero. Each arm is tested at 95% (a flat curve is flagged
    2.5% of the time, as ``tests/study/test_verdict.py`` checks), so with many
    arms a flag can be chance: it is a warning, not a finding.

    Args:
        arm: The arm's name.
        epochs: Validated epoch numbers (ascending), one per column.
        matrix: Runs x epochs values (NaN where a run has none).
        metric: The metric's name.
        higher_is_better: Direction of "improving".
        tail: Fraction of the last epoch that makes the window.
        min_points: Fewest validated epochs in the window.
        confidence: Level of the interval.
    """
    epochs = np.asarray(epochs, dtype=float)
    matrix = np.asarray(matrix, dtype=float)
    keep = _window(epochs, tail, min_points)
    if keep is None or matrix.ndim != 2 or matrix.shape[0] < 2:
        return None
    x = epochs[keep]
    sign = 1.0 if higher_is_better else -1.0
    slopes = []
    for row in matrix[:, keep]:
        ok = np.isfinite(row)
        if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
            # Relative to its first value, a flat curve fits a slope of exactly
            # 0; fitted as is, it gets one of +-1e-16 from rounding, and two
            # seeds with the same rounding made a zero-width interval above 0.
            values = row[ok] - row[ok][0]
            slopes.append(sign * np.polyfit(x[ok], values, 1)[0])
    if len(slopes) < 2:
        return None
    span = x[-1] - x[0]
    gains = np.asarray(slopes) * span
    mean, sem = float(gains.mean()), float(gains.std(ddof=1) / math.sqrt(gains.size))
    half = float(_st.t.ppf(0.5 + confidence / 2, gains.size - 1)) * sem
    low, high = mean - half, mean + half
    return Trend(arm, metric, int(gains.size), int(x[0]), int(x[-1]), mean, low, high,
                 bool(low > 0))


def still_improving(curves, metric, higher_is_better=True, **kwargs):
    """``[Trend]`` of the arms whose ``metric`` is still improving at the end of training.

    Args:
        curves: ``{arm: (epochs, runs x epochs matrix)}`` of ``metric``.
        metric: The metric's name.
        higher_is_better: Its direction.
        **kwargs: Passed to :func:`trend`.
    """
    out = []
    for arm, (epochs, matrix) in curves.items():
        t = trend(arm, epochs, matrix, metric, higher_is_better, **kwargs)
        if t is not None and t.improving:
            out.append(t)
    return out


def trend_digits(trends):
    """Decimals for the gains of ``trends``: one more than their intervals need."""
    return min(8, decimals([(t.ci_high - t.ci_low) / 2 for t in trends]) + 1)


def improving_text(trends, digits=None):
    """``hidden_pre +0.0025 [+0.0003, +0.0047]``, one per arm, comma-separated."""
    digits = trend_digits(trends) if digits is None else digits
    return ", ".join(f"{t.arm} {_signed(t.gain, digits)} [{_signed(t.ci_low, digits)}, "
                     f"{_signed(t.ci_high, digits)}]" for t in trends)
