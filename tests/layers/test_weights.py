"""Tests for WeightNoise (noisewise.layers.weights) on the active backend.

Save/load, config, seeds and the inference switch are covered with the other
layers in test_noise.py; these tests are about the wrapped weights themselves.
Statistical checks allow K = 5 standard errors (formulas beside each check).
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

from noisewise.layers import WeightNoise

K = 5.0


def to_np(x):
    return np.asarray(ops.convert_to_numpy(x))


def assert_within(estimate, expected, se, what):
    assert abs(estimate - expected) <= K * se, (
        f"{what}: {estimate:.6g} vs expected {expected:.6g} (allowed {K} x SE = {K * se:.3g})"
    )


def seeded_dense(units, **kwargs):
    return keras.layers.Dense(
        units, kernel_initializer=keras.initializers.GlorotUniform(seed=0), **kwargs
    )


# The shape test_noise.py uses, so JAX reuses its compiled ops.
X = np.random.default_rng(0).normal(size=(4, 7, 6)).astype("float32")


def test_training_perturbs_and_inference_is_the_clean_layer():
    layer = WeightNoise(seeded_dense(4), 0.5, seed=0)
    clean = to_np(layer.layer(X))
    kernel = to_np(layer.layer.kernel)
    first, second = to_np(layer(X, training=True)), to_np(layer(X, training=True))
    assert not np.array_equal(first, clean)
    assert not np.array_equal(first, second)  # a fresh draw per call
    for training in (False, None):
        np.testing.assert_array_equal(to_np(layer(X, training=training)), clean)
    np.testing.assert_array_equal(to_np(layer.layer.kernel), kernel)  # stored kernel stays clean


@pytest.mark.parametrize("relative", [False, True])
def test_kernel_noise_has_the_requested_std(relative):
    # With an identity input and no bias, the output is the perturbed kernel.
    d, stddev = 64, 0.2
    init = keras.initializers.RandomNormal(stddev=3.0, seed=0)
    layer = WeightNoise(
        keras.layers.Dense(d, use_bias=False, kernel_initializer=init), stddev, relative=relative, seed=1
    )
    eye = np.eye(d, dtype="float32")
    noise = to_np(layer(eye, training=True)) - to_np(layer.layer.kernel)
    # relative: times the kernel's own (population) std, about 3, so the two cases differ.
    sigma = stddev * (float(np.std(to_np(layer.layer.kernel))) if relative else 1.0)
    n = noise.size
    assert_within(noise.mean(), 0.0, sigma / math.sqrt(n), "mean")  # SE = sigma / sqrt(n)
    assert_within(noise.std(), sigma, sigma / math.sqrt(2 * n), "std")  # SE = sigma / sqrt(2n)


def test_bias_is_perturbed_only_when_targeted():
    zeros = np.zeros_like(X)  # output = bias
    plain = WeightNoise(seeded_dense(4, bias_initializer="ones"), 0.5, seed=0)
    np.testing.assert_array_equal(to_np(plain(zeros, training=True)), 1.0)
    both = WeightNoise(seeded_dense(4, bias_initializer="ones"), 0.5, targets=("kernel", "bias"), seed=0)
    out = to_np(both(zeros, training=True))
    assert not np.array_equal(out, np.ones_like(out))
    np.testing.assert_array_equal(out, np.broadcast_to(out[:1, :1], out.shape))  # one draw per call
    np.testing.assert_array_equal(to_np(both.layer.bias), 1.0)


def test_fit_updates_the_clean_kernel_and_learns():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 4)).astype("float32")
    w_true = np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")
    y = x @ w_true + 0.5
    layer = WeightNoise(seeded_dense(1), 0.05, seed=0)
    model = keras.Sequential([keras.Input((4,)), layer])
    assert {id(v) for v in model.trainable_weights} == {id(layer.layer.kernel), id(layer.layer.bias)}
    model.compile(keras.optimizers.SGD(0.05), "mse")
    start = model.evaluate(x, y, batch_size=256, verbose=0)
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    end = model.evaluate(x, y, batch_size=256, verbose=0)
    assert end < 1e-3 * start
    # For a linear model weight noise adds stddev^2 |x|^2 to the expected loss,
    # whatever the weights, so the clean kernel still converges to w_true.
    np.testing.assert_allclose(to_np(layer.layer.kernel), w_true, atol=0.05)


def test_wraps_conv2d():
    conv = keras.layers.Conv2D(3, 3, kernel_initializer=keras.initializers.GlorotUniform(seed=0))
    layer = WeightNoise(conv, 0.3, relative=True, seed=0)
    images = np.random.default_rng(2).uniform(size=(2, 8, 8, 2)).astype("float32")
    noisy = to_np(layer(images, training=True))
    clean = to_np(conv(images))
    assert noisy.shape == clean.shape == (2, 6, 6, 3)
    assert not np.array_equal(noisy, clean)
    np.testing.assert_array_equal(to_np(layer(images, training=False)), clean)


@pytest.mark.slow
def test_conv2d_model_trains():
    conv = keras.layers.Conv2D(3, 3, kernel_initializer=keras.initializers.GlorotUniform(seed=0))
    layer = WeightNoise(conv, 0.3, relative=True, seed=0)
    images = np.random.default_rng(2).uniform(size=(2, 8, 8, 2)).astype("float32")
    model = keras.Sequential([keras.Input((8, 8, 2)), layer, keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    kernel = to_np(conv.kernel)
    history = model.fit(images, np.ones((2, 1), "float32"), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.allclose(to_np(conv.kernel), kernel)


def test_frozen_layer_is_still_perturbed_and_stays_clean():
    dense = seeded_dense(4)
    dense.trainable = False
    layer = WeightNoise(dense, 0.5, seed=0)
    clean = to_np(dense(X))
    kernel = to_np(dense.kernel)
    assert not np.array_equal(to_np(layer(X, training=True)), clean)
    np.testing.assert_array_equal(to_np(dense.kernel), kernel)


def test_state_updates_of_the_wrapped_layer_are_kept():
    bn = keras.layers.BatchNormalization(momentum=0.5)
    layer = WeightNoise(bn, 0.1, targets=("gamma",), seed=0)
    x = (np.random.default_rng(3).normal(size=(64, 3)) * 2 + 5).astype("float32")
    layer(x, training=True)
    # moving_mean = 0.5 * 0 + 0.5 * batch mean: the update made in the noisy pass is kept.
    np.testing.assert_allclose(to_np(bn.moving_mean), 0.5 * x.mean(axis=0), rtol=1e-4)
    np.testing.assert_array_equal(to_np(bn.gamma), 1.0)
    bn.trainable = False  # gamma is now non-trainable: still perturbed, never written back
    assert not np.array_equal(to_np(layer(x, training=True)), to_np(bn(x, training=False)))
    np.testing.assert_array_equal(to_np(bn.gamma), 1.0)


def test_mixed_precision_output_dtype_is_the_same_in_both_modes():
    layer = WeightNoise(keras.layers.Dense(4, dtype="mixed_bfloat16"), 0.1, seed=0, dtype="mixed_bfloat16")
    for training in (True, False):
        assert keras.backend.standardize_dtype(layer(X, training=training).dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(layer.layer.kernel.dtype) == "float32"


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_wrapper_policy_runs_the_wrapped_layer_in_it(policy):
    # The defect the conformance harness caught: the wrapped Dense kept float32,
    # cast the batch back and returned float32 while the output spec said float16.
    layer = WeightNoise(seeded_dense(4), 0.1, seed=0, dtype=policy)
    half = policy.split("_")[1]
    spec = layer.compute_output_spec(keras.KerasTensor(X.shape, half))
    for training in (True, False):
        assert keras.backend.standardize_dtype(layer(X, training=training).dtype) == spec.dtype == half
    assert layer.layer.dtype_policy.name == policy
    assert keras.backend.standardize_dtype(layer.layer.kernel.dtype) == "float32"
    clean = to_np(ops.cast(layer(X, training=False), "float32"))
    assert not np.array_equal(to_np(ops.cast(layer(X, training=True), "float32")), clean)


def test_without_dtype_the_wrapper_takes_the_layers_policy():
    layer = WeightNoise(keras.layers.Dense(4, dtype="mixed_bfloat16"), 0.1, seed=0)
    assert layer.dtype_policy.name == "mixed_bfloat16"
    assert keras.backend.standardize_dtype(layer(X, training=True).dtype) == "bfloat16"
    assert WeightNoise(keras.layers.Dense(4), 0.1).dtype_policy.name == "float32"


def test_a_built_layer_with_other_weight_dtype_is_refused():
    dense = keras.layers.Dense(4)
    dense.build((None, 6))
    with pytest.raises(ValueError, match="Received: dtype='float16'"):
        WeightNoise(dense, 0.1, dtype="float16")
    # A mixed policy keeps float32 weights, so a built layer is fine.
    assert WeightNoise(dense, 0.1, dtype="mixed_float16").layer.dtype_policy.name == "mixed_float16"


def test_mask_is_passed_on():
    ids = np.array([[1, 2, 0, 0], [3, 0, 4, 5]])
    inputs = keras.Input((4,), dtype="int32")
    embedded = keras.layers.Embedding(6, 3, mask_zero=True)(inputs)
    layer = WeightNoise(seeded_dense(2), 0.1, seed=0)
    assert layer.supports_masking
    outputs = layer(embedded)
    np.testing.assert_array_equal(to_np(layer.compute_mask(embedded, ids != 0)), ids != 0)
    pooled = keras.layers.GlobalAveragePooling1D()(outputs)  # averages the kept steps only
    model = keras.Model(inputs, [outputs, pooled])
    steps, mean = (to_np(t) for t in model(ids, training=False))
    np.testing.assert_allclose(mean[0], steps[0, :2].mean(axis=0), rtol=1e-6)
    assert not WeightNoise(keras.layers.Conv1D(2, 1), 0.1).supports_masking


def test_level_and_zero_level():
    layer = WeightNoise(seeded_dense(4), 0.0, seed=0)
    clean = to_np(layer.layer(X))
    np.testing.assert_array_equal(to_np(layer(X, training=True)), clean)
    layer.set_level(0.5)
    assert layer.get_level() == 0.5
    assert not np.array_equal(to_np(layer(X, training=True)), clean)


def test_bad_arguments_name_parameter_and_value():
    dropout = keras.layers.Dropout(0.5)
    with pytest.raises(ValueError) as info:
        WeightNoise(dropout, 0.1)
    assert f"layer={dropout.name!r}" in str(info.value) and "'kernel'" in str(info.value)

    cases = [
        (lambda: WeightNoise(keras.layers.Dense(2), -1.0), "stddev=-1.0"),
        (lambda: WeightNoise(keras.layers.Dense(2), 0.1, targets="kernel"), "targets='kernel'"),
        (lambda: WeightNoise(keras.layers.Dense(2), 0.1, targets=()), "targets=()"),
        (lambda: WeightNoise(keras.layers.Dense(2), 0.1, seed=-3), "seed=-3"),
        (lambda: WeightNoise(keras.layers.Dense(2), 0.1).set_level(-0.5), "stddev=-0.5"),
        # An unbuilt layer is checked when it is built.
        (lambda: WeightNoise(keras.layers.Dense(2), 0.1, targets=("gamma",))(X), "targets=['gamma']"),
    ]
    for make, expected in cases:
        with pytest.raises(ValueError) as info:
            make()
        assert expected in str(info.value)
