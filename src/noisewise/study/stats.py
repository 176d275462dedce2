"""Statistics of a noise study: the names of :mod:`noisewise.study.analysis`, re-exported.

The statistics live in the ``noisewise.study.analysis`` package:
``estimates`` (:class:`Estimate`, metric bounds, the t and logit-t intervals),
``significance`` (paired t and exact Wilcoxon p-values, Holm, the verdict),
``counts`` (run status, :class:`RunCounts`), ``summaries`` (:func:`summarize`),
``paired`` (:func:`compare`, :data:`TESTS`) and ``grids`` (:func:`grid_best`).
This module keeps ``noisewise.study.stats`` working for its importers.
"""

from scipy import stats as _st  # noqa: F401 -- read as stats._st by the coverage tests

from noisewise.study.analysis.counts import RunCounts, run_counts, run_status
from noisewise.study.analysis.estimates import (
    UNBOUNDED,
    Estimate,
    difference_bounds,
    estimate,
    interval,
    is_higher_better,
    metric_bounds,
    warning_for,
)
from noisewise.study.analysis.grids import GridBest, grid_best
from noisewise.study.analysis.paired import TESTS, Comparison, compare, paired_differences
from noisewise.study.analysis.significance import ALPHA, holm, paired_pvalues, signed_rank_p, verdict
from noisewise.study.analysis.summaries import ArmSummary, summarize

__all__ = [
    "ALPHA", "TESTS", "UNBOUNDED", "ArmSummary", "Comparison", "Estimate", "GridBest", "RunCounts",
    "compare", "difference_bounds", "estimate", "grid_best", "holm", "interval", "is_higher_better",
    "metric_bounds", "paired_differences", "paired_pvalues", "run_counts", "run_status",
    "signed_rank_p", "summarize", "verdict", "warning_for",
]
