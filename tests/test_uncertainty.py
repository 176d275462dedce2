"""Monte Carlo prediction and the uncertainty metrics, against direct formulas and scikit-learn."""

import itertools
import re

import keras
import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

import noisewise
from noisewise.augment import AugmentPipeline
from noisewise.uncertainty import (
    accuracy_coverage,
    aurc,
    brier_score,
    draw_seeds,
    expected_calibration_error,
    negative_log_likelihood,
    predict_mc,
    reliability,
    stochastic_call,
    stochastic_layers,
)

X = np.random.default_rng(0).normal(size=(12, 5)).astype("float32")


def _model(classes=3, activation="softmax"):
    """Dense -> BatchNormalization -> Dropout -> noise -> WeightNoise(Dense), every kind."""
    inputs = keras.Input((5,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.3, seed=1)(x)
    x = noisewise.GaussianNoise(0.5, seed=2)(x)
    out = noisewise.WeightNoise(keras.layers.Dense(classes, activation=activation), 0.2, seed=3)(x)
    model = keras.Model(inputs, out)
    model(X, training=False)
    return model


def _plain(classes=3, activation="softmax", extra=()):
    model = keras.Sequential([keras.Input((5,)), *extra,
                              keras.layers.Dense(classes, activation=activation)])
    model(X)
    return model


def test_predict_mc_equals_manual_stochastic_calls_with_the_same_seeds():
    model = _model()
    keras.random.normal((3,), seed=keras.random.SeedGenerator(9))  # unrelated draws first
    mc = predict_mc(model, X, n=4, seed=11, return_samples=True)
    manual = np.stack([stochastic_call(model, X, s) for s in draw_seeds(11, 4)])
    np.testing.assert_allclose(mc.samples, manual, rtol=1e-6, atol=1e-7)
    again = predict_mc(model, X, n=4, seed=11, return_samples=True)
    np.testing.assert_allclose(again.samples, mc.samples, rtol=1e-6, atol=1e-7)
    assert np.ptp(mc.samples, axis=0).max() > 1e-3  # the draws differ
    assert not np.allclose(predict_mc(model, X, n=4, seed=12).mean, mc.mean)
    batched = predict_mc(model, X, n=3, seed=5, batch_size=5, return_samples=True)
    np.testing.assert_allclose(
        batched.samples, np.stack([stochastic_call(model, X, s, batch_size=5)
                                   for s in draw_seeds(5, 3)]), rtol=1e-6, atol=1e-7)


def test_summaries_follow_their_formulas():
    mc = predict_mc(_model(), X, n=5, seed=0, return_samples=True)
    s = mc.samples
    mean = s.mean(axis=0)
    entropy = -np.sum(mean * np.log(mean), axis=1)
    expected = -np.sum(s * np.log(s), axis=2).mean(axis=0)
    np.testing.assert_allclose(mc.mean, mean)
    np.testing.assert_allclose(mc.entropy, entropy, rtol=1e-10)
    np.testing.assert_allclose(mc.mutual_information, np.maximum(entropy - expected, 0), atol=1e-12)
    np.testing.assert_allclose(mc.std, s.std(axis=0))
    assert (mc.mutual_information > 0).all() and mc.n == 5 and mc.seed == 0
    assert predict_mc(_model(), X, n=2).samples is None


def test_batch_normalization_stays_in_inference_mode_and_every_switch_is_restored():
    model = _model()
    bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    stats = [np.array(v) for v in (bn.moving_mean, bn.moving_variance)]
    before = keras.ops.convert_to_numpy(model(X, training=False))
    seeds = [np.array(v) for v in model.variables if v.name == "seed_generator_state"]
    predict_mc(model, X, n=3)
    np.testing.assert_array_equal(
        [np.array(v) for v in model.variables if v.name == "seed_generator_state"], seeds)
    np.testing.assert_array_equal(np.array(bn.moving_mean), stats[0])
    np.testing.assert_array_equal(np.array(bn.moving_variance), stats[1])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(X, training=False)), before,
                               rtol=1e-6)
    kinds = {type(layer).__name__: layer for layer in stochastic_layers(model)}
    assert set(kinds) == {"Dropout", "GaussianNoise", "WeightNoise"}
    assert not kinds["GaussianNoise"].active_at_inference
    assert not kinds["WeightNoise"].active_at_inference
    assert "call" not in vars(kinds["Dropout"])


