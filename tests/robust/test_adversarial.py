"""Adversarial training through ``fit``: the train step really trains on the attacked batch.

With a zero learning rate and one batch per epoch, the loss ``fit`` reports is
the loss of the batch the train step built, which for FGSM (deterministic) must
equal the loss on :func:`noisewise.robust.fgsm`'s examples computed outside ``fit``.
"""

import keras
import numpy as np
import pytest
from scipy.special import log_softmax

from noisewise.robust import AdversarialModel, adversarial_model, evaluate_for_study, fgsm, pgd

N, D, K, EPS = 40, 6, 3, 0.1


@pytest.fixture
def data():
    rng = np.random.default_rng(11)
    w = rng.normal(size=(D, K))
    x = rng.uniform(size=(N, D)).astype("float32")
    y = (x @ w + rng.normal(size=(N, K))).argmax(axis=1)
    return x, y, w.astype("float32")


def make_net(w, hidden=False):
    if hidden:
        keras.utils.set_random_seed(0)
        net = keras.Sequential([keras.Input((D,)), keras.layers.Dense(8, activation="tanh"),
                                keras.layers.Dense(K)])
    else:
        net = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K)])
        net.set_weights([w, np.zeros(K, "float32")])
    return net


def compiled(adv, lr=0.0):
    adv.compile(optimizer=keras.optimizers.SGD(learning_rate=lr),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return adv


def ce(net, x, y):
    if len(x) == 0:
        return np.zeros(0)
    return -log_softmax(net.predict(x, verbose=0).astype(float), axis=1)[np.arange(len(y)), y]


def fit_losses(adv, x, y, epochs=1):
    return adv.fit(x, y, epochs=epochs, batch_size=len(x), shuffle=False, verbose=0).history["loss"]


@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_train_step_loss_is_the_loss_on_fgsm_examples(data, ratio):
    x, y, w = data
    net = make_net(w, hidden=True)
    adv = compiled(AdversarialModel(net, attack="fgsm", eps=EPS, ratio=ratio, clip=(0.0, 1.0), seed=0))
    (loss,) = fit_losses(adv, x, y)
    k = round(ratio * N)  # the first k examples of the batch are attacked
    x_adv = fgsm(net, x[:k], y[:k], EPS, clip=(0.0, 1.0))
    expected = np.concatenate([ce(net, x_adv, y[:k]), ce(net, x[k:], y[k:])]).mean()
    assert loss == pytest.approx(expected, rel=1e-5)
    assert loss > ce(net, x, y).mean()


def test_pgd_training_draws_new_random_starts_each_step_and_replays_from_its_seed(data):
    x, y, w = data
    net = make_net(w)

    def run(seed):
        adv = compiled(AdversarialModel(net, attack="pgd", eps=EPS, steps=3, noise_stddev=0.3, seed=seed))
        return fit_losses(adv, x, y, epochs=3)

    a = run(1)
    assert len(set(a)) == 3  # a stale seed (e.g. a constant baked into a jitted step) would repeat
    assert a == pytest.approx(run(1), rel=1e-6)
    # PGD maximises the loss inside the same ball FGSM steps to, so with a
    # zero learning rate its training loss exceeds the clean loss.
    clean = ce(net, x, y).mean()
    no_noise = compiled(AdversarialModel(net, attack="pgd", eps=EPS, steps=3, seed=0))
    assert fit_losses(no_noise, x, y)[0] > clean


def test_noise_only_training_is_gaussian_augmentation(data):
    x, y, w = data
    net = make_net(w)
    adv = compiled(AdversarialModel(net, attack=None, noise_stddev=0.5, seed=0))
    losses = fit_losses(adv, x, y, epochs=2)
    assert losses[0] != losses[1] and ce(net, x, y).mean() not in losses


def test_fit_trains_the_wrapped_model_in_place(data):
    x, y, w = data
    net = make_net(w, hidden=True)
    before = [v.copy() for v in net.get_weights()]
    adv = compiled(AdversarialModel(net, attack="pgd", eps=EPS, steps=2, ratio=0.5, seed=0), lr=0.5)
    adv.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, net.get_weights()))
    np.testing.assert_allclose(net.predict(x, verbose=0), adv.predict(x, verbose=0), rtol=1e-6)


def test_the_wrapper_is_evaluated_like_the_wrapped_model(data):
    x, y, w = data
    net = make_net(w)
    adv = AdversarialModel(net, attack="fgsm", eps=EPS, seed=0)
    assert adv.output_shape == net.output_shape == (None, K)
    config = {"attacks": [{"type": "fgsm", "eps": EPS}], "smoothing": {"sigma": 0.2, "n0": 10, "n": 50}}
    assert evaluate_for_study(adv, x, y, config, seed=0) == evaluate_for_study(net, x, y, config, seed=0)


def test_config_round_trip_and_study_interface(data):
    net = make_net(data[2])
    adv = AdversarialModel(net, attack="pgd", eps=0.2, norm="l2", steps=4, ratio=0.25, noise_stddev=0.1,
                           clip=(0, 1), seed=3)
    again = AdversarialModel.from_config(adv.get_config())
    for key in ("attack", "eps", "norm", "steps", "ratio", "noise_stddev", "clip", "seed"):
        assert getattr(again, key) == getattr(adv, key)
    arm = adversarial_model(net, {"attack": "fgsm", "eps": 0.05, "ratio": 0.5}, seed=9)
    assert (arm.attack, arm.eps, arm.ratio, arm.seed) == ("fgsm", 0.05, 0.5, 9)
    with pytest.raises(ValueError, match="Unknown adversarial training key 'epsilon'"):
        adversarial_model(net, {"epsilon": 0.1})


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": -1.0}, r"eps.*Received: eps=-1.0"),
    ({"ratio": 1.5}, r"ratio.*Received: ratio=1.5"),
    ({"attack": "cw"}, r"attack.*Received: attack='cw'"),
    ({"noise_stddev": -0.1}, r"noise_stddev.*Received: noise_stddev=-0.1"),
    ({"norm": "l1"}, r"norm.*Received: norm='l1'"),
])
def test_bad_parameters_are_refused(data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdversarialModel(make_net(data[2]), **kwargs)


@pytest.mark.slow
def test_pgd_training_raises_pgd_accuracy_on_digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_train, y_train, x_test, y_test = x[:1200], y[:1200], x[1400:], y[1400:]

    def trained(adversarial):
        keras.utils.set_random_seed(0)
        net = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                                keras.layers.Dense(10)])
        model = AdversarialModel(net, attack="pgd", eps=0.1, steps=5, ratio=0.5, clip=(0, 1), seed=0) \
            if adversarial else net
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x_train, y_train, epochs=15, batch_size=64, verbose=0)
        x_adv = pgd(net, x_test, y_test, 0.1, steps=10, seed=1, clip=(0, 1))
        return net.predict(x_adv, verbose=0).argmax(axis=1) == y_test

    plain, robust = trained(False), trained(True)
    # Paired on the same test points: the difference of two proportions has
    # standard error sqrt(mean((r - p - mean)^2) / n); require 3 of them.
    diff = robust.astype(float) - plain
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    print("PGD accuracy plain", plain.mean(), "adversarially trained", robust.mean())
    assert diff.mean() > 3 * se, (plain.mean(), robust.mean())
