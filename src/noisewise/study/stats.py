"""Statistics of a noise study, computed from store records (numpy + scipy.stats).

Input is a list of run records as returned by ``Store.runs``: dicts with
``arm``, ``replica``, ``status`` and ``final`` (final metrics under Keras
names); grid arms also carry ``arm_parent`` and ``arm_params``. Records of any
status may be passed: only ``done`` runs count. A ``diverged`` run (its loss
or a metric became NaN or infinite; so is a ``done`` run of an older store
whose final loss is not finite, see :func:`run_status`) or a ``failed`` one
is left out of every estimate and test; :func:`run_counts` says how many each
arm lost, and a comparison names the replicas it lost. A done run whose metric
is missing or not finite is left out and counted in the notes.

Replica ``i`` of every arm shares its seed (same initial weights and data
order), so arms are compared *paired*, on the replicas both have: a paired
t-test (``scipy.stats.ttest_rel``) and a Wilcoxon signed-rank test on the
differences, each Holm-Bonferroni adjusted across the arms compared with the
reference (Holm, 1979, "A simple sequentially rejective multiple test
procedure", Scand. J. Statist. 6:65-70).

Example:
    >>> from noisewise.study.stats import summarize, compare
    >>> runs = [{"arm": a, "replica": i, "status": "done",
    ...          "final": {"val_accuracy": v}}
    ...         for a, vals in {"base": [0.80, 0.82, 0.81],
    ...                         "noisy": [0.84, 0.85, 0.83]}.items()
    ...         for i, v in enumerate(vals)]
    >>> round(summarize(runs)["noisy"].mean, 3)
    0.84
    >>> round(compare(runs, "base")["noisy"].mean_diff, 3)
    0.03
"""

import math
import re
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "mape", "msle", "crossentropy",
                    "hinge", "divergence")


@dataclass(frozen=True)
class Estimate:
    """Mean of ``n`` values with std (ddof=1), standard error and a t-based CI."""

    n: int
    mean: float
    std: float
    sem: float
    ci_low: float
    ci_high: float
    note: str | None = None


@dataclass(frozen=True)
class ArmSummary:
    """One arm: the final metric, the best-epoch metric and the train-test gap.

    ``best`` is optimistic: choosing the best epoch by the validation metric
    and reporting that same metric overstates what a fresh test set would show.
    """

    arm: str
    metric: str
    final: Estimate
    best: Estimate
    gap: Estimate
    best_is_optimistic: bool = True

    n = property(lambda self: self.final.n)
    mean = property(lambda self: self.final.mean)
    std = property(lambda self: self.final.std)
    sem = property(lambda self: self.final.sem)
    ci_low = property(lambda self: self.final.ci_low)
    ci_high = property(lambda self: self.final.ci_high)
    note = property(lambda self: self.final.note)


@dataclass(frozen=True)
class Comparison:
    """An arm against the reference on their common replicas (diff = arm - reference).

    ``prob_better`` is the fraction of common replicas on which the arm did
    better than the reference, ties counting one half: the paired probability
    of superiority, an estimate of P(arm beats reference on a new seed).
    """

    arm: str
    reference: str
    metric: str
    n: int
    mean_diff: float
    std_diff: float
    ci_low: float
    ci_high: float
    p_ttest: float
    p_wilcoxon: float
    p_ttest_holm: float
    p_wilcoxon_holm: float
    prob_better: float
    higher_is_better: bool
    note: str | None = None


