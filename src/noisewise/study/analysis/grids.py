"""The best level of each grid, with a bootstrap over replicas of that choice."""

import math
import re
import warnings
from dataclasses import dataclass

import numpy as np

from noisewise.study.analysis.counts import _table
from noisewise.study.analysis.estimates import estimate, is_higher_better, metric_bounds


@dataclass(frozen=True)
class GridBest:
    """The best level of a grid and how sure that choice is.

    ``p_best[arm]`` is the fraction of bootstrap resamples of the replicas
    (resampled jointly, keeping the pairing) in which that level has the best
    mean, ties shared. ``ci_low``/``ci_high`` is the CI of the chosen level's
    mean (:func:`estimate`); the chosen mean is the best of several and so
    optimistic.
    """

    parent: str
    metric: str
    levels: tuple  # arm names, in spec order
    params: dict  # arm -> its grid parameters
    means: dict  # arm -> mean over its replicas
    p_best: dict  # arm -> bootstrap probability of being the best level
    best: str
    best_mean: float
    ci_low: float
    ci_high: float
    n_replicas: int
    n_boot: int
    note: str | None = None


_LEVEL_NAME = re.compile(r"^(?P<parent>.+)\[(?P<params>[^\[\]]*)\]$")


def _grid_key(run):
    """(parent, params) of a grid arm from its record, or from ``parent[k=v,...]``."""
    if run.get("arm_parent"):
        return run["arm_parent"], dict(run.get("arm_params") or {})
    match = _LEVEL_NAME.match(run["arm"])
    if not match:
        return None, None
    params = {}
    for item in match["params"].split(","):
        key, _, value = item.partition("=")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            params[key.strip()] = value.strip()
    return match["parent"], params


def grid_best(runs, metric="val_accuracy", parent=None, n_boot=2000, seed=0,
              confidence=0.95, higher_is_better=None):
    """The best level of each grid, with a bootstrap over replicas of that choice.

    Args:
        runs: Run records (``Store.runs``); grid arms share ``arm_parent``.
        metric: Final metric that ranks the levels.
        parent: Only this grid (default: every grid in ``runs``).
        n_boot: Bootstrap resamples of the replicas.
        seed: Seed of the bootstrap's ``numpy.random.Generator``.
        confidence: CI level of the best level's mean.
        higher_is_better: Direction; default from the metric name.

    Returns:
        ``{parent: GridBest}``.
    """
    if higher_is_better is None:
        higher_is_better = is_higher_better(metric)
    grids = {}
    for r in runs:
        p, params = _grid_key(r)
        if p is not None and (parent is None or p == parent):
            grids.setdefault(p, {})[r["arm"]] = params
    if parent is not None and parent not in grids:
        raise ValueError(f"`parent` must name a grid in the runs. Received: parent={parent!r}")
    table = _table(runs, metric)
    rng = np.random.default_rng(seed)
    out = {}
    for name, levels in grids.items():
        arms = [a for a in table if a in levels]
        replicas = sorted({k for a in arms for k in table[a]})
        m = np.array([[table[a].get(k, math.nan) for a in arms] for k in replicas])
        m[~np.isfinite(m)] = math.nan
        sign = 1.0 if higher_is_better else -1.0
        if not np.isfinite(m).any():
            out[name] = GridBest(name, metric, tuple(arms), {a: levels[a] for a in arms},
                                 {a: math.nan for a in arms}, {a: math.nan for a in arms},
                                 None, math.nan, math.nan, math.nan, len(replicas), 0,
                                 "no finite values: no best level")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN levels
            means = np.nanmean(m, axis=0)
            boot = np.nanmean(m[rng.integers(0, len(replicas), (n_boot, len(replicas)))], axis=1)
        scored = np.where(np.isnan(boot), -np.inf, sign * boot)
        top = scored == scored.max(axis=1, keepdims=True)
        p_best = (top / top.sum(axis=1, keepdims=True)).mean(axis=0)
        i = int(np.nanargmax(sign * means))
        est = estimate(m[:, i], confidence, metric_bounds(metric))
        notes = [est.note] if est.note else []
        if len(arms) == 1:
            notes.append("a single level: nothing to choose between")
        out[name] = GridBest(
            name, metric, tuple(arms), {a: levels[a] for a in arms},
            {a: float(v) for a, v in zip(arms, means)},
            {a: float(v) for a, v in zip(arms, p_best)},
            arms[i], est.mean, est.ci_low, est.ci_high, len(replicas), n_boot,
            "; ".join(notes) or None,
        )
    return out
