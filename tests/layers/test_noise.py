"""Tests for the noise layers (noisewise.layers.noise, _base) on the active backend.

Statistical checks allow K standard errors, with the standard error derived from
the sample size n (formulas beside each check). K = 5 gives a two-sided false
alarm probability of about 6e-7 per check for a normal estimate; the seeds are
fixed, so the tests are deterministic on a given backend anyway.
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

from noisewise.layers import (
    GaussianNoise,
    MultiplicativeNoise,
    NoiseLayer,
    PoissonNoise,
    SaltAndPepperNoise,
    UniformNoise,
    WeightNoise,
)

BACKEND = keras.backend.backend()
K = 5.0


def to_np(x):
    return np.asarray(ops.convert_to_numpy(x))


def assert_within(estimate, expected, se, what):
    assert abs(estimate - expected) <= K * se, (
        f"{what}: {estimate:.6g} vs expected {expected:.6g} (allowed {K} x SE = {K * se:.3g})"
    )


def seeded_dense(units):
    return keras.layers.Dense(units, kernel_initializer=keras.initializers.GlorotUniform(seed=0))


# Every layer under test, at a level that changes most values of X.
FACTORIES = {
    "gaussian": lambda **kw: GaussianNoise(0.5, **kw),
    "uniform": lambda **kw: UniformNoise(0.5, **kw),
    "multiplicative": lambda **kw: MultiplicativeNoise(0.5, **kw),
    "salt_and_pepper": lambda **kw: SaltAndPepperNoise(0.3, **kw),
    "poisson": lambda **kw: PoissonNoise(20.0, **kw),
    "weight_noise_dense": lambda **kw: WeightNoise(seeded_dense(4), 0.5, **kw),
}
NOISE_ONLY = [k for k in FACTORIES if not k.startswith("weight")]
# One input shape (batch, steps, features) for the conformance and mask tests:
# on JAX the Poisson sampler (gamma + binomial) compiles once per input shape,
# at several seconds each.
X = np.random.default_rng(0).uniform(0.05, 0.95, (4, 7, 6)).astype("float32")


def slow_on_jax(test):
    """Slow on JAX only, where compiling a train step, or the Poisson sampler for
    a new input shape, takes seconds (milliseconds on the other backends)."""
    return pytest.mark.slow(test) if BACKEND == "jax" else test


def clean(layer, x):
    """What the layer returns without noise: the input as float, or the clean wrapped layer."""
    if isinstance(layer, WeightNoise):
        return to_np(layer.layer(x))
    return np.asarray(x, dtype="float32")


def build(layer, x=X):
    layer(x)  # builds (a WeightNoise creates its kernel here)
    return layer


# --------------------------------------------------------------------------- conformance
@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("training", [True, False])
def test_output_shape_and_float_dtype(name, dtype, training):
    layer = FACTORIES[name](seed=0)
    x = X if dtype == "float32" else (X * 255).astype("uint8")
    y = layer(x, training=training)
    units = 4 if isinstance(layer, WeightNoise) else X.shape[-1]
    assert tuple(y.shape) == X.shape[:-1] + (units,)
    assert keras.backend.standardize_dtype(y.dtype) == "float32"


@pytest.mark.parametrize("name", NOISE_ONLY)
def test_integer_model_input_gives_float_output(name):
    inp = keras.Input(X.shape[1:], dtype="uint8")
    model = keras.Model(inp, FACTORIES[name](seed=0)(inp))
    x = (X * 255).astype("uint8")
    for training in (True, False):
        y = model(x, training=training)
        assert keras.backend.standardize_dtype(y.dtype) == "float32"
    np.testing.assert_array_equal(to_np(model(x, training=False)), x.astype("float32"))


@pytest.mark.parametrize("name", FACTORIES)
def test_noise_only_in_training(name):
    layer = build(FACTORIES[name](seed=0))
    ref = clean(layer, X)
    assert not np.array_equal(to_np(layer(X, training=True)), ref)
    np.testing.assert_array_equal(to_np(layer(X, training=False)), ref)
    np.testing.assert_array_equal(to_np(layer(X)), ref)  # training=None
    model = keras.Sequential([keras.Input(X.shape[1:]), layer])
    np.testing.assert_array_equal(model.predict(X, verbose=0), ref)


@pytest.mark.parametrize("name", FACTORIES)
def test_active_at_inference(name):
    layer = build(FACTORIES[name](seed=0, active_at_inference=True))
    ref = clean(layer, X)
    for training in (False, None):
        assert not np.array_equal(to_np(layer(X, training=training)), ref)


def _comparable(config):
    """Config without the build record Keras adds to a wrapped layer once built."""
    config = dict(config)
    if "layer" in config:
        inner = dict(config["layer"])
        inner.pop("build_config", None)
        config["layer"] = inner
    return config


@pytest.mark.parametrize("name", FACTORIES)
def test_config_round_trip(name):
    layer = FACTORIES[name](seed=3, active_at_inference=True)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    # Same config and seed: the same draws (and, for WeightNoise, the same seeded
    # kernel), also at inference, since active_at_inference survived.
    out = to_np(layer(X, training=False))
    np.testing.assert_array_equal(to_np(clone(X, training=False)), out)
    assert not np.array_equal(out, clean(layer, X))


NON_DEFAULT = [
    lambda: GaussianNoise(50.0, relative="range", value_range=(0, 255), clip=(0, 255), seed=1, name="g"),
    lambda: UniformNoise(0.1, relative="std", clip=(-1.0, 1.0)),
    lambda: MultiplicativeNoise(0.2, clip=(0.0, 1.0), dtype="float64"),
    lambda: SaltAndPepperNoise(0.1, salt_ratio=0.2, value_range=(-1.0, 1.0)),
    lambda: PoissonNoise(5.0, value_range=(0.0, 255.0), clip=(0.0, 255.0)),
    lambda: WeightNoise(keras.layers.Dense(3), 0.1, targets=("kernel", "bias"), relative=True),
]


@pytest.mark.parametrize("make", NON_DEFAULT)
def test_non_default_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    for key in ("clip", "relative", "value_range", "salt_ratio", "targets"):
        if hasattr(layer, key):
            assert getattr(clone, key) == getattr(layer, key)


@pytest.mark.parametrize("name", FACTORIES)
def test_save_and_load(name, tmp_path):
    layer = FACTORIES[name](seed=0)
    inp = keras.Input(X.shape[1:])
    model = keras.Model(inp, keras.layers.Dense(2)(layer(inp)))
    layer.set_level(0.25 if not isinstance(layer, PoissonNoise) else 7.0)
    clean_weights = [to_np(w) for w in layer.weights]
    for _ in range(2):  # noisy forward passes must leave the stored weights clean
        model(X, training=True)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects: the layers are registered
    new = loaded.layers[1]
    assert type(new) is type(layer)
    assert new.get_level() == pytest.approx(layer.get_level())
    assert _comparable(new.get_config()) == _comparable(layer.get_config())
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
    for saved, before in zip(new.weights, clean_weights):
        np.testing.assert_array_equal(to_np(saved), before)
    if isinstance(layer, WeightNoise):
        np.testing.assert_array_equal(to_np(new.layer.kernel), to_np(layer.layer.kernel))


@pytest.mark.parametrize("name", FACTORIES)
def test_seed_reproducibility(name):
    a = to_np(FACTORIES[name](seed=7)(X, training=True))
    b = to_np(FACTORIES[name](seed=7)(X, training=True))
    c = to_np(FACTORIES[name](seed=8)(X, training=True))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", FACTORIES)
def test_level_variable(name):
    layer = FACTORIES[name](seed=0)
    assert isinstance(layer.level, keras.Variable)
    assert not layer.level.trainable
    assert any(v is layer.level for v in layer.non_trainable_weights)
    assert layer.get_level() == pytest.approx(layer.get_config()[layer.level_name])
    layer.set_level(0.125)
    assert layer.get_level() == 0.125
    assert float(to_np(layer.level)) == 0.125
    assert layer.get_config()[layer.level_name] != 0.125  # config keeps the constructor value


ZERO_LEVEL = {
    "gaussian": lambda lvl: GaussianNoise(lvl, seed=0),
    "gaussian_relative_std": lambda lvl: GaussianNoise(lvl, relative="std", seed=0),
    "uniform": lambda lvl: UniformNoise(lvl, seed=0),
    "multiplicative": lambda lvl: MultiplicativeNoise(lvl, seed=0),
    "salt_and_pepper": lambda lvl: SaltAndPepperNoise(lvl, seed=0),
    "weight_noise_dense": lambda lvl: WeightNoise(seeded_dense(4), lvl, seed=0),
}


def _variable_signature(layer):
    return [(v.name, tuple(v.shape), v.trainable) for v in layer.variables]


@pytest.mark.parametrize("name", ZERO_LEVEL)
def test_zero_level_is_exact_identity_with_same_variables(name):
    zero, positive = build(ZERO_LEVEL[name](0.0)), build(ZERO_LEVEL[name](0.5))
    ref = clean(zero, X)
    np.testing.assert_array_equal(to_np(zero(X, training=True)), ref)
    assert not np.array_equal(to_np(positive(X, training=True)), ref)
    assert _variable_signature(zero) == _variable_signature(positive)
    # A schedule can start from 0 and raise the level without rebuilding.
    zero.set_level(0.5)
    assert not np.array_equal(to_np(zero(X, training=True)), ref)


@pytest.mark.parametrize("name", NOISE_ONLY)
def test_draw_then_apply_replays_the_call(name):
    called = to_np(FACTORIES[name](seed=5)(X, training=True))
    layer, x = FACTORIES[name](seed=5), ops.convert_to_tensor(X)
    params = layer.draw(x)
    first = to_np(layer.apply_noise(x, params))
    np.testing.assert_array_equal(first, called)
    np.testing.assert_array_equal(to_np(layer.apply_noise(x, params)), first)


def input_gradient(fn, x):
    """d sum(fn(x)) / dx with the active backend's own autodiff."""
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: jax.numpy.sum(fn(v)))(jax.numpy.asarray(x)))
    if BACKEND == "torch":
        import torch

        v = torch.tensor(x, requires_grad=True)
        fn(v).sum().backward()
        return v.grad.numpy()
    import tensorflow as tf

    v = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(v)
        total = tf.reduce_sum(fn(v))
    return tape.gradient(total, v).numpy()


