"""Study statistics against hand computations and scipy.stats."""

import math
import types

import numpy as np
import pytest
from scipy import stats

from noisewise.study.stats import (
    TESTS,
    UNBOUNDED,
    compare,
    estimate,
    grid_best,
    holm,
    is_higher_better,
    metric_bounds,
    signed_rank_p,
    summarize,
    verdict,
)
from noisewise.study.store import Store

T_975_DF2 = 4.302652729749464  # t quantile 0.975 with 2 degrees of freedom (tables: 4.303)


def make_runs(table, metric="val_accuracy", **extra):
    """Run records as Store.runs returns them, from ``{arm: [value per replica]}``."""
    return [{"arm": arm, "replica": i, "status": "done", "final": {metric: v, **extra}}
            for arm, values in table.items() for i, v in enumerate(values)]


def test_estimate_by_hand():
    e = estimate([0.8, 0.9, 1.0])
    # mean 0.9; std = sqrt((0.01 + 0 + 0.01) / 2) = 0.1; sem = 0.1 / sqrt(3)
    assert e.n == 3 and e.mean == pytest.approx(0.9) and e.std == pytest.approx(0.1)
    assert e.sem == pytest.approx(0.1 / math.sqrt(3))
    # CI = 0.9 -+ 4.3027 * 0.057735 = 0.9 -+ 0.248414
    assert (e.ci_low, e.ci_high) == pytest.approx((0.651586, 1.148414), abs=1e-6)
    assert (e.ci_low, e.ci_high) == pytest.approx(
        stats.t.interval(0.95, 2, loc=0.9, scale=0.1 / math.sqrt(3)))
    assert e.note is None


def test_estimate_small_and_non_finite():
    one = estimate([0.7])
    assert one.n == 1 and one.mean == 0.7
    assert all(math.isnan(x) for x in (one.std, one.sem, one.ci_low, one.ci_high))
    assert "n=1" in one.note and "no confidence interval" in one.note
    none = estimate([])
    assert none.n == 0 and math.isnan(none.mean) and "no runs" in none.note
    dropped = estimate([0.5, float("nan"), 0.7, float("inf")])
    assert dropped.n == 2 and dropped.mean == pytest.approx(0.6)
    assert "2 non-finite" in dropped.note


def test_summarize_small_example():
    runs = []
    # accuracy (train), val_accuracy (final), best_val_accuracy (best epoch) per replica
    for i, (acc, val, best) in enumerate([(1.0, 0.8, 0.85), (0.95, 0.9, 0.9), (0.9, 1.0, 1.0)]):
        runs.append({"arm": "base", "replica": i, "status": "done",
                     "final": {"accuracy": acc, "val_accuracy": val, "best_val_accuracy": best}})
    runs.append({"arm": "base", "replica": 3, "status": "failed", "final": {}})  # ignored
    runs.append({"arm": "solo", "replica": 0, "status": "done",
                 "final": {"accuracy": 0.9, "val_accuracy": 0.6}})
    s = summarize(runs)
    assert list(s) == ["base", "solo"]
    base = s["base"]
    assert (base.n, base.mean, base.std) == (3, pytest.approx(0.9), pytest.approx(0.1))
    # val_accuracy is in [0, 1]: the t interval on the logit scale (the plain t interval,
    # [0.652, 1.148], would leave it). logit(0.9) = 2.19722; half-width
    # 4.30265 * 0.057735 / (0.9 * 0.1) = 2.76015; expit(2.19722 -+ 2.76015) = 0.36287, 0.99302
    assert (base.ci_low, base.ci_high) == pytest.approx((0.36287, 0.99302), abs=1e-5)
    assert base.final.method == "logit t" and base.bounds == (0.0, 1.0)
    plain = summarize(runs, bounds=UNBOUNDED)["base"]
    assert (plain.ci_low, plain.ci_high) == pytest.approx((0.9 - T_975_DF2 * 0.1 / math.sqrt(3),
                                                           0.9 + T_975_DF2 * 0.1 / math.sqrt(3)))
    assert base.warning == "only 3 seeds: intervals are wide and tests have little power"
    # best: (0.85 + 0.9 + 1.0) / 3 = 0.91667, flagged optimistic
    assert base.best.mean == pytest.approx(0.916667, abs=1e-6) and base.best_is_optimistic
    # gap = accuracy - val_accuracy: (0.2, 0.05, -0.1) -> mean 0.05, std 0.15
    assert base.gap.mean == pytest.approx(0.05) and base.gap.std == pytest.approx(0.15)
    solo = s["solo"]
    assert solo.n == 1 and math.isnan(solo.ci_low) and "n=1" in solo.note
    assert solo.best.n == 0 and solo.best.note == "no best_val_accuracy recorded"
    assert solo.gap.mean == pytest.approx(0.3)
    assert "not a val_ metric" in summarize(runs, "accuracy")["base"].gap.note


