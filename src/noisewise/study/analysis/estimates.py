"""Estimates of a mean over seeds: :class:`Estimate`, metric bounds, the intervals.

Honest at small n and near bounds (docs/STATISTICS.md has the measured
coverage): an interval of a metric bounded in [0, 1] (accuracy, AUC,
precision, recall: :func:`metric_bounds`) is a t interval on the logit scale,
inside the bounds by construction; when every value is equal the data hold no
spread, and the interval is the distribution-free one such an outcome allows
(:func:`interval`). A value that is missing or not finite is left out and
counted in the note.
"""

import math
import re
from dataclasses import dataclass

import numpy as np
from scipy import special as _sp
from scipy import stats as _st

# The rule of noisewise.layers.schedules.higher_is_better, which cannot be
# imported here without Keras (a test keeps the two alike).
_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "mape", "msle", "crossentropy",
                    "hinge", "divergence")
_LOWER_WORDS = re.compile(r"(?<![a-z])(ece|nll|brier|aurc)(?![a-z])")
# Fractions in [0, 1]: Keras' accuracy/AUC/precision/recall/F1/IoU names and the
# robustness suite's ``*_acc@...`` (clean, noise, adversarial, certified, corruption).
_BOUNDED_WORDS = re.compile(r"(?<![a-z])(acc|accuracy|auc|prc|precision|recall|f1|fbeta|f1_score"
                            r"|iou|io_u|specificity|sensitivity)(?![a-z])")
UNBOUNDED = (-math.inf, math.inf)
# Two values closer than this, relative to the values' size, are equal: stored
# metrics are float32 (relative rounding 6e-8), so 3/70 - 0/70 and 5/70 - 2/70
# differ in their last bits; an accuracy step is coarser below a million test points.
_EQUAL_RTOL = 1e-6


@dataclass(frozen=True)
class Estimate:
    """Mean of ``n`` values with std (ddof=1), standard error and a CI.

    ``method`` names the interval: ``"t"``, ``"logit t"`` (bounded metric),
    ``"all equal"`` (the distribution-free interval of :func:`interval`) or
    None when there is no interval.
    """

    n: int
    mean: float
    std: float
    sem: float
    ci_low: float
    ci_high: float
    note: str | None = None
    method: str | None = None


def is_higher_better(metric):
    """False for loss-, error- and miscalibration-like metric names (``loss``,
    ``val_mae``, ``test_ece``, ``test_mc_brier``...), else True."""
    name = metric.lower()
    return not (any(word in name for word in _LOWER_IS_BETTER) or _LOWER_WORDS.search(name))


def metric_bounds(metric):
    """``(0.0, 1.0)`` for a fraction-valued metric name, else ``(-inf, inf)``.

    Fractions: names with the word acc, accuracy, auc, prc, precision, recall,
    f1, fbeta, iou/io_u, specificity or sensitivity (``val_accuracy``,
    ``best_val_auc``, ``certified_acc@r=0.25``); loss, mse and the rest are
    unbounded.
    """
    return (0.0, 1.0) if _BOUNDED_WORDS.search(metric.lower()) else UNBOUNDED


def difference_bounds(bounds):
    """Bounds of a difference of two values within ``bounds``: (0, 1) -> (-1, 1)."""
    lo, hi = bounds
    return (lo - hi, hi - lo)


def warning_for(n, what="seeds"):
    """The small-sample warning below 5 values (None from 5 on, and for none)."""
    if not 0 < n < 5:
        return None
    if n == 1:
        return f"only 1 of the {what}: no interval and no test"
    return f"only {n} {what}: intervals are wide and tests have little power"


def _all_equal(values, scale=None):
    """Along the last axis: every value equal within float32 rounding of ``scale``."""
    values = np.asarray(values, dtype=float)
    if scale is None:
        scale = np.max(np.abs(values), axis=-1)
    return np.ptp(values, axis=-1) <= _EQUAL_RTOL * np.asarray(scale)


