"""An arm's ``predict`` table: refused with key paths, absent from the identity when
absent, and stored figures equal to a direct recomputation from the trained model."""

import copy

import keras
import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from noisewise.random import derive_seed
from noisewise.study import SpecError, Study, load, load_spec
from noisewise.study.execute import FitExecutor, VmapExecutor
from noisewise.study.execute import base as execute_base
from noisewise.uncertainty import predict_mc

JAX = keras.backend.backend() == "jax"
needs_jax = pytest.mark.skipif(not JAX, reason="the vectorised executor is JAX-only")

BASE = {
    "study": {"name": "mc", "seeds": 2, "seed": 1},
    "data": {"name": "circles"},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 3, "batch_size": 16, "learning_rate": 0.02},
    "arms": [
        {"name": "dropout", "noise": [{"type": "dropout", "where": "post_activation", "rate": 0.3}],
         "predict": {"samples": 6, "mode": "dropout"}},
        {"name": "noise", "noise": [{"type": "gaussian", "where": "post_activation", "stddev": 0.3}],
         "predict": {"samples": 5}},
    ],
}
KEYS = {"test_ece", "test_nll", "test_brier", "test_aurc", "test_mc_accuracy", "test_mc_ece",
        "test_mc_nll", "test_mc_brier", "test_mc_aurc", "test_mc_entropy",
        "test_mc_mutual_information"}


def spec_with(arm=None, **train):
    raw = copy.deepcopy(BASE)
    if arm is not None:
        raw["arms"][1] = arm
    raw["train"].update(train)
    return raw


@pytest.mark.parametrize("predict, path, message", [
    ({"samples": 0}, "arms[1].predict.samples", "`samples` must be >= 1. Received: samples=0"),
    ({"samples": 2.5}, "arms[1].predict.samples", "must be an integer"),
    ({"mode": "bayes"}, "arms[1].predict.mode", "must be one of mc, dropout, noise, tta. "
                                                "Received: mode='bayes'"),
    ({"mode": "tta"}, "arms[1].predict.mode", "the arm has no `augment` list"),
    ({"draws": 3}, "arms[1].predict.draws", "unknown key"),
    (30, "arms[1].predict", "must be a table"),
])
def test_bad_predict_tables_are_refused_before_training(predict, path, message):
    with pytest.raises(SpecError) as info:
        load_spec(spec_with({"name": "a", "predict": predict}))
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text, text


def test_the_table_is_normalised_and_absent_it_leaves_the_hash_alone():
    spelled = load_spec(spec_with({"name": "a", "predict": {"samples": 30, "mode": "mc"}}))
    short = load_spec(spec_with({"name": "a", "predict": {}}))
    assert spelled.spec_hash == short.spec_hash
    assert spelled.to_dict()["arms"][1]["predict"] == {"samples": 30, "mode": "mc"}
    assert spelled.arms[1].predict == {"samples": 30, "mode": "mc"}
    without = load_spec(spec_with({"name": "a"}))
    assert "predict" not in without.to_dict()["arms"][1] and without.arms[1].predict is None
    assert without.spec_hash != short.spec_hash
    tta = load_spec(spec_with({"name": "a", "augment": [{"type": "gaussian_noise", "stddev": 0.1}],
                               "grid": {"augment[0].stddev": [0.1, 0.2]},
                               "predict": {"mode": "tta"}}))
    assert [a.predict["mode"] for a in tta.arms[1:]] == ["tta", "tta"]


def _direct(plan, model):
    """The figures recomputed from the model with scikit-learn and loops."""
    x, y = plan.data.x_test, np.asarray(plan.data.y_test).astype(int)
    p1 = keras.ops.convert_to_numpy(model(x, training=False))[:, 0].astype(np.float64)
    det = np.stack([1 - p1, p1], axis=1)
    mc = predict_mc(model, x, plan.arm.predict["samples"], derive_seed(plan.seed, "predict"),
                    stochastic={"dropout": ("dropout",), "mc": ("dropout", "noise")}[
                        plan.arm.predict["mode"]], batch_size=1024)
    out = {}
    for prefix, p in (("test_", det), ("test_mc_", mc.mean)):
        confidence, correct = p.max(1), p.argmax(1) == y
        ece = sum(np.mean(inside) * abs(correct[inside].mean() - confidence[inside].mean())
                  for m in range(15)
                  if (inside := (confidence > m / 15) & (confidence <= (m + 1) / 15)).any())
        out.update({f"{prefix}ece": ece, f"{prefix}nll": log_loss(y, p[:, 1], labels=[0, 1]),
                    f"{prefix}brier": 2 * brier_score_loss(y, p[:, 1])})
    out["test_mc_accuracy"] = float(np.mean(mc.mean.argmax(1) == y))
    out["test_mc_entropy"] = float(mc.entropy.mean())
    return out


def _recording(monkeypatch):
    """Each evaluated run's stored figures beside their direct recomputation, at once
    (the vectorised executor loads the next replica into the same model)."""
    seen = {}
    real = execute_base.uncertainty_evaluation

    def record(plan, model):
        got = real(plan, model)
        seen[plan.key] = (got.metrics, _direct(plan, model))
        return got

    monkeypatch.setattr(execute_base, "uncertainty_evaluation", record)
    return seen


