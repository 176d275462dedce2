"""Adaptive levels in study arms: refused before training with key paths, the same
trajectory in fit and vmap, and stored in the run's history."""

import copy

import keras
import numpy as np
import pytest

from noisewise.study import SpecError, Study, load_spec
from noisewise.study.execute import FitExecutor, VmapExecutor
from noisewise.study.store import Store

JAX = keras.backend.backend() == "jax"
needs_jax = pytest.mark.skipif(not JAX, reason="the vectorised executor is JAX-only")

ADAPT = {"signal": "accuracy", "target": 0.0, "gain": 2.0, "bounds": [0.0, 1.0]}
NOISE = {"type": "gaussian", "where": "pre_activation", "stddev": 0.3, "adapt": ADAPT}
BASE = {
    "study": {"name": "ada", "seeds": 1, "seed": 3},
    "data": {"name": "circles"},
    "model": {"name": "mlp", "hidden": [32]},
    "train": {"epochs": 4, "batch_size": 8, "validate_every": 2, "learning_rate": 0.05},
    "arms": [{"name": "baseline"}, {"name": "ada", "noise": [NOISE]}],
}


def spec_with(arm=None, **train):
    raw = copy.deepcopy(BASE)
    if arm is not None:
        raw["arms"][1] = arm
    raw["train"].update(train)
    return raw


def noise(**adapt):
    return {**NOISE, "adapt": {**ADAPT, **adapt}}


@pytest.mark.parametrize("arm, train, path, message", [
    ({"name": "a", "noise": [noise(target=1.5)]}, {},
     "arms[1].noise[0].adapt.target", "`target` must be in [-1, 1]"),
    ({"name": "a", "noise": [noise(bounds=[1.0, 0.0])]}, {},
     "arms[1].noise[0].adapt.bounds", "Received: bounds=[1.0, 0.0]"),
    ({"name": "a", "noise": [noise(bounds=[-1.0, 1.0])]}, {},
     "arms[1].noise[0].adapt.bounds", "must lie within the range of `stddev`, [0.0, inf]"),
    ({"name": "a", "noise": [{**noise(bounds=[0.0, 0.2]), "stddev": 0.3}]}, {},
     "arms[1].noise[0].stddev", "the starting level 0.3 lies outside adapt.bounds [0.0, 0.2]"),
    ({"name": "a", "noise": [noise(gain=0)]}, {},
     "arms[1].noise[0].adapt.gain", "Received: gain=0"),
    ({"name": "a", "noise": [noise(signal="auc")]}, {},
     "arms[1].noise[0].adapt.signal", "the study records loss, accuracy"),
    ({"name": "a", "noise": [noise()]}, {"validate_every": 4},
     "arms[1].noise[0].adapt", "validates only the last of the 4 epochs"),
    ({"name": "a", "noise": [noise(rate=1)]}, {},
     "arms[1].noise[0].adapt.rate", "unknown key; allowed keys: bounds, gain, signal, target"),
    ({"name": "a", "noise": [{"type": "dropout", "where": "input", "rate": 0.1,
                              "adapt": ADAPT}]}, {},
     "arms[1].noise[0].adapt", "a 'dropout' entry holds no level variable to adapt"),
    ({"name": "a", "noise": [NOISE], "grid": {"noise[0].stddev": [0.5, 2.0]}}, {},
     "arms[1].grid.noise[0].stddev[1]", "the starting level 2.0 lies outside"),
    ({"name": "a", "augment_probability": 0.5}, {},
     "arms[1].augment_probability", "given without an `augment` list"),
    ({"name": "a", "augment": [{"type": "flip"}], "augment_probability": 1.5}, {},
     "arms[1].augment_probability", "Received: augment_probability=1.5"),
    ({"name": "a", "augment": [{"type": "flip"}], "augment_adapt": {**ADAPT, "bounds": [0, 2]}},
     {}, "arms[1].augment_adapt.bounds", "within the range of `augment_probability`, [0.0, 1.0]"),
    ({"name": "a", "augment": [{"type": "flip"}], "augment_probability": 0.8,
      "augment_adapt": {**ADAPT, "bounds": [0.0, 0.5]}}, {},
     "arms[1].augment_probability", "the starting level 0.8 lies outside"),
])
def test_bad_adaptive_entries_are_refused_before_training(arm, train, path, message):
    with pytest.raises(SpecError) as info:
        load_spec(spec_with(arm, **train))
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text, text


