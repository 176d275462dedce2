"""Coverage of the study intervals and false positives of the study tests, by simulation.

Simulated paired studies, no training: seed ``i`` moves every arm's true
accuracy by the same logit-normal seed effect (sd 0.3 on the logit scale), and
each run's accuracy is binomial(70, p) / 70, like a test set of 70 points. The
true values are the arms' expected accuracies (Gauss-Hermite quadrature) and
their differences. The functions simulated are those ``summarize`` and
``compare`` call (``interval``, ``paired_pvalues``, ``holm``, ``verdict``);
``test_the_simulated_path_is_the_public_one`` checks that on a few replicates.

``python tests/study/test_stats_coverage.py [N] [--clipped]`` prints the tables
that docs/STATISTICS.md quotes (N = 40000 replicates there); ``--clipped`` the
coverage of the t interval clipped to the bounds, the alternative it compares.
"""

import sys

import keras
import numpy as np
import pytest
from scipy.special import expit, logit

from noisewise.study import stats

TEST_POINTS = 70
SEED_SD = 0.3  # logit scale: at accuracy 0.77 a seed sd of 0.053, like the binomial's 0.050
# (true accuracy of the reference, logit shift of the arm with a true effect)
SETTINGS = {0.77: 0.3, 0.99: -0.5}
NULL_ARMS = 3  # arms with no true effect: the family of the false-positive rate
N_SIM = 4000  # Monte Carlo sd of a 95% coverage: sqrt(0.95 * 0.05 / 4000) = 0.0034
# NumPy and SciPy only: the same figures on every backend, so measured once.
pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax",
                                reason="no Keras involved: run under the JAX backend only")


def true_mean(p, shift=0.0):
    """E[expit(logit(p) + shift + SEED_SD * Z)], Z standard normal (80-node Gauss-Hermite)."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    return float((w * expit(logit(p) + shift + SEED_SD * x)).sum() / w.sum())


def simulate(p, n, n_sim, seed):
    """Accuracies ``(n_sim, arms, n)``: arm 0 the reference, 1..NULL_ARMS null, last the effect."""
    rng = np.random.default_rng(seed)
    shifts = np.array([0.0] * (1 + NULL_ARMS) + [SETTINGS[p]])[None, :, None]
    seed_effect = SEED_SD * rng.standard_normal((n_sim, 1, n))
    return rng.binomial(TEST_POINTS, expit(logit(p) + shifts + seed_effect)) / TEST_POINTS


def figures(p, n, n_sim=N_SIM, seed=0, power=False):
    """Coverage, bounds and false-positive figures of one setting (fractions of replicates);
    with ``power``, also the power of the effect arm's verdict (for the docs)."""
    acc = simulate(p, n, n_sim, seed)
    mu_ref, mu_eff = true_mean(p), true_mean(p, SETTINGS[p])
    out = {}
    for name, values, truth in (("mean", acc[:, 0], mu_ref), ("mean_effect", acc[:, -1], mu_eff)):
        _, _, low, high, equal = stats.interval(values, (0.0, 1.0))
        out[name] = float(((low <= truth) & (truth <= high)).mean())
        out[name + "_inside"] = bool(((low >= 0) & (high <= 1)).all())
        out[name + "_all_equal"] = float(equal.mean())
    diffs = acc[:, 1:] - acc[:, :1]
    scale = np.maximum(np.abs(acc[:, 1:]), np.abs(acc[:, :1])).max(axis=-1)
    _, _, low, high, equal = stats.interval(diffs, (-1.0, 1.0), scale=scale)
    for name, k, truth in (("diff_null", 0, 0.0), ("diff_effect", -1, mu_eff - mu_ref)):
        out[name] = float(((low[:, k] <= truth) & (truth <= high[:, k])).mean())
        out[name + "_all_equal"] = float(equal[:, k].mean())
    out["diff_inside"] = bool(((low >= -1) & (high <= 1)).all())
    p_t, p_w = stats.paired_pvalues(diffs[:, :NULL_ARMS], scale[:, :NULL_ARMS])
    holm_t, holm_w = stats.holm(p_t), stats.holm(p_w)
    verdicts = np.vectorize(stats.verdict, otypes=[object])(
        holm_t, low[:, :NULL_ARMS], high[:, :NULL_ARMS])
    out["fwer_verdict"] = float(np.isin(verdicts, ("helps", "hurts")).any(axis=1).mean())
    out["fwer_wilcoxon"] = float((np.nan_to_num(holm_w, nan=1.0) < 0.05).any(axis=1).mean())
    out["no_ttest"] = float(np.isnan(p_t).mean())
    if power:
        out["power_effect"] = _power(diffs[:, -1], low[:, -1], high[:, -1], scale[:, -1])
    return out


