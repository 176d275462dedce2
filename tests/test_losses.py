"""Generalized and symmetric cross-entropy against their formulas in NumPy, on every backend."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from noisewise.losses import GeneralizedCrossEntropy, SymmetricCrossEntropy

RNG = np.random.default_rng(0)
N, K = 6, 4
LOGITS = RNG.normal(size=(N, K)).astype("float32") * 2.0
LABELS = np.array([0, 1, 2, 3, 1, 0])


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


PROBS = softmax(LOGITS.astype("float64")).astype("float32")
P_Y = PROBS.astype("float64")[np.arange(N), LABELS]


def per_sample(loss, y, y_pred):
    loss.reduction = None
    return to_numpy(loss(y, y_pred)).astype("float64")


def gce(p_y, q):
    return (1.0 - p_y ** q) / q


def sce(p, onehot, alpha, beta, A):
    ce = -(onehot * np.log(np.clip(p, 1e-7, 1))).sum(-1)
    rce = -(p * np.log(np.clip(onehot, np.exp(A), 1))).sum(-1)
    return alpha * ce + beta * rce


@pytest.mark.parametrize("q", [0.3, 0.7, 1.0])
def test_gce_matches_its_formula_for_sparse_one_hot_and_logits(q):
    onehot = np.eye(K, dtype="float32")[LABELS]
    expected = gce(P_Y, q)
    for y, y_pred, logits in [(LABELS, PROBS, False), (LABELS[:, None], PROBS, False),
                              (onehot, PROBS, False), (LABELS, LOGITS, True)]:
        got = per_sample(GeneralizedCrossEntropy(q=q, from_logits=logits), y, y_pred)
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)


def test_gce_at_q_1_is_one_minus_p_y_and_the_mean_reduction():
    loss = GeneralizedCrossEntropy(q=1.0)
    assert float(loss(LABELS, PROBS)) == pytest.approx(np.mean(1.0 - P_Y), rel=1e-5)


def test_gce_tends_to_cross_entropy_as_q_goes_to_0():
    # (1 - e^{q l}) / q = -l - q l^2 / 2 - ...: at q = 1e-3 the gap to -l is
    # q l^2 / 2 to first order, so the relative gap is about q |l| / 2 (<= 2e-3 here).
    ce = -np.log(P_Y)
    for q in (1e-2, 1e-3):
        got = per_sample(GeneralizedCrossEntropy(q=q, from_logits=True), LABELS, LOGITS)
        np.testing.assert_allclose(got, ce + (-q * ce ** 2 / 2), rtol=q * 2, atol=1e-4)
        np.testing.assert_allclose(got, ce, rtol=q * ce.max())
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    got = float(GeneralizedCrossEntropy(q=1e-4, from_logits=True)(LABELS, LOGITS))
    assert got == pytest.approx(float(keras_ce(LABELS, LOGITS)), rel=1e-3)


@pytest.mark.parametrize("alpha,beta,A", [(0.1, 1.0, -4.0), (1.0, 0.0, -4.0), (0.5, 2.0, -6.0)])
def test_sce_matches_its_formula(alpha, beta, A):
    onehot = np.eye(K)[LABELS]
    expected = sce(PROBS.astype("float64"), onehot, alpha, beta, A)
    assert np.allclose(sce(PROBS.astype("float64"), onehot, 0, 1, A), -A * (1 - P_Y))
    for y, y_pred, logits in [(LABELS, PROBS, False), (onehot.astype("float32"), PROBS, False),
                              (LABELS, LOGITS, True)]:
        loss = SymmetricCrossEntropy(alpha=alpha, beta=beta, A=A, from_logits=logits)
        np.testing.assert_allclose(per_sample(loss, y, y_pred), expected, rtol=2e-5, atol=1e-5)


def test_soft_labels_enter_linearly():
    soft = np.full((N, K), 0.1 / K) + 0.9 * np.eye(K)[LABELS]
    p = PROBS.astype("float64")
    got = per_sample(GeneralizedCrossEntropy(q=0.5), soft.astype("float32"), PROBS)
    np.testing.assert_allclose(got, (soft * gce(p, 0.5)).sum(-1), rtol=2e-5)
    got = per_sample(SymmetricCrossEntropy(alpha=0.3, beta=1.0), soft.astype("float32"), PROBS)
    np.testing.assert_allclose(got, sce(p, soft, 0.3, 1.0, -4.0), rtol=2e-5)


def test_one_sigmoid_unit_reads_the_two_classes():
    z = np.array([[-2.0], [0.5], [3.0], [-0.1]], dtype="float32")
    y = np.array([0, 1, 0, 1])
    p1 = 1 / (1 + np.exp(-z[:, 0].astype("float64")))
    p = np.stack([1 - p1, p1], axis=-1)
    onehot = np.eye(2)[y]
    for y_pred, logits in [(z, True), (p1[:, None].astype("float32"), False)]:
        got = per_sample(GeneralizedCrossEntropy(q=0.7, from_logits=logits), y, y_pred)
        np.testing.assert_allclose(got, gce(p[np.arange(4), y], 0.7), rtol=2e-5)
        got = per_sample(SymmetricCrossEntropy(from_logits=logits), y[:, None], y_pred)
        np.testing.assert_allclose(got, sce(p, onehot, 0.1, 1.0, -4.0), rtol=2e-5, atol=1e-6)


def test_sample_weights_weigh_the_per_sample_values():
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.5, 0.0], dtype="float32")
    got = float(GeneralizedCrossEntropy(q=0.7)(LABELS, PROBS, sample_weight=w))
    assert got == pytest.approx(np.sum(w * gce(P_Y, 0.7)) / N, rel=1e-5)


@pytest.mark.parametrize("cls,kwargs", [
    (GeneralizedCrossEntropy, {"q": 0.4, "from_logits": True}),
    (SymmetricCrossEntropy, {"alpha": 0.2, "beta": 0.5, "A": -3.0, "from_logits": True}),
])
def test_config_round_trips_and_registered_name(cls, kwargs):
    loss = cls(**kwargs)
    config = loss.get_config()
    again = cls.from_config(config)
    assert again.get_config() == config
    assert {k: config[k] for k in kwargs} == kwargs
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is cls and restored.get_config() == config
    assert keras.saving.get_registered_name(cls) == f"noisewise>{cls.__name__}"


@pytest.mark.parametrize("kwargs,message", [
    ({"q": 0.0}, "`q` must be in (0.0, 1.0]. Received: q=0.0"),
    ({"q": -0.5}, "Received: q=-0.5"),
    ({"q": 1.5}, "Received: q=1.5"),
    ({"q": "big"}, "Received: q='big'"),
    ({"q": float("nan")}, "Received: q=nan"),
    ({"from_logits": "yes"}, "Received: from_logits='yes'"),
])
def test_gce_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as e:
        GeneralizedCrossEntropy(**kwargs)
    assert message in str(e.value)


@pytest.mark.parametrize("kwargs,message", [
    ({"alpha": -0.1}, "`alpha` must be in [0.0, inf]. Received: alpha=-0.1"),
    ({"beta": -1}, "Received: beta=-1"),
    ({"alpha": 0, "beta": 0}, "must not both be 0 (the loss would be 0). Received: alpha=0, beta=0"),
    ({"A": 0.0}, "`A` must be in [-inf, 0.0). Received: A=0.0"),
    ({"alpha": float("inf")}, "Received: alpha=inf"),
])
def test_sce_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as e:
        SymmetricCrossEntropy(**kwargs)
    assert message in str(e.value)


@pytest.mark.parametrize("loss", [GeneralizedCrossEntropy(q=0.7),
                                  SymmetricCrossEntropy(alpha=0.1, beta=1.0)])
def test_a_model_compiled_with_the_loss_trains(loss):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 5)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32") + 2 * (x[:, 2] > 0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(4, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
    history = model.fit(x, y, epochs=8, batch_size=64, verbose=0).history["loss"]
    assert history[-1] < 0.7 * history[0], history
