"""Tests for NoisyDense (noisewise.layers.noisy_dense) on the active backend.

Statistical checks allow K = 5 standard errors, the standard error computed
from the sample size n (formulas beside each check); the seeds are fixed, so
the tests are deterministic on a given backend.
"""

import math

import conformance
import keras
import numpy as np
import pytest
from conformance import CHECKS, Case
from keras import ops

from noisewise.layers import NoisyDense
from noisewise.layers.noisy_dense import scale_noise

BACKEND = keras.backend.backend()
K = 5.0
N_DRAWS = 3000
STAY_ON = {"active_at_inference": True}


def to_np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


CASES = [
    Case(NoisyDense, {"units": 3}, inference="deterministic", stay_on=STAY_ON,
         supports_masking=True, id="NoisyDense-factorised"),
    Case(NoisyDense, {"units": 3, "factorised": False, "activation": "relu"},
         inference="deterministic", stay_on=STAY_ON, supports_masking=True,
         id="NoisyDense-independent"),
]


@pytest.mark.parametrize("case, check", [pytest.param(c, k, id=f"{c.name}-{k}")
                                         for c in CASES for k in CHECKS])
def test_conformance(case, check, tmp_path):
    conformance.run_check(case, check, tmp_path)


def _layer_with_sigmas(factorised, p=5, units=4, seed=0):
    """A built layer whose noise scales differ per weight (so the formula is tested per term)."""
    layer = NoisyDense(units, factorised=factorised, seed=seed)
    layer.build((None, p))
    rng = np.random.default_rng(seed)
    layer.kernel_sigma.assign(rng.uniform(0.1, 0.6, (p, units)).astype("float32"))
    layer.bias_sigma.assign(rng.uniform(0.1, 0.6, (units,)).astype("float32"))
    return layer


def _draws(layer, x, n=N_DRAWS):
    """``n`` outputs for ``x``, one draw each: one compiled predict step per row (fast)."""
    layer.active_at_inference = True
    model = keras.Sequential([keras.Input(x.shape[1:]), layer])
    # The PyTorch trainer runs one step per call; the others loop compiled steps.
    model.compile(steps_per_execution=1 if BACKEND == "torch" else 200)
    y = model.predict(np.repeat(x, n, axis=0), batch_size=1, verbose=0).astype("float64")
    assert np.unique(y[:, 0]).size == n  # every step drew afresh
    return y


@pytest.mark.parametrize("factorised", [True, False], ids=["factorised", "independent"])
def test_output_moments_match_the_noise_formula(factorised):
    # Output j given x: mean x mu_w[:, j] + mu_b[j]; variance
    #   factorised:  (2/pi) sum_i s_ij^2 x_i^2 + sqrt(2/pi) sb_j^2
    #     (noise f(e_j) (sum_i x_i s_ij f(e_i) + sb_j), E f = 0, E f^2 = E|e| = sqrt(2/pi));
    #   independent: sum_i s_ij^2 x_i^2 + sb_j^2.
    layer = _layer_with_sigmas(factorised)
    x = np.array([[0.5, -1.0, 2.0, 0.0, 1.5]], "float32")
    y = _draws(layer, x)
    s, sb = to_np(layer.kernel_sigma), to_np(layer.bias_sigma)
    mean = x[0] @ to_np(layer.kernel_mu) + to_np(layer.bias_mu)
    c = math.sqrt(2 / math.pi) if factorised else 1.0
    var = c * c * (x[0, :, None] ** 2 * s**2).sum(0) + c * sb**2
    n = len(y)
    # At n = 3000 the other variant's formula is 13 to 17 SE off on JAX, so K = 5 tells them apart.
    for j in range(layer.units):
        # SE of a mean: sqrt(var / n); of a variance: sqrt((m4 - var^2) / n), m4 estimated.
        dev = y[:, j] - mean[j]
        assert abs(dev.mean()) <= K * math.sqrt(var[j] / n), (j, dev.mean(), var[j])
        se_var = math.sqrt(max(np.mean(dev**4) - var[j] ** 2, 0.0) / n)
        assert abs(np.mean(dev**2) - var[j]) <= K * se_var, (j, np.mean(dev**2), var[j], se_var)
    # Distinct outputs are uncorrelated (E f(e_j) f(e_k) = 0), though not independent.
    dev = y - mean
    prod = dev[:, 0] * dev[:, 1]
    assert abs(prod.mean()) <= K * prod.std() / math.sqrt(n)


