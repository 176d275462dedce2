"""Anomaly detection: metrics against scikit-learn, the holdout split, and the
noise-contrast loss recomputed by hand from a twin wrapper's noise draws."""

import keras
import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.svm import OneClassSVM

from noisewise.anomaly import (
    NoiseContrastModel,
    detection_metrics,
    holdout_split,
    isolation_forest_scores,
    one_class_svm_scores,
    reconstruction_scores,
)

D = 4


def make_net(hidden=0, seed=5):
    layers = [keras.Input((D,))]
    if hidden:
        layers.append(keras.layers.Dense(hidden, activation="relu"))
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    net = keras.Sequential(layers)
    rng = np.random.default_rng(seed)
    net.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5 for w in net.get_weights()])
    return net


def data(n=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, D)).astype("float32")


# --- detection_metrics ---------------------------------------------------------------


def test_metrics_agree_with_sklearn_on_hand_cases():
    scores = [0.1, 0.4, 0.35, 0.8, 0.35, 0.0]
    flags = [False, False, True, True, False, True]
    got = detection_metrics(scores, flags)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(flags, scores))
    assert got["average_precision"] == pytest.approx(average_precision_score(flags, scores))
    # By hand: of the 9 (anomaly, normal) pairs, 4 are ordered right and 1 tied (counts half).
    assert got["roc_auc"] == pytest.approx(4.5 / 9)
    assert detection_metrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(
        {"roc_auc": 0.75, "average_precision": 0.5 * 1 + 0.5 * 2 / 3})


def test_metrics_perfect_and_chance():
    flags = np.array([0, 1, 0, 1, 1, 0], dtype=bool)
    perfect = detection_metrics(flags * 2.0 + 1.0, flags)
    assert perfect == {"roc_auc": 1.0, "average_precision": 1.0}
    assert detection_metrics(np.ones(6), flags)["roc_auc"] == 0.5  # all tied
    assert detection_metrics(-flags.astype(float), flags)["roc_auc"] == 0.0


@pytest.mark.parametrize("scores, flags, match", [
    ([0.1, 0.2, 0.3], [False, False, False], "at least one anomaly and one normal row"),
    ([0.1, 0.2], [1, 1], "Received: 2 anomalies among 2 rows"),
    ([0.1, 0.2], [0, 2], "booleans or 0/1"),
    ([0.1, 0.2], [0, 1, 1], "one flag per score"),
    ([0.1, np.nan], [0, 1], "`scores` must be a 1-D array of finite numbers"),
])
def test_metrics_refuse_bad_input(scores, flags, match):
    with pytest.raises(ValueError, match=match):
        detection_metrics(scores, flags)


# --- holdout_split -------------------------------------------------------------------


