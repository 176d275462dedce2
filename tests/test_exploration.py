"""Tests for noisewise.exploration: action noise processes and adaptive parameter noise.

Statistical checks allow K = 5 standard errors computed from the sample size.
"""

import math

import keras
import numpy as np
import pytest

from noisewise.exploration import (
    GaussianActionNoise,
    OrnsteinUhlenbeckActionNoise,
    ParameterNoise,
    dqn_distance,
    dqn_threshold,
    policy_distance,
)

K = 5.0
PATHS = 20000  # independent OU paths, simulated together as one vector


def test_gaussian_noise_moments_and_seed():
    noise = GaussianActionNoise(0.3, size=(PATHS,), seed=1)
    z = noise()
    assert abs(z.mean()) <= K * 0.3 / math.sqrt(PATHS)
    # SE of a normal sample variance: sigma^2 sqrt(2 / (n - 1)).
    assert abs(z.var(ddof=1) - 0.09) <= K * 0.09 * math.sqrt(2 / (PATHS - 1))
    np.testing.assert_array_equal(GaussianActionNoise(0.3, size=(PATHS,), seed=1)(), z)
    assert not np.array_equal(noise(), z)


def test_ou_mean_follows_the_closed_form():
    theta, sigma, mu, dt, x0, steps = 0.15, 0.2, 0.5, 1e-2, 2.0, 400
    noise = OrnsteinUhlenbeckActionNoise(theta, sigma, mu, dt, size=PATHS, seed=0, x0=x0)
    for _ in range(steps):
        x = noise()
    t = steps * dt
    mean, var = noise.moments(steps)
    # Euler's a^k = (1 - theta dt)^k differs from exp(-theta t) by O(dt): here 4.5e-5 of x0 - mu.
    continuous = mu + (x0 - mu) * math.exp(-theta * t)
    se = math.sqrt(var / PATHS)
    assert abs(x.mean() - continuous) <= K * se + abs(mean - continuous)
    assert abs(x.mean() - mean) <= K * se
    assert abs(x.var(ddof=1) - var) <= K * var * math.sqrt(2 / (PATHS - 1))


def test_ou_stationary_variance_is_the_discrete_one():
    # theta dt = 0.2: the discrete limit sigma^2 / (theta (2 - theta dt)) is 11% above the
    # continuous sigma^2 / (2 theta), many standard errors apart at n = 20000.
    theta, sigma, dt = 2.0, 0.5, 0.1
    noise = OrnsteinUhlenbeckActionNoise(theta, sigma, dt=dt, size=PATHS, seed=3)
    for _ in range(200):  # a^200 = 0.8^200: the start is forgotten
        x = noise()
    discrete = sigma**2 / (theta * (2 - theta * dt))
    continuous = sigma**2 / (2 * theta)
    assert noise.moments(200)[1] == pytest.approx(discrete)
    se = discrete * math.sqrt(2 / (PATHS - 1))
    assert abs(x.var(ddof=1) - discrete) <= K * se
    assert abs(x.var(ddof=1) - continuous) > K * se
    # A lag-1 autocorrelation of a = 1 - theta dt is what makes the noise temporally correlated.
    y = noise()
    r = np.corrcoef(x, y)[0, 1]
    assert abs(r - (1 - theta * dt)) <= K * (1 - 0.8**2) / math.sqrt(PATHS)


def test_ou_same_seed_same_path_and_reset():
    a = OrnsteinUhlenbeckActionNoise(size=3, seed=7, x0=1.0)
    b = OrnsteinUhlenbeckActionNoise(size=3, seed=7, x0=1.0)
    path_a = np.stack([a() for _ in range(20)])
    np.testing.assert_array_equal(path_a, np.stack([b() for _ in range(20)]))
    a.reset()
    np.testing.assert_array_equal(a.x, np.ones(3))
    assert not np.array_equal(np.stack([a() for _ in range(20)]), path_a)  # the stream goes on
    assert OrnsteinUhlenbeckActionNoise(size=2).x.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("kwargs, match", [
    ({"theta": 0.0}, r"`theta`.*Received: theta=0.0"),
    ({"sigma": -1.0}, r"`sigma`.*Received: sigma=-1.0"),
    ({"dt": 0.0}, r"`dt`.*Received: dt=0.0"),
    ({"theta": 10.0, "dt": 0.5}, r"`theta \* dt` must be < 2.*theta=10.0, dt=0.5"),
    ({"size": 0}, r"`size` must be an integer >= 1.*Received: size=0"),
    ({"size": (2, "a")}, r"`size`.*Received: size=\(2, 'a'\)"),
    ({"x0": float("nan")}, r"`x0` must be finite"),
])
def test_ou_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OrnsteinUhlenbeckActionNoise(**kwargs)


