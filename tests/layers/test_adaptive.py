"""The adaptive schedule, NoiseScheduler driving it in a real fit, and the pipeline's probability."""

import keras
import numpy as np
import pytest

import noisewise
from conftest import to_numpy
from noisewise import schedules
from noisewise.augment import AugmentPipeline
from noisewise.augment.image import build_transform
from noisewise.study.analysis.estimates import is_higher_better, metric_bounds


def logs(train, val, name="accuracy"):
    return {name: train, f"val_{name}": val}


def test_level_rises_above_the_target_falls_below_and_stays_in_bounds():
    ada = schedules.adaptive("accuracy", target=0.1, gain=0.5, bounds=(0.0, 0.3))
    level, seen = 0.1, []
    for gap in (0.3,) * 4 + (0.0,) * 8:  # train - val accuracy
        level = ada.update(level, logs(0.7 + gap, 0.7))
        seen.append(level)
    steps = np.diff([0.1, *seen])
    assert (steps[:2] > 0).all() and seen[2] == seen[3] == pytest.approx(0.3)  # at the top
    assert (steps[4:10] < 0).all() and seen[-1] == seen[-2] == 0.0  # the floor, no lower
    assert all(0.0 <= v <= np.float32(0.3) for v in seen)  # float32, as the level variable
    assert seen[0] == pytest.approx(0.1 + 0.5 * (0.3 - 0.1), abs=1e-6)


def test_loss_signal_is_oriented_so_overfitting_raises_the_level():
    ada = schedules.adaptive("loss", gain=1.0, bounds=(0.0, 5.0))
    assert ada.update(1.0, logs(0.2, 0.7, "loss")) == pytest.approx(1.5)  # val loss above train
    assert ada.update(1.0, logs(0.7, 0.2, "loss")) == pytest.approx(0.5)
    maxed = schedules.adaptive("mse", mode="max", bounds=(0.0, 5.0))
    assert maxed.update(1.0, logs(0.7, 0.2, "mse")) == pytest.approx(1.5)
    assert ada.update(1.0, logs(float("nan"), 0.2, "loss")) == 1.0  # a broken epoch leaves it


@pytest.mark.parametrize("kwargs, message", [
    ({"gain": 0}, "`gain` must be in (0.0, inf]. Received: gain=0"),
    ({"gain": float("inf")}, "`gain` must be a finite number. Received: gain=inf"),
    ({"bounds": (1.0, 0.0)}, "`bounds` must satisfy low <= high. Received: bounds=(1.0, 0.0)"),
    ({"bounds": (0.0, float("nan"))}, "`bounds` must be a pair (low, high) of finite numbers"),
    ({"target": 1.5}, "`target` must be in [-1, 1]"),
    ({"target": float("nan")}, "`target` must be a finite number"),
    ({"signal": "val_accuracy"}, "`signal` must be a metric's name in the training logs"),
    ({"mode": "up"}, "`mode` must be one of 'auto', 'max', 'min'. Received: mode='up'"),
])
def test_bad_arguments_are_refused_naming_them(kwargs, message):
    with pytest.raises(ValueError) as info:
        schedules.adaptive(**kwargs)
    assert message in str(info.value)


def test_a_loss_target_may_exceed_one_and_the_config_round_trips():
    ada = schedules.adaptive("loss", target=2.5, gain=0.3, bounds=[0.1, 4])
    config = schedules.serialize(ada)
    assert config == {"kind": "adaptive", "signal": "loss", "target": 2.5, "gain": 0.3,
                      "bounds": [0.1, 4.0], "mode": "auto"}
    assert schedules.get(config) == ada and repr(ada).startswith("adaptive(signal='loss'")
    with pytest.raises(TypeError, match="sets the level from each epoch's logs"):
        ada(3)


@pytest.mark.parametrize("name", ["loss", "accuracy", "auc", "mae", "mse", "precision",
                                  "binary_crossentropy", "root_mean_squared_error", "f1_score",
                                  "test_ece", "test_mc_nll", "test_brier", "test_mc_aurc",
                                  "piece_count", "val_nll_x"])
def test_the_direction_and_range_rules_agree_with_the_statistics(name):
    assert schedules.higher_is_better(name) == is_higher_better(name)
    assert schedules.is_fraction(name) == (metric_bounds(name) == (0.0, 1.0))


