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
t-test (``scipy.stats.ttest_1samp`` on the differences) and a Wilcoxon
signed-rank test, each Holm-Bonferroni adjusted across the arms compared with
the reference that have a p-value (Holm, 1979, "A simple sequentially
rejective multiple test procedure", Scand. J. Statist. 6:65-70).

Honest at small n and near bounds (docs/STATISTICS.md has the measured
coverage): a test that cannot be computed honestly (fewer than 3 pairs, all
differences equal; Wilcoxon with fewer than 6 non-zero differences, which can
never reach p < 0.05) gives ``None`` and says why; an interval of a metric
bounded in [0, 1] (accuracy, AUC, precision, recall: :func:`metric_bounds`)
is a t interval on the logit scale, inside the bounds by construction; when
every value is equal the data hold no spread, and the interval is the
distribution-free one such an outcome allows (:func:`interval`). :data:`TESTS`
names the method behind each column.

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
from scipy import special as _sp
from scipy import stats as _st

_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "mape", "msle", "crossentropy",
                    "hinge", "divergence")
# Fractions in [0, 1]: Keras' accuracy/AUC/precision/recall/F1/IoU names and the
# robustness suite's ``*_acc@...`` (clean, noise, adversarial, certified, corruption).
_BOUNDED_WORDS = re.compile(r"(?<![a-z])(acc|accuracy|auc|prc|precision|recall|f1|fbeta|f1_score"
                            r"|iou|io_u|specificity|sensitivity)(?![a-z])")
UNBOUNDED = (-math.inf, math.inf)
ALPHA = 0.05  # level of the verdict, after Holm
# Two values closer than this, relative to the values' size, are equal: stored
# metrics are float32 (relative rounding 6e-8), so 3/70 - 0/70 and 5/70 - 2/70
# differ in their last bits; an accuracy step is coarser below a million test points.
_EQUAL_RTOL = 1e-6
_WILCOXON_MIN = 6  # non-zero differences: 2 / 2**5 = 0.0625 is the smallest two-sided p of 5

TESTS = {
    "n": "seeds with a finished run (for a comparison: seeds both arms finished, paired)",
    "mean": "mean of the final metric over seeds",
    "ci": ("95% interval of the mean over seeds: Student t; for a metric bounded in [0, 1] "
           "(accuracy, AUC, precision, recall) a t interval on the logit scale, inside [0, 1]; "
           "when every seed gives the same value, the distribution-free interval n equal values "
           "allow (bounded metrics only, else none)"),
    "mean_diff": "paired mean difference, arm minus reference, on the seeds both finished",
    "diff_ci": ("95% interval of the paired mean difference: as ci, on [-1, 1] for a metric "
                "bounded in [0, 1]"),
    "p_ttest": ("paired t-test (two-sided), Holm-corrected across the arms that have a p-value; "
                "none with fewer than 3 pairs or when every difference is equal"),
    "p_wilcoxon": ("Wilcoxon signed-rank test (two-sided, zero differences dropped), "
                   "Holm-corrected across the arms that have a p-value; none with fewer than 6 "
                   "non-zero differences, since p could not go below 0.05"),
    "prob_better": "fraction of paired seeds on which the arm beats the reference, ties half",
    "verdict": ("helps / hurts: Holm-corrected paired t-test p < 0.05 and the difference interval "
                "on the same side of zero, in the metric's better direction; otherwise no "
                "detectable difference; none without a t-test"),
}


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


