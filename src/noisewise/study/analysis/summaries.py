"""Per-arm summaries: the final metric, its best-epoch value and the train-test gap.

Only ``done`` runs count (:mod:`noisewise.study.analysis.counts`); each value
is an :class:`~noisewise.study.analysis.estimates.Estimate`.
"""

import math
from dataclasses import dataclass

import numpy as np

from noisewise.study.analysis.counts import _table
from noisewise.study.analysis.estimates import (
    UNBOUNDED,
    Estimate,
    difference_bounds,
    estimate,
    metric_bounds,
    warning_for,
)


@dataclass(frozen=True)
class ArmSummary:
    """One arm: the final metric, the best-epoch metric and the train-test gap.

    ``best`` is optimistic: choosing the best epoch by the validation metric
    and reporting that same metric overstates what a fresh test set would show.
    ``warning`` is set below 5 seeds; ``bounds`` are the metric's
    (:func:`metric_bounds`), within which the CI stays.
    """

    arm: str
    metric: str
    final: Estimate
    best: Estimate
    gap: Estimate
    best_is_optimistic: bool = True
    warning: str | None = None
    bounds: tuple = UNBOUNDED

    n = property(lambda self: self.final.n)
    mean = property(lambda self: self.final.mean)
    std = property(lambda self: self.final.std)
    sem = property(lambda self: self.final.sem)
    ci_low = property(lambda self: self.final.ci_low)
    ci_high = property(lambda self: self.final.ci_high)
    note = property(lambda self: self.final.note)


def summarize(runs, metric="val_accuracy", confidence=0.95, bounds=None):
    """Per-arm summary of the final ``metric``, its best-epoch value and the train-test gap.

    Args:
        runs: Run records (``Store.runs``).
        metric: Final metric (Keras name). The best-epoch value is read from
            ``final["best_" + metric]``; the gap is ``final[train] - final[metric]``
            where ``train`` is ``metric`` without its ``val_`` prefix.
        confidence: CI level (:func:`interval`).
        bounds: ``(lo, hi)`` of the metric; default from its name
            (:func:`metric_bounds`). The gap's are those of a difference.

    Returns:
        ``{arm: ArmSummary}`` in arm order.
    """
    bounds = metric_bounds(metric) if bounds is None else tuple(bounds)
    best = _table(runs, f"best_{metric}")
    train = metric[4:] if metric.startswith("val_") else None
    train_t = _table(runs, train) if train else {}
    out = {}
    for arm, row in _table(runs, metric).items():
        gap = [train_t[arm][k] - v for k, v in row.items()] if train else []
        final = estimate(list(row.values()), confidence, bounds)
        out[arm] = ArmSummary(
            arm, metric, final,
            _recorded(list(best[arm].values()), f"no best_{metric} recorded", confidence, bounds),
            _recorded(gap, f"no {train} or {metric} recorded" if train
                      else f"no train-test gap: {metric!r} is not a val_ metric", confidence,
                      difference_bounds(bounds)),
            warning=warning_for(final.n), bounds=bounds,
        )
    return out


def _recorded(values, why_not, confidence, bounds=UNBOUNDED):
    if np.isfinite(values).any():
        return estimate(values, confidence, bounds)
    nan = math.nan
    return Estimate(0, nan, nan, nan, nan, nan, why_not)
