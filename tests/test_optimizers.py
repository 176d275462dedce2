"""GradientNoise: measured noise variance, training, seeds, delegation and serialization."""

import math

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy
from keras import ops

import noisewise
from noisewise.optimizers import GradientNoise

N_WEIGHTS = 4000
# Bounds are K standard errors: for n Gaussian draws the sample variance s2 has
# SE(s2) = sigma2 * sqrt(2 / (n - 1)), the sample mean SE = sigma / sqrt(n), and
# the correlation of two independent samples SE ~ 1 / sqrt(n).
K = 4.0
VAR_REL_TOL = K * math.sqrt(2.0 / (N_WEIGHTS - 1))


class ConstantGradient(keras.layers.Layer):
    """Output sum(w) for every sample: with loss mean(y_pred) every dloss/dw_i is 1."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(N_WEIGHTS,), initializer="zeros", name="w")

    def call(self, x):
        return ops.sum(self.w) * ops.ones_like(x)


def mean_prediction(y_true, y_pred):
    return ops.mean(y_pred)


def probe_model(optimizer):
    """SGD(learning_rate=1) on a unit gradient: each step moves every weight by -1 - noise."""
    inputs = keras.Input((1,))
    layer = ConstantGradient()
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=optimizer, loss=mean_prediction)
    return model, layer


ONE = (np.ones((1, 1), "float32"), np.zeros((1, 1), "float32"))


def step_noise(model, layer, steps):
    """Run ``steps`` train steps; return the noise each one added, shape (steps, N_WEIGHTS)."""
    noise, before = [], to_numpy(layer.w.value)
    for _ in range(steps):
        model.train_on_batch(*ONE)
        after = to_numpy(layer.w.value)
        noise.append(before - after - 1.0)
        before = after
    return np.stack(noise)


def assert_variance(sample, expected_var):
    assert abs(sample.var(ddof=1) / expected_var - 1.0) < VAR_REL_TOL, (sample.var(), expected_var)
    # The true gradient passes through unbiased.
    assert abs(sample.mean()) < K * math.sqrt(expected_var / sample.size)


def test_noise_variance_follows_annealing_schedule():
    eta, gamma = 0.5, 0.55
    opt = GradientNoise(keras.optimizers.SGD(learning_rate=1.0), eta=eta, gamma=gamma, seed=1)
    model, layer = probe_model(opt)
    noise = step_noise(model, layer, 30)
    for t in (0, 1, 3, 9, 29):
        assert_variance(noise[t], eta / (1.0 + t) ** gamma)
        assert math.isclose(opt.noise_stddev(t) ** 2, eta / (1.0 + t) ** gamma)
    # Fresh draws every step: consecutive steps' noise is uncorrelated.
    for t in (0, 10, 28):
        assert abs(np.corrcoef(noise[t], noise[t + 1])[0, 1]) < K / math.sqrt(N_WEIGHTS)
    assert int(to_numpy(opt.iterations)) == 30


def test_noise_inside_fit():
    """fit (on JAX: stateless_apply) over T steps adds noise with variance sum_t sigma_t^2."""
    eta, gamma, steps = 0.2, 1.0, 6
    opt = GradientNoise(keras.optimizers.SGD(learning_rate=1.0), eta=eta, gamma=gamma, seed=2)
    model, layer = probe_model(opt)
    model.fit(np.ones((steps, 1)), np.zeros((steps, 1)), batch_size=1, epochs=1, verbose=0)
    total = -to_numpy(layer.w.value) - steps
    assert_variance(total, sum(eta / (1.0 + t) ** gamma for t in range(steps)))
    assert int(to_numpy(opt.iterations)) == steps


def test_loss_scaling_keeps_noise_variance():
    # Inner loss_scale_factor: gradients arrive scaled, and so must the noise.
    inner = keras.optimizers.SGD(learning_rate=1.0, loss_scale_factor=64.0)
    model, layer = probe_model(GradientNoise(inner, eta=0.3, seed=3))
    assert_variance(step_noise(model, layer, 1)[0], 0.3)
    # LossScaleOptimizer outside (the mixed-precision arrangement) unscales first.
    outer = keras.optimizers.LossScaleOptimizer(
        GradientNoise(keras.optimizers.SGD(learning_rate=1.0), eta=0.3, seed=3)
    )
    model, layer = probe_model(outer)
    assert_variance(step_noise(model, layer, 1)[0], 0.3)


def test_eta_zero_is_the_wrapped_optimizer():
    results = []
    for opt in (GradientNoise("adam", eta=0.0, seed=0), keras.optimizers.Adam()):
        init = keras.initializers.GlorotUniform(seed=0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, kernel_initializer=init)])
        model.compile(optimizer=opt, loss="mse")
        x = np.random.default_rng(0).normal(size=(16, 3))
        model.fit(x, x[:, :2], batch_size=4, epochs=2, verbose=0, shuffle=False)
        results.append(to_numpy(model.layers[0].kernel.value))
    np.testing.assert_array_equal(results[0], results[1])


def apply_steps(seed, steps=3, eta=0.5, gamma=0.55):
    """Eager ``optimizer.apply`` (the stateful path) with zero gradients: returns -(sum of noise)."""
    weight = keras.Variable(np.zeros(N_WEIGHTS), dtype="float32")
    opt = GradientNoise(keras.optimizers.SGD(learning_rate=1.0), eta=eta, gamma=gamma, seed=seed)
    for _ in range(steps):
        opt.apply([ops.zeros((N_WEIGHTS,))], [weight])
    return to_numpy(weight.value)


def test_same_seed_same_result():
    first = apply_steps(7)
    np.testing.assert_array_equal(first, apply_steps(7))
    assert not np.allclose(first, apply_steps(8))
    assert_variance(first, sum(0.5 / (1.0 + t) ** 0.55 for t in range(3)))


def test_overwrite_with_gradient_variables_stay_noise_free():
    scale = keras.Variable(np.zeros(3), dtype="float32")
    scale.overwrite_with_gradient = True  # e.g. float8 scaling factors
    weight = keras.Variable(np.zeros(N_WEIGHTS), dtype="float32")
    opt = GradientNoise(keras.optimizers.SGD(learning_rate=1.0), eta=0.5, seed=0)
    opt.apply([ops.full((3,), 5.0), ops.zeros((N_WEIGHTS,))], [scale, weight])
    np.testing.assert_array_equal(to_numpy(scale.value), np.full(3, 5.0))
    assert_variance(to_numpy(weight.value), 0.5)


def test_noise_stddev_tensor_and_float_agree():
    opt = GradientNoise("sgd", eta=0.3, gamma=0.55)
    for t in (0, 5, 100):
        expected = math.sqrt(0.3 / (1 + t) ** 0.55)
        assert math.isclose(opt.noise_stddev(t), expected, rel_tol=1e-12)
        assert math.isclose(float(to_numpy(opt.noise_stddev(ops.convert_to_tensor(t)))),
                            expected, rel_tol=1e-5)


def test_delegates_learning_rate_and_variables():
    inner = keras.optimizers.Adam(learning_rate=0.01)
    opt = GradientNoise(inner)
    assert math.isclose(float(to_numpy(opt.learning_rate)), 0.01, rel_tol=1e-6)
    opt.learning_rate = 0.5
    assert math.isclose(float(to_numpy(inner.learning_rate)), 0.5, rel_tol=1e-6)
    weight = keras.Variable(np.zeros((2, 2)), dtype="float32")
    opt.build([weight])
    own = {id(v) for v in opt.variables}
    assert id(opt.seed_generator.state) in own
    assert all(id(v) in own for v in inner.variables)  # Adam's slots come along
    assert opt.iterations is inner.iterations


def test_config_round_trip():
    opt = GradientNoise(keras.optimizers.Adam(learning_rate=0.02), eta=0.3, gamma=0.6, seed=5)
    again = GradientNoise.from_config(opt.get_config())
    assert again.get_config() == opt.get_config()
    assert isinstance(again.inner_optimizer, keras.optimizers.Adam)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(restored, GradientNoise)
    assert (restored.eta, restored.gamma, restored.seed) == (0.3, 0.6, 5)


def test_saved_in_keras_model(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=GradientNoise("adam", eta=0.1, seed=0), loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 3))
    model.fit(x, x[:, :1], batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, GradientNoise)
    assert loaded.optimizer.eta == 0.1
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(a.value), to_numpy(b.value))


def test_accepts_string_and_config():
    assert isinstance(GradientNoise("adam").inner_optimizer, keras.optimizers.Adam)
    config = keras.optimizers.serialize(keras.optimizers.SGD(learning_rate=0.3))
    inner = GradientNoise(config).inner_optimizer
    assert math.isclose(float(to_numpy(inner.learning_rate)), 0.3, rel_tol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"eta": -0.1}, "Received: eta=-0.1"),
        ({"gamma": -1}, "Received: gamma=-1"),
        ({"eta": "big"}, "`eta` must be a real number"),
        ({"seed": -3}, "Received: seed=-3"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GradientNoise("sgd", **kwargs)


def test_bad_optimizer():
    with pytest.raises(ValueError, match="Received: optimizer=42"):
        GradientNoise(42)
    with pytest.raises(ValueError, match="Received: optimizer='nadamax'"):
        GradientNoise("nadamax")
    with pytest.raises(ValueError, match="LossScaleOptimizer"):
        GradientNoise(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()))


def test_flat_api():
    assert noisewise.GradientNoise is GradientNoise


@pytest.mark.slow
def test_fits_two_circles():
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=100, noise=0.1, random_state=1)
    # The circles (radii 1 and 0.8, noise 0.1) overlap: the ideal boundary
    # r = 0.9 classifies only 87% of this sample, so >= 88% train accuracy
    # means the network fitted the data at least as well as the true rule.
    bayes_rule = np.mean((np.hypot(x[:, 0], x[:, 1]) < 0.9) == (y == 1))
    assert bayes_rule == 0.87
    init = [keras.initializers.GlorotUniform(seed=i) for i in range(3)]
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(32, activation="relu", kernel_initializer=init[0]),
        keras.layers.Dense(32, activation="relu", kernel_initializer=init[1]),
        keras.layers.Dense(1, activation="sigmoid", kernel_initializer=init[2]),
    ])
    opt = GradientNoise(keras.optimizers.Adam(learning_rate=0.03), eta=0.01, seed=0)
    model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=100, epochs=200, verbose=0)
    accuracy = model.evaluate(x, y, verbose=0)[1]
    assert accuracy >= 0.88, (BACKEND, accuracy)