def test_holm_by_hand():
    # p = [0.01, 0.04, 0.03, 0.005], m = 4. Sorted: 0.005, 0.01, 0.03, 0.04
    # times (4, 3, 2, 1): 0.02, 0.03, 0.06, 0.04; running max: 0.02, 0.03, 0.06, 0.06
    # back in the original order: [0.03, 0.06, 0.06, 0.02]
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # capped at 1; NaN is not a test and does not count in m (m = 2 here)
    np.testing.assert_allclose(holm([0.6, float("nan"), 0.5]), [1.0, float("nan"), 1.0])
    assert holm([]).size == 0


def test_compare_against_scipy_and_by_hand():
    ref = np.array([0.80, 0.82, 0.79, 0.85, 0.81, 0.83, 0.80])
    noisy = ref + np.array([0.01, 0.02, 0.03, 0.04, 0.05, -0.01, 0.025])
    worse = ref - np.array([0.03, 0.01, 0.02, 0.00, 0.04, 0.02, -0.01])
    runs = make_runs({"base": ref, "noisy": noisy, "worse": worse})
    c = compare(runs, "base")
    assert list(c) == ["noisy", "worse"]
    n = c["noisy"]
    d = noisy - ref
    assert n.n == 7 and n.mean_diff == pytest.approx(d.mean())
    t_ci = stats.t.interval(0.95, 6, loc=d.mean(), scale=stats.sem(d))
    plain = compare(runs, "base", bounds=UNBOUNDED)["noisy"]
    assert (plain.ci_low, plain.ci_high) == pytest.approx(t_ci) and plain.ci_method == "t"
    # on [-1, 1], far from the bounds, the logit-scale interval is the t interval to 1e-4
    assert (n.ci_low, n.ci_high) == pytest.approx(t_ci, abs=1e-4) and n.ci_method == "logit t"
    a = (d.mean() + 1) / 2
    half = stats.t.ppf(0.975, 6) * stats.sem(d) / (2 * a * (1 - a))
    assert n.ci_low == pytest.approx(-1 + 2 / (1 + math.exp(-(math.log(a / (1 - a)) - half))))
    assert n.warning is None and n.no_test_reason is None and n.verdict == "helps"
    assert n.p_ttest == pytest.approx(stats.ttest_rel(noisy, ref).pvalue)
    assert n.p_wilcoxon == pytest.approx(stats.wilcoxon(noisy - ref).pvalue)
    # 6 of 7 replicas better
    assert n.prob_better == pytest.approx(6 / 7)
    w = c["worse"]
    assert w.p_ttest == pytest.approx(stats.ttest_rel(worse, ref).pvalue)
    # "worse" has one zero difference: Wilcoxon drops it (zero_method="wilcox")
    assert w.p_wilcoxon == pytest.approx(stats.wilcoxon(worse - ref).pvalue)
    # one replica better (-0.01 -> +0.01), one tie counting half, five worse
    assert w.prob_better == pytest.approx(1.5 / 7)
    np.testing.assert_allclose([n.p_ttest_holm, w.p_ttest_holm], holm([n.p_ttest, w.p_ttest]))
    np.testing.assert_allclose([n.p_wilcoxon_holm, w.p_wilcoxon_holm],
                               holm([n.p_wilcoxon, w.p_wilcoxon]))


