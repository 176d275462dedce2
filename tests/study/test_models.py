"""Built-in and user models: noise where the spec says, identical initial weights across arms."""

import keras
import numpy as np
import pytest

from conftest import to_numpy
from noisewise.layers import GaussianNoise, WeightNoise
from noisewise.random import replica_seed
from noisewise.study.datasets import load_dataset
from noisewise.study.models import build_model

CIRCLES = load_dataset({"name": "circles"})
DIGITS = load_dataset({"name": "digits"})
MLP = {"name": "mlp", "hidden": [12, 8], "activation": "relu"}
CNN = {"name": "cnn", "filters": [4, 6], "kernel_size": 3, "pool": 2, "hidden": [8],
       "activation": "relu"}

ARMS = {
    "baseline": (),
    "input": ({"type": "gaussian", "where": "input", "stddev": 0.3},),
    "pre": ({"type": "gaussian", "where": "pre_activation", "stddev": 0.3},),
    "post": ({"type": "multiplicative", "where": "post_activation", "stddev": 0.3},),
    "weight": ({"type": "weight", "stddev": 0.05},),
    # Every placement at once: the weights of the shared layers still match.
    "mixed": ({"type": "gaussian", "where": "input", "stddev": 0.1},
              {"type": "uniform", "where": "pre_activation", "amplitude": 0.2},
              {"type": "dropout", "where": "post_activation", "rate": 0.5},
              {"type": "weight", "stddev": 0.05}),
}


def kernels(model):
    """Kernels and biases of the Dense/Conv layers in order (inside WeightNoise too)."""
    out = []
    for layer in model.layers:
        inner = layer.layer if isinstance(layer, WeightNoise) else layer
        if isinstance(inner, (keras.layers.Dense, keras.layers.Conv2D)):
            out.append([to_numpy(inner.kernel), to_numpy(inner.bias)])
    return out


def kinds(model):
    return [type(layer).__name__ for layer in model.layers]


@pytest.mark.parametrize("model, data", [(MLP, CIRCLES), (CNN, DIGITS)], ids=["mlp", "cnn"])
def test_initial_weights_are_identical_across_arms_of_a_replica(model, data):
    seed = replica_seed(0, 3)
    reference = kernels(build_model(model, (), data, seed, "baseline"))
    assert len(reference) == len(model["hidden"]) + 1 + len(model.get("filters", []))
    for arm in ("pre", "mixed"):
        noise = ARMS[arm]
        # The global generator moves on in between: the weights must not depend on it.
        keras.random.normal((len(arm),))
        np.random.random(len(arm))
        got = kernels(build_model(model, noise, data, seed, arm))
        assert len(got) == len(reference)
        for (k, b), (k0, b0) in zip(got, reference):
            np.testing.assert_array_equal(k, k0, err_msg=arm)
            np.testing.assert_array_equal(b, b0, err_msg=arm)
    other = kernels(build_model(model, (), data, replica_seed(0, 4), "baseline"))
    assert not np.array_equal(other[0][0], reference[0][0])


def test_noise_sits_where_the_spec_says():
    def layout(noise):
        return kinds(build_model({"name": "mlp", "hidden": [4]}, noise, CIRCLES, 1, "a"))

    assert layout(()) == ["InputLayer", "Dense", "Activation", "Dense"]
    assert layout(ARMS["input"]) == ["InputLayer", "GaussianNoise", "Dense", "Activation", "Dense"]
    assert layout(ARMS["pre"]) == ["InputLayer", "Dense", "GaussianNoise", "Activation", "Dense"]
    assert layout(ARMS["post"]) == ["InputLayer", "Dense", "Activation", "MultiplicativeNoise",
                                    "Dense"]
    assert layout(ARMS["weight"]) == ["InputLayer", "WeightNoise", "Activation", "WeightNoise"]
    cnn = kinds(build_model(CNN, ARMS["pre"], DIGITS, 1, "a"))
    assert cnn[:5] == ["InputLayer", "Conv2D", "GaussianNoise", "Activation", "MaxPooling2D"]
    assert cnn.count("GaussianNoise") == 3  # two conv blocks and one hidden Dense