def test_only_the_chosen_kinds_draw():
    dropout = _plain(extra=[keras.layers.Dropout(0.5, seed=0)])
    deterministic = keras.ops.convert_to_numpy(dropout(X, training=False))
    with pytest.warns(UserWarning, match="every draw is the same"):
        mc = predict_mc(dropout, X, n=3, stochastic=("noise",), return_samples=True)
    np.testing.assert_allclose(mc.samples, np.broadcast_to(deterministic, mc.samples.shape),
                               rtol=1e-6)
    assert mc.mutual_information.max() < 1e-12
    only = predict_mc(dropout, X, n=3, stochastic=("dropout",), return_samples=True)
    assert np.ptp(only.samples, axis=0).max() > 1e-3
    layer = dropout.layers[0]
    assert stochastic_layers(dropout, [layer]) == [layer]


def test_augmentation_inside_the_model_draws_only_as_augment():
    pipeline = AugmentPipeline([{"type": "gaussian_noise", "stddev": 0.5}], seed=0,
                               value_range=None, name="augment")
    model = _plain(extra=[pipeline])
    with pytest.warns(UserWarning, match="every draw is the same"):
        predict_mc(model, X, n=2)  # its noise transform is the pipeline's, not model noise
    assert stochastic_layers(model, ("augment",)) == [pipeline]
    inner = pipeline.transforms[0]
    assert stochastic_layers(model, [inner]) == [inner]  # named, it is switched alone
    mc = predict_mc(model, X, n=3, seed=4, stochastic=("augment",), return_samples=True)
    assert np.ptp(mc.samples, axis=0).max() > 1e-3
    np.testing.assert_allclose(mc.samples[1], stochastic_call(
        model, X, draw_seeds(4, 3)[1], stochastic=("augment",)), rtol=1e-6)


@pytest.mark.parametrize("kind", ["layer", "function"])
def test_test_time_augmentation_is_reproducible(kind):
    model = _plain()
    if kind == "layer":
        augment = keras.layers.GaussianNoise(0.5, seed=0)
    else:
        def augment(batch, seed):
            return batch + np.random.default_rng(seed).normal(0, 0.5, batch.shape).astype("float32")
    mc = predict_mc(model, X, n=3, seed=2, augment=augment, return_samples=True)
    assert np.ptp(mc.samples, axis=0).max() > 1e-3
    manual = np.stack([stochastic_call(model, X, s, augment=augment) for s in draw_seeds(2, 3)])
    np.testing.assert_allclose(mc.samples, manual, rtol=1e-6)


