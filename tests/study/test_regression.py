"""Regression studies end to end: Bishop's input noise against ridge, reported lower-is-better."""

from pathlib import Path

import keras
import numpy as np
import pytest

from noisewise.study import Store, Study, load_spec, stats
from noisewise.study.config import SpecError
from noisewise.study.datasets import load_dataset
from noisewise.study.execute import FitExecutor, VmapExecutor

ROOT = Path(__file__).resolve().parents[2]
BISHOP = ROOT / "examples" / "bishop.toml"
JAX = keras.backend.backend() == "jax"


def quick_bishop(seeds=3, epochs=150):
    """examples/bishop.toml with fewer seeds and epochs (the full setting is in
    its comment: 20 seeds x 2000 epochs)."""
    raw = load_spec(BISHOP).to_dict()
    raw["study"].update(seeds=seeds, name="bishop-quick")
    raw["train"]["epochs"] = epochs
    return raw


def test_the_bishop_study_runs_end_to_end_and_lower_test_mse_is_better(tmp_path):
    raw = quick_bishop()
    spec = load_spec(raw)
    assert spec.data["task"] == "regression" and spec.train["metrics"] == ["mse"]
    assert [a.name for a in spec.arms] == [
        "baseline", "input[stddev=0.03]", "input[stddev=0.05]", "input[stddev=0.1]",
        "ridge_small", "ridge_medium", "ridge_large"]
    assert spec.arm("ridge_large").train == {"weight_decay": 0.1}
    outcome = Study(raw).run(store=tmp_path / "b.db", quiet=True)
    assert (outcome.ran, outcome.failed, outcome.diverged) == (21, 0, 0)
    with Store(tmp_path / "b.db") as store:
        runs = store.runs(outcome.study_id)
    assert len(runs) == 21
    for run in runs:
        final = run["final"]
        assert {"test_mse", "test_loss", "val_mse", "best_val_mse"} <= set(final)
        assert final["test_mse"] == pytest.approx(final["test_loss"], rel=1e-5)  # loss is mse
        assert final["test_mse"] > 0.2 ** 2 * 0.5  # not below the noise floor's scale
        assert final["best_val_mse"] <= final["val_mse"]  # the best is the lowest
    summary = stats.summarize(runs, metric="test_mse")
    assert set(summary) == {a.name for a in spec.arms}
    comparisons = list(stats.compare(runs, reference="baseline", metric="test_mse").values())
    assert comparisons and all(c.higher_is_better is False for c in comparisons)
    # prob_better counts the seeds where the arm's test mse is *lower*.
    for c in comparisons:
        arm = {r["replica"]: r["final"]["test_mse"] for r in runs if r["arm"] == c.arm}
        base = {r["replica"]: r["final"]["test_mse"] for r in runs if r["arm"] == "baseline"}
        lower = np.mean([arm[k] < base[k] for k in base]) + 0.5 * np.mean(
            [arm[k] == base[k] for k in base])
        assert c.prob_better == pytest.approx(lower)


def test_input_noise_and_ridge_change_the_fit():
    # Same replica, three arms: the weights differ, so the test figures do.
    raw = quick_bishop(seeds=1, epochs=60)
    plans = Study(raw).plans()
    results = {r.key: r.final["test_mse"] for r in map(FitExecutor().run_one, plans)}
    assert len(set(results.values())) == len(results)


@pytest.mark.skipif(not JAX, reason="the vectorised executor is JAX-only")
def test_both_executors_train_a_regression_alike():
    raw = quick_bishop(seeds=2, epochs=20)
    raw["data"]["standardize"] = True
    plans = [p for p in Study(raw).plans() if p.arm.name in ("baseline", "ridge_large",
                                                              "input[stddev=0.05]")]
    fit = {r.key: r for r in map(FitExecutor().run_one, plans)}
    fast = {r.key: r for r in VmapExecutor().run(plans)}
    for key, result in fit.items():
        for name, values in result.history.items():
            np.testing.assert_allclose(fast[key].history[name], values, rtol=1e-5, atol=1e-6)
        assert fast[key].final["test_mse"] == pytest.approx(result.final["test_mse"], rel=1e-5)


def test_a_regression_csv_loads_unstratified_with_float_targets(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 2))
    y = 3 * x[:, 0] - x[:, 1] + 0.1 * rng.normal(size=80)
    rows = ["a,b,label"] + [f"{a},{b},{t}" for (a, b), t in zip(x, y)]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset({"path": "r.csv", "task": "regression", "standardize": True},
                        base_dir=tmp_path, validation_split=0.25)
    assert data.task == "regression" and data.num_classes == 1 and data.classes == ()
    assert data.y_train.dtype == np.float32 and data.y_train.ndim == 1
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (45, 15, 20)
    assert sorted(np.concatenate([data.y_train, data.y_val, data.y_test])) == pytest.approx(
        sorted(y.astype("float32")))
    (tmp_path / "bad.csv").write_text("a,label\n1,2.5\n2,high\n")
    with pytest.raises(ValueError, match=r"row 3, column 'label': a regression target must "
                                         r"be a number. Received: 'high'"):
        load_dataset({"path": "bad.csv", "task": "regression"}, base_dir=tmp_path)


def test_several_targets_make_several_linear_outputs(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 3)).astype("float32")
    y = np.stack([x.sum(axis=1), x[:, 0] - x[:, 2]], axis=1)
    np.savez(tmp_path / "two.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    raw = {"study": {"name": "two", "seeds": 1},
           "data": {"path": str(tmp_path / "two.npz"), "task": "regression"},
           "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 3},
           "arms": [{"name": "baseline"}]}
    study = Study(raw)
    assert study.data.num_classes == 2 and study.spec.train["metrics"] == ["mae"]
    assert study.check() > 0
    result = FitExecutor().run_one(study.plans()[0])
    assert result.status == "done" and "val_mae" in result.final


def test_classification_options_are_refused_on_a_regression(tmp_path):
    raw = quick_bishop(seeds=1, epochs=1)
    raw["train"]["label_smoothing"] = 0.1
    with pytest.raises(SpecError, match="train.label_smoothing and train.from_logits apply to "
                                        "classifiers; the data's task is regression"):
        Study(raw).check()
    raw = quick_bishop(seeds=1, epochs=1)
    raw["train"]["class_weight"] = "balanced"
    with pytest.raises(SpecError, match="train.class_weight applies to classifiers"):
        Study(raw).check()
    raw = quick_bishop(seeds=1, epochs=1)
    raw["data"]["task"] = "classification"
    with pytest.raises(SpecError, match="data.task: the built-in dataset 'sine' is a regression"):
        load_spec(raw)