@dataclass(frozen=True)
class Comparison:
    """An arm against the reference on their common replicas (diff = arm - reference).

    ``prob_better`` is the fraction of common replicas on which the arm did
    better than the reference, ties counting one half: the paired probability
    of superiority, an estimate of P(arm beats reference on a new seed).

    The p-values are None where the test cannot be computed honestly:
    ``no_test_reason`` says why the t-test (and so the verdict) is missing,
    ``no_wilcoxon_reason`` why the Wilcoxon test is. ``verdict`` is
    ``"helps"``, ``"hurts"`` or ``"no detectable difference"`` (:func:`verdict`).
    ``warning`` is set below 5 pairs; ``ci_method`` names the interval
    (:class:`Estimate`).
    """

    arm: str
    reference: str
    metric: str
    n: int
    mean_diff: float
    std_diff: float
    ci_low: float
    ci_high: float
    p_ttest: float | None
    p_wilcoxon: float | None
    p_ttest_holm: float | None
    p_wilcoxon_holm: float | None
    prob_better: float
    higher_is_better: bool
    note: str | None = None
    no_test_reason: str | None = None
    no_wilcoxon_reason: str | None = None
    verdict: str | None = None
    warning: str | None = None
    ci_method: str | None = None


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


def is_higher_better(metric):
    """False for loss/error-like metric names (``loss``, ``val_mae``...), else True."""
    return not any(word in metric.lower() for word in _LOWER_IS_BETTER)


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


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values (NaN or None entries stay NaN and are not counted).

    The i-th smallest of m p-values is multiplied by (m - i + 1), then a running
    maximum keeps the adjusted values in the same order; capped at 1. A 2-D
    input is adjusted row by row (one family per row).
    """
    p = np.array([math.nan if x is None else x for x in np.ravel(np.asarray(pvalues, dtype=object))],
                 dtype=float).reshape(np.shape(pvalues))
    if p.ndim > 1:
        return np.stack([holm(row) for row in p.reshape(-1, p.shape[-1])]).reshape(p.shape)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def paired_pvalues(diffs, scale=None):
    """Two-sided paired t-test and Wilcoxon p-values along the last axis of ``diffs``.

    NaN where the test cannot be computed honestly: the t-test with fewer than
    3 pairs or every difference equal (zero spread: t is 0/0 or infinite);
    the Wilcoxon test (zero differences dropped) with fewer than 6 non-zero
    differences, since its two-sided p cannot go below ``2 / 2**5 = 0.0625``.
    ``scale`` as in :func:`estimate`.

    Returns:
        ``(p_ttest, p_wilcoxon)`` arrays.
    """
    d = np.asarray(diffs, dtype=float)
    n = d.shape[-1]
    if scale is None:
        scale = np.max(np.abs(d), axis=-1)
    scale = np.broadcast_to(np.asarray(scale, dtype=float), d.shape[:-1])
    p_t = np.full(d.shape[:-1], math.nan)
    p_w = np.full(d.shape[:-1], math.nan)
    if n < 3:
        return p_t, p_w
    d = np.where(np.abs(d) <= _EQUAL_RTOL * scale[..., None], 0.0, d)
    t_ok = ~_all_equal(d, scale)
    w_ok = (d != 0).sum(axis=-1) >= _WILCOXON_MIN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if t_ok.any():
            p_t[t_ok] = _st.ttest_1samp(d[t_ok], 0.0, axis=-1).pvalue
    flat_w, flat_d = p_w.reshape(-1), d.reshape(-1, n)
    for i in np.flatnonzero(w_ok.reshape(-1)):
        flat_w[i] = signed_rank_p(flat_d[i])
    return p_t, p_w


def signed_rank_p(diffs):
    """Two-sided Wilcoxon signed-rank p-value of 1-D ``diffs``, zero differences dropped.

    Exact up to 50 non-zero differences, ties included: the statistic (sum of
    the positive differences' midranks) under all ``2**n`` sign flips, counted
    by convolution on doubled midranks, which are integers; ``p = 2 min(P(W <=
    w), P(W >= w))``, capped at 1. Above 50, the normal approximation with the
    tie correction. The same p-values as ``scipy.stats.wilcoxon``, whose exact
    test with ties enumerates the flips (about 2 s at n = 13).
    """
    d = np.asarray(diffs, dtype=float)
    d = d[d != 0]
    n = d.size
    if n == 0:
        return math.nan
    ranks = _st.rankdata(np.abs(d))
    if n > 50:
        _, ties = np.unique(ranks, return_counts=True)
        var = n * (n + 1) * (2 * n + 1) / 24 - (ties ** 3 - ties).sum() / 48
        z = (ranks[d > 0].sum() - n * (n + 1) / 4) / math.sqrt(var)
        return float(min(1.0, 2 * _st.norm.sf(abs(z))))
    doubled = np.rint(2 * ranks).astype(int)
    counts = np.zeros(doubled.sum() + 1)
    counts[0] = 1.0
    for r in doubled:  # each difference adds its rank or not: counts of every sum
        counts[r:] = counts[r:] + counts[:-r].copy()
    w = int(doubled[d > 0].sum())
    total = counts.sum()
    return float(min(1.0, 2 * min(counts[:w + 1].sum(), counts[w:].sum()) / total))


def _no_test_reasons(diffs, scale):
    """``(why no t-test, why no Wilcoxon)`` for 1-D ``diffs``, short enough for a table cell."""
    n = diffs.size
    if n == 0:
        return ("no common seeds",) * 2
    if n < 3:
        return (f"n={n}: too few seeds",) * 2
    zero = np.abs(diffs) <= _EQUAL_RTOL * scale
    why_t = None
    if _all_equal(diffs, scale):
        why_t = "all differences zero" if zero.all() else "all differences equal"
    k = int((~zero).sum())
    why_w = ("all differences zero" if k == 0 else
             f"{k} non-zero differences: p cannot reach 0.05" if k < _WILCOXON_MIN else None)
    return why_t, why_w


def verdict(p_holm, ci_low, ci_high, higher_is_better=True, alpha=ALPHA):
    """``"helps"``, ``"hurts"``, ``"no detectable difference"``, or None without a test.

    A difference is detected when the Holm-corrected paired t-test gives
    ``p < alpha`` and the difference's interval lies wholly on one side of 0
    (the bounded interval is not exactly the t-test's, so both must agree);
    its sign and ``higher_is_better`` say whether the arm helps or hurts.
    """
    if p_holm is None or not math.isfinite(p_holm):
        return None
    if p_holm >= alpha or not (ci_low > 0 or ci_high < 0):
        return "no detectable difference"
    return "helps" if (ci_low > 0) == bool(higher_is_better) else "hurts"


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


def paired_differences(runs, reference=None, metric="val_accuracy"):
    """The per-seed differences of every arm against the reference (arm - reference).

    Args:
        runs: Run records (``Store.runs``), any status: done runs count.
        reference: Reference arm; default as in :func:`compare`.
        metric: Final metric.

    Returns:
        ``(reference, {arm: (replicas, diffs, scale)})`` in arm order, the
        reference left out: the replicas both arms finished with a finite
        metric, the differences on them (a float array) and the size of the
        compared values (for the all-equal check of :func:`estimate`).
    """
    table = _table(runs, metric)
    reference = _reference(runs, table, reference)
    ref = table[reference]
    out = {}
    for arm, row in table.items():
        if arm == reference:
            continue
        common = sorted(k for k in row if k in ref and math.isfinite(row[k])
                        and math.isfinite(ref[k]))
        diffs = np.array([row[k] - ref[k] for k in common], dtype=float)
        scale = max((max(abs(row[k]), abs(ref[k])) for k in common), default=0.0)
        out[arm] = (common, diffs, scale)
    return reference, out


def compare(runs, reference=None, metric="val_accuracy", confidence=0.95,
            higher_is_better=None, bounds=None, alpha=ALPHA):
    """Paired comparison of every arm with the reference arm.

    Args:
        runs: Run records (``Store.runs``).
        reference: Reference arm; default the run records' ``is_reference``
            arm, else the first arm.
        metric: Final metric compared.
        confidence: CI level of the mean difference (:func:`interval`).
        higher_is_better: Direction for ``prob_better`` and the verdict;
            default from the metric name (:func:`is_higher_better`).
        bounds: ``(lo, hi)`` of the metric, default from its name
            (:func:`metric_bounds`); the difference's interval stays within
            :func:`difference_bounds`.
        alpha: Level of the verdict, after Holm.

    Returns:
        ``{arm: Comparison}`` for every arm but the reference, in arm order.
    """
    if higher_is_better is None:
        higher_is_better = is_higher_better(metric)
    bounds = metric_bounds(metric) if bounds is None else tuple(bounds)
    reference, pairs = paired_differences(runs, reference, metric)
    table = _table(runs, metric)
    ref = table[reference]
    outside = None
    if not _within([v for row in table.values() for v in row.values()], bounds):
        outside = f"values outside [{bounds[0]:g}, {bounds[1]:g}]: the interval is not bounded"
        bounds = UNBOUNDED
    statuses = {}  # arm -> replica -> status, of every record: why a seed is unpaired
    for r in runs:
        statuses.setdefault(r["arm"], {})[r["replica"]] = run_status(r)
    rows = []
    for arm, (common, diffs, scale) in pairs.items():
        est = estimate(diffs, confidence, difference_bounds(bounds), scale)
        p_t, p_w = (float(p) for p in paired_pvalues(diffs, scale)) if diffs.size else (
            math.nan, math.nan)
        why_t, why_w = _no_test_reasons(diffs, scale)
        tie = np.abs(diffs) <= _EQUAL_RTOL * scale
        wins = ~tie & ((diffs > 0) if higher_is_better else (diffs < 0))
        prob = float((wins + 0.5 * tie).mean()) if diffs.size else math.nan
        notes = [] if est.note is None or diffs.size == 1 else [est.note]
        if outside and diffs.size > 1:
            notes.insert(0, outside)
        if diffs.size == 0:
            notes = ["no common replicas with the reference"]
        elif diffs.size == 1:
            notes.append("n=1 common replica: no confidence interval and no test")
        seen = set(statuses.get(arm, {})) | set(statuses.get(reference, {}))
        if diffs.size < len(seen):
            why = _unpaired(statuses, arm, reference, seen - set(common), table[arm], ref)
            if diffs.size:
                notes.append(f"paired on {diffs.size} of {len(seen)} seeds, those both arms "
                             f"finished ({why})")
            else:
                notes[-1] += f" ({why})"
        if 2 < diffs.size < _WILCOXON_MIN:
            notes.append(f"n={diffs.size}: the Wilcoxon test cannot go below "
                         f"p={2 / 2 ** diffs.size:.3g}, so it is not computed")
        rows.append(dict(arm=arm, reference=reference, metric=metric, n=diffs.size,
                         mean_diff=est.mean, std_diff=est.std, ci_low=est.ci_low,
                         ci_high=est.ci_high, p_ttest=p_t, p_wilcoxon=p_w, prob_better=prob,
                         higher_is_better=bool(higher_is_better), note="; ".join(notes) or None,
                         no_test_reason=(why_t or "no test") if math.isnan(p_t) else None,
                         no_wilcoxon_reason=(why_w or "no test") if math.isnan(p_w) else None,
                         warning=warning_for(diffs.size, "paired seeds"),
                         ci_method=est.method))
    adj_t = holm([r["p_ttest"] for r in rows])
    adj_w = holm([r["p_wilcoxon"] for r in rows])
    out = {}
    for r, a_t, a_w in zip(rows, adj_t, adj_w):
        r.update({k: None if math.isnan(r[k]) else r[k] for k in ("p_ttest", "p_wilcoxon")},
                 p_ttest_holm=None if math.isnan(a_t) else float(a_t),
                 p_wilcoxon_holm=None if math.isnan(a_w) else float(a_w))
        r["verdict"] = verdict(r["p_ttest_holm"], r["ci_low"], r["ci_high"],
                               r["higher_is_better"], alpha)
        out[r["arm"]] = Comparison(**r)
    return out


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