def test_split_keeps_the_anomaly_out_of_training_and_is_reproducible():
    x = np.arange(200.0).reshape(100, 2)
    y = np.repeat(np.arange(5), 20)
    s = holdout_split(x, y, anomaly_class=2, test_size=0.3, seed=1)
    assert 2 not in set(s.y_train.tolist()) and set(s.y_train.tolist()) == {0, 1, 3, 4}
    assert np.bincount(s.y_test).tolist() == [6] * 5  # stratified: 30 % of each class
    assert len(s.y_train) == 4 * 14
    assert s.is_anomaly.dtype == bool and s.is_anomaly.tolist() == (s.y_test == 2).tolist()
    # Rows travel with their labels, and no row is on both sides.
    np.testing.assert_array_equal(s.x_test[:, 0] // 40, s.y_test)
    assert not set(s.x_train[:, 0].tolist()) & set(s.x_test[:, 0].tolist())
    again = holdout_split(x, y, anomaly_class=2, test_size=0.3, seed=1)
    np.testing.assert_array_equal(again.x_test, s.x_test)
    np.testing.assert_array_equal(again.x_train, s.x_train)
    other = holdout_split(x, y, anomaly_class=2, test_size=0.3, seed=2)
    assert not np.array_equal(other.x_test, s.x_test)


def test_split_breast_cancer_convention_and_string_labels():
    # Class 0 as the anomaly (breast-cancer's malignant), an integer test size.
    y = np.array([0] * 10 + [1] * 30)
    s = holdout_split(np.zeros((40, 3)), y, anomaly_class=0, test_size=8, seed=0)
    assert (s.y_train == 1).all() and len(s.y_train) == 24
    assert s.is_anomaly.sum() == 2 and len(s.is_anomaly) == 8
    labels = np.array(["ok", "bad"] * 10)
    s = holdout_split(np.zeros((20, 1)), labels, anomaly_class="bad", test_size=0.5, seed=0)
    assert set(s.y_train.tolist()) == {"ok"} and s.is_anomaly.sum() == 5


@pytest.mark.parametrize("kwargs, match", [
    ({"anomaly_class": 7}, "`anomaly_class` must be one of the labels in y"),
    ({"test_size": 0.0}, r"`test_size` must be in \(0.0, 1.0\)"),
    ({"test_size": 40}, "`test_size` must be <= 39"),
    ({"seed": None}, "`seed` must be an integer"),
    ({"seed": -1}, "`seed` must be >= 0"),
    ({"y": np.zeros(3)}, "`y` must be a 1-D array of labels"),
])
def test_split_refuses_bad_parameters(kwargs, match):
    args = {"x": np.zeros((40, 2)), "y": np.arange(40) % 2, "anomaly_class": 1,
            "test_size": 0.25, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        holdout_split(args.pop("x"), args.pop("y"), args.pop("anomaly_class"), **args)


# --- scikit-learn baselines ----------------------------------------------------------


def test_baselines_turn_sklearn_signs():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(60, 3))
    test = np.concatenate([rng.normal(size=(10, 3)), rng.normal(8.0, 1.0, size=(5, 3))])
    forest = IsolationForest(random_state=3, n_estimators=50).fit(train)
    got = isolation_forest_scores(train, test, seed=3, n_estimators=50)
    np.testing.assert_allclose(got, -forest.score_samples(test))
    svm = OneClassSVM(nu=0.2).fit(train)
    np.testing.assert_allclose(one_class_svm_scores(train, test, nu=0.2), -svm.decision_function(test))
    flags = np.arange(15) >= 10
    assert detection_metrics(got, flags)["roc_auc"] == 1.0
    assert (one_class_svm_scores(train, test)[flags] > 0).all()  # outside the support
    images = rng.normal(size=(20, 2, 2, 1))  # any row shape is flattened
    assert isolation_forest_scores(images, images[:4], seed=0).shape == (4,)
    with pytest.raises(ValueError, match="`random_state` is set by `seed`"):
        isolation_forest_scores(train, test, seed=0, random_state=1)


# --- reconstruction_scores -----------------------------------------------------------


def test_reconstruction_scores_match_numpy():
    ae = keras.Sequential([keras.Input((D,)), keras.layers.Dense(2, activation="tanh"),
                           keras.layers.Dense(D)])
    x = data(10)
    recon = np.asarray(keras.ops.convert_to_numpy(ae(x)), dtype="float64")
    got = reconstruction_scores(ae, x, batch_size=3)
    np.testing.assert_allclose(got, ((x - recon) ** 2).mean(axis=1), rtol=1e-5)
    images = keras.Sequential([keras.Input((2, 3, 1)), keras.layers.Rescaling(0.5)])
    x = np.arange(24.0).reshape(4, 2, 3, 1)
    np.testing.assert_allclose(reconstruction_scores(images, x), (0.25 * x**2).reshape(4, -1).mean(1))
    with pytest.raises(ValueError, match="`model` must reconstruct its input"):
        reconstruction_scores(make_net(), data(4))
    with pytest.raises(ValueError, match="`batch_size` must be >= 1. Received: batch_size=0"):
        reconstruction_scores(ae, data(4), batch_size=0)


# --- NoiseContrastModel --------------------------------------------------------------


def compiled(detector, lr=0.0):
    detector.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), metrics=["accuracy"])
    return detector


def bce(p, t):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))


@pytest.mark.parametrize("relative", [None, "std"])
def test_loss_is_the_bce_of_the_concatenated_batch(relative):
    x = data()
    detector = compiled(NoiseContrastModel(make_net(), stddev=0.7, relative=relative, seed=4))
    logs = detector.train_on_batch(x, None, return_dict=True)  # lr 0: weights stay put
    twin = NoiseContrastModel(make_net(), stddev=0.7, relative=relative, seed=4)
    noisy = np.asarray(keras.ops.convert_to_numpy(twin.add_noise(x)), dtype="float64")
    scale = x.std(axis=0) if relative == "std" else 1.0
    unit = (noisy - x) / (0.7 * scale)
    assert 0.5 < unit.std() < 1.5 and abs(unit.mean()) < 0.5  # standard normal draws
    both = np.concatenate([x, noisy]).astype("float32")
    p = np.asarray(keras.ops.convert_to_numpy(twin.model(both)), dtype="float64")[:, 0]
    targets = np.repeat([0.0, 1.0], len(x))
    assert logs["loss"] == pytest.approx(bce(p, targets), rel=1e-5)
    assert logs["accuracy"] == pytest.approx(np.mean(p[: len(x)] < 0.5))  # clean rows vs 0


