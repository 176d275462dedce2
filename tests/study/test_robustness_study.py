"""Robustness evaluations in a study: validated up front, run on every trained model, stored, paired."""

import copy
from pathlib import Path

import numpy as np
import pytest

from conftest import BACKEND
from noisewise.study import SpecError, Study, load_spec
from noisewise.study.stats import summarize
from noisewise.study.store import Store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_smoothing.toml"
SIGMA = 0.25
BASE = {
    "study": {"name": "robust", "seeds": 3},
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [64]},
    "train": {"epochs": 15, "batch_size": 64, "validate_every": 5},
    "arms": [
        {"name": "baseline"},
        {"name": "noise", "noise": [{"type": "gaussian", "where": "input", "stddev": 0.5}]},
    ],
    "robustness": {
        "max_examples": 120,
        "smoothing": {"sigma": SIGMA, "n0": 50, "n": 300, "alpha": 0.01, "radii": [0.0, SIGMA]},
        "noise": [{"type": "gaussian", "levels": [0.5], "draws": 2}],
        "attacks": [{"type": "fgsm", "eps": [0.1]}],
    },
}


def spec_with(**robustness):
    raw = copy.deepcopy(BASE)
    raw["robustness"] = robustness
    return raw


@pytest.mark.parametrize("robustness, path, message", [
    ({"smoothing": {"sigma": 0.25, "alpha": 1.5}}, "robustness.smoothing.alpha",
     "Received: robustness.smoothing.alpha=1.5"),
    ({"smoothing": {"sigma": 0.25, "n0": 500, "n": 100}}, "robustness.smoothing.n0",
     "must be <= `n` (100). Received: n0=500"),
    ({"smoothing": {"n": 100}}, "robustness.smoothing.sigma", "is required"),
    ({"attacks": [{"type": "fgsm", "eps": -0.1}]}, "robustness.attacks[0].eps",
     "Received: robustness.attacks[0].eps=-0.1"),
    ({"attacks": [{"type": "cw"}]}, "robustness.attacks[0].type", "Received: robustness.attacks[0].type='cw'"),
    ({"noise": [{"type": "gaussian", "levels": [-1]}]}, "robustness.noise[0].levels", "Received"),
    ({"smoothing_sigma": 0.25}, "robustness.smoothing_sigma", "is not a known key"),
    ({"corruptions": {"severities": [6]}}, "robustness.corruptions.severities", "Received"),
    ({"clip": "sometimes"}, "robustness.clip", "'data' (the data's range, the default), 'none' or a pair "
                                               "[low, high]. Received: robustness.clip='sometimes'"),
    ({"clip": [1.0, 0.0]}, "robustness.clip", "low < high"),
])
def test_bad_robustness_tables_fail_before_training_with_their_key_path(tmp_path, robustness,
                                                                         path, message):
    with pytest.raises(SpecError) as err:
        load_spec(spec_with(**robustness))
    assert str(err.value).startswith(path + ":"), str(err.value)
    assert message in str(err.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("clip", ["data", "none", [0.0, 1.0]])
def test_clip_is_the_data_range_none_or_a_given_range(clip):
    # Without `clip` the evaluation clips to the data's range (digits: observed [0, 1] on its test split).
    spec = load_spec(spec_with(clip=clip, attacks=[{"type": "pgd", "eps": 0.1}]))
    assert spec.robustness["clip"] == clip


def test_the_robustness_table_is_part_of_the_spec_hash():
    a, b = load_spec(BASE), load_spec(spec_with(smoothing={"sigma": 0.5}))
    assert a.spec_hash != b.spec_hash
    without = copy.deepcopy(BASE)
    del without["robustness"]
    assert load_spec(without).robustness is None
    assert "robustness" not in load_spec(without).to_dict()


@pytest.mark.slow
def test_every_run_stores_its_robustness_metrics_and_noise_training_certifies_more(tmp_path):
    # Cohen et al. (2019): a model trained with Gaussian input noise keeps its
    # prediction under the smoothing noise far more often than one trained
    # clean, so its certified accuracy at radius sigma is higher. Digits
    # pixels are in [0, 1]; sigma 0.25 noise is heavy for a clean model.
    outcome = Study(BASE).run(tmp_path / "s.db", quiet=True, executor="fit")
    assert (outcome.ran, outcome.failed) == (6, 0)
    with Store(tmp_path / "s.db") as store:
        runs = store.runs(outcome.study_id)
    keys = {"clean_acc", "certified_acc@r=0", f"certified_acc@r={SIGMA:g}",
            "smoothing_abstain_rate", "noise_acc@gaussian=0.5", "adv_acc@fgsm_linf=0.1"}
    for run in runs:
        assert keys <= set(run["final"]), sorted(run["final"])
        assert all(0.0 <= run["final"][k] <= 1.0 for k in keys)
        # certifying at a larger radius can only lose examples
        assert run["final"][f"certified_acc@r={SIGMA:g}"] <= run["final"]["certified_acc@r=0"]
    metric = f"certified_acc@r={SIGMA:g}"
    by_arm = summarize(runs, metric)
    assert by_arm["noise"].mean > by_arm["baseline"].mean + 0.02, (
        by_arm["noise"].mean, by_arm["baseline"].mean)
    paired = {(r["arm"], r["replica"]): r["final"][metric] for r in runs}
    assert all(paired[("noise", i)] >= paired[("baseline", i)] for i in range(3)), paired


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "jax", reason="the vectorised executor runs on JAX only")
def test_vectorised_and_per_run_paths_store_the_same_robustness_metrics(tmp_path):
    raw = copy.deepcopy(BASE)
    raw["study"]["seeds"] = 2
    raw["train"]["epochs"] = 3
    fit = Study(raw).run(tmp_path / "fit.db", quiet=True, executor="fit")
    fast = Study(raw).run(tmp_path / "vmap.db", quiet=True, executor="vmap")
    with Store(tmp_path / "fit.db") as a, Store(tmp_path / "vmap.db") as b:
        ra, rb = a.runs(fit.study_id), b.runs(fast.study_id)
    assert [(r["arm"], r["replica"]) for r in ra] == [(r["arm"], r["replica"]) for r in rb]
    for x, y in zip(ra, rb):
        for key, value in x["final"].items():
            # Same seeds, same draws: only float rounding differs between the
            # paths, which may flip a sample near a decision boundary (1/n).
            assert np.isclose(y["final"][key], value, atol=0.02), (key, value, y["final"][key])