@pytest.mark.parametrize("name", NOISE_ONLY + ["gaussian_relative_std"])
def test_gradient_passes_to_the_input(name):
    # Layers before a noise layer must keep learning: d(out)/dx is 1 for additive
    # noise (the relative scale is a constant), 1 + stddev*z for multiplicative,
    # 0 only where salt and pepper replaced a value, 1 for Poisson (straight through).
    if name == "gaussian_relative_std":
        layer = GaussianNoise(0.5, relative="std", seed=0)
    else:
        layer = FACTORIES[name](seed=0)
    params = layer.draw(ops.convert_to_tensor(X))
    grad = input_gradient(lambda v: layer.apply_noise(v, params), X)
    if isinstance(layer, MultiplicativeNoise):
        expected = 1.0 + 0.5 * to_np(params["z"])
    elif isinstance(layer, SaltAndPepperNoise):
        expected = (to_np(params["hit"]) >= 0.3).astype("float32")
        assert 0 < expected.sum() < expected.size
    else:
        expected = np.ones_like(X)
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


def _check_compiled_fit(noise_layers):
    # The compiled train step (jit / tf.function / torch) adds the noise, and the
    # gradient reaches the Dense layer before the noise.
    first = seeded_dense(6)
    last = keras.layers.Dense(1, kernel_initializer="ones")
    model = keras.Sequential([keras.Input(X.shape[1:]), first, *noise_layers, last])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    y = X.sum(-1, keepdims=True)
    before = to_np(first.kernel)
    # Learning rate 0: the training loss is the noisy loss at the clean weights.
    noisy = model.fit(X, y, epochs=1, batch_size=len(X), verbose=0).history["loss"][0]
    clean_loss = model.evaluate(X, y, batch_size=len(X), verbose=0)
    assert noisy != pytest.approx(clean_loss, rel=1e-3)
    model.optimizer.learning_rate.assign(0.05)  # a variable: no recompile
    history = model.fit(X, y, epochs=3, batch_size=len(X), verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.allclose(to_np(first.kernel), before)


@slow_on_jax
def test_trains_inside_compiled_fit():
    # Stacked, so the train step compiles once (seconds on JAX).
    stack = [FACTORIES[name](seed=i) for i, name in enumerate(NOISE_ONLY) if name != "poisson"]
    _check_compiled_fit(stack)


@slow_on_jax
def test_poisson_trains_inside_compiled_fit():
    _check_compiled_fit([FACTORIES["poisson"](seed=0)])


# --------------------------------------------------------------------------- statistics
N_ROWS, N_COLS = 2000, 50  # n = 100,000 noise values per check


@pytest.mark.parametrize("stddev", [0.1, 50.0])
def test_gaussian_mean_and_std(stddev):
    # 0-255 pixel data without clip: stddev 50 must be honoured (Keras' own
    # GaussianNoise rejects stddev > 1), and values leave [0, 255].
    x = np.random.default_rng(1).uniform(0, 255, (N_ROWS, N_COLS)).astype("float32")
    noise = to_np(GaussianNoise(stddev, seed=1)(x, training=True)) - x
    n = noise.size
    assert_within(noise.mean(), 0.0, stddev / math.sqrt(n), "mean")  # SE = sigma / sqrt(n)
    assert_within(noise.std(), stddev, stddev / math.sqrt(2 * n), "std")  # SE = sigma / sqrt(2n)
    if stddev > 1:
        out = noise + x
        assert out.min() < 0 and out.max() > 255


def test_uniform_mean_std_and_support():
    amplitude = 2.0
    x = np.zeros((N_ROWS, N_COLS), "float32")
    noise = to_np(UniformNoise(amplitude, seed=2)(x, training=True))
    n, sigma = noise.size, amplitude / math.sqrt(3)
    assert np.abs(noise).max() <= amplitude
    assert_within(noise.mean(), 0.0, sigma / math.sqrt(n), "mean")
    # Sample std: SE = sigma * sqrt((kurtosis - 1) / (4n)), kurtosis 9/5 for a uniform.
    assert_within(noise.std(), sigma, sigma * math.sqrt(0.8 / (4 * n)), "std")


def test_multiplicative_relative_noise_and_zeros():
    stddev = 0.3
    x = np.random.default_rng(3).uniform(0.5, 5.0, (N_ROWS, N_COLS)).astype("float32")
    x[:, 0] = 0.0
    y = to_np(MultiplicativeNoise(stddev, seed=3)(x, training=True))
    np.testing.assert_array_equal(y[:, 0], 0.0)  # zeros stay zero
    ratio = y[:, 1:] / x[:, 1:] - 1.0  # = stddev * z
    n = ratio.size
    assert_within(ratio.mean(), 0.0, stddev / math.sqrt(n), "mean")
    assert_within(ratio.std(), stddev, stddev / math.sqrt(2 * n), "std")


def test_salt_and_pepper_fractions():
    rate, salt_ratio, (low, high) = 0.2, 0.7, (-1.0, 2.0)
    x = np.random.default_rng(4).uniform(0.0, 1.0, (N_ROWS, N_COLS)).astype("float32")
    y = to_np(SaltAndPepperNoise(rate, salt_ratio=salt_ratio, value_range=(low, high), seed=4)(x, training=True))
    replaced = y != x
    np.testing.assert_array_equal(np.isin(y[replaced], [low, high]), True)
    n, m = x.size, int(replaced.sum())
    # Binomial proportions: SE = sqrt(p (1 - p) / n).
    assert_within(m / n, rate, math.sqrt(rate * (1 - rate) / n), "replaced fraction")
    salt = float((y[replaced] == high).mean())
    assert_within(salt, salt_ratio, math.sqrt(salt_ratio * (1 - salt_ratio) / m), "salt fraction")


@pytest.mark.parametrize("value_range", [(0.0, 255.0), (-1.0, 1.0)])
@slow_on_jax
def test_poisson_mean_and_variance_at_several_intensities(value_range):
    peak, (low, high) = 30.0, value_range
    fractions = np.array([0.0, 0.05, 0.1, 0.5, 1.0])  # lambda = 0, 1.5, 3, 15, 30 counts
    x = np.broadcast_to(low + fractions * (high - low), (20000, 5)).astype("float32")
    y = to_np(PoissonNoise(peak, value_range=value_range, seed=5)(x, training=True))
    step = (high - low) / peak  # data units per photon count
    counts = (y - low) / step
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)  # whole counts
    np.testing.assert_array_equal(y[:, 0], low)  # no light, no noise
    n = x.shape[0]
    for j, frac in enumerate(fractions[1:], start=1):
        lam, col = frac * peak, y[:, j]
        var = (x[0, j] - low) * (high - low) / peak  # = lam * step**2
        assert_within(col.mean(), x[0, j], math.sqrt(var / n), f"mean at lambda={lam}")
        # Sample variance: SE = sqrt((mu4 - sigma^4) / n), mu4 = lam (1 + 3 lam) counts^4.
        se_var = step**2 * math.sqrt((lam + 2 * lam**2) / n)
        assert_within(col.var(), var, se_var, f"variance at lambda={lam}")
        if lam <= 3:  # P(0) = exp(-lam): exact Poisson, not a Gaussian approximation
            p0 = math.exp(-lam)
            assert_within((col == low).mean(), p0, math.sqrt(p0 * (1 - p0) / n), f"P(0) at lambda={lam}")


