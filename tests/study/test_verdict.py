"""The verdict in the report and the terminal: still-improving curves, one sentence per arm,
the forest plot, and no p-value where the statistics have none."""

import html
import math
import re
from pathlib import Path

import numpy as np
import pytest
from _report_stores import write_runs

from noisewise.cli import main
from noisewise.study import Store, load_spec, stats
from noisewise.study.report import figures as plots
from noisewise.study.report import verdict, write_report

ROOT = Path(__file__).resolve().parents[2]


# -- still improving: defined on the seeds, tested on synthetic histories -----------
def curves(rng, seeds, epochs, mean, noise=0.01):
    """Runs x epochs: ``mean(epochs)`` plus independent noise per seed and epoch."""
    e = np.arange(1, epochs + 1)
    return e, mean(e.astype(float)) + rng.normal(0, noise, (seeds, e.size))


def test_a_curve_rising_at_the_end_is_still_improving():
    rng = np.random.default_rng(0)
    e, m = curves(rng, 8, 200, lambda e: 0.7 + 0.0005 * e)
    t = verdict.trend("a", e, m, "val_accuracy")
    assert t.improving and (t.first_epoch, t.last_epoch, t.n) == (181, 200, 8)
    assert t.ci_low < 0.0005 * 19 < t.ci_high  # the true gain over epochs 181-200
    # The same curves as a loss: rising is getting worse.
    assert not verdict.trend("a", e, m, "val_loss", higher_is_better=False).improving
    e, loss = curves(rng, 8, 200, lambda e: 1.0 - 0.0005 * e)
    assert verdict.trend("a", e, loss, "val_loss", higher_is_better=False).improving


@pytest.mark.parametrize("shape", [
    lambda e: 0.8 + 0 * e,  # a plateau
    lambda e: 0.8 - 0.0005 * np.maximum(e - 100, 0),  # peaked, now overfitting
    lambda e: 0.9 - 0.3 * np.exp(-e / 20),  # saturated long before the end
])
def test_a_curve_that_stopped_improving_is_not_flagged(shape):
    e, m = curves(np.random.default_rng(1), 8, 200, shape)
    t = verdict.trend("a", e, m, "val_accuracy")
    assert t is not None and not t.improving
    assert verdict.still_improving({"a": (e, m)}, "val_accuracy") == []


@pytest.mark.parametrize("value", [0.7333333, 0.1, 1 / 3])
def test_identical_flat_seeds_are_not_flagged(value):
    """Two seeds with the same constant curve (a small study's plateau) have a
    gain of exactly zero, not rounding error with a zero-width interval above it."""
    e = np.arange(1, 101)
    t = verdict.trend("a", e, np.full((2, 100), value), "val_accuracy")
    assert (t.gain, t.ci_low, t.ci_high, t.improving) == (0.0, 0.0, 0.0, False)


def test_flat_curves_are_flagged_at_the_rate_of_the_one_sided_interval():
    """Under no trend at all the flag is a false alarm: its rate is that of a 95%
    interval lying above zero, 2.5%; 2000 arms of 5 seeds bound it to +-1.2%."""
    rng = np.random.default_rng(2)
    e = np.arange(1, 11)
    flags = [verdict.trend("a", e, rng.normal(0.8, 0.02, (5, 10)), "m").improving
             for _ in range(2000)]
    rate, sd = np.mean(flags), math.sqrt(0.025 * 0.975 / 2000)
    assert abs(rate - 0.025) < 3.3 * sd, rate  # 3.3 sd: a 1-in-1000 band


def test_the_window_is_the_last_tenth_or_the_last_three_validated_epochs():
    rng = np.random.default_rng(3)
    m = rng.normal(0.8, 0.01, (4, 4))
    t = verdict.trend("a", [30, 60, 90, 100], m, "m")
    assert (t.first_epoch, t.last_epoch) == (60, 100)  # (90, 100] holds one epoch
    assert verdict.trend("a", [1, 2], m[:, :2], "m") is None  # two epochs: no trend
    assert verdict.trend("a", [1, 2, 3], m[:1, :3], "m") is None  # one seed: no interval
    with_nan = m.copy()
    with_nan[1:, :] = np.nan
    assert verdict.trend("a", [1, 2, 3, 4], with_nan, "m") is None


# -- sentences and the forest plot from real comparisons ------------------------------
def runs_of(values):
    """Run records ``{arm: [final val_accuracy per replica]}``."""
    return [{"arm": arm, "replica": i, "status": "done", "final": {"val_accuracy": v}}
            for arm, vals in values.items() for i, v in enumerate(vals)]