def test_noise_level_and_activation_follow_the_spec():
    model = build_model(MLP, ARMS["pre"], CIRCLES, 1, "a")
    levels = [layer.get_level() for layer in model.layers if isinstance(layer, GaussianNoise)]
    np.testing.assert_allclose(levels, [0.3, 0.3])
    acts = [layer.activation.__name__ for layer in model.layers
            if isinstance(layer, keras.layers.Activation)]
    assert acts == ["relu", "relu"]


def test_output_layer_is_sized_from_the_data():
    binary = build_model(MLP, (), CIRCLES, 1, "a")
    assert binary.output_shape == (None, 1) and binary.layers[-1].activation.__name__ == "sigmoid"
    multi = build_model(MLP, (), DIGITS, 1, "a")  # the MLP flattens the 8x8x1 images
    assert multi.output_shape == (None, 10) and multi.layers[-1].activation.__name__ == "softmax"
    assert "Flatten" in kinds(multi)


def test_noise_draws_depend_on_seed_and_arm_not_on_the_global_generator():
    x = CIRCLES.x_train

    def noisy_output(seed, arm, global_draws):
        keras.random.normal((global_draws + 1,))  # moves the global generator on
        model = build_model({"name": "mlp", "hidden": [16]}, ARMS["input"], CIRCLES, seed, arm)
        return to_numpy(model(x, training=True))

    first = noisy_output(5, "input", 0)
    np.testing.assert_array_equal(first, noisy_output(5, "input", 123))
    assert not np.array_equal(first, noisy_output(5, "other_arm", 0))
    assert not np.array_equal(first, noisy_output(6, "input", 0))
    # Noise only in training: at inference the noisy arm equals the baseline.
    model = build_model({"name": "mlp", "hidden": [16]}, ARMS["input"], CIRCLES, 5, "input")
    clean = build_model({"name": "mlp", "hidden": [16]}, (), CIRCLES, 5, "baseline")
    np.testing.assert_allclose(to_numpy(model(x, training=False)), to_numpy(clean(x)), rtol=1e-6)


def test_cnn_refuses_flat_data():
    with pytest.raises(ValueError, match="needs image data"):
        build_model(CNN, (), CIRCLES, 1, "a")


BUILDER = """
import keras

def build(input_shape, num_classes, width=8):
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(width, activation="tanh", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="out")(x))

def not_a_model(input_shape, num_classes):
    return "model"
"""


def test_user_builder_gets_noise_by_injection_and_keeps_paired_weights(tmp_path):
    (tmp_path / "my_models.py").write_text(BUILDER)
    spec = {"builder": "my_models:build", "width": 6}
    seed = replica_seed(0, 1)
    clean = build_model(spec, (), CIRCLES, seed, "baseline", base_dir=tmp_path)
    assert clean.get_layer("hidden").units == 6
    pre = build_model(spec, ARMS["pre"], CIRCLES, seed, "pre", base_dir=tmp_path)
    assert kinds(pre) == ["InputLayer", "Dense", "GaussianNoise", "Activation", "Dense"]
    weighted = build_model(spec, ARMS["weight"], CIRCLES, seed, "weight", base_dir=tmp_path)
    assert kinds(weighted).count("WeightNoise") == 2
    for model in (pre, weighted):
        for (k, b), (k0, b0) in zip(kernels(model), kernels(clean)):
            np.testing.assert_array_equal(k, k0)
            np.testing.assert_array_equal(b, b0)
    other = build_model(spec, (), CIRCLES, replica_seed(0, 2), "baseline", base_dir=tmp_path)
    assert not np.array_equal(kernels(other)[0][0], kernels(clean)[0][0])
    with pytest.raises(ValueError, match="must return a keras.Model"):
        build_model({"builder": "my_models:not_a_model"}, (), CIRCLES, seed, "a",
                    base_dir=tmp_path)