def test_relative_std_scales_per_feature_by_batch_std():
    stddev, scales = 0.5, np.array([0.1, 1.0, 10.0], "float32")
    x = np.random.default_rng(6).normal(0, 1, (30000, 3)).astype("float32") * scales
    noise = to_np(GaussianNoise(stddev, relative="std", seed=6)(x, training=True)) - x
    n = x.shape[0]
    for j, s in enumerate(x.std(axis=0)):  # the batch's own (population) std
        sigma = stddev * s
        assert_within(noise[:, j].std(), sigma, sigma / math.sqrt(2 * n), f"std of feature {j}")


def test_relative_std_ignores_masked_steps():
    stddev = 0.5
    rng = np.random.default_rng(7)
    x = (rng.normal(0, 1, (200, 50, 2)) * [1.0, 3.0]).astype("float32")
    mask = rng.uniform(size=(200, 50)) < 0.7
    x[~mask] = 1000.0  # padding that must not inflate the scale
    y = to_np(GaussianNoise(stddev, relative="std", seed=7)(x, training=True, mask=mask))
    np.testing.assert_array_equal(y[~mask], x[~mask])
    noise, kept = y[mask] - x[mask], x[mask]
    n = kept.shape[0]
    for j, s in enumerate(kept.std(axis=0)):
        sigma = stddev * s
        assert_within(noise[:, j].std(), sigma, sigma / math.sqrt(2 * n), f"std of feature {j}")