def test_sentences_say_the_difference_its_interval_the_seeds_and_the_verdict():
    base = [0.80, 0.82, 0.81, 0.79, 0.83, 0.80]
    runs = runs_of({"base": base, "noisy": [b + d for b, d in zip(base, (
        0.04, 0.05, 0.03, 0.04, 0.05, 0.02))], "same": [b + d for b, d in zip(base, (
            0.01, -0.01, 0.0, 0.02, -0.02, 0.005))]})
    c = stats.compare(runs, "base", "val_accuracy")
    d = verdict.decimals([(c["noisy"].ci_high - c["noisy"].ci_low) / 2])
    lo, hi = c["noisy"].ci_low, c["noisy"].ci_high
    assert verdict.sentence(c["noisy"], "val_accuracy") == (
        f"noisy: {c['noisy'].mean_diff:+.{d}f} [{lo:+.{d}f}, {hi:+.{d}f}] val_accuracy over 6 "
        "paired seeds, better on 100% of seeds: helps.")
    assert verdict.sentence(c["same"], "val_accuracy").endswith(
        "better on 58% of seeds: no detectable difference.")
    two = stats.compare(runs_of({"base": [0.8, 0.7], "x": [0.9, 0.75]}), "base", "val_accuracy")
    x = two["x"]
    text = verdict.sentence(x, "val_accuracy")
    d = verdict.decimals([(x.ci_high - x.ci_low) / 2])  # the interval's scale: 0.1
    assert text.startswith(f"x: {x.mean_diff:+.{d}f} [{x.ci_low:+.{d}f}, {x.ci_high:+.{d}f}] "
                           "val_accuracy over 2 paired seeds, better on 100% of seeds")
    assert f"(no test: {two['x'].no_test_reason})" in text and "helps" not in text


def test_forest_plot_draws_each_difference_its_interval_and_the_zero_line():
    base = [0.80, 0.82, 0.81, 0.79, 0.83, 0.80]
    runs = runs_of({"base": base, "up": [b + 0.04 + 0.01 * (i % 2) for i, b in enumerate(base)],
                    "down": [b - 0.03 - 0.01 * (i % 3) for i, b in enumerate(base)]})
    cs = list(stats.compare(runs, "base", "val_accuracy").values())
    fig = plots.forest_figure(cs, "val_accuracy", "base", {c.arm: c.verdict for c in cs})
    ax = fig.axes[0]
    points = [line for line in ax.get_lines() if line.get_marker() in ("^", "v", "o", "s")]
    assert [float(p.get_xdata()[0]) for p in points] == [c.mean_diff for c in cs]
    assert [p.get_marker() for p in points] == ["^", "v"]  # helps, hurts
    zero = [line for line in ax.get_lines() if list(line.get_xdata()) == [0, 0]]
    assert len(zero) == 1
    bars = [coll.get_segments()[0] for coll in ax.collections]
    assert [(s[0][0], s[1][0]) for s in bars] == [(c.ci_low, c.ci_high) for c in cs]
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"helps", "hurts", "no difference (= base)"} <= labels
    assert [t.get_text() for t in ax.get_yticklabels()] == ["up", "down"]


# -- stores: a study with an effect and an arm still learning, and degenerate ones ---
def learning(k, rng, epochs=60):
    """Learning curves: arm 0 flat at the end, arm 1 better by 0.04, others still rising."""
    e = np.arange(1, epochs + 1)
    end = {0: 0.80, 1: 0.84}.get(k)
    val = (0.6 + 0.3 * e / epochs if end is None else end - 0.2 * np.exp(-e / 5.0))
    val = val + rng.normal(0, 0.005, e.size)
    h = {"loss": 0.7 * np.exp(-e / 10), "accuracy": np.minimum(val + 0.1, 1.0),
         "val_loss": 0.7 * np.exp(-e / 10) + 0.1, "val_accuracy": val}
    return h, e


def study_spec(name, seeds, arms, epochs=2):
    return load_spec({
        "study": {"name": name, "seeds": seeds, "seed": 0}, "data": {"name": "circles"},
        "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": epochs},
        "arms": [{"name": arms[0]}] + [
            {"name": a, "noise": [{"type": "gaussian", "where": "input", "stddev": 0.1 * (i + 1)}]}
            for i, a in enumerate(arms[1:])]})


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    spec = study_spec("learned", 6, ("baseline", "input", "hidden"), epochs=60)
    rng = np.random.default_rng(4)
    path = write_runs(tmp_path_factory.mktemp("verdict") / "v.db", spec,
                      lambda k, arm, r: learning(k, rng))
    with Store(path) as s:
        runs = s.runs(s.study("learned")["id"])
    return path, stats.compare(runs, "baseline", "val_accuracy")


def cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_report_marks_each_arm_and_warns_that_one_is_still_improving(learned, tmp_path):
    path, comparison = learned
    text = write_report(path, "learned", tmp_path / "v.html").read_text()
    assert 'id="fig-forest"' in text and '<section id="forest"><h2>Verdict</h2>' in text
    marked = re.findall(r'<li data-sentence="([^"]+)" data-verdict="([^"]*)"[^>]*>([^<]*)</li>',
                        text)
    assert [(a, v) for a, v, _ in marked] == [(a, c.verdict) for a, c in comparison.items()]
    assert comparison["input"].verdict == "helps"
    for arm, v, sentence in marked:
        assert sentence.startswith(f"{arm}: +") and sentence.endswith(f": {v}.")
        assert "over 6 paired seeds, better on" in sentence
        assert re.search(rf'<tr data-arm="{arm}">.*?<td class="verdict [a-z-]+" '
                         rf'data-sort="{v}">{v}</td>', text)
    warnings = [w for w in re.findall(r'<p class="warning">(.*)</p>', text) if "still improving" in w]
    assert len(warnings) == 1 and "so train longer before concluding" in warnings[0]
    assert "<b>hidden</b>" in warnings[0] and "<b>input</b>" not in warnings[0]
    legend = [html.unescape(d) for d in re.findall(r"<dd>(.*?)</dd>", text)]
    for key in ("p_ttest", "p_wilcoxon", "verdict"):  # the tests behind the columns
        assert stats.TESTS[key] in legend


def test_show_has_the_verdict_column_and_the_still_improving_warning(learned, capsys):
    path, comparison = learned
    code, out, err = cli(capsys, "show", "learned", "--store", path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split()[-1] == "verdict"
    rows = {line.split()[0]: line for line in lines[3:6]}
    for arm, c in comparison.items():
        assert rows[arm].rstrip().endswith(verdict.SHORT.get(c.verdict, c.verdict))
    text = " ".join(out.split())
    assert ("warning: val_accuracy is still improving at the end of training in 1 arm(s): "
            "train longer before concluding") in text
    assert re.search(r"\[95% CI\]: hidden \+0\.\d+ \[\+0\.\d+, \+0\.\d+\]", text)
    assert all(len(line) <= 80 for line in lines)


def test_show_fits_80_columns_with_the_circles_arm_names(tmp_path, capsys):
    spec = load_spec(ROOT / "examples" / "circles.toml", seeds=3, epochs=20)
    rng = np.random.default_rng(5)
    path = write_runs(tmp_path / "c.db", spec, lambda k, arm, r: learning(k % 3, rng, 20))
    code, out, err = cli(capsys, "show", "--store", path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{spec.name}: val_accuracy over 39 of 39 runs")
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    levels = [line.split()[0] for line in lines if line.startswith("  [")]
    assert levels == [f"[stddev={v}]" for v in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)]
    assert "hidden_grid" in [line.strip() for line in lines]  # the grid named once, above


F32 = [float(np.float32(k / 70)) for k in (50, 55, 53, 58)]  # accuracies on 70 points


@pytest.mark.parametrize("finals", [
    ((0.5, 0.75), (0.625, 0.875)),  # both differences exactly 0.125
    ((F32[0], F32[1]), (F32[2], F32[3])),  # 3/70 twice, equal but for float32's last bits
], ids=["exact", "float32"])
def test_two_seed_degenerate_differences_show_no_p_value_below_0_05(finals, tmp_path, capsys):
    spec = study_spec("two", 2, ("baseline", "noisy"))

    def curves(k, arm, replica):
        v = finals[k][replica]
        return ({"loss": [0.6, 0.5], "accuracy": [v, v], "val_loss": [0.6, 0.5],
                 "val_accuracy": [v, v]}, np.array([1, 2]))

    path = write_runs(tmp_path / "two.db", spec, curves)
    diffs = [b - a for a, b in zip(*finals)]
    assert abs(diffs[0] - diffs[1]) < 1e-7
    code, out, err = cli(capsys, "show", "two", "--store", path)
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("noisy "))
    p_cell = row.split("]")[1].split()[0]  # after the difference's interval
    assert p_cell == "no test" or p_cell == "no" or float(p_cell) >= 0.05, row
    assert "<0.001" not in out
    text = write_report(path, "two", tmp_path / "two.html").read_text()
    row = re.search(r'<tr data-arm="noisy">.*?</tr>', text, re.S).group(0)
    cells = re.findall(r'<td class="([a-z -]+)" data-sort="([^"]*)">([^<]*)', row)
    for _, value, shown in cells[6:8]:  # the t-test and Wilcoxon cells
        assert value == "" or float(value) >= 0.05, cells
        assert not re.fullmatch(r"<?[\d.e-]+", html.unescape(shown)) or float(value) >= 0.05
    assert "&lt;0.001" not in row