def test_noise_is_reproducible_and_labels_are_ignored():
    x = data()
    draws = [keras.ops.convert_to_numpy(NoiseContrastModel(make_net(), seed=s).add_noise(x))
             for s in (1, 1, 2)]
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.allclose(draws[0], draws[2])
    runs = []
    for y in (None, np.arange(len(x)) % 3):
        detector = compiled(NoiseContrastModel(make_net(), seed=1), lr=0.1)
        runs.append(detector.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0).history["loss"])
        runs.append(detector.model.get_weights()[0])
    np.testing.assert_allclose(runs[0], runs[2], rtol=1e-6)
    np.testing.assert_allclose(runs[1], runs[3], rtol=1e-6)
    assert not np.allclose(runs[1], make_net().get_weights()[0])  # it did train


def test_trains_then_scores_noisy_rows_higher():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, D))
    x = (rng.normal(size=(256, 2)) @ basis).astype("float32")  # normal rows lie on a plane
    keras.utils.set_random_seed(0)
    detector = NoiseContrastModel(make_net(hidden=16), stddev=0.5, seed=0)
    detector.compile(optimizer=keras.optimizers.Adam(0.02))
    history = detector.fit(x, epochs=25, batch_size=64, validation_split=0.25, verbose=0).history
    assert history["val_loss"][-1] < 0.55 < history["val_loss"][0]  # below chance, log 2 = 0.69
    clean = (rng.normal(size=(100, 2)) @ basis).astype("float32")
    noisy = clean + rng.normal(scale=0.5, size=clean.shape).astype("float32")
    scores = detector.anomaly_scores(np.concatenate([clean, noisy]), batch_size=50)
    assert scores.shape == (200,) and scores.dtype == np.float64
    assert detection_metrics(scores, np.arange(200) >= 100)["roc_auc"] > 0.9


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="jax.vmap of a stateless step is JAX-only")
def test_replicas_under_vmap_draw_their_own_noise():
    import jax

    x = data()
    detector = compiled(NoiseContrastModel(make_net(), seed=0))
    detector.train_on_batch(x)  # builds the optimizer and metrics
    values = [[v.value for v in vs] for vs in (detector.trainable_variables, detector.metrics_variables,
                                               detector.optimizer.variables)]
    states = np.stack([np.array([0, s], "uint32") for s in (1, 2, 1)])

    @jax.jit
    @jax.vmap
    def losses(state):
        loss, _ = detector.compute_loss_and_updates(values[0], [state], values[1], x, None, None,
                                                    training=True, optimizer_variables=values[2])
        return loss

    got = np.asarray(losses(states))
    assert got[0] == got[2] != got[1]


def test_save_and_load_round_trip(tmp_path):
    detector = compiled(NoiseContrastModel(make_net(), stddev=0.3, relative="std", seed=7), lr=0.1)
    clone = NoiseContrastModel.from_config(detector.get_config())
    assert (clone.stddev, clone.relative, clone.seed) == (0.3, "std", 7)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone.add_noise(data())),
                                  keras.ops.convert_to_numpy(detector.add_noise(data())))
    detector.fit(data(), epochs=1, verbose=0)
    detector.save(tmp_path / "detector.keras")
    loaded = keras.saving.load_model(tmp_path / "detector.keras")
    np.testing.assert_allclose(loaded.anomaly_scores(data()), detector.anomaly_scores(data()), rtol=1e-6)
    assert loaded.fit(data(), epochs=1, verbose=0).history["loss"][0] > 0  # compiled again on loading


@pytest.mark.parametrize("kwargs, match", [
    ({"stddev": 0.0}, r"`stddev` must be in \(0.0, inf\]. Received: stddev=0.0"),
    ({"stddev": float("inf")}, "`stddev` must be a finite number"),
    ({"relative": "range"}, "`relative` must be one of None, 'std'. Received: relative='range'"),
    ({"seed": -2}, "`seed` must be >= 0"),
])
def test_contrast_refuses_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NoiseContrastModel(make_net(), **kwargs)


@pytest.mark.parametrize("units, activation", [(2, "softmax"), (2, "sigmoid"), (1, None)])
def test_contrast_needs_one_sigmoid_unit(units, activation):
    net = keras.Sequential([keras.Input((D,)), keras.layers.Dense(units, activation=activation)])
    with pytest.raises(ValueError, match="`model` must be a built keras.Model ending in one sigmoid unit"):
        NoiseContrastModel(net)
    with pytest.raises(ValueError, match="`model` must be a keras.Model"):
        NoiseContrastModel("dense")