def test_relative_range():
    x = np.full((N_ROWS, N_COLS), 128.0, "float32")
    noise = to_np(GaussianNoise(0.1, relative="range", value_range=(0, 255), seed=8)(x, training=True)) - x
    sigma, n = 25.5, noise.size
    assert_within(noise.std(), sigma, sigma / math.sqrt(2 * n), "gaussian std")
    # Without value_range the clip range is used: amplitude 0.2 * (10 - 0) = 2.
    x = np.full((N_ROWS, N_COLS), 5.0, "float32")
    noise = to_np(UniformNoise(0.2, relative="range", clip=(0, 10), seed=8)(x, training=True)) - x
    sigma = 2.0 / math.sqrt(3)
    assert np.abs(noise).max() <= 2.0 + 1e-5
    assert_within(noise.std(), sigma, sigma * math.sqrt(0.8 / (4 * n)), "uniform std")


CLIPPED = {
    "gaussian": lambda: GaussianNoise(1.0, clip=(0.2, 0.8), seed=9),
    "uniform": lambda: UniformNoise(1.0, clip=(0.2, 0.8), seed=9),
    "multiplicative": lambda: MultiplicativeNoise(2.0, clip=(0.2, 0.8), seed=9),
    "salt_and_pepper": lambda: SaltAndPepperNoise(0.5, clip=(0.2, 0.8), seed=9),
    "poisson": lambda: PoissonNoise(2.0, clip=(0.2, 0.8), seed=9),
}