def test_binary_and_logit_outputs_become_probabilities():
    sigmoid = _plain(classes=1, activation="sigmoid")
    p = keras.ops.convert_to_numpy(sigmoid(X))[:, 0]
    with pytest.warns(UserWarning):
        mc = predict_mc(sigmoid, X, n=1)
    np.testing.assert_allclose(mc.mean, np.stack([1 - p, p], axis=1), rtol=1e-6, atol=1e-7)
    for classes in (1, 3):
        logits = _plain(classes=classes, activation=None)
        z = keras.ops.convert_to_numpy(logits(X)).astype(np.float64)
        want = 1 / (1 + np.exp(-z)) if classes == 1 else np.exp(z) / np.exp(z).sum(1, keepdims=True)
        with pytest.warns(UserWarning):
            got = predict_mc(logits, X, n=1, from_logits=True).mean
        np.testing.assert_allclose(got[:, -1] if classes == 1 else got,
                                   want[:, 0] if classes == 1 else want, rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "`n` must be >= 1. Received: n=0"),
    ({"n": 2.0}, "`n` must be an integer. Received: n=2.0"),
    ({"n": True}, "`n` must be an integer. Received: n=True"),
    ({"seed": -1}, "`seed` must be >= 0. Received: seed=-1"),
    ({"seed": "0"}, "`seed` must be an integer. Received: seed='0'"),
    ({"batch_size": 0}, "`batch_size` must be >= 1. Received: batch_size=0"),
    ({"augment": 3}, "`augment` must be a callable"),
    ({"stochastic": "bogus"}, "`stochastic` must hold kinds among dropout, noise, augment"),
])
def test_bad_arguments_name_the_parameter_and_value(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        predict_mc(_model(), X, **kwargs)


# -- metrics ---------------------------------------------------------------------------

def _random(rows=200, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(classes) * 0.7, size=rows)
    y = np.array([rng.choice(classes, p=row) for row in p])
    return y, p


def _ece_loop(y, p, bins):
    confidence, correct = p.max(1), p.argmax(1) == y
    total = 0.0
    for m in range(bins):
        lo, hi = m / bins, (m + 1) / bins
        inside = (confidence > lo) & (confidence <= hi) | ((m == 0) & (confidence == 0))
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def test_ece_matches_the_direct_formula_and_known_values():
    y, p = _random()
    for bins in (1, 10, 15):
        assert expected_calibration_error(y, p, bins) == pytest.approx(_ece_loop(y, p, bins))
    # Confidence 0.8, and 8 of 10 right: perfectly calibrated.
    p = np.tile([0.8, 0.2], (10, 1))
    assert expected_calibration_error([0] * 8 + [1] * 2, p) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error([0], [[0.01, 0.99]]) == pytest.approx(0.99)
    one_hot = np.eye(2)[[0] * 8 + [1] * 2]
    assert expected_calibration_error(one_hot, p) == pytest.approx(0.0, abs=1e-12)


def test_reliability_bins_are_right_closed_with_counts_summing_to_rows():
    p = np.array([[0.6, 0.4], [0.4, 0.6], [1.0, 0.0], [0.8, 0.2]])
    table = reliability([0, 0, 0, 1], p, bins=5)  # bins (0, .2], ..., (.8, 1]
    np.testing.assert_array_equal(table.count, [0, 0, 2, 1, 1])  # 0.6 goes in (0.4, 0.6]
    np.testing.assert_allclose(table.confidence[2:], [0.6, 0.8, 1.0])
    np.testing.assert_allclose(table.accuracy[2:], [0.5, 0.0, 1.0])
    assert np.isnan(table.accuracy[:2]).all() and len(table.edges) == 6


def test_nll_and_brier_agree_with_scikit_learn():
    y, p = _random(classes=2)
    p = np.clip(p, 0.01, 0.99)
    p /= p.sum(1, keepdims=True)
    assert negative_log_likelihood(y, p) == pytest.approx(log_loss(y, p))
    assert negative_log_likelihood(y, p[:, 1]) == pytest.approx(log_loss(y, p))
    assert brier_score(y, p) == pytest.approx(2 * brier_score_loss(y, p[:, 1]))
    y, p = _random(classes=4)
    p = np.clip(p, 0.01, 1.0)
    p /= p.sum(1, keepdims=True)
    assert negative_log_likelihood(y, p) == pytest.approx(log_loss(y, p, labels=range(4)))
    assert brier_score(y, p) == pytest.approx(
        brier_score_loss(y, p, labels=range(4), scale_by_half=False))
    assert negative_log_likelihood([0], [[0.0, 1.0]]) == pytest.approx(-np.log(1e-12))


def _aurc_by_permutations(y, p):
    """The mean AURC over every order of the rows, sorted (stably) by confidence."""
    values = []
    for order in itertools.permutations(range(len(y))):
        o = np.array(order)
        conf, wrong = p[o].max(1), (p[o].argmax(1) != y[o])
        ranked = wrong[np.argsort(-conf, kind="stable")]
        values.append(np.mean(np.cumsum(ranked) / np.arange(1, len(y) + 1)))
    return np.mean(values)


def test_aurc_closed_forms_and_ties_as_their_expectation():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    assert aurc([0, 0, 0, 1], p) == pytest.approx(0.25 / 4)  # the error ranked last
    assert aurc([1, 0, 0, 0], p) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    tied = np.tile([0.7, 0.3], (5, 1))
    assert aurc([0, 1, 0, 1, 0], tied) == pytest.approx(0.4)  # no ranking: the error rate
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([[0.9, 0.1], [0.7, 0.3], [0.7, 0.3], [0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    assert aurc(y, p) == pytest.approx(_aurc_by_permutations(y, p))
    coverage, accuracy = accuracy_coverage(y, p)
    np.testing.assert_allclose(coverage, np.arange(1, 7) / 6)
    assert accuracy[-1] == pytest.approx(np.mean(p.argmax(1) == y))
    shuffled = np.random.default_rng(1).permutation(6)
    np.testing.assert_allclose(accuracy_coverage(y[shuffled], p[shuffled])[1], accuracy)


@pytest.mark.parametrize("call, message", [
    (lambda: brier_score([0, 3], [[0.5, 0.5], [0.5, 0.5]]), "`y` must be 2 integer class codes"),
    (lambda: brier_score([0], [[0.5, 0.5], [0.5, 0.5]]), "`y` must be 2 integer class codes"),
    (lambda: aurc([0], [[0.7, 0.7]]), "`p` must be probabilities"),
    (lambda: aurc([0], [[np.nan, 1.0]]), "`p` must be probabilities"),
    (lambda: reliability([[1, 1]], [[0.5, 0.5]]), "`y` as a 2-D array must be one-hot"),
    (lambda: expected_calibration_error([0], [[0.5, 0.5]], bins=0), "`bins` must be >= 1"),
])
def test_bad_metric_inputs_are_refused(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