@dataclass(frozen=True)
class GridBest:
    """The best level of a grid and how sure that choice is.

    ``p_best[arm]`` is the fraction of bootstrap resamples of the replicas
    (resampled jointly, keeping the pairing) in which that level has the best
    mean, ties shared. ``ci_low``/``ci_high`` is the t-based CI of the chosen
    level's mean; the chosen mean is the best of several and so optimistic.
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


def is_higher_better(metric):
    """False for loss/error-like metric names (``loss``, ``val_mae``...), else True."""
    return not any(word in metric.lower() for word in _LOWER_IS_BETTER)


def estimate(values, confidence=0.95):
    """:class:`Estimate` of finite ``values``; n < 2 gives NaN spread and CI with a note."""
    values = np.asarray(values, dtype=float).ravel()
    finite = values[np.isfinite(values)]
    n = finite.size
    notes = [f"{values.size - n} non-finite value(s) left out"] if n < values.size else []
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan, math.nan,
                        "; ".join(notes + ["no runs"]))
    mean = float(finite.mean())
    if n == 1:
        notes.append("n=1: one run gives no spread and no confidence interval")
        return Estimate(1, mean, math.nan, math.nan, math.nan, math.nan, "; ".join(notes))
    std = float(finite.std(ddof=1))
    sem = std / math.sqrt(n)
    half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    return Estimate(n, mean, std, sem, mean - half, mean + half, "; ".join(notes) or None)


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and are not counted).

    The i-th smallest of m p-values is multiplied by (m - i + 1), then a running
    maximum keeps the adjusted values in the same order; capped at 1.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def _value(run, metric):
    final = run.get("final")
    value = final.get(metric) if isinstance(final, dict) else run.get(metric)
    return math.nan if value is None else float(value)


def run_status(run):
    """``"done"``, ``"diverged"`` or ``"failed"``: the stored status, except that a
    ``done`` run whose final ``loss`` or ``val_loss`` is not finite counts as
    diverged (stores written before divergence was a status hold such runs).

    Example:
        >>> run_status({"status": "done", "final": {"loss": float("nan")}})
        'diverged'
    """
    status = run.get("status", "done")
    if status == "done":
        final = run.get("final")
        final = final if isinstance(final, dict) else {}
        for key in ("loss", "val_loss"):
            value = final.get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                return "diverged"
    return status


@dataclass(frozen=True)
class RunCounts:
    """What became of an arm's runs: finished, diverged, failed.

    ``first_diverged_epoch`` is the earliest 1-based epoch at which one of its
    runs diverged (None when unknown or none diverged).
    """

    arm: str
    done: int
    diverged: int
    failed: int
    first_diverged_epoch: int | None = None

    lost = property(lambda self: self.diverged + self.failed)
    all_diverged = property(lambda self: self.done == 0 and self.diverged > 0)

    def text(self):
        """``"2 diverged (first at epoch 3), 1 failed"``, or ``""`` when none was lost."""
        parts = []
        if self.diverged:
            at = (f" (first at epoch {self.first_diverged_epoch})"
                  if self.first_diverged_epoch is not None else "")
            parts.append(f"{self.diverged} diverged{at}")
        if self.failed:
            parts.append(f"{self.failed} failed")
        return ", ".join(parts)

    def all_diverged_text(self):
        """``"all 4 runs diverged (first at epoch 3)"`` for an arm with no finished run."""
        at = (f" (first at epoch {self.first_diverged_epoch})"
              if self.first_diverged_epoch is not None else "")
        return f"all {self.diverged} runs diverged{at}"


def _ordered(runs):
    if runs and all(r.get("arm_position") is not None for r in runs):
        return sorted(runs, key=lambda r: r["arm_position"])
    return list(runs)


def run_counts(runs):
    """``{arm: RunCounts}`` of run records of any status, arms in spec order."""
    counts = {}
    for r in _ordered(runs):
        c = counts.setdefault(r["arm"], {"done": 0, "diverged": 0, "failed": 0, "epoch": None})
        status = run_status(r)
        if status in ("done", "diverged", "failed"):
            c[status] += 1
        epoch = r.get("diverged_epoch")
        if status == "diverged" and epoch is not None:
            c["epoch"] = epoch if c["epoch"] is None else min(c["epoch"], epoch)
    return {arm: RunCounts(arm, c["done"], c["diverged"], c["failed"], c["epoch"])
            for arm, c in counts.items()}


def _table(runs, metric):
    """``{arm: {replica: value}}`` of done runs, arms in spec (or first-seen) order."""
    runs = [r for r in runs if run_status(r) == "done"]
    table = {}
    for r in _ordered(runs):
        row = table.setdefault(r["arm"], {})
        if r["replica"] in row:
            raise ValueError(f"Two runs for arm {r['arm']!r}, replica {r['replica']}.")
        row[r["replica"]] = _value(r, metric)
    return table


def summarize(runs, metric="val_accuracy", confidence=0.95):
    """Per-arm summary of the final ``metric``, its best-epoch value and the train-test gap.

    Args:
        runs: Run records (``Store.runs``).
        metric: Final metric (Keras name). The best-epoch value is read from
            ``final["best_" + metric]``; the gap is ``final[train] - final[metric]``
            where ``train`` is ``metric`` without its ``val_`` prefix.
        confidence: CI level (t distribution with n - 1 degrees of freedom).

    Returns:
        ``{arm: ArmSummary}`` in arm order.
    """
    best = _table(runs, f"best_{metric}")
    train = metric[4:] if metric.startswith("val_") else None
    train_t = _table(runs, train) if train else {}
    out = {}
    for arm, row in _table(runs, metric).items():
        gap = [train_t[arm][k] - v for k, v in row.items()] if train else []
        out[arm] = ArmSummary(
            arm, metric, estimate(list(row.values()), confidence),
            _recorded(list(best[arm].values()), f"no best_{metric} recorded", confidence),
            _recorded(gap, f"no {train} or {metric} recorded" if train
                      else f"no train-test gap: {metric!r} is not a val_ metric", confidence),
        )
    return out


def _recorded(values, why_not, confidence):
    if np.isfinite(values).any():
        return estimate(values, confidence)
    nan = math.nan
    return Estimate(0, nan, nan, nan, nan, nan, why_not)


def _reference(runs, table, reference):
    if reference is None:  # the flagged arm if it finished any run, else the first arm
        flagged = [r["arm"] for r in runs if r.get("is_reference") and r["arm"] in table]
        reference = flagged[0] if flagged else next(iter(table), None)
    if reference not in table:
        raise ValueError(
            f"`reference` must be an arm with done runs: {', '.join(map(repr, table))}. "
            f"Received: reference={reference!r}"
        )
    return reference


def _paired_pvalues(diffs):
    if diffs.size < 2:
        return math.nan, math.nan
    if not diffs.any():  # identical runs: no evidence of any difference
        return 1.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p_t = float(_st.ttest_1samp(diffs, 0.0).pvalue)
        p_w = float(_st.wilcoxon(diffs).pvalue)  # zero differences dropped ("wilcox")
    return p_t, p_w


def compare(runs, reference=None, metric="val_accuracy", confidence=0.95,
            higher_is_better=None):
    """Paired comparison of every arm with the reference arm.

    Args:
        runs: Run records (``Store.runs``).
        reference: Reference arm; default the run records' ``is_reference``
            arm, else the first arm.
        metric: Final metric compared.
        confidence: CI level of the mean difference (t-based).
        higher_is_better: Direction for ``prob_better``; default from the
            metric name (:func:`is_higher_better`).

    Returns:
        ``{arm: Comparison}`` for every arm but the reference, in arm order.
    """
    table = _table(runs, metric)
    reference = _reference(runs, table, reference)
    if higher_is_better is None:
        higher_is_better = is_higher_better(metric)
    ref = table[reference]
    statuses = {}  # arm -> replica -> status, of every record: why a seed is unpaired
    for r in runs:
        statuses.setdefault(r["arm"], {})[r["replica"]] = run_status(r)
    rows = []
    for arm, row in table.items():
        if arm == reference:
            continue
        common = sorted(k for k in row if k in ref and math.isfinite(row[k])
                        and math.isfinite(ref[k]))
        diffs = np.array([row[k] - ref[k] for k in common])
        est = estimate(diffs, confidence)
        p_t, p_w = _paired_pvalues(diffs)
        wins = (diffs > 0) if higher_is_better else (diffs < 0)
        prob = float((wins + 0.5 * (diffs == 0)).mean()) if diffs.size else math.nan
        notes = [] if est.note is None or diffs.size == 1 else [est.note]
        if diffs.size == 0:
            notes = ["no common replicas with the reference"]
        elif diffs.size == 1:
            notes.append("n=1 common replica: no confidence interval and no test")
        elif diffs.any() and est.std == 0:
            notes.append("every difference is the same: the t-test is degenerate")
        seen = set(statuses.get(arm, {})) | set(statuses.get(reference, {}))
        if diffs.size < len(seen):
            why = _unpaired(statuses, arm, reference, seen - set(common), row, ref)
            if diffs.size:
                notes.append(f"paired on {diffs.size} of {len(seen)} seeds, those both arms "
                             f"finished ({why})")
            else:
                notes[-1] += f" ({why})"
        if 1 < diffs.size < 6:
            notes.append(f"n={diffs.size}: the Wilcoxon test cannot go below "
                         f"p={2 / 2 ** diffs.size:.3g}")
        rows.append([arm, reference, metric, diffs.size, est.mean, est.std, est.ci_low,
                     est.ci_high, p_t, p_w, prob, "; ".join(notes) or None])
    adj_t = holm([r[8] for r in rows])
    adj_w = holm([r[9] for r in rows])
    return {
        r[0]: Comparison(*r[:10], float(adj_t[i]), float(adj_w[i]), r[10],
                         bool(higher_is_better), r[11])
        for i, r in enumerate(rows)
    }


def _unpaired(statuses, arm, reference, replicas, row, ref):
    """``"2 diverged in 'w', 1 not run in 'baseline'"``: why ``replicas`` are unpaired."""
    counts = {}
    for k in sorted(replicas):
        for who, values in ((arm, row), (reference, ref)):
            status = statuses.get(who, {}).get(k, "not run")
            if status == "done":
                if k in values and not math.isfinite(values[k]):
                    counts[("with a non-finite metric", who)] = counts.get(
                        ("with a non-finite metric", who), 0) + 1
                continue
            counts[(status, who)] = counts.get((status, who), 0) + 1
    return ", ".join(f"{n} {status} in {who!r}" for (status, who), n in counts.items())


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
        est = estimate(m[:, i], confidence)
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
