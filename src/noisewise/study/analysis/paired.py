"""Paired comparisons of every arm with the reference arm, and :data:`TESTS`.

Replica ``i`` of every arm shares its seed (same initial weights and data
order), so arms are compared *paired*, on the replicas both have: a paired
t-test (``scipy.stats.ttest_1samp`` on the differences) and a Wilcoxon
signed-rank test, each Holm-Bonferroni adjusted across the arms compared with
the reference that have a p-value (:mod:`noisewise.study.analysis.significance`).
A comparison names the replicas it lost and why. :data:`TESTS` names the
method behind each column of the summary and comparison tables.
"""

import math
from dataclasses import dataclass

import numpy as np

from noisewise.study.analysis.counts import _table, run_status
from noisewise.study.analysis.estimates import (
    _EQUAL_RTOL,
    UNBOUNDED,
    _within,
    difference_bounds,
    estimate,
    is_higher_better,
    metric_bounds,
    warning_for,
)
from noisewise.study.analysis.significance import (
    _WILCOXON_MIN,
    ALPHA,
    _no_test_reasons,
    holm,
    paired_pvalues,
    verdict,
)

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
