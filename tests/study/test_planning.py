"""Seed planning against textbook figures and direct Monte Carlo simulation of the tests."""

import math

import numpy as np
import pytest
from scipy import stats

from noisewise.study import planning
from noisewise.study.planning import (
    detectable_effect_size,
    noether_sign,
    noether_wilcoxon,
    plan,
    seeds_for_effect_size,
    t_power,
)


def make_runs(table, metric="val_accuracy"):
    return [{"arm": arm, "replica": i, "status": "done", "final": {metric: v}}
            for arm, values in table.items() for i, v in enumerate(values)]


def test_paired_t_sample_sizes_equal_the_textbook_figures():
    # Cohen (1988) / G*Power, two-sided one-sample (paired) t-test, alpha 0.05, power 0.8
    assert [seeds_for_effect_size(d) for d in (0.2, 0.5, 0.8, 1.0)] == [199, 34, 15, 10]
    # the normal approximation (z_a + z_b)^2 / d^2 undercounts: 31.4 -> 32, not 34
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert math.ceil(z * z / 0.25) == 32
    assert t_power(34, 0.5) >= 0.8 > t_power(33, 0.5)
    assert detectable_effect_size(34) == pytest.approx(0.495, abs=1e-3)
    assert t_power(10, 0.0) == pytest.approx(0.05)  # no effect: the level


@pytest.mark.parametrize("n,d", [(3, 1.5), (5, 1.0), (12, 0.6), (34, 0.5)])
def test_t_power_equals_a_monte_carlo_of_the_t_test(n, d):
    rng = np.random.default_rng(n)
    sims = 20000  # Monte Carlo sd of a power near 0.5: 0.0035
    x = rng.normal(d, 1.0, size=(sims, n))
    rejected = (stats.ttest_1samp(x, 0.0, axis=1).pvalue < 0.05).mean()
    assert rejected == pytest.approx(t_power(n, d), abs=4 * math.sqrt(0.25 / sims))


def test_t_power_where_scipy_nct_gives_nan():
    # SciPy's nct is NaN at n = 2, d = 6 (alpha 0.05 / 3); the integral form takes over
    crit = stats.t.ppf(1 - 0.05 / 6, 1)
    assert math.isnan(stats.nct.cdf(-crit, 1, 6 * math.sqrt(2)))
    power = t_power(2, 6.0, 0.05 / 3)
    assert 0 < power < 1 and power == pytest.approx(
        planning._t_power_integral(1, 6 * math.sqrt(2), crit))
    x = np.random.default_rng(0).normal(6.0, 1.0, size=(40000, 2))
    mc = (stats.ttest_1samp(x, 0.0, axis=1).pvalue < 0.05 / 3).mean()
    assert mc == pytest.approx(power, abs=0.01)


def test_noether_sign_and_wilcoxon_formulas():
    # sign test, p = 0.75: (1.95996 + 0.84162)^2 / (4 * 0.0625) = 31.40 -> 32
    assert noether_sign(0.75) == 32
    # Wilcoxon, p' = 0.75: 7.849 / (3 * 0.0625) = 41.86 -> 42
    assert noether_wilcoxon(0.75) == 42
    assert noether_sign(1.0) == 8  # 7.849 / 1
    # the exact sign test cannot reach 0.005 below 9 pairs (2 / 2**8 = 0.0078): not 8
    assert noether_sign(1.0, power=0.5, alpha=0.005) == 9
    assert noether_sign(0.5) is None
    # the exact sign test at Noether's n has about the planned power (binomial, p = 0.75):
    # 0.737, a little less, since the exact test's discreteness keeps its level below 0.05
    n = noether_sign(0.75)
    crit = next(k for k in range(n + 1) if 2 * stats.binom.sf(k - 1, n, 0.5) <= 0.05)
    exact = stats.binom.sf(crit - 1, n, 0.75) + stats.binom.cdf(n - crit, n, 0.75)
    assert 0.7 < exact < 0.9


def test_plan_from_a_pilot_study():
    ref = np.array([0.80, 0.82, 0.79, 0.85, 0.81, 0.83])
    diffs = np.array([0.01, 0.03, -0.01, 0.02, 0.00, 0.04])
    runs = make_runs({"base": ref, "noisy": ref + diffs, "same": ref + diffs[::-1] * 0})
    plans = plan(runs, "base")
    p = plans["noisy"]
    sd = diffs.std(ddof=1)
    assert p.n == 6 and p.std_diff == pytest.approx(sd) and p.alpha == pytest.approx(0.025)
    assert p.effect == pytest.approx(diffs.mean())  # default: the observed difference
    assert p.seeds_ttest == seeds_for_effect_size(diffs.mean() / sd, 0.8, 0.025)
    assert p.detectable_diff == pytest.approx(detectable_effect_size(6, 0.8, 0.025) * sd)
    assert t_power(6, p.detectable_diff / sd, 0.025) == pytest.approx(0.8)
    assert p.prob_better == pytest.approx(4.5 / 6)
    assert p.seeds_sign == noether_sign(4.5 / 6, 0.8, 0.025)
    # a bigger effect needs fewer seeds; without adjustment alpha is 0.05
    assert plan(runs, "base", effect=0.05)["noisy"].seeds_ttest < p.seeds_ttest
    assert plan(runs, "base", adjust=False)["noisy"].alpha == 0.05
    same = plans["same"]  # identical to the reference: nothing to plan a t-test from
    assert same.seeds_ttest is None and same.detectable_diff is None and "no spread" in same.note
    with pytest.raises(ValueError, match=r"power.*Received: power=1\.5"):
        plan(runs, power=1.5)
    with pytest.raises(ValueError, match="effect.*Received: effect=0"):
        plan(runs, effect=0)


def test_plan_with_too_few_seeds_says_so():
    p = plan(make_runs({"a": [0.8], "b": [0.9]}))["b"]
    assert p.n == 1 and p.seeds_ttest is None and "n=1" in p.note