@pytest.mark.parametrize("cls, kwargs, match", [
    (GaussianActionNoise, {"sigma": -0.1}, r"`sigma`.*Received: sigma=-0.1"),
    (GaussianActionNoise, {"sigma": float("inf")}, r"`sigma`.*Received: sigma=inf"),
    (ParameterNoise, {"stddev": 0.0}, r"`stddev`.*Received: stddev=0.0"),
    (ParameterNoise, {"desired_distance": -1}, r"`desired_distance`.*Received: desired_distance=-1"),
    (ParameterNoise, {"adoption_coefficient": 1.0},
     r"`adoption_coefficient`.*Received: adoption_coefficient=1.0"),
])
def test_bad_parameters(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**({"sigma": 0.1} if cls is GaussianActionNoise else {}) | kwargs)


def test_parameter_noise_adaptation_rule():
    noise = ParameterNoise(0.2, desired_distance=0.5, adoption_coefficient=1.5, seed=0)
    assert noise.adapt(0.1) == pytest.approx(0.3)  # below delta: sigma * alpha
    assert noise.adapt(0.7) == pytest.approx(0.2)  # above: sigma / alpha
    assert noise.adapt(0.5) == pytest.approx(0.2 / 1.5)  # at delta: shrink
    with pytest.raises(ValueError, match=r"`distance`.*Received: distance=-1"):
        noise.adapt(-1)


def test_parameter_noise_settles_where_the_distance_crosses_the_target():
    # Distance proportional to sigma (d = 2 sigma): the rule oscillates around d = delta,
    # i.e. sigma = delta / 2, within one factor alpha.
    noise = ParameterNoise(1.0, desired_distance=0.1, seed=0)
    for _ in range(2000):
        noise.adapt(2 * noise.stddev)
    assert 0.05 / 1.01 <= noise.stddev <= 0.05 * 1.01


def _model(seed):
    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, kernel_initializer=init),
                             keras.layers.LayerNormalization(), keras.layers.Dense(2)])


def test_perturb_copies_with_noise_of_the_scale_and_skips_normalization():
    model, copy = _model(0), _model(1)
    noise = ParameterNoise(0.05, seed=4)
    noise.perturb(model, copy)
    diffs = {v.path: copy.variables[i].numpy() - v.numpy() for i, v in enumerate(model.variables)}
    perturbed = np.concatenate([d.ravel() for p, d in diffs.items() if "normalization" not in p])
    for p, d in diffs.items():
        if "normalization" in p:
            np.testing.assert_array_equal(d, 0.0)
    # Noise std 0.05 on 3*8 + 8 + 8*2 + 2 = 50 weights; SE of the sample std ~ sigma / sqrt(2n).
    assert abs(perturbed.std() - 0.05) <= K * 0.05 / math.sqrt(2 * perturbed.size)
    first = [v.numpy() for v in copy.variables]
    ParameterNoise(0.05, seed=4).perturb(model, copy)
    for a, v in zip(first, copy.variables):
        np.testing.assert_array_equal(a, v.numpy())  # same seed, same perturbation
    with pytest.raises(ValueError, match="same architecture"):
        noise.perturb(model, keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))


def test_dqn_threshold_and_distance():
    # epsilon-greedy with epsilon = 0.1 over 2 actions keeps the greedy action w.p. 0.95.
    assert dqn_threshold(0.1, 2) == pytest.approx(-math.log(0.95))
    assert dqn_threshold(0.0, 4) == 0.0
    q = np.array([[1.0, 0.0], [0.0, 0.0]])
    qp = np.array([[0.0, 1.0], [0.0, 0.0]])
    p = 1 / (1 + math.exp(-1))  # softmax of (1, 0)
    kl = p * math.log(p / (1 - p)) + (1 - p) * math.log((1 - p) / p)
    assert dqn_distance(q, qp) == pytest.approx(kl / 2)
    assert dqn_distance(q, q) == pytest.approx(0.0, abs=1e-9)
    assert policy_distance([[0.0, 1.0]], [[0.0, 0.0]]) == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ValueError, match="n_actions"):
        dqn_threshold(0.1, 1)
    with pytest.raises(ValueError, match="same shape|one shape"):
        dqn_distance(q, qp[:1])
