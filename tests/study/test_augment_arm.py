"""Augmentation in study arms: validated with key paths, placed before input noise, paired."""

import copy
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import to_numpy
from noisewise.augment import AugmentPipeline
from noisewise.layers import GaussianNoise
from noisewise.random import derive_seed, replica_seed
from noisewise.study import SpecError, Study, load_spec
from noisewise.study.execute import FitExecutor
from noisewise.study.datasets import load_dataset
from noisewise.study.models import build_model

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_augment.toml"
DIGITS = load_dataset({"name": "digits"})
CNN = {"name": "cnn", "filters": [4], "kernel_size": 3, "pool": 2, "hidden": [8],
       "activation": "relu"}
AUGMENT = [{"type": "rotate", "factor": 10, "unit": "degrees", "fill_mode": "constant"},
           {"type": "gaussian_noise", "noise_std": 0.1}]
BASE = {
    "study": {"name": "aug", "seeds": 2},
    "data": {"name": "digits"},
    "model": CNN,
    "train": {"epochs": 1, "batch_size": 64},
    "arms": [
        {"name": "baseline"},
        {"name": "augment", "augment": AUGMENT},
        {"name": "both", "augment": AUGMENT,
         "noise": [{"type": "gaussian", "where": "input", "stddev": 0.2}]},
    ],
}


def spec_with(arm):
    raw = copy.deepcopy(BASE)
    raw["arms"][1] = arm
    return raw


def trainable(model):
    return [to_numpy(w) for w in model.trainable_weights]


@pytest.mark.parametrize("arm, path, message", [
    ({"name": "a", "augment": [{"type": "sharpen"}]},
     "arms[1].augment[0].type", "unknown transform 'sharpen'; allowed: blur,"),
    ({"name": "a", "augment": [{"type": "flip"}, {"type": "flip", "foo": 1}]},
     "arms[1].augment[1].foo", "unknown key; allowed keys: mode, type"),
    ({"name": "a", "augment": [{"type": "rotate", "factor": 10}]},
     "arms[1].augment[0].unit", "rotate needs `unit`"),
    ({"name": "a", "augment": [{"type": "gaussian_noise", "noise_std": -1}]},
     "arms[1].augment[0].noise_std", "`stddev` must be in [0.0, inf]. Received: stddev=-1"),
    ({"name": "a", "augment": [{"type": "brightness", "factor": 5}]},
     "arms[1].augment[0].factor", "Received: factor=5"),
    ({"name": "a", "augment": [{"type": "mixup", "alpha": 0.2}]},
     "arms[1].augment[0].type", "'mixup' mixes labels"),
    ({"name": "a", "augment": {"type": "flip"}},
     "arms[1].augment", "must be a list of transform tables"),
    ({"name": "a", "augment": ["flip"]},
     "arms[1].augment[0]", "must be a table"),
    ({"name": "a", "augment": [{"type": "flip"}], "augment_value_range": [1, 0]},
     "arms[1].augment_value_range", "low < high"),
    ({"name": "a", "augment_value_range": [0, 1]},
     "arms[1].augment_value_range", "given without an `augment` list"),
    ({"name": "a", "augment": AUGMENT, "grid": {"augment[2].noise_std": [0.1]}},
     "arms[1].grid.augment[2].noise_std", "augment[i].<argument> with i < 2"),
    ({"name": "a", "augment": AUGMENT, "grid": {"augment[1].rate": [0.1]}},
     "arms[1].grid.augment[1].rate", "'gaussian_noise' augment has arguments"),
    ({"name": "a", "augment": AUGMENT, "grid": {"augment[1].noise_std": [0.1, -2.0]}},
     "arms[1].grid.augment[1].noise_std[1]", "Received: stddev=-2"),
])
def test_spec_errors_name_the_key_path(arm, path, message):
    with pytest.raises(SpecError) as info:
        load_spec(spec_with(arm))
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text, text


def test_arm_carries_augmentation_and_hash_is_unchanged_without_it():
    spec = load_spec(BASE)
    baseline, augment, both = spec.arms
    assert baseline.augment == () and baseline.noise == ()
    assert list(augment.augment) == AUGMENT
    # The runners hand arm.noise to build_model: the augmentation rides last in it.
    assert augment.noise[-1] == {"type": "augment", "transforms": AUGMENT, "value_range": None}
    assert both.noise[0]["type"] == "gaussian" and both.noise[1]["type"] == "augment"
    assert spec.to_dict()["arms"][1]["augment"] == AUGMENT
    plain = copy.deepcopy(BASE)
    plain["arms"] = [{"name": "baseline"}]
    empty = copy.deepcopy(plain)
    empty["arms"][0]["augment"] = []
    assert load_spec(plain).spec_hash == load_spec(empty).spec_hash


