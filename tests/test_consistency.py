"""The Pi-model's loss is the paper's formula, on every backend.

With a zero learning rate the weights stay put, so the loss a train step
reports can be recomputed outside ``fit``: the two stochastic passes are
replayed by a twin of the model (same weights, same dropout seed), whose seed
generator draws the same sequence of masks the train step drew.
"""

import math

import keras
import numpy as np
import pytest

from noisewise.consistency import PiModel, pi_model, rampup

N, D, K = 12, 4, 3


def make_net(rate=0.5, seed=3, activation="softmax", units=K):
    layers = [keras.Input((D,))]
    if rate:
        layers.append(keras.layers.Dropout(rate, seed=seed))
    layers.append(keras.layers.Dense(units, activation=activation))
    net = keras.Sequential(layers)
    rng = np.random.default_rng(5)
    net.set_weights([rng.normal(size=(D, units)).astype("float32"),
                     rng.normal(size=units).astype("float32") * 0.1])
    return net


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype("float32")
    y = rng.integers(0, K, size=N)
    y[N // 2:] = -1  # the second half is unlabeled
    return x, y


def compiled(pi, lr=0.0, **kwargs):
    pi.compile(optimizer=keras.optimizers.SGD(learning_rate=lr),
               loss="sparse_categorical_crossentropy", **kwargs)
    return pi


def probs(net, x):
    return np.asarray(keras.ops.convert_to_numpy(net(x, training=True)), dtype="float64")


def test_loss_is_the_formula_on_a_hand_case(data):
    x, y = data
    weight = 7.0
    pi = compiled(PiModel(make_net(), weight=weight), metrics=["accuracy"])
    logs = pi.train_on_batch(x, y, return_dict=True)
    twin = make_net()  # same weights and dropout seed: replays the two passes
    p1, p2 = probs(twin, x), probs(twin, x)
    assert not np.allclose(p1, p2)  # two independent dropout masks
    labeled = y >= 0
    supervised = -np.log(p1[labeled, y[labeled]]).sum() / N  # divided by the whole batch
    consistency = np.mean((p1 - p2) ** 2)  # over rows and classes
    assert logs["loss"] == pytest.approx(supervised + weight * consistency, rel=1e-5)
    # Training accuracy counts the labeled rows only.
    assert logs["accuracy"] == pytest.approx(np.mean(p1[labeled].argmax(1) == y[labeled]))


def test_weight_zero_trains_as_the_plain_model(data):
    x, y = data
    y = np.abs(y)  # every row labeled
    plain = make_net()
    plain.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    expected = plain.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0).history["loss"]
    pi = compiled(PiModel(make_net(), weight=0.0), lr=0.1)
    got = pi.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    for a, b in zip(pi.model.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_unlabeled_rows_never_enter_the_supervised_term(data):
    x, y = data
    results = []
    for fill, label in ((0.0, -1), (50.0, -7)):  # other inputs and negative codes there
        xs, ys = x.copy(), y.copy()
        xs[N // 2:], ys[N // 2:] = fill, label
        pi = compiled(PiModel(make_net(rate=0.0), weight=0.0), lr=0.5)
        loss = pi.train_on_batch(xs, ys)
        results.append((loss, pi.model.get_weights()))
    (loss_a, w_a), (loss_b, w_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    for a, b in zip(w_a, w_b):  # the same gradient step
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_fit_ramps_the_weight_up_each_epoch(data):
    x, y = data
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(pi.consistency_weight)))

    pi = compiled(PiModel(make_net(), weight=10.0, rampup_epochs=4))
    pi.fit(x, y, epochs=6, batch_size=N, verbose=0, callbacks=[Record()])
    expected = [10.0 * math.exp(-5.0 * (1.0 - min(t / 4, 1.0)) ** 2) for t in range(6)]
    np.testing.assert_allclose(seen, expected, rtol=1e-6)


def test_each_epoch_loss_uses_that_epochs_weight(data):
    x, y = data
    pi = compiled(PiModel(make_net(), weight=10.0, rampup_epochs=2))
    losses = pi.fit(x, y, epochs=3, batch_size=N, shuffle=False, verbose=0).history["loss"]
    twin = make_net()  # one step per epoch: passes 2t + 1 and 2t + 2 are epoch t's
    labeled = y >= 0
    for t, loss in enumerate(losses):
        p1, p2 = probs(twin, x), probs(twin, x)
        supervised = -np.log(p1[labeled, y[labeled]]).sum() / N
        w = 10.0 * math.exp(-5.0 * (1.0 - min(t / 2, 1.0)) ** 2)
        assert loss == pytest.approx(supervised + w * np.mean((p1 - p2) ** 2), rel=1e-5), t


def test_rampup_values():
    assert rampup(0, 80) == pytest.approx(math.exp(-5.0))
    assert rampup(40, 80) == pytest.approx(math.exp(-1.25))
    assert rampup(80, 80) == 1.0 and rampup(500, 80) == 1.0
    assert rampup(0, 0) == 1.0  # no ramp-up
    values = [rampup(t, 30) for t in range(31)]
    assert all(a < b for a, b in zip(values, values[1:]))


def test_logits_and_one_sigmoid_unit(data):
    x, y = data
    pi = PiModel(make_net(activation=None), weight=2.0)
    pi.compile(optimizer=keras.optimizers.SGD(0.0),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert pi.from_logits is True
    loss = pi.train_on_batch(x, y)
    twin = make_net(activation=None)
    z1, z2 = probs(twin, x), probs(twin, x)
    p1 = np.exp(z1 - z1.max(1, keepdims=True))
    p1 /= p1.sum(1, keepdims=True)
    p2 = np.exp(z2 - z2.max(1, keepdims=True))
    p2 /= p2.sum(1, keepdims=True)
    lab = y >= 0
    expected = -np.log(p1[lab, y[lab]]).sum() / N + 2.0 * np.mean((p1 - p2) ** 2)
    assert loss == pytest.approx(expected, rel=1e-5)

    yb = np.where(y >= 0, y % 2, -1)
    pi = PiModel(make_net(activation="sigmoid", units=1), weight=3.0)
    pi.compile(optimizer=keras.optimizers.SGD(0.0), loss="binary_crossentropy")
    loss = pi.train_on_batch(x, yb.reshape(-1, 1))
    twin = make_net(activation="sigmoid", units=1)
    q1, q2 = probs(twin, x)[:, 0], probs(twin, x)[:, 0]
    lab = yb >= 0
    q = np.clip(q1[lab], 1e-7, 1 - 1e-7)
    bce = -(yb[lab] * np.log(q) + (1 - yb[lab]) * np.log(1 - q)).sum() / N
    # Two classes [1 - q, q]: the mean over both of the squared differences is (q1 - q2)^2.
    assert loss == pytest.approx(bce + 3.0 * np.mean((q1 - q2) ** 2), rel=1e-4)


def test_augment_layer_draws_on_each_pass(data):
    x, y = data
    augment = keras.layers.GaussianNoise(0.5, seed=9)
    pi = compiled(PiModel(make_net(rate=0.0), weight=1.0, augment=augment))
    loss = pi.train_on_batch(x, y)
    twin_noise, twin = keras.layers.GaussianNoise(0.5, seed=9), make_net(rate=0.0)
    p1 = probs(twin, twin_noise(x, training=True))
    p2 = probs(twin, twin_noise(x, training=True))
    lab = y >= 0
    expected = -np.log(p1[lab, y[lab]]).sum() / N + np.mean((p1 - p2) ** 2)
    assert loss == pytest.approx(expected, rel=1e-5)
    # Inference sees the clean inputs.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pi(x, training=False)),
                               keras.ops.convert_to_numpy(twin(x, training=False)), rtol=1e-6)


def test_evaluate_is_the_supervised_loss(data):
    x, y = data
    pi = compiled(PiModel(make_net(), weight=100.0))
    p = np.asarray(keras.ops.convert_to_numpy(pi.model(x, training=False)), dtype="float64")
    lab = y >= 0
    expected = -np.log(p[lab, y[lab]]).mean()
    assert pi.evaluate(x[lab], y[lab], verbose=0) == pytest.approx(expected, rel=1e-5)


def test_get_config_round_trips(tmp_path, data):
    x, y = data
    pi = PiModel(make_net(), weight=4.0, rampup_epochs=9,
                 augment=keras.layers.GaussianNoise(0.1, seed=1), name="pi")
    again = PiModel.from_config(pi.get_config())
    assert (again.weight, again.rampup_epochs, again.from_logits) == (4.0, 9, False)
    assert isinstance(again.augment, keras.layers.GaussianNoise)
    compiled(pi, metrics=["accuracy"]).fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "pi.keras"
    pi.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)),
                               keras.ops.convert_to_numpy(pi(x)), rtol=1e-6)
    assert float(keras.ops.convert_to_numpy(loaded.consistency_weight)) == pytest.approx(
        4.0 * math.exp(-5.0))
    logs = loaded.train_on_batch(x, y, return_dict=True)  # compiled on loading, metrics too
    assert loaded.compiled and math.isfinite(logs["loss"]) and "accuracy" in logs


@pytest.mark.parametrize("kwargs, name", [
    ({"weight": -1.0}, "weight"),
    ({"weight": float("nan")}, "weight"),
    ({"rampup_epochs": -2}, "rampup_epochs"),
    ({"rampup_epochs": 1.5}, "rampup_epochs"),
    ({"from_logits": "yes"}, "from_logits"),
    ({"augment": "flip"}, "augment"),
])
def test_bad_parameters_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=rf"`{name}`.*Received: {name}="):
        PiModel(make_net(), **kwargs)


def test_bad_model_and_unknown_study_key():
    with pytest.raises(ValueError, match="`model` must be a keras.Model"):
        PiModel("mlp")
    with pytest.raises(ValueError, match="from_logits=True or False"):
        PiModel(make_net(activation="tanh"))
    with pytest.raises(ValueError, match="Unknown consistency key 'stddev'"):
        pi_model(make_net(), {"stddev": 0.1})
    with pytest.raises(ValueError, match=r"`epoch`.*Received: epoch=-1"):
        rampup(-1, 5)