def test_paired_tests_on_hand_checkable_differences():
    ref = [0.5, 0.6, 0.7, 0.8, 0.9]
    arm = [r + d for r, d in zip(ref, [0.01, 0.02, 0.03, 0.04, 0.05])]
    c = compare(make_runs({"ref": ref, "arm": arm}), "ref")["arm"]
    # d = 0.01 * (1..5): mean 0.03, sd 0.01 * sqrt(2.5), t = 0.03 / (sd / sqrt 5) = 3 sqrt 2
    assert c.p_ttest == pytest.approx(2 * stats.t.sf(3 * math.sqrt(2), 4))
    # all 5 differences positive: exact two-sided p = 2 / 2**5 = 0.0625 at best, never
    # below 0.05, so no Wilcoxon p-value is given (it was 0.0625 before)
    assert signed_rank_p(np.subtract(arm, ref)) == pytest.approx(0.0625)
    assert c.p_wilcoxon is None and c.p_wilcoxon_holm is None
    assert c.no_wilcoxon_reason == "5 non-zero differences: p cannot reach 0.05"
    assert c.prob_better == 1.0 and "cannot go below p=0.0625" in c.note
    # a single comparison: Holm changes nothing
    assert c.p_ttest_holm == c.p_ttest and c.no_test_reason is None


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy on equal diffs
def test_identical_arms_and_tiny_samples():
    same = compare(make_runs({"a": [0.5, 0.6, 0.7], "b": [0.5, 0.6, 0.7]}))["b"]
    # identical arms: no test (they gave p = 1 before), no verdict, the reason said
    assert same.mean_diff == 0 and same.p_ttest is None and same.p_wilcoxon is None
    assert same.no_test_reason == "all differences zero" and same.verdict is None
    assert same.prob_better == 0.5  # all ties
    one = compare(make_runs({"a": [0.5], "b": [0.7]}))["b"]
    assert one.n == 1 and one.mean_diff == pytest.approx(0.2)
    assert math.isnan(one.ci_low) and one.p_ttest is None and one.p_ttest_holm is None
    assert "n=1" in one.note and one.no_test_reason == "n=1: too few seeds"
    assert one.warning == "only 1 of the paired seeds: no interval and no test"
    # values outside [0, 1] for an accuracy: unbounded, said; equal differences: no test
    shifted = compare(make_runs({"a": [0.5, 0.6, 0.7], "b": [1.5, 1.6, 1.7]}))["b"]
    assert shifted.p_ttest is None and shifted.no_test_reason == "all differences equal"
    assert "values outside [0, 1]" in shifted.note and math.isnan(shifted.ci_low)


def test_compare_pairs_only_common_finite_replicas_and_loss_direction():
    runs = make_runs({"a": [1.0, 0.9, 0.8, 0.7], "b": [0.9, float("nan"), 0.7]}, metric="val_loss")
    c = compare(runs, "a", metric="val_loss")["b"]
    assert c.n == 2 and c.mean_diff == pytest.approx(-0.1)
    assert c.prob_better == 1.0 and not c.higher_is_better  # lower loss is better
    assert "paired on 2 of 4 seeds" in c.note and "1 diverged in 'b'" in c.note
    assert is_higher_better("val_accuracy") and not is_higher_better("best_val_mae")


def test_reference_default_and_errors():
    runs = make_runs({"x": [0.1, 0.2], "y": [0.3, 0.4]})
    assert list(compare(runs)) == ["y"]  # first arm
    for r in runs:
        r["is_reference"] = r["arm"] == "y"
    assert list(compare(runs)) == ["x"]
    with pytest.raises(ValueError, match="reference.*'nope'"):
        compare(runs, "nope")
    with pytest.raises(ValueError, match="Two runs"):
        summarize(runs + runs[:1])


def _grid(levels, parent="g"):
    runs = []
    for value, accs in levels.items():
        for i, acc in enumerate(accs):
            runs.append({"arm": f"{parent}[stddev={value}]", "replica": i, "status": "done",
                         "arm_parent": parent, "arm_params": {"noise[0].stddev": value},
                         "final": {"val_accuracy": acc}})
    return runs


