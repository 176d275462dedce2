"""How many seeds a study needs, from a pilot study's runs (numpy + scipy.stats).

For every arm against the reference, from the paired per-seed differences of
the pilot (:func:`noisewise.study.analysis.paired.paired_differences`):

- the smallest paired difference the two-sided paired t-test detects with
  the given power at the pilot's number of seeds, and the seeds needed to
  detect a difference ``D`` (default: the observed one), from the observed
  standard deviation of the differences and the exact power of the t-test
  under the noncentral t distribution (``scipy.stats.nct``), not the normal
  approximation, which undercounts at small n (d = 0.5, 80%: 32 pairs instead
  of 34);
- the seeds the sign test needs to detect the observed P(better), and the
  Wilcoxon signed-rank test the observed P((d_i + d_j) / 2 > 0), by Noether's
  formulas (Noether, 1987, "Sample size determination for some common
  nonparametric tests", J. Amer. Statist. Assoc. 82:645-647).

Each test runs at ``alpha / m`` for ``m`` arms compared (``adjust=True``, the
default): Holm's first step, the strictest, so the power holds for an arm
even when it is the only one with an effect. The observed standard deviation
of a small pilot is itself uncertain (from 3 seeds the 95% interval of the
true sd is 0.52 to 6.3 times the observed one), so a plan from it is a rough
guide.

Example:
    >>> seeds_for_effect_size(0.5)  # textbook: 34 pairs for d = 0.5 at 80%, alpha 0.05
    34
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import integrate as _integrate
from scipy import optimize as _opt
from scipy import stats as _st

from noisewise.study.analysis.estimates import is_higher_better
from noisewise.study.analysis.paired import paired_differences

MAX_SEEDS = 100_000  # beyond this a plan is "more than" this


@dataclass(frozen=True)
class ArmPlan:
    """The seed plan of one arm against the reference (differences: arm - reference).

    ``detectable_diff`` is the smallest |difference| the paired t-test detects
    with ``power`` at the pilot's ``n`` seeds; ``seeds_ttest`` the seeds it
    needs for ``effect``; ``seeds_sign`` and ``seeds_wilcoxon`` those of the
    sign test (from ``prob_better``) and the Wilcoxon test (Noether). A None
    says a plan is impossible, with ``note`` saying why (no spread, no
    difference, fewer than 2 pairs); ``seeds_* == MAX_SEEDS`` means at least
    that many.
    """

    arm: str
    reference: str
    metric: str
    n: int
    mean_diff: float
    std_diff: float
    effect: float
    alpha: float  # per test: alpha / m with adjust
    power: float
    detectable_diff: float | None
    seeds_ttest: int | None
    prob_better: float
    seeds_sign: int | None
    seeds_wilcoxon: int | None
    note: str | None = None


def t_power(n, effect_size, alpha=0.05):
    """Power of the two-sided paired (one-sample) t-test with ``n`` pairs.

    Args:
        n: Pairs (>= 2).
        effect_size: Mean difference over its standard deviation (Cohen's d).
        alpha: Level of the test.

    Returns:
        ``P(|T| > t_crit)`` with ``T`` noncentral t, ``n - 1`` degrees of
        freedom and noncentrality ``effect_size * sqrt(n)``.
    """
    df, nc = n - 1, abs(effect_size) * math.sqrt(n)
    crit = _st.t.ppf(1 - alpha / 2, df)
    power = float(_st.nct.sf(crit, df, nc) + _st.nct.cdf(-crit, df, nc))
    return power if math.isfinite(power) else _t_power_integral(df, nc, crit)


def _t_power_integral(df, nc, crit):
    """The same power as an integral over the chi-square of the variance.

    ``T = (Z + nc) / sqrt(V / df)``, so ``P(|T| > c) = E[Phi(nc - c s) + Phi(-nc - c s)]``
    with ``s = sqrt(V / df)``; integrated over the quantiles of ``V``. SciPy's
    ``nct`` returns NaN at some large noncentralities (n = 2, d = 6).
    """
    def at(u):
        s = math.sqrt(_st.chi2.ppf(u, df) / df)
        return _st.norm.cdf(nc - crit * s) + _st.norm.cdf(-nc - crit * s)

    return float(_integrate.quad(at, 0.0, 1.0, limit=200, epsabs=1e-10)[0])


def seeds_for_effect_size(effect_size, power=0.8, alpha=0.05):
    """The fewest pairs (>= 2) at which :func:`t_power` reaches ``power`` (``MAX_SEEDS`` cap)."""
    if effect_size == 0:
        return None
    if t_power(MAX_SEEDS, effect_size, alpha) < power:
        return MAX_SEEDS
    low, high = 1, 2  # power(low) < power <= power(high), power rises with n
    while t_power(high, effect_size, alpha) < power:
        low, high = high, min(2 * high, MAX_SEEDS)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if t_power(mid, effect_size, alpha) >= power else (mid, high)
    return high


def detectable_effect_size(n, power=0.8, alpha=0.05):
    """The smallest effect size (Cohen's d) the paired t-test detects with ``power`` at ``n`` pairs."""
    if n < 2:
        return None
    high = 1.0
    while t_power(n, high, alpha) < power:  # power rises with d: bracket the root
        high *= 2
    return float(_opt.brentq(lambda d: t_power(n, d, alpha) - power, 0.0, high, xtol=1e-10))


def noether_sign(p_better, power=0.8, alpha=0.05):
    """Noether's pairs for the two-sided sign test of P(better) = 1/2: ``(z_a + z_b)^2 / (4 (p - 1/2)^2)``.

    Never below the pairs at which the exact test can reach ``alpha`` at all
    (``2 / 2**n < alpha``: 6 for 0.05).
    """
    return _noether(p_better, 4.0, power, alpha)


def noether_wilcoxon(p_walsh, power=0.8, alpha=0.05):
    """Noether's pairs for the Wilcoxon signed-rank test: ``(z_a + z_b)^2 / (3 (p' - 1/2)^2)``.

    ``p_walsh`` is P((d_i + d_j) / 2 > 0) for two independent differences.
    """
    return _noether(p_walsh, 3.0, power, alpha)


def _noether(p, factor, power, alpha):
    if not math.isfinite(p) or p == 0.5:
        return None
    z = _st.norm.ppf(1 - alpha / 2) + _st.norm.ppf(power)
    floor = math.ceil(math.log2(2 / alpha) + 1e-12)  # smallest n with 2 / 2**n < alpha
    return int(min(MAX_SEEDS, max(floor, math.ceil(z * z / (factor * (p - 0.5) ** 2)))))


def _walsh_p(diffs, higher_is_better, tie):
    """P((d_i + d_j) / 2 better than 0) over pairs i <= j (Walsh averages), ties half."""
    i, j = np.triu_indices(diffs.size)
    w = (diffs[i] + diffs[j]) / 2
    ties = np.abs(w) <= tie
    wins = ~ties & ((w > 0) if higher_is_better else (w < 0))
    return float((wins + 0.5 * ties).mean())


def plan(runs, reference=None, metric="val_accuracy", effect=None, power=0.8, alpha=0.05,
         adjust=True, higher_is_better=None):
    """Seed plans of every arm against the reference, from a pilot study's runs.

    Args:
        runs: Run records (``Store.runs``), as for :func:`noisewise.study.stats.compare`.
        reference: Reference arm; default as in ``compare``.
        metric: Final metric.
        effect: The paired difference to detect, in the metric's units (its
            sign does not matter); default each arm's observed mean difference.
        power: Target power, in (0, 1).
        alpha: Family level; each test runs at ``alpha / m`` with ``adjust``.
        adjust: Divide ``alpha`` by the number of arms compared (Holm's first step).
        higher_is_better: Direction of P(better); default from the metric name.

    Returns:
        ``{arm: ArmPlan}`` in arm order.
    """
    if not 0 < power < 1:
        raise ValueError(f"`power` must be in (0, 1). Received: power={power!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be in (0, 1). Received: alpha={alpha!r}")
    if effect is not None and not (math.isfinite(effect) and effect != 0):
        raise ValueError(f"`effect` must be a finite non-zero difference. Received: effect={effect!r}")
    if higher_is_better is None:
        higher_is_better = is_higher_better(metric)
    reference, pairs = paired_differences(runs, reference, metric)
    level = alpha / max(1, len(pairs)) if adjust else alpha
    out = {}
    for arm, (_, diffs, scale) in pairs.items():
        out[arm] = _arm_plan(arm, reference, metric, diffs, scale, effect, power, level,
                             higher_is_better)
    return out


def _arm_plan(arm, reference, metric, diffs, scale, effect, power, alpha, higher_is_better):
    n = diffs.size
    nan = math.nan
    if n < 2:
        return ArmPlan(arm, reference, metric, n, float(diffs.mean()) if n else nan, nan,
                       nan if effect is None else abs(effect), alpha, power, None, None, nan,
                       None, None, f"n={n} paired seeds: no spread to plan from")
    tie = 1e-6 * scale  # as in stats: equal within float32 rounding
    mean, sd = float(diffs.mean()), float(diffs.std(ddof=1))
    if np.ptp(diffs) <= tie:
        sd = 0.0
    target = abs(mean) if effect is None else abs(effect)
    notes = []
    d_min = detectable_effect_size(n, power, alpha)
    seeds_t = None
    if sd == 0:
        notes.append("every difference is equal: no spread to plan a t-test from")
    elif target <= tie:
        notes.append("no difference to detect: give --effect")
    else:
        seeds_t = seeds_for_effect_size(target / sd, power, alpha)
    wins = ~(np.abs(diffs) <= tie) & ((diffs > 0) if higher_is_better else (diffs < 0))
    prob = float((wins + 0.5 * (np.abs(diffs) <= tie)).mean())
    seeds_sign = noether_sign(prob, power, alpha)
    seeds_w = noether_wilcoxon(_walsh_p(diffs, higher_is_better, tie), power, alpha)
    if seeds_sign is None:
        notes.append("P(better) is 1/2: no sign-test plan")
    if n < 5:
        notes.append(f"only {n} pilot seeds: the observed spread is itself uncertain")
    return ArmPlan(arm, reference, metric, n, mean, sd, target, alpha, power,
                   d_min * sd if sd > 0 else None, seeds_t, prob, seeds_sign, seeds_w,
                   "; ".join(notes) or None)
