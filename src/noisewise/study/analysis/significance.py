"""Paired tests: t-test, exact Wilcoxon signed-rank test, Holm, the verdict.

A test that cannot be computed honestly (fewer than 3 pairs, all differences
equal; Wilcoxon with fewer than 6 non-zero differences, which can never reach
p < 0.05) gives NaN, and :func:`_no_test_reasons` says why. P-values are
Holm-Bonferroni adjusted across the arms compared with the reference that
have one (Holm, 1979, "A simple sequentially rejective multiple test
procedure", Scand. J. Statist. 6:65-70).
"""

import math
import warnings

import numpy as np
from scipy import stats as _st

from noisewise.study.analysis.estimates import _EQUAL_RTOL, _all_equal

ALPHA = 0.05  # level of the verdict, after Holm
_WILCOXON_MIN = 6  # non-zero differences: 2 / 2**5 = 0.0625 is the smallest two-sided p of 5


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