def test_grid_best_clear_winner_and_ties():
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 0.01, size=(3, 10))
    # Every replica of 0.1 beats every replica of the others, so every resample agrees.
    runs = _grid({0.01: 0.5 + noise[0], 0.1: 0.9 + noise[1], 1.0: 0.7 + noise[2]})
    runs += make_runs({"baseline": 0.5 + noise[0]})  # not a grid arm
    (g,) = grid_best(runs, n_boot=500).values()
    assert g.best == "g[stddev=0.1]" and g.params[g.best] == {"noise[0].stddev": 0.1}
    assert g.p_best == {"g[stddev=0.01]": 0.0, "g[stddev=0.1]": 1.0, "g[stddev=1.0]": 0.0}
    e = estimate(0.9 + noise[1], bounds=(0.0, 1.0))
    assert (g.best_mean, g.ci_low, g.ci_high) == pytest.approx((e.mean, e.ci_low, e.ci_high))
    assert g.n_replicas == 10 and g.n_boot == 500
    # identical levels tie in every resample: the win is shared
    tied = grid_best(_grid({1: [0.5, 0.6, 0.7], 2: [0.5, 0.6, 0.7]}), n_boot=50)["g"]
    assert tied.p_best == {"g[stddev=1]": 0.5, "g[stddev=2]": 0.5}


def test_grid_best_bootstrap_is_seeded_and_reads_names():
    rng = np.random.default_rng(1)
    close = {1: 0.80 + 0.05 * rng.standard_normal(8), 2: 0.81 + 0.05 * rng.standard_normal(8)}
    runs = _grid(close)
    for r in runs:  # no parent recorded: fall back to parsing "g[stddev=1]"
        del r["arm_parent"], r["arm_params"]
    a, b = grid_best(runs, seed=3)["g"], grid_best(runs, seed=3)["g"]
    assert a.p_best == b.p_best and sum(a.p_best.values()) == pytest.approx(1.0)
    assert 0 < a.p_best["g[stddev=1]"] < 1  # a close call is not a sure thing
    assert a.params["g[stddev=2]"] == {"stddev": 2.0}
    # lower is better for a loss: the level with smaller values wins
    loss = _grid({1: [0.3, 0.31], 2: [0.1, 0.11]})
    for r in loss:
        r["final"] = {"val_loss": r["final"]["val_accuracy"]}
    assert grid_best(loss, metric="val_loss")["g"].best == "g[stddev=2]"
    with pytest.raises(ValueError, match="parent"):
        grid_best(runs, parent="h")


def test_stats_from_store_records(tmp_path):
    """The numbers come from the store: write runs, read them back, summarize."""
    with Store(tmp_path / "s.db") as store:
        sid = store.open_study({"study": {"name": "s"}, "arms": [{"name": "b"}, {"name": "n"}]})
        for arm, vals in {"n": [0.9, 0.8], "b": [0.7, 0.75]}.items():
            for i, v in enumerate(vals):
                store.write_run(sid, types.SimpleNamespace(
                    arm=arm, replica=i, seed=i, status="done", history={}, wall_s=1.0,
                    final={"val_accuracy": v}, backend="jax", versions={}))
        runs = store.runs(sid)
    assert list(summarize(runs)) == ["b", "n"]  # spec order, not write order
    c = compare(runs)  # reference flagged by the store: the first arm, "b"
    assert list(c) == ["n"] and c["n"].mean_diff == pytest.approx(0.125)


def test_run_status_and_counts_of_lost_runs():
    from noisewise.study.stats import run_counts, run_status

    assert run_status({"status": "done", "final": {"loss": 0.3, "val_loss": float("inf")}}) \
        == "diverged"  # an older store's diverged run
    assert run_status({"status": "done", "final": {"loss": 0.3, "val_accuracy": float("nan")}}) \
        == "done"  # a missing metric is not divergence
    assert run_status({"status": "failed", "final": {}}) == "failed"
    runs = make_runs({"a": [0.8, 0.9, 0.7], "b": [0.5, 0.6, 0.7]})
    runs[3].update(status="diverged", diverged_epoch=7)
    runs[4].update(status="diverged", diverged_epoch=4)
    runs[5].update(status="failed")
    counts = run_counts(runs)
    assert (counts["b"].done, counts["b"].diverged, counts["b"].failed) == (0, 2, 1)
    assert counts["b"].first_diverged_epoch == 4 and counts["b"].all_diverged
    assert counts["b"].text() == "2 diverged (first at epoch 4), 1 failed"
    assert counts["a"].text() == "" and not counts["a"].lost