@pytest.mark.parametrize("name", CLIPPED)
def test_clip_keeps_every_value_in_range(name):
    y = to_np(CLIPPED[name]()(X, training=True))
    assert y.min() >= 0.2 and y.max() <= 0.8
    assert (y == np.float32(0.2)).any() and (y == np.float32(0.8)).any()  # the clip bit


# --------------------------------------------------------------------------- masks
class MaskProbe(keras.layers.Layer):
    """Outputs the mask it receives, to check that the noise layer passes it on."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        return ops.cast(mask, "float32")


MASKED_SHAPE = X.shape
IDS = np.array([[1, 2, 0, 0, 3, 0, 4], [0, 4, 5, 6, 0, 0, 1], [7, 0, 8, 9, 9, 0, 2], [0, 0, 0, 1, 2, 3, 0]])


def _check_masked(model, inputs, steps_kept):
    before, out, probe = (to_np(t) for t in model(inputs, training=True))
    np.testing.assert_array_equal(out[~steps_kept], before[~steps_kept])  # bit-identical
    assert not np.array_equal(out[steps_kept], before[steps_kept])
    np.testing.assert_array_equal(probe, steps_kept.astype("float32"))  # mask passed on


@pytest.mark.parametrize("name", NOISE_ONLY)
def test_embedding_mask_leaves_padding_untouched(name):
    inp = keras.Input((MASKED_SHAPE[1],), dtype="int32")
    init = keras.initializers.RandomUniform(0.05, 0.95, seed=0)
    emb = keras.layers.Embedding(10, MASKED_SHAPE[2], mask_zero=True, embeddings_initializer=init)(inp)
    out = FACTORIES[name](seed=0)(emb)
    model = keras.Model(inp, [emb, out, MaskProbe()(out)])
    _check_masked(model, IDS, IDS != 0)


@pytest.mark.parametrize("name", NOISE_ONLY)
def test_masking_layer_and_direct_mask(name):
    x = np.random.default_rng(10).uniform(0.05, 0.95, MASKED_SHAPE).astype("float32")
    # Masking(-1) marks these steps (and zeroes them); in the direct call they stay
    # -1, which clipping to (0, 1) or the Poisson sampler would move if unmasked.
    x[IDS == 0] = -1.0
    inp = keras.Input(MASKED_SHAPE[1:])
    masked = keras.layers.Masking(-1.0)(inp)
    out = FACTORIES[name](seed=0, clip=(0.0, 1.0))(masked)
    model = keras.Model(inp, [masked, out, MaskProbe()(out)])
    _check_masked(model, x, IDS != 0)

    layer = FACTORIES[name](seed=0, clip=(0.0, 1.0))
    mask = ops.convert_to_tensor(IDS != 0)
    y = to_np(layer(x, training=True, mask=mask))
    np.testing.assert_array_equal(y[IDS == 0], x[IDS == 0])
    assert not np.array_equal(y[IDS != 0], x[IDS != 0])
    np.testing.assert_array_equal(to_np(layer.compute_mask(x, mask)), IDS != 0)


# --------------------------------------------------------------------------- bad arguments
BAD_ARGUMENTS = [
    (lambda: GaussianNoise(-1.0), "stddev", "-1.0"),
    (lambda: UniformNoise(-0.5), "amplitude", "-0.5"),
    (lambda: MultiplicativeNoise(-2.0), "stddev", "-2.0"),
    (lambda: GaussianNoise(0.1, clip=(1.0, 0.0)), "clip", "(1.0, 0.0)"),
    (lambda: GaussianNoise(0.1, clip=(0.0, 1.0, 2.0)), "clip", "(0.0, 1.0, 2.0)"),
    (lambda: GaussianNoise(0.1, relative="median"), "relative", "'median'"),
    (lambda: GaussianNoise(0.1, relative="range"), "value_range", "None"),
    (lambda: UniformNoise(0.1, value_range=(5.0, 5.0)), "value_range", "(5.0, 5.0)"),
    (lambda: GaussianNoise(0.1, seed=-1), "seed", "-1"),
    (lambda: SaltAndPepperNoise(1.5), "rate", "1.5"),
    (lambda: SaltAndPepperNoise(-0.1), "rate", "-0.1"),
    (lambda: SaltAndPepperNoise(0.1, salt_ratio=2.0), "salt_ratio", "2.0"),
    (lambda: PoissonNoise(0.0), "peak", "0.0"),
    (lambda: PoissonNoise(-3.0), "peak", "-3.0"),
    (lambda: PoissonNoise(5.0, value_range=(1.0, 0.0)), "value_range", "(1.0, 0.0)"),
    (lambda: GaussianNoise(0.1).set_level(-1.0), "stddev", "-1.0"),
    (lambda: SaltAndPepperNoise(0.1).set_level(2.0), "rate", "2.0"),
    (lambda: PoissonNoise(5.0).set_level(0.0), "peak", "0.0"),
]


@pytest.mark.parametrize("make, param, value", BAD_ARGUMENTS)
def test_bad_arguments_name_parameter_and_value(make, param, value):
    with pytest.raises(ValueError) as info:
        make()
    assert f"{param}={value}" in str(info.value)


def test_layers_share_the_base_class():
    for name in NOISE_ONLY:
        assert isinstance(FACTORIES[name](), NoiseLayer)