def test_the_example_spec_is_valid():
    spec = load_spec(EXAMPLE)
    assert spec.robustness["smoothing"]["sigma"] == 0.25
    assert [a.name for a in spec.arms] == ["baseline", "noise_0.25", "noise_0.5"]


ADVERSARIAL = {"type": "adversarial", "attack": "fgsm", "eps": 0.1, "ratio": 0.5,
               "clip": [0.0, 1.0]}


def adversarial_spec(**entry):
    raw = copy.deepcopy(BASE)
    raw["arms"][1] = {"name": "adv", "noise": [{**ADVERSARIAL, **entry}]}
    raw["robustness"] = {"max_examples": 100, "attacks": [{"type": "fgsm", "eps": 0.1}]}
    return raw


@pytest.mark.parametrize("entry, path", [
    ({"eps": -0.1}, "arms[1].noise[0].eps"),
    ({"attack": "cw"}, "arms[1].noise[0].attack"),
    ({"ratio": 2}, "arms[1].noise[0].ratio"),
    ({"where": "input"}, "arms[1].noise[0].where"),
])
def test_bad_adversarial_arms_fail_with_their_key_path(entry, path):
    with pytest.raises(SpecError) as err:
        load_spec(adversarial_spec(**entry))
    assert str(err.value).startswith(path + ":"), str(err.value)


def test_an_adversarial_arm_wraps_the_model_and_trains_with_fit(tmp_path):
    from noisewise.robust import AdversarialModel
    from noisewise.study.models import build_model

    study = Study(adversarial_spec())
    plan = [p for p in study.plans() if p.arm.name == "adv"][0]
    model = build_model(plan.model, plan.arm.noise, plan.data, plan.seed, plan.arm.name)
    assert isinstance(model, AdversarialModel) and model.eps == 0.1 and model.attack == "fgsm"
    raw = adversarial_spec()
    raw["study"]["seeds"], raw["train"]["epochs"] = 1, 2
    outcome = Study(raw).run(tmp_path / "s.db", quiet=True, executor="fit")
    assert (outcome.ran, outcome.failed) == (2, 0)
    with Store(tmp_path / "s.db") as store:
        finals = {r["arm"]: r["final"] for r in store.runs(outcome.study_id)}
    assert {"clean_acc", "adv_acc@fgsm_linf=0.1", "val_accuracy"} <= set(finals["adv"])


@pytest.mark.skipif(BACKEND != "jax", reason="the vectorised executor runs on JAX only")
def test_an_adversarial_arm_trains_the_same_vectorised(tmp_path):
    raw = adversarial_spec()
    raw["study"]["seeds"], raw["train"]["epochs"] = 2, 2
    del raw["robustness"]
    fit = Study(raw).run(tmp_path / "fit.db", quiet=True, executor="fit")
    fast = Study(raw).run(tmp_path / "vmap.db", quiet=True, executor="vmap")
    with Store(tmp_path / "fit.db") as a, Store(tmp_path / "vmap.db") as b:
        ha = {(r["arm"], r["replica"]): r["history"] for r in a.history(fit.study_id)}
        hb = {(r["arm"], r["replica"]): r["history"] for r in b.history(fast.study_id)}
    assert ha.keys() == hb.keys()
    for key in ha:
        for metric, values in ha[key].items():
            np.testing.assert_allclose(hb[key][metric], values, rtol=1e-4, atol=1e-5,
                                       err_msg=f"{key} {metric}")
