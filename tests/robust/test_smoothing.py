"""Randomized smoothing against SciPy's bounds and a linear classifier's analytic certificate.

For f(x) = [w.x + b > 0] under noise N(0, sigma^2 I), w.(x + e) + b is normal
with mean m = w.x + b and standard deviation sigma ||w||, so the smoothed
classifier picks f(x)'s class with pA = Phi(|m| / (sigma ||w||)), and its exact
certified radius is sigma Phi^-1(pA) = |m| / ||w||, the distance to the boundary.
"""

import keras
import numpy as np
import pytest
from scipy import stats

from noisewise.robust import ABSTAIN, Certificate, SmoothedClassifier, certify
from noisewise.robust.smoothing import binomial_p_value, clopper_pearson, lower_confidence_bound

SIGMA = 0.5


@pytest.mark.parametrize("k, n, alpha", [(1, 10, 0.05), (50, 100, 0.001), (990, 1000, 0.01),
                                         (1000, 1000, 0.001), (7, 12, 0.3)])
def test_lower_bound_is_scipy_clopper_pearson(k, n, alpha):
    ci = stats.binomtest(k, n).proportion_ci(method="exact", confidence_level=1 - 2 * alpha)
    assert lower_confidence_bound(k, n, alpha) == pytest.approx(ci.low, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("k, n, confidence", [(0, 20, 0.95), (3, 20, 0.95), (20, 20, 0.95), (450, 450, 0.9),
                                              (207, 450, 0.99), (1, 1, 0.95)])
def test_two_sided_interval_is_scipy_clopper_pearson(k, n, confidence):
    ci = stats.binomtest(k, n).proportion_ci(method="exact", confidence_level=confidence)
    assert clopper_pearson(k, n, confidence) == pytest.approx((ci.low, ci.high), rel=1e-9, abs=1e-12)


def test_two_sided_interval_of_no_trials_is_nan():
    assert all(np.isnan(clopper_pearson(0, 0)))


def test_lower_bound_of_zero_successes_is_zero():
    assert lower_confidence_bound(0, 100, 0.01) == 0.0


def test_binomial_p_value_matches_scipy():
    for n in (1, 2, 9, 40):
        for k in range(n + 1):
            assert binomial_p_value(k, n) == pytest.approx(stats.binomtest(k, n, 0.5).pvalue, rel=1e-9)


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(7)
    w, b = rng.normal(size=5), 0.3
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    model.set_weights([w[:, None].astype("float32"), np.array([b], "float32")])
    return model, w, b


def points_at_margins(w, b, margins, rng):
    """Points whose signed distance to the boundary w.x + b = 0 is each of ``margins``."""
    x = rng.normal(size=(len(margins), len(w)))
    x -= ((x @ w + b) / (w @ w))[:, None] * w  # onto the boundary
    return (x + np.asarray(margins)[:, None] * w / np.linalg.norm(w)).astype("float32")


def test_certified_radius_matches_the_analytic_radius(linear):
    model, w, b = linear
    n, alpha = 20_000, 0.001
    true_radius = SIGMA * np.array([0.5, 1.0, 1.5, 2.0, 0.5, 1.5])  # pA = Phi(radius / sigma)
    signs = np.array([1, 1, 1, 1, -1, -1])
    x = points_at_margins(w, b, signs * true_radius, np.random.default_rng(0))
    cert = certify(model, x, SIGMA, n0=100, n=n, alpha=alpha, seed=0, batch_size=5000)
    np.testing.assert_array_equal(cert.prediction, (signs > 0).astype(int))
    # CERTIFY's guarantee: each radius is <= the true one with probability >= 1 - alpha.
    assert np.all(cert.radius <= true_radius + 1e-9)
    # And it is close: the count is at least n pA - 4 sqrt(n pA (1 - pA)) except
    # with probability < 1e-4, and the bound grows with the count, so the
    # radius is at least sigma Phi^-1(CP lower bound of that count).
    pa = stats.norm.cdf(true_radius / SIGMA)
    k_min = np.floor(n * pa - 4 * np.sqrt(n * pa * (1 - pa)))
    floor = SIGMA * stats.norm.ppf(stats.beta.ppf(alpha, k_min, n - k_min + 1))
    assert np.all(cert.radius >= floor)
    assert np.all(true_radius - floor < 0.15 * SIGMA)  # so "close" means within 0.15 sigma here
    np.testing.assert_allclose(cert.pa_lower, lower_confidence_bound(cert.count, n, alpha))


def test_point_on_the_boundary_abstains(linear):
    model, w, b = linear
    x = points_at_margins(w, b, [0.0, 0.0], np.random.default_rng(1))
    smooth = SmoothedClassifier(model, SIGMA)
    # pA = 1/2 exactly: CERTIFY abstains unless the count exceeds the 1 - alpha
    # quantile, and PREDICT unless the two-sided test rejects; each has
    # probability <= alpha = 0.001 per point.
    cert = smooth.certify(x, n0=100, n=2000, alpha=0.001, seed=0)
    assert np.all(cert.prediction == ABSTAIN) and np.all(cert.radius == 0.0)
    assert np.all(smooth.predict(x, n=2000, alpha=0.001, seed=0) == ABSTAIN)


def test_predict_returns_the_smoothed_class_far_from_the_boundary(linear):
    model, w, b = linear
    x = points_at_margins(w, b, [1.0, -1.0], np.random.default_rng(2))
    pred = SmoothedClassifier(model, SIGMA).predict(x, n=500, alpha=0.001, seed=3)
    np.testing.assert_array_equal(pred, [1, 0])


def test_counts_depend_on_seed_not_on_batching(linear):
    model, w, b = linear
    x = points_at_margins(w, b, [0.1, -0.2, 0.3], np.random.default_rng(3))
    a = SmoothedClassifier(model, SIGMA, batch_size=1000).sample_counts(x, 300, seed=4)
    assert np.array_equal(a, SmoothedClassifier(model, SIGMA, batch_size=64).sample_counts(x, 300, seed=4))
    assert not np.array_equal(a, SmoothedClassifier(model, SIGMA).sample_counts(x, 300, seed=5))
    assert np.all(a.sum(axis=1) == 300)


def test_certified_accuracy_curve_arithmetic():
    cert = Certificate(prediction=np.array([0, 1, ABSTAIN, 2]), radius=np.array([0.5, 0.2, 0.0, 1.0]),
                       pa_lower=np.zeros(4), count=np.zeros(4), sigma=1.0, n=10, alpha=0.1)
    y = np.array([0, 1, 1, 0])
    # correct: points 0 (r=0.5) and 1 (r=0.2); point 3 is wrong, point 2 abstains.
    np.testing.assert_allclose(cert.curve(y, [0.0, 0.2, 0.3, 0.6]), [0.5, 0.5, 0.25, 0.0])
    assert cert.abstain_rate == 0.25


def test_bad_parameters_are_refused(linear):
    model = linear[0]
    smooth = SmoothedClassifier(model, SIGMA)
    x = np.zeros((1, 5), "float32")
    for alpha in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=rf"alpha.*Received: alpha={alpha}"):
            smooth.certify(x, 10, 100, alpha)
    with pytest.raises(ValueError, match=r"n0.*Received: n0=200, n=100"):
        smooth.certify(x, 200, 100, 0.01)
    with pytest.raises(ValueError, match=r"n0.*Received: n0=0"):
        smooth.certify(x, 0, 100, 0.01)
    with pytest.raises(ValueError, match=r"alpha.*Received: alpha=-0.1"):
        smooth.predict(x, 100, -0.1)
    with pytest.raises(ValueError, match=r"sigma.*Received: sigma=0.0"):
        SmoothedClassifier(model, 0.0)
    relu = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="relu")])
    with pytest.raises(ValueError, match="relu"):
        SmoothedClassifier(relu, SIGMA)