def _power(diffs, low, high, scale):
    """Fraction of replicates where the effect arm alone (no Holm) gets a verdict."""
    p_t, _ = stats.paired_pvalues(diffs, scale)
    v = np.vectorize(stats.verdict, otypes=[object])(p_t, low, high)
    return float(np.isin(v, ("helps", "hurts")).mean())


def check(fig, p, n):
    where = f"p={p}, n={n}: {fig}"
    for name in ("mean", "mean_effect", "diff_null", "diff_effect"):
        assert fig[name] >= 0.94, where
    assert fig["mean_inside"] and fig["mean_effect_inside"] and fig["diff_inside"], where
    assert fig["fwer_verdict"] <= 0.055 and fig["fwer_wilcoxon"] <= 0.055, where


@pytest.mark.parametrize("p", sorted(SETTINGS))
@pytest.mark.parametrize("n", [3, 5, 10, 30])
def test_coverage_bounds_and_false_positives(p, n):
    fig = figures(p, n)
    check(fig, p, n)
    if p == 0.99 and n == 3:  # the case the all-equal interval is for: it must have occurred
        assert fig["mean_all_equal"] > 0.1 and fig["diff_null_all_equal"] > 0.03, fig


@pytest.mark.slow
@pytest.mark.parametrize("p", sorted(SETTINGS))
@pytest.mark.parametrize("n", [2, 3, 5, 10, 30])
def test_coverage_with_four_times_the_replicates(p, n):
    fig = figures(p, n, n_sim=4 * N_SIM, seed=1)
    check(fig, p, n)


def test_the_simulated_path_is_the_public_one():
    acc = simulate(0.99, 3, 40, seed=2)
    for k, a in enumerate(acc):
        runs = [{"arm": str(arm), "replica": i, "status": "done", "final": {"val_accuracy": v}}
                for arm, values in enumerate(a) for i, v in enumerate(values)]
        summary, comparison = stats.summarize(runs), stats.compare(runs, "0")
        _, _, low, high, _ = stats.interval(a[0], (0.0, 1.0))
        assert (summary["0"].ci_low, summary["0"].ci_high) == pytest.approx((float(low), float(high))), k
        diffs = a[1:] - a[:1]
        scale = np.maximum(np.abs(a[1:]), np.abs(a[:1])).max(axis=-1)
        _, _, low, high, _ = stats.interval(diffs, (-1.0, 1.0), scale=scale)
        p_t, _ = stats.paired_pvalues(diffs, scale)
        holm_t = stats.holm(p_t)
        for j, c in enumerate(comparison.values()):
            assert (c.ci_low, c.ci_high) == pytest.approx((low[j], high[j])), k
            assert (c.p_ttest is None) == np.isnan(p_t[j]), k
            if c.p_ttest is not None:
                assert c.p_ttest_holm == pytest.approx(holm_t[j]), k


def clipped_t_coverage(p, n, n_sim, seed=1):
    """Coverage of the alternative the docs compare with: the t interval clipped to the bounds
    (``plain``: equal values give a zero-width interval; ``rule``: with the all-equal interval)."""
    acc = simulate(p, n, n_sim, seed)
    out = {}
    for name, values, truth, bounds in (
            ("mean", acc[:, 0], true_mean(p), (0.0, 1.0)),
            ("diff", acc[:, -1] - acc[:, 0], true_mean(p, SETTINGS[p]) - true_mean(p), (-1, 1))):
        mean, std, _, _, equal = stats.interval(values)
        half = stats._st.t.ppf(0.975, n - 1) * std / np.sqrt(n)
        low, high = np.clip(mean - half, *bounds), np.clip(mean + half, *bounds)
        out[f"{name}_plain"] = float(((low <= truth) & (truth <= high)).mean())
        _, _, eq_low, eq_high, _ = stats.interval(values, bounds)
        low, high = np.where(equal, eq_low, low), np.where(equal, eq_high, high)
        out[f"{name}_rule"] = float(((low <= truth) & (truth <= high)).mean())
    return out


if __name__ == "__main__":
    n_sim = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 10 * N_SIM
    if "--clipped" in sys.argv:
        for p in sorted(SETTINGS):
            for n in (2, 3, 5, 10, 30):
                fig = clipped_t_coverage(p, n, n_sim)
                print(f"| {p} | {n} | " + " | ".join(f"{v:.4f}" for v in fig.values()) + " |")
        sys.exit()
    keys = ("mean", "mean_effect", "diff_null", "diff_effect", "fwer_verdict", "fwer_wilcoxon",
            "mean_all_equal", "diff_null_all_equal", "no_ttest", "power_effect")
    print("| p | n | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 2) + "|")
    for p in sorted(SETTINGS):
        for n in (2, 3, 5, 10, 30):
            fig = figures(p, n, n_sim, seed=1, power=True)
            print(f"| {p} | {n} | " + " | ".join(f"{fig[k]:.4f}" for k in keys) + " |")