def test_factorised_noise_is_an_outer_product_of_f_of_normals():
    layer = NoisyDense(4, seed=1)
    layer.build((None, 3))
    noise = {k: to_np(v) for k, v in layer.draw().items()}
    # eps_w[i, j] = f(e_i) f(e_j) and eps_b[j] = f(e_j): every column is eps_b[j] times one vector.
    ratio = noise["kernel"] / noise["bias"][None, :]
    np.testing.assert_allclose(ratio, np.repeat(ratio[:, :1], 4, axis=1), rtol=1e-5)
    # f(e)^2 = |e| for a standard normal e: its mean over many draws is sqrt(2/pi).
    e2 = np.concatenate([to_np(layer.draw()["bias"]) ** 2 for _ in range(500)])
    assert abs(e2.mean() - math.sqrt(2 / math.pi)) <= K * math.sqrt((1 - 2 / math.pi) / e2.size)


def test_scale_noise_is_signed_square_root():
    x = np.array([-4.0, -0.25, 0.0, 1.0, 9.0], "float32")
    np.testing.assert_allclose(to_np(scale_noise(x)), [-2.0, -0.5, 0.0, 1.0, 3.0])


@pytest.mark.parametrize("factorised, bound, sigma", [
    (True, 1 / math.sqrt(64), 0.5 / math.sqrt(64)),
    (False, math.sqrt(3 / 64), 0.017),
], ids=["factorised", "independent"])
def test_initialisation_follows_the_paper(factorised, bound, sigma):
    layer = NoisyDense(50, factorised=factorised, seed=2)
    layer.build((None, 64))
    mu = to_np(layer.kernel_mu).ravel()
    assert mu.min() >= -bound and mu.max() <= bound
    # U[-b, b] has variance b^2 / 3; the sample variance's SE is b^2 sqrt(4/45 / n).
    assert abs(mu.var() - bound**2 / 3) <= K * bound**2 * math.sqrt(4 / 45 / mu.size)
    np.testing.assert_allclose(to_np(layer.kernel_sigma), sigma, rtol=1e-6)
    np.testing.assert_allclose(to_np(layer.bias_sigma), sigma, rtol=1e-6)
    assert len(layer.trainable_weights) == 4


def test_same_seed_same_draws_and_weights():
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    a, b, c = NoisyDense(4, seed=5), NoisyDense(4, seed=5), NoisyDense(4, seed=6)
    c(x)
    ya = [to_np(a(x, training=True)) for _ in range(3)]
    yb = [to_np(b(x, training=True)) for _ in range(3)]
    np.testing.assert_array_equal(np.stack(ya), np.stack(yb))
    np.testing.assert_array_equal(to_np(a.kernel_mu), to_np(b.kernel_mu))
    assert not np.array_equal(to_np(a.kernel_mu), to_np(c.kernel_mu))
    assert not np.array_equal(ya[0], ya[1])  # a fresh draw per call
    # One draw per call is shared by the batch: equal rows give equal outputs.
    rows = to_np(a(np.repeat(x[:1], 3, axis=0), training=True))
    np.testing.assert_array_equal(rows, np.repeat(rows[:1], 3, axis=0))


def test_noise_scales_get_gradients():
    x = np.ones((2, 3), "float32")
    model = keras.Sequential([keras.Input((3,)), NoisyDense(2, seed=0)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = to_np(model.layers[0].kernel_sigma)
    model.fit(x, np.full((2, 2), 3.0, "float32"), epochs=2, batch_size=2, verbose=0)
    assert not np.allclose(to_np(model.layers[0].kernel_sigma), before)


def test_sigma0_zero_is_the_mean_layer():
    x = np.random.default_rng(1).normal(size=(2, 4)).astype("float32")
    layer = NoisyDense(3, sigma0=0.0, seed=0)
    np.testing.assert_allclose(to_np(layer(x, training=True)), to_np(layer(x)), atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"units": 0}, r"`units` must be >= 1. Received: units=0"),
    ({"units": 2.5}, r"`units` must be an integer. Received: units=2.5"),
    ({"units": 2, "sigma0": -0.1}, r"sigma0.*Received: sigma0=-0.1"),
    ({"units": 2, "sigma0": float("nan")}, r"sigma0.*Received: sigma0=nan"),
    ({"units": 2, "sampler": "mt"}, r"sampler.*Received: sampler='mt'"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NoisyDense(**kwargs)


@pytest.mark.skipif(BACKEND != "jax", reason="jax.vmap of a stateless call is JAX-only")
def test_replicas_under_vmap_draw_their_own_noise():
    import jax

    layer = NoisyDense(3, seed=0)
    x = np.ones((1, 4), "float32")
    layer.build(x.shape)
    trainable = [v.value for v in layer.trainable_variables]
    states = np.stack([np.array([0, s], "uint32") for s in (1, 2)])

    @jax.jit
    @jax.vmap
    def forward(state):
        out, _ = layer.stateless_call(trainable, [state], x, training=True)
        return out

    y = np.asarray(forward(states))
    assert y.shape == (2, 1, 3) and not np.allclose(y[0], y[1])
    np.testing.assert_array_equal(np.asarray(forward(states)), y)  # same states, same draws