def memorising_model(start):
    model = keras.Sequential([keras.Input((8,)), noisewise.GaussianNoise(start, seed=1),
                              keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(96, 8)).astype("float32"), RNG.integers(0, 2, (96, 1)).astype("float32")


def test_a_real_fit_raises_the_level_while_train_accuracy_outruns_validation():
    keras.utils.set_random_seed(0)
    model = memorising_model(0.0)
    ada = schedules.adaptive("accuracy", target=0.05, gain=1.0, bounds=(0.0, 2.0))
    history = model.fit(X[:32], Y[:32], validation_data=(X[32:], Y[32:]), epochs=8,
                        batch_size=8, verbose=0, callbacks=[noisewise.NoiseScheduler(ada)])
    h = history.history
    levels = h["noise_level"]
    assert levels[0] == 0.0
    for e in range(7):  # each epoch trained with the level the previous one's logs set
        epoch_logs = {"accuracy": h["accuracy"][e], "val_accuracy": h["val_accuracy"][e]}
        assert levels[e + 1] == pytest.approx(ada.update(levels[e], epoch_logs), abs=1e-7)
    # Random labels: the model memorises its 32 rows and guesses the other 64.
    gaps = np.subtract(h["accuracy"], h["val_accuracy"])
    assert gaps.max() > 0.05 and max(levels) > 0.0
    assert model.layers[0].get_level() == pytest.approx(
        ada.update(levels[-1], {"accuracy": h["accuracy"][-1],
                                "val_accuracy": h["val_accuracy"][-1]}), abs=1e-7)


@pytest.mark.parametrize("fit_kwargs, schedule, message", [
    ({}, schedules.adaptive("accuracy"), "no epoch of this fit was validated"),
    ({"validation_data": (X[32:], Y[32:])}, schedules.adaptive("auc"),
     "reads the metric 'auc' and its validation curve, and epoch 0's logs lack 'auc'"),
    ({"validation_data": (X[32:], Y[32:])}, schedules.adaptive(bounds=(0.5, 1.0)),
     "The starting level of layer"),
])
def test_missing_metrics_and_a_start_outside_bounds_are_refused(fit_kwargs, schedule, message):
    with pytest.raises(ValueError) as info:
        memorising_model(0.1).fit(X[:32], Y[:32], epochs=1, batch_size=16, verbose=0,
                                  callbacks=[noisewise.NoiseScheduler(schedule)], **fit_kwargs)
    assert message in str(info.value)
    if "lack" in message:
        assert "Logs' keys: ['accuracy', 'loss', 'val_accuracy', 'val_loss']" in str(info.value)


def test_per_step_adaptation_is_refused():
    with pytest.raises(ValueError, match="use by='epoch'. Received: by='step'"):
        noisewise.NoiseScheduler(schedules.adaptive(), by="step")


# -- the augmentation pipeline's probability ------------------------------------
SPEC = [{"type": "gaussian_noise", "stddev": 10.0}]
GREY = np.full((400, 4, 4, 1), 100.0, "float32")


def augmented(out):
    return np.abs(np.asarray(out) - GREY).reshape(len(GREY), -1).max(axis=1) > 0


def test_probability_zero_and_one_in_the_data_pipeline_and_at_a_model_input():
    # At 1, every example gets the transforms' own output: the same layer, seeded
    # as the pipeline seeds it, applied alone.
    alone = to_numpy(build_transform(SPEC[0], seed=3)(GREY, training=True))
    assert augmented(alone).all()
    np.testing.assert_array_equal(to_numpy(AugmentPipeline(SPEC, seed=3)(GREY)), alone)
    # augment() compiles the transform (XLA on JAX): equal up to float32 rounding.
    np.testing.assert_allclose(AugmentPipeline(SPEC, seed=3).augment(GREY), alone, rtol=1e-6)
    for run in (lambda p: p.augment(GREY), lambda p: to_numpy(p(GREY, training=True))):
        np.testing.assert_array_equal(run(AugmentPipeline(SPEC, seed=3, probability=0.0)), GREY)


def test_probability_one_half_augments_about_half_the_examples():
    # 400 draws of a fair coin: within 200 +- 50 (5 standard deviations).
    for run in (lambda p: p.augment(GREY), lambda p: to_numpy(p(GREY, training=True))):
        pipeline = AugmentPipeline(SPEC, seed=5, probability=0.5)
        k = int(augmented(run(pipeline)).sum())
        assert 150 <= k <= 250, k
    # The examples left alone are exactly the inputs.
    out = AugmentPipeline(SPEC, seed=5, probability=0.5).augment(GREY)
    np.testing.assert_array_equal(out[~augmented(out)], GREY[~augmented(out)])


def test_probability_is_a_level_with_a_config_that_round_trips():
    pipeline = AugmentPipeline(SPEC, seed=1, probability=0.25)
    clone = AugmentPipeline.from_config(pipeline.get_config())
    assert clone.get_level() == 0.25 and clone.get_config() == pipeline.get_config()
    np.testing.assert_array_equal(clone.augment(GREY), pipeline.augment(GREY))
    pipeline.set_level(0.75)
    assert pipeline.get_level() == 0.75 and pipeline.level.trainable is False
    with pytest.raises(ValueError, match=r"`probability` must be in \[0.0, 1.0\]"):
        pipeline.set_level(1.5)
    with pytest.raises(ValueError, match="Received: probability=-0.1"):
        AugmentPipeline(SPEC, probability=-0.1)


def test_a_scheduler_drives_the_probability_only_when_named():
    pipeline = AugmentPipeline(SPEC, seed=0, value_range=None, name="augment")
    noise = noisewise.GaussianNoise(0.5, seed=0)
    model = keras.Sequential([keras.Input((8,)), pipeline, noise, keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    fit = dict(x=X[:16], y=Y[:16], epochs=2, verbose=0)
    model.fit(**fit, callbacks=[noisewise.NoiseScheduler(0.2)])
    assert noise.get_level() == pytest.approx(0.2) and pipeline.get_level() == 1.0
    model.fit(**fit, callbacks=[noisewise.NoiseScheduler(0.4, layers=["augment"])])
    assert pipeline.get_level() == pytest.approx(0.4)