def test_grid_over_an_augment_argument_expands():
    arm = {"name": "rot", "augment": AUGMENT, "grid": {"augment[1].noise_std": [0.05, 0.2]}}
    spec = load_spec(spec_with(arm))
    grid = [a for a in spec.arms if a.parent == "rot"]
    assert [a.name for a in grid] == ["rot[noise_std=0.05]", "rot[noise_std=0.2]"]
    assert [a.augment[1]["noise_std"] for a in grid] == [0.05, 0.2]
    assert [a.noise[-1]["transforms"][1]["noise_std"] for a in grid] == [0.05, 0.2]
    assert grid[0].params == {"augment[1].noise_std": 0.05}


def test_model_has_the_pipeline_at_its_input_before_input_noise():
    spec = load_spec(BASE)
    model = build_model(spec.model, spec.arm("both").noise, DIGITS, 3, "both")
    layers = model.layers
    assert isinstance(layers[1], AugmentPipeline) and layers[1].name == "augment"
    assert isinstance(layers[2], GaussianNoise)  # the arm's input noise comes after
    pipeline = layers[1]
    assert pipeline.spec == AUGMENT and pipeline.seed == derive_seed(3, "augment", "both")
    assert pipeline.value_range == (0.0, 1.0)  # digits are scaled to [0, 1]
    assert not any(isinstance(layer, AugmentPipeline)
                   for layer in build_model(spec.model, (), DIGITS, 3, "baseline").layers)


def test_value_range_from_the_spec():
    arm = {"name": "a", "augment": [{"type": "contrast", "factor": 0.2}],
           "augment_value_range": [0, 2]}
    spec = load_spec(spec_with(arm))
    model = build_model(spec.model, spec.arm("a").noise, DIGITS, 0, "a")
    assert model.get_layer("augment").value_range == (0.0, 2.0)


def test_replicas_of_two_arms_start_from_the_same_weights():
    spec = load_spec(BASE)
    seed = replica_seed(0, 1)
    reference = trainable(build_model(spec.model, (), DIGITS, seed, "baseline"))
    for name in ("augment", "both"):
        keras.random.normal((3,))  # the global generator moves: no effect
        got = trainable(build_model(spec.model, spec.arm(name).noise, DIGITS, seed, name))
        assert len(got) == len(reference)
        for a, b in zip(got, reference):
            np.testing.assert_array_equal(a, b)


def test_augmentation_is_seeded_per_replica_and_arm_and_off_at_inference():
    spec = load_spec(BASE)
    x = DIGITS.x_train[:8]

    def augmented(seed, arm):
        model = build_model(spec.model, spec.arm(arm).noise, DIGITS, seed, arm)
        layer = model.get_layer("augment")
        np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)
        return to_numpy(layer(x, training=True))

    first = augmented(5, "augment")
    np.testing.assert_array_equal(first, augmented(5, "augment"))
    assert not np.array_equal(first, augmented(6, "augment"))
    assert not np.array_equal(first, augmented(5, "both"))
    assert first.min() >= 0.0 and first.max() <= 1.0  # noise clipped to the data's range


BUILDER = """
import keras

def build(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
"""


def test_user_model_gets_the_pipeline_before_its_injected_input_noise(tmp_path):
    (tmp_path / "my_models.py").write_text(BUILDER)
    model_spec = {"builder": "my_models:build"}
    noise = load_spec(BASE).arm("both").noise
    seed = replica_seed(0, 0)
    model = build_model(model_spec, noise, DIGITS, seed, "both", base_dir=tmp_path)
    assert isinstance(model.layers[1], AugmentPipeline)
    inner = model.layers[2]
    assert isinstance(inner, keras.Model)
    assert any(isinstance(layer, GaussianNoise) for layer in inner.layers)
    clean = build_model(model_spec, (), DIGITS, seed, "baseline", base_dir=tmp_path)
    for a, b in zip(trainable(model), trainable(clean)):
        np.testing.assert_array_equal(a, b)
    x = DIGITS.x_test[:4]
    np.testing.assert_allclose(to_numpy(model(x, training=False)),
                               to_numpy(clean(x, training=False)), rtol=1e-6)


@pytest.mark.slow  # trains 4 small CNNs
def test_a_study_with_augmentation_runs_and_replays(tmp_path):
    raw = copy.deepcopy(BASE)
    raw["study"]["seeds"] = 1
    plans = Study(raw).plans()
    assert [p.arm.name for p in plans] == ["baseline", "augment", "both"]
    executor = FitExecutor()
    first = [executor.run_one(p).final for p in plans]
    executor.clear_cache()
    again = executor.run_one(plans[1]).final
    assert np.isfinite(first[1]["loss"]) and again["loss"] == first[1]["loss"]
    assert first[1]["loss"] != first[0]["loss"]  # the augmentation changed training


def test_example_spec_loads():
    spec = load_spec(EXAMPLE)
    assert [a.name for a in spec.arms] == ["baseline", "augment", "noise", "both"]
    assert spec.arm("augment").augment == spec.arm("both").augment
    assert spec.arm("noise").augment == ()