def test_the_adapt_table_is_normalised_into_the_identity_and_grids_over_the_start():
    spec = load_spec(spec_with({"name": "ada", "noise": [{**NOISE, "adapt": {"gain": 2}}],
                                "grid": {"noise[0].stddev": [0.1, 0.3]},
                                "augment": [{"type": "gaussian_noise", "stddev": 0.05}],
                                "augment_probability": 0.5,
                                "augment_adapt": {"signal": "loss"}}))
    arm = spec.to_dict()["arms"][1]
    assert arm["noise"][0]["adapt"] == {"signal": "accuracy", "target": 0.0, "gain": 2.0,
                                        "bounds": [0.0, 1.0]}
    assert arm["augment_probability"] == 0.5 and arm["augment_adapt"]["signal"] == "loss"
    grid = [a for a in spec.arms if a.parent == "ada"]
    assert [a.noise[0]["stddev"] for a in grid] == [0.1, 0.3]
    assert grid[0].noise[-1]["probability"] == 0.5 and grid[0].noise[-1]["adapt"]["gain"] == 1.0
    plain = load_spec(spec_with({"name": "ada", "noise": [{**NOISE, "adapt": {"gain": 3}}]}))
    assert plain.spec_hash != load_spec(spec_with()).spec_hash


def test_fit_records_each_adaptive_level_by_the_rule(tmp_path):
    arm = {"name": "ada", "noise": [NOISE], "augment": [{"type": "gaussian_noise",
                                                          "stddev": 0.05}],
           "augment_probability": 0.5, "augment_adapt": {**ADAPT, "signal": "loss"}}
    result = FitExecutor().run_one(Study(load_spec(spec_with(arm))).plans()[1])
    h = result.history
    assert result.status == "done", result.error
    assert len(h["level_noise0"]) == len(h["level_augment"]) == 4
    assert h["level_noise0"][:2] == [pytest.approx(0.3)] * 2  # epoch 2 is the first validated
    assert h["level_augment"][:2] == [0.5, 0.5]
    gap = h["accuracy"][1] - h["val_accuracy"][0]
    assert h["level_noise0"][2] == pytest.approx(np.clip(0.3 + 2.0 * gap, 0, 1), abs=1e-6)
    loss_gap = h["val_loss"][0] - h["loss"][1]
    assert h["level_augment"][2] == pytest.approx(np.clip(0.5 + 2.0 * loss_gap, 0, 1), abs=1e-6)
    assert result.final["level_noise0"] == h["level_noise0"][-1]
    assert result.final["best_epoch"] in (2, 4)  # the best-epoch logic reads val_* alone


@needs_jax
def test_fit_and_vmap_follow_the_same_level_trajectory_and_the_store_keeps_it(tmp_path):
    raw = spec_with({"name": "ada", "noise": [NOISE], "grid": {"noise[0].stddev": [0.1, 0.3]}},
                    epochs=6)
    raw["study"]["seeds"] = 2
    plans = [p for p in Study(load_spec(raw)).plans() if p.arm.parent == "ada"]
    slow = {r.key: r for r in FitExecutor().run(plans)}
    fast = {r.key: r for r in VmapExecutor().run(plans)}
    assert set(slow) == set(fast) and len(slow) == 4
    for key, expected in slow.items():
        got = fast[key].history["level_noise0"]
        np.testing.assert_allclose(got, expected.history["level_noise0"], rtol=1e-5, atol=1e-6)
        assert len(set(np.round(got, 6))) > 1  # it moved
    path = tmp_path / "s.db"
    Study(load_spec(raw)).run(store=path, quiet=True, executor="vmap")
    with Store(path) as store:
        curves = store.history(store.study("ada")["id"], arms=["ada[stddev=0.1]"])
    assert len(curves) == 2 and all(len(c["history"]["level_noise0"]) == 6 for c in curves)