def test_a_reference_that_lost_every_run_falls_back_to_an_arm_that_finished():
    runs = make_runs({"ref": [0.5, 0.5], "x": [0.8, 0.9], "y": [0.7, 0.6]})
    for r in runs:
        r["is_reference"] = r["arm"] == "ref"
        if r["arm"] == "ref":
            r["status"] = "diverged"
    assert list(summarize(runs)) == ["x", "y"]
    c = compare(runs)
    assert list(c) == ["y"] and c["y"].reference == "x"
    with pytest.raises(ValueError, match="arm with done runs"):
        compare(runs, "ref")


def test_unpaired_seeds_are_named_with_the_reason():
    runs = make_runs({"a": [0.8, 0.9, 0.7, 0.8], "b": [0.5, 0.6, 0.7, 0.6]})
    runs[4]["status"] = "diverged"
    runs[1]["status"] = "failed"
    note = compare(runs, "a")["b"].note
    assert "paired on 2 of 4 seeds, those both arms finished (1 diverged in 'b', " \
           "1 failed in 'a')" in note


def test_equal_differences_at_two_seeds_give_no_test_and_a_distribution_free_interval():
    # accuracy moves in steps of 1/70: both paired differences are -3/70
    runs = make_runs({"base": [61 / 70, 58 / 70], "noisy": [58 / 70, 55 / 70]})
    c = compare(runs, "base")["noisy"]
    assert c.mean_diff == pytest.approx(-3 / 70) and c.std_diff == 0
    assert c.p_ttest is None and c.p_ttest_holm is None and c.p_wilcoxon_holm is None
    assert c.no_test_reason == "n=2: too few seeds" and c.verdict is None
    # q = 0.05 ** (1 / 2) = 0.223607; [-1 + q (v + 1), 1 - q (1 - v)] with v = -3/70
    q = 0.05 ** 0.5
    assert (c.ci_low, c.ci_high) == pytest.approx((-1 + q * (1 - 3 / 70), 1 - q * (1 + 3 / 70)))
    assert c.ci_method == "all equal" and "distribution-free" in c.note


def test_equal_differences_within_float32_rounding_and_holm_over_tested_arms_only():
    # accuracies as Keras stores them (float32): every difference is -3/70 in exact arithmetic
    ref = [float(np.float32(k / 70)) for k in (61, 58, 64)]
    same_step = [float(np.float32((k - 3) / 70)) for k in (61, 58, 64)]
    assert len({a - b for a, b in zip(same_step, ref)}) > 1  # float32 rounding: not bit-equal
    up = [r + d for r, d in zip(ref, (0.05, 0.06, 0.08))]
    down = [r - d for r, d in zip(ref, (0.02, 0.07, 0.03))]
    c = compare(make_runs({"ref": ref, "step": same_step, "up": up, "down": down}), "ref")
    assert c["step"].no_test_reason == "all differences equal" and c["step"].p_ttest is None
    np.testing.assert_allclose([c["up"].p_ttest_holm, c["down"].p_ttest_holm],
                               holm([c["up"].p_ttest, c["down"].p_ttest]))  # m = 2, not 3


