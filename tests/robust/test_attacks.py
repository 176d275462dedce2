"""FGSM and PGD against closed forms on linear models, and their constraints on a trained MLP.

Linear models have analytic input gradients, so the expected adversarial
examples and accuracies are computed here in NumPy (float64) from the same
weights every backend loads from an .npz written by the test; the suite runs
once per backend, so each backend is checked against the same numbers.
"""

import warnings

import keras
import numpy as np
import pytest
from scipy.special import expit, log_softmax, softmax

from noisewise.robust import fgsm, pgd

EPS = 0.05
# float32 rounding of a gradient component sum_c (p_c - y_c) W_jc is about
# 1e-7 * sum_c |W_jc|; a component 100x above that has a reliable sign.
SIGN_TOL = 1e-5


@pytest.fixture
def weights(tmp_path):
    """Fixed weights and data, written to and read back from an .npz (seeded NumPy)."""
    rng = np.random.default_rng(20240611)
    d, k, n = 8, 3, 200
    arrays = {
        "W": rng.normal(size=(d, k)), "b": rng.normal(scale=0.5, size=k),
        "w1": rng.normal(size=(d, 1)), "b1": rng.normal(scale=0.5, size=1),
        "x": rng.uniform(size=(n, d)),
    }
    arrays["y"] = np.argmax(arrays["x"] @ arrays["W"] + arrays["b"] + rng.normal(size=(n, k)), axis=1)
    arrays["y1"] = (arrays["x"] @ arrays["w1"][:, 0] + arrays["b1"][0] + rng.normal(size=n) > 0).astype(int)
    path = tmp_path / "weights.npz"
    np.savez(path, **{key: v.astype("float32") if v.dtype.kind == "f" else v for key, v in arrays.items()})
    with np.load(path) as f:
        return {key: f[key] for key in f}


def dense(w, b, activation=None):
    model = keras.Sequential([keras.Input((w.shape[0],)),
                              keras.layers.Dense(w.shape[1], activation=activation)])
    model.set_weights([w, b])
    return model


def softmax_grad(W, b, x, y):
    """d CE / dx for logits x W + b: (softmax - onehot) W^T, in float64."""
    W, b, x = W.astype(float), b.astype(float), x.astype(float)
    p = softmax(x @ W + b, axis=1)
    p[np.arange(len(y)), y] -= 1.0
    return p @ W.T


def check_signs(x_adv, x, grad, W, eps, sign=1.0, clip=None):
    """x_adv == clip(x + sign * eps * sign(grad)) wherever the sign is reliable."""
    expected = x + sign * eps * np.sign(grad)
    if clip is not None:
        expected = np.clip(expected, *clip)
    reliable = np.abs(grad) > SIGN_TOL * np.abs(W).sum(axis=1)
    np.testing.assert_allclose(x_adv[reliable], expected[reliable], atol=1e-6)
    assert np.all(np.abs(x_adv - x) <= eps + 1e-6)
    return reliable.all(axis=1)


def test_fgsm_binary_logistic_equals_closed_form(weights):
    # BCE of sigmoid(w.x + b): grad_x = (sigmoid(w.x + b) - y) w.
    w, b, x, y = weights["w1"], weights["b1"], weights["x"], weights["y1"]
    for activation in ("sigmoid", None):
        x_adv = fgsm(dense(w, b, activation), x, y, EPS)
        grad = (expit(x.astype(float) @ w[:, 0] + b[0]) - y)[:, None] * w[:, 0]
        np.testing.assert_allclose(x_adv, x + EPS * np.sign(grad), atol=1e-6)