def interval(values, bounds=UNBOUNDED, confidence=0.95, scale=None):
    """Mean, std and CI along the last axis of finite ``values`` (n >= 2 per row).

    Unbounded: the Student t interval. Bounded ``(lo, hi)``: the t interval of
    the mean on the logit scale of ``(mean - lo) / (hi - lo)`` (delta method:
    half-width ``t * sem / ((hi - lo) a (1 - a))``), mapped back, so it stays
    inside the bounds and widens on the side of the nearer bound, where a
    bounded metric's mean is skewed.

    When every value is equal (within float32 rounding of ``scale``, default
    the values' size) the data hold no spread. A distribution puts n equal
    draws at ``v`` with probability at least ``alpha = 1 - confidence`` only if
    ``P(X = v) >= q = alpha ** (1 / n)``, and then its mean lies in
    ``[lo + q (v - lo), hi - q (hi - v)]``; that is the interval (bounded
    metrics; NaN unbounded, where nothing bounds the mean). Three accuracies of
    1.0 give [0.37, 1].

    Returns:
        ``(mean, std, low, high, all_equal)`` arrays (std is 0 where all equal).
    """
    v = np.asarray(values, dtype=float)
    n = v.shape[-1]
    mean = v.mean(axis=-1)
    equal = _all_equal(v, scale)
    std = np.where(equal, 0.0, v.std(axis=-1, ddof=1))
    half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    lo, hi = bounds
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return (mean, std, np.where(equal, math.nan, mean - half),
                np.where(equal, math.nan, mean + half), equal)
    width = hi - lo
    a = np.clip((mean - lo) / width, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre, scaled = _sp.logit(a), half / (width * a * (1 - a))
        low = lo + width * np.nan_to_num(_sp.expit(centre - scaled), nan=0.0)
        high = lo + width * np.nan_to_num(_sp.expit(centre + scaled), nan=1.0)
    q = (1 - confidence) ** (1 / n)
    return (mean, std, np.where(equal, lo + q * (mean - lo), low),
            np.where(equal, hi - q * (hi - mean), high), equal)


def _within(values, bounds):
    """Every finite value within ``bounds``, up to float32 rounding."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    lo, hi = bounds
    slack = _EQUAL_RTOL * max(1.0, abs(lo) if math.isfinite(lo) else 0, abs(hi) if math.isfinite(hi) else 0)
    return not v.size or bool(v.min() >= lo - slack and v.max() <= hi + slack)


def estimate(values, confidence=0.95, bounds=UNBOUNDED, scale=None):
    """:class:`Estimate` of finite ``values``; n < 2 gives NaN spread and CI with a note.

    Args:
        values: The values; non-finite ones are left out and counted in the note.
        confidence: CI level.
        bounds: ``(lo, hi)`` the values cannot leave (:func:`metric_bounds`);
            the CI stays inside them (:func:`interval`). Values outside them
            make the estimate unbounded, with a note.
        scale: Size of the values the inputs were computed from (for
            differences: the compared values), for the all-equal check.
    """
    values = np.asarray(values, dtype=float).ravel()
    finite = values[np.isfinite(values)]
    n = finite.size
    notes = [f"{values.size - n} non-finite value(s) left out"] if n < values.size else []
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan, math.nan,
                        "; ".join(notes + ["no runs"]))
    if n == 1:
        notes.append("n=1: one run gives no spread and no confidence interval")
        return Estimate(1, float(finite[0]), math.nan, math.nan, math.nan, math.nan,
                        "; ".join(notes))
    lo, hi = bounds
    bounded = math.isfinite(lo) and math.isfinite(hi)
    if bounded and not _within(finite, bounds):
        notes.append(f"values outside [{lo:g}, {hi:g}]: the interval is not bounded")
        bounds, bounded = UNBOUNDED, False
    elif bounded:
        finite = np.clip(finite, lo, hi)  # float32 rounding past a bound
    mean, std, low, high, equal = (float(x) for x in interval(finite, bounds, confidence, scale))
    method = "logit t" if bounded else "t"
    if equal:
        method = "all equal" if bounded else None
        notes.append(f"all {n} values equal: " + (
            "the interval is the distribution-free one n equal values allow" if bounded
            else "no spread and no interval"))
    return Estimate(n, mean, std, std / math.sqrt(n), low, high, "; ".join(notes) or None,
                    method)