def test_intervals_of_bounded_metrics_stay_inside_the_bounds():
    near_top = {"ref": [1.0, 69 / 70, 1.0, 1.0, 69 / 70], "arm": [69 / 70, 68 / 70, 1.0, 1.0, 1.0]}
    runs = make_runs(near_top)
    plain = summarize(runs, bounds=UNBOUNDED)["ref"]
    assert plain.ci_high > 1  # the plain t interval leaves [0, 1]: [0.9857, 1.0010]
    s = summarize(runs)["ref"]
    assert 0 <= s.ci_low < s.mean < s.ci_high <= 1 and s.warning is None
    # three seeds all at 1.0: no spread; [0.05 ** (1/3), 1] = [0.368, 1]
    top = summarize(make_runs({"ref": [1.0, 1.0, 1.0]}))["ref"]
    assert (top.ci_low, top.ci_high) == pytest.approx((0.05 ** (1 / 3), 1.0))
    assert top.final.method == "all equal"
    wide = summarize(make_runs({"ref": [0.2, 0.95]}))["ref"]  # 2 seeds: t gives [-4.5, 5.7]
    assert 0 <= wide.ci_low < wide.ci_high <= 1
    c = compare(make_runs({"ref": [0.02, 0.97, 0.5], "arm": [0.99, 0.01, 0.98]}), "ref")["arm"]
    assert -1 <= c.ci_low < c.mean_diff < c.ci_high <= 1
    # unbounded: a loss keeps the t interval, and its equal values get none
    loss = summarize(make_runs({"a": [0.3, 0.3, 0.3]}, metric="val_loss"), "val_loss")["a"]
    assert math.isnan(loss.ci_low) and "no spread" in loss.note and loss.bounds == UNBOUNDED


def test_metric_bounds_from_names():
    for name in ("val_accuracy", "best_val_auc", "precision", "val_recall", "clean_acc",
                 "certified_acc@r=0.25", "val_sparse_categorical_accuracy", "f1_score"):
        assert metric_bounds(name) == (0.0, 1.0), name
    for name in ("val_loss", "mse", "val_mae", "kl_divergence", "epoch_time"):
        assert metric_bounds(name) == UNBOUNDED, name


def test_verdict_direction_and_agreement():
    assert verdict(0.01, 0.02, 0.05) == "helps"
    assert verdict(0.01, -0.05, -0.02) == "hurts"
    assert verdict(0.01, -0.05, -0.02, higher_is_better=False) == "helps"  # a lower loss
    assert verdict(0.2, 0.02, 0.05) == "no detectable difference"
    assert verdict(0.04, -0.001, 0.05) == "no detectable difference"  # interval crosses 0
    assert verdict(None, 0.02, 0.05) is None
    runs = make_runs({"a": [0.5, 0.4, 0.6, 0.55, 0.45], "b": [0.4, 0.32, 0.49, 0.44, 0.36]},
                     metric="val_loss")
    c = compare(runs, "a", metric="val_loss")["b"]
    assert c.verdict == "helps" and c.mean_diff < 0 and c.p_ttest_holm < 0.05


def test_small_sample_warnings_and_the_test_legend():
    runs = make_runs({"a": [0.5, 0.6, 0.7, 0.8, 0.6], "b": [0.6, 0.6, 0.7, 0.9, 0.7]})
    assert summarize(runs)["a"].warning is None and compare(runs)["b"].warning is None
    four = [r for r in runs if r["replica"] < 4]
    assert summarize(four)["a"].warning == ("only 4 seeds: intervals are wide and tests have "
                                            "little power")
    assert compare(four)["b"].warning.startswith("only 4 paired seeds")
    for column in ("ci", "diff_ci", "p_ttest", "p_wilcoxon", "prob_better", "verdict"):
        assert TESTS[column]
    assert "Holm" in TESTS["p_ttest"] and "logit" in TESTS["ci"]


def test_signed_rank_p_equals_scipy_where_scipy_is_exact():
    rng = np.random.default_rng(4)
    for n in (6, 7, 9, 11):
        for _ in range(5):
            d = rng.integers(-3, 4, size=n) / 70  # ties and zeros, like accuracy steps
            if np.count_nonzero(d):
                assert signed_rank_p(d) == pytest.approx(stats.wilcoxon(d).pvalue), d
    d = rng.normal(0.3, 1, 40)  # no ties: scipy's exact test too
    assert signed_rank_p(d) == pytest.approx(stats.wilcoxon(d).pvalue)
    d = rng.normal(0.3, 1, 80)  # above 50: the normal approximation, as scipy's
    assert signed_rank_p(d) == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-6)