@pytest.mark.parametrize("activation", [None, "softmax"])
def test_fgsm_softmax_linear_equals_closed_form_and_numpy_accuracy(weights, activation):
    W, b, x, y = weights["W"], weights["b"], weights["x"], weights["y"]
    model = dense(W, b, activation)
    x_adv = fgsm(model, x, y, EPS, clip=(0.0, 1.0))
    grad = softmax_grad(W, b, x, y)
    reliable = check_signs(x_adv, x, grad, W, EPS, clip=(0.0, 1.0))
    # Adversarial accuracy computed in NumPy; a prediction may only differ where
    # a gradient sign was unreliable or the adversarial logit gap is below float32 noise.
    expected_adv = np.clip(x + EPS * np.sign(grad), 0.0, 1.0)
    logits = expected_adv @ W.astype(float) + b
    top2 = np.sort(logits, axis=1)[:, -2:]
    fragile = ~reliable | (top2[:, 1] - top2[:, 0] < 1e-4)
    keras_pred = model.predict(x_adv, verbose=0).argmax(axis=1)
    np_pred = logits.argmax(axis=1)
    assert np.all((keras_pred == np_pred) | fragile)
    assert np.mean(np_pred == y) < np.mean((x @ W + b).argmax(1) == y)  # the attack hurts


def test_fgsm_targeted_descends_towards_target(weights):
    W, b, x = weights["W"], weights["b"], weights["x"]
    target = (weights["y"] + 1) % 3
    x_adv = fgsm(dense(W, b), x, target, EPS, targeted=True)
    check_signs(x_adv, x, softmax_grad(W, b, x, target), W, EPS, sign=-1.0)


def test_fgsm_l2_is_normalised_gradient_step(weights):
    W, b, x, y = weights["W"], weights["b"], weights["x"], weights["y"]
    x_adv = fgsm(dense(W, b), x, y, 0.3, norm="l2")
    grad = softmax_grad(W, b, x, y)
    expected = x + 0.3 * grad / np.linalg.norm(grad, axis=1, keepdims=True)
    np.testing.assert_allclose(x_adv, expected, atol=1e-5)


def test_pgd_linf_on_logistic_reaches_the_box_corner(weights):
    # The BCE gradient of a logistic model always points along s * w with
    # s = sign(sigmoid(z) - y), so the loss over the box is maximised at the
    # corner clip(x + eps * s * sign(w)), which 2.5 eps of steps reach from any start.
    w, b, x, y = weights["w1"], weights["b1"], weights["x"], weights["y1"]
    model = dense(w, b)
    x_adv = pgd(model, x, y, EPS, steps=10, seed=3, clip=(0.0, 1.0))
    s = np.sign(expit(x.astype(float) @ w[:, 0] + b[0]) - y)
    corner = np.clip(x + EPS * s[:, None] * np.sign(w[:, 0]), 0.0, 1.0)
    np.testing.assert_allclose(x_adv, corner, atol=1e-6)
    expected_acc = np.mean(((corner @ w[:, 0] + b[0]) > 0) == y)
    assert np.mean((model.predict(x_adv, verbose=0)[:, 0] > 0) == y) == expected_acc


def test_pgd_l2_without_random_start_on_logistic_is_eps_along_w(weights):
    w, b, x, y = weights["w1"], weights["b1"], weights["x"], weights["y1"]
    x_adv = pgd(dense(w, b), x, y, 0.5, norm="l2", steps=10, random_start=False)
    s = np.sign(expit(x.astype(float) @ w[:, 0] + b[0]) - y)
    expected = x + 0.5 * s[:, None] * w[:, 0] / np.linalg.norm(w)
    np.testing.assert_allclose(x_adv, expected, atol=1e-5)


@pytest.fixture(scope="module")
def mlp():
    """A small MLP trained on digits (by scikit-learn, fast and seeded), as a Keras model."""
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    with warnings.catch_warnings():  # not converged to sklearn's tolerance; trained enough here
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=0).fit(x[:600], y[:600])
    assert clf.score(x[1500:], y[1500:]) > 0.85
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)])
    model.set_weights([a.astype("float32") for pair in zip(clf.coefs_, clf.intercepts_) for a in pair])
    assert np.mean(model.predict(x[1500:], verbose=0).argmax(1) == clf.predict(x[1500:])) > 0.99
    return model, x[1500:1700], y[1500:1700]