@pytest.mark.parametrize("executor", ["fit", pytest.param("vmap", marks=needs_jax)])
def test_stored_figures_equal_a_direct_recomputation(executor, tmp_path, monkeypatch):
    seen = _recording(monkeypatch)
    path = tmp_path / "s.db"
    out = Study(load_spec(BASE)).run(store=path, quiet=True, executor=executor)
    assert out.failed == 0 and len(seen) == 4
    runs = {(r["arm"], r["replica"]): r for r in load(path, "mc").runs}
    for key, (got, direct) in seen.items():
        final = runs[key]["final"]
        assert KEYS <= set(final) and set(got) == KEYS, sorted(final)
        assert {k: final[k] for k in KEYS} == pytest.approx(got)  # as stored
        for name, value in direct.items():
            assert final[name] == pytest.approx(value, rel=1e-5, abs=1e-6), (key, name)
        assert 0 <= final["test_mc_mutual_information"] <= final["test_mc_entropy"]
    # Dropout drew: its MC figures are not the deterministic ones.
    assert any(runs[("dropout", r)]["final"]["test_mc_nll"] != runs[("dropout", r)]["final"][
        "test_nll"] for r in (0, 1))


def test_nothing_to_draw_gives_the_deterministic_figures_and_no_arm_no_figures():
    spec = load_spec(spec_with({"name": "plain", "predict": {"samples": 3, "mode": "noise"}}))
    plans = Study(spec).plans()
    with pytest.warns(UserWarning, match="every draw is the same"):
        result = FitExecutor().run_one(plans[1])
    final = result.final
    for name in ("ece", "nll", "brier", "aurc"):
        assert final[f"test_mc_{name}"] == pytest.approx(final[f"test_{name}"], abs=1e-9)
    assert final["test_mc_mutual_information"] == pytest.approx(0.0, abs=1e-9)
    assert final["test_mc_accuracy"] == pytest.approx(final["val_accuracy"], abs=1e-6)
    assert not KEYS & set(FitExecutor().run_one(
        Study(load_spec(spec_with({"name": "none"}))).plans()[1]).final)


@needs_jax
def test_fit_and_vmap_store_the_same_figures():
    plans = Study(load_spec(BASE)).plans()
    slow = {r.key: r.final for r in FitExecutor().run(plans)}
    fast = {r.key: r.final for r in VmapExecutor().run(plans)}
    for key, final in slow.items():
        for name in KEYS:
            assert fast[key][name] == pytest.approx(final[name], rel=1e-3, abs=1e-4), (key, name)


def test_reliability_sums_are_stored_pooled_and_drawn_in_the_report(tmp_path):
    from noisewise.study.report import calibration, write_report

    path = tmp_path / "s.db"
    Study(load_spec(BASE)).run(store=path, quiet=True, executor="fit")
    runs = load(path, "mc").runs
    n_test = len(Study(load_spec(BASE)).data.y_test)
    for r in runs:
        terms = r["calibration"]
        assert (terms["bins"], terms["mode"]) == (15, {"dropout": "dropout", "noise": "mc"}[r["arm"]])
        for kind, accuracy in (("deterministic", r["final"]["test_accuracy"]
                                if "test_accuracy" in r["final"] else r["final"]["val_accuracy"]),
                               ("mc", r["final"]["test_mc_accuracy"])):
            bins = terms[kind]
            assert sum(bins["count"]) == n_test
            assert sum(bins["correct"]) / n_test == pytest.approx(accuracy, abs=1e-6)
            # ECE from the stored sums is the stored ECE
            count = np.asarray(bins["count"], float)
            gap = np.abs(np.asarray(bins["correct"]) - np.asarray(bins["confidence"]))
            prefix = "test_" if kind == "deterministic" else "test_mc_"
            assert gap.sum() / count.sum() == pytest.approx(r["final"][prefix + "ece"], abs=1e-5)
    pooled = calibration.pool(runs)
    assert set(pooled) == {"dropout", "noise"} and pooled["noise"]["runs"] == 2
    assert sum(pooled["noise"]["mc"]["count"]) == 2 * n_test
    html_path = write_report(path, out_path=tmp_path / "r.html")
    html = html_path.read_text()
    assert 'id="calibration"' in html and 'href="#calibration"' in html
    assert "dropout: 2 seed(s)" in html
    from _browser import render

    dom = render(html_path)
    section = dom[dom.index('<section id="calibration"'):]
    assert '<img src="data:image/png;base64,' in section[:section.index("</section>")]
    plain = tmp_path / "p.db"
    raw = copy.deepcopy(BASE)
    raw["study"]["seeds"] = 1
    for arm in raw["arms"]:
        del arm["predict"]
    Study(load_spec(raw)).run(store=plain, quiet=True, executor="fit")
    assert 'id="calibration"' not in write_report(plain, out_path=tmp_path / "p.html").read_text()


def test_predict_on_a_regression_is_refused_before_training(tmp_path):
    raw = {"study": {"name": "reg", "seeds": 1}, "data": {"name": "sine"},
           "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 1, "metrics": ["mae"]},
           "arms": [{"name": "a", "predict": {"samples": 2}}]}
    with pytest.raises(Exception, match="'a' has `predict`, which measures a classifier's"):
        Study(load_spec(raw)).run(store=tmp_path / "s.db", quiet=True, executor="fit")
    assert not (tmp_path / "s.db").exists()