def _losses(model, x, y):
    return -log_softmax(model.predict(x, verbose=0).astype(float), axis=1)[np.arange(len(y)), y]


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.0)])
def test_pgd_stays_in_ball_and_range_and_beats_fgsm(mlp, norm, eps):
    model, x, y = mlp
    x_adv = pgd(model, x, y, eps, norm=norm, steps=10, seed=0, clip=(0.0, 1.0))
    delta = (x_adv - x).astype(float)
    size = np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert size.max() <= eps * (1 + 1e-5)
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    x_fgsm = fgsm(model, x, y, eps, norm=norm, clip=(0.0, 1.0))
    assert _losses(model, x_adv, y).mean() >= _losses(model, x_fgsm, y).mean()
    assert _losses(model, x_fgsm, y).mean() > _losses(model, x, y).mean()


def test_pgd_is_reproducible_from_seed(mlp):
    model, x, y = mlp
    a = pgd(model, x[:20], y[:20], 0.1, steps=3, seed=5)
    assert np.array_equal(a, pgd(model, x[:20], y[:20], 0.1, steps=3, seed=5, batch_size=7))
    assert not np.array_equal(a, pgd(model, x[:20], y[:20], 0.1, steps=3, seed=6))


def test_bad_parameters_are_refused(weights):
    model, x, y = dense(weights["W"], weights["b"]), weights["x"][:4], weights["y"][:4]
    with pytest.raises(ValueError, match=r"eps.*Received: eps=-0.1"):
        fgsm(model, x, y, -0.1)
    with pytest.raises(ValueError, match=r"norm.*Received: norm='l1'"):
        pgd(model, x, y, 0.1, norm="l1")
    with pytest.raises(ValueError, match=r"steps.*Received: steps=0"):
        pgd(model, x, y, 0.1, steps=0)
    with pytest.raises(ValueError, match=r"y.*class labels in \[0, 2\]"):
        fgsm(model, x, [0, 1, 2, 3], 0.1)


def test_inputs_of_another_shape_are_refused_in_one_line_before_keras_sees_them(weights):
    # Keras' own error for a wrong input shape prints the whole tensor; an attack
    # never reshapes silently (the evaluation of noisewise.robust._study does, and says so).
    model = dense(weights["W"], weights["b"])
    x = weights["x"][:4].reshape(4, 2, 4)
    with pytest.raises(ValueError) as err:
        pgd(model, x, weights["y"][:4], 0.1, seed=0)
    message = str(err.value)
    assert "\n" not in message and len(message) < 250, message
    assert "shape (8,) (8 values)" in message and "shape (2, 4) (8 values)" in message
    assert "Received: x of shape (4, 2, 4)" in message


@pytest.mark.parametrize("build, message", [
    (lambda: keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="relu")]), "relu"),
    (lambda: keras.Sequential([keras.Input((8,)), keras.layers.Reshape((2, 4))]), "output shape"),
    (lambda: keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="sigmoid")]),
     "multi-label"),
])
def test_models_without_logits_or_probabilities_are_refused(build, message):
    x = np.zeros((4, 8), "float32")
    with pytest.raises(ValueError, match=message):
        fgsm(build(), x, [0, 1, 0, 1], 0.1)


def test_regression_model_and_contradicting_from_logits_are_refused(weights):
    model = dense(weights["w1"], weights["b1"])
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="regression loss 'mse'"):
        fgsm(model, weights["x"][:4], [0, 1, 0, 1], 0.1)
    probs = dense(weights["W"], weights["b"], "softmax")
    with pytest.raises(ValueError, match="from_logits=True.*softmax"):
        fgsm(probs, weights["x"][:4], [0, 1, 2, 0], 0.1, from_logits=True)
