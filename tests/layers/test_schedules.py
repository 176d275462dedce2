"""Noise-level schedules and the NoiseScheduler callback (levels actually used in fit)."""

import math

import keras
import numpy as np
import pytest
from conftest import to_numpy
from keras import ops

import noisewise
from noisewise import schedules
from noisewise.layers.schedules import NoiseScheduler, find_noise_layers

# -- schedule formulas ---------------------------------------------------------


@pytest.mark.parametrize("t", [0, 1, 3, 7, 10, 25])
def test_schedule_formulas(t):
    p = min(max((t - 2) / 8, 0.0), 1.0)  # ramps start at t = 2 and last 8
    assert schedules.constant(0.3)(t) == 0.3
    assert math.isclose(schedules.linear(0.5, 0.1, steps=8, begin=2)(t), 0.5 + (0.1 - 0.5) * p)
    assert math.isclose(
        schedules.cosine(0.5, 0.1, steps=8, begin=2)(t),
        0.1 + 0.4 * 0.5 * (1 + math.cos(math.pi * p)),
    )
    assert math.isclose(schedules.exponential(0.8, rate=0.5, steps=4)(t), 0.8 * 0.5 ** (t / 4))
    assert math.isclose(
        schedules.exponential(0.8, rate=0.5, steps=4, staircase=True)(t), 0.8 * 0.5 ** (t // 4)
    )
    expected_step = 0.3 if t < 3 else 0.2 if t < 10 else 0.0
    assert schedules.step([3, 10], [0.3, 0.2, 0.0])(t) == expected_step


def test_schedule_end_points():
    assert schedules.linear(1.0, 0.0, steps=4)(0) == 1.0
    assert schedules.linear(1.0, 0.0, steps=4)(4) == 0.0
    assert schedules.cosine(1.0, 0.0, steps=4)(0) == 1.0
    assert math.isclose(schedules.cosine(1.0, 0.0, steps=4)(4), 0.0, abs_tol=1e-15)
    assert schedules.linear(0.0, 2.0, steps=4)(100) == 2.0  # rising curricula too
    assert schedules.piecewise is schedules.step


def test_get_and_serialize():
    assert schedules.get(0.2)(5) == 0.2
    fn = lambda t: 1.0 / (1 + t)  # noqa: E731
    assert schedules.get(fn) is fn
    for s in (
        schedules.constant(0.1),
        schedules.linear(0.5, 0.0, steps=10, begin=1),
        schedules.cosine(0.5, 0.0, steps=10),
        schedules.exponential(1.0, rate=0.9, steps=2, staircase=True),
        schedules.step([2, 5], [0.3, 0.2, 0.1]),
    ):
        config = schedules.serialize(s)
        assert isinstance(config["kind"], str)
        again = schedules.get(config)
        assert again == s and [again(t) for t in range(12)] == [s(t) for t in range(12)]
    assert "linear(start=0.5" in repr(schedules.linear(0.5, 0.0, steps=10))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: schedules.constant(-0.1), "Received: level=-0.1"),
        (lambda: schedules.linear(0.5, 0.0, steps=0), "Received: steps=0"),
        (lambda: schedules.linear(0.5, -1.0, steps=3), "Received: end=-1.0"),
        (lambda: schedules.cosine(0.5, 0.0, steps=2.5), "`steps` must be an integer"),
        (lambda: schedules.linear(0.5, 0.0, steps=3, begin=-1), "Received: begin=-1"),
        (lambda: schedules.exponential(1.0, rate=0.0), "Received: rate=0.0"),
        (lambda: schedules.exponential(1.0, rate=-2), "Received: rate=-2"),
        (lambda: schedules.step([5, 2], [0.1, 0.2, 0.3]), "strictly increasing"),
        (lambda: schedules.step([2, 5], [0.1, 0.2]), "one more entry"),
        (lambda: schedules.step([2], [0.1, -0.2]), "Received: values=-0.2"),
        (lambda: schedules.get("fast"), "Received: schedule='fast'"),
        (lambda: schedules.get({"kind": "wiggly"}), "Received: kind='wiggly'"),
        (lambda: schedules.get({"kind": "linear", "start": 1.0}), "Bad arguments"),
        (lambda: schedules.serialize(lambda t: t), "cannot"),
    ],
)
def test_bad_schedule_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# -- the callback ----------------------------------------------------------------


class Shift(keras.layers.Layer):
    """A deterministic "noise" layer: adds its level, so the level it used is exact."""

    def __init__(self, level=0.0, **kwargs):
        super().__init__(**kwargs)
        self._level = self.add_weight(shape=(), initializer="zeros", trainable=False, name="level")
        self._level.assign(level)

    def get_level(self):
        return float(to_numpy(self._level.value))

    def set_level(self, value):
        if value > 1.0:
            raise ValueError(f"`level` must be in [0.0, 1.0]. Received: level={value!r}")
        self._level.assign(value)

    def call(self, x, training=None):
        return x + self._level if training else x


class Recorder(keras.layers.Layer):
    """Writes a statistic of its input at every training step into ``buffer[step]``."""

    def __init__(self, steps, stat, **kwargs):
        super().__init__(**kwargs)
        self.steps, self.stat = steps, stat
        self.buffer = self.add_weight(shape=(steps,), initializer="zeros", trainable=False, name="b")
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="n")

    def call(self, x, training=None):
        if training:
            value = ops.std(x) if self.stat == "std" else ops.mean(x)
            slot = ops.one_hot(ops.cast(self.count, "int32"), self.steps)
            self.buffer.assign(self.buffer + slot * value)
            self.count.assign(self.count + 1.0)
        return x

    def used(self):
        return to_numpy(self.buffer.value)[: int(to_numpy(self.count.value))]


FEATURES, BATCH, BATCHES = 500, 4, 3


def recorded_model(noise, stat):
    recorder = Recorder(32, stat)
    model = keras.Sequential([keras.Input((FEATURES,)), noise, recorder, keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model, recorder


def fit(model, callback, epochs):
    n = BATCH * BATCHES
    return model.fit(np.zeros((n, FEATURES)), np.zeros((n, 1)), batch_size=BATCH,
                     epochs=epochs, callbacks=[callback], verbose=0, shuffle=False)


def test_by_epoch_sets_level_and_logs_it():
    model, recorder = recorded_model(Shift(), "mean")
    schedule = schedules.linear(0.9, 0.1, steps=2)
    history = fit(model, NoiseScheduler(schedule, log_name="shift"), epochs=3)
    expected = [schedule(e) for e in range(3)]
    np.testing.assert_allclose(recorder.used(), np.repeat(expected, BATCHES), rtol=1e-5)
    np.testing.assert_allclose(history.history["shift"], expected)


def test_by_step_gaussian_noise_uses_each_steps_level():
    """On JAX too: the std of GaussianNoise's output at step t is schedule(t)."""
    model, recorder = recorded_model(noisewise.GaussianNoise(1.0, seed=0), "std")
    schedule = schedules.linear(1.0, 0.0, steps=5)
    history = fit(model, NoiseScheduler(schedule, by="step"), epochs=2)
    expected = np.array([schedule(t) for t in range(2 * BATCHES)])
    # Sample std of n = BATCH * FEATURES normal draws: SE ~ sigma / sqrt(2 n); 5 SE.
    tolerance = 5 * expected / math.sqrt(2 * BATCH * FEATURES) + 1e-6
    np.testing.assert_array_less(np.abs(recorder.used() - expected), tolerance)
    assert history.history["noise_level"] == [schedule(BATCHES - 1), schedule(2 * BATCHES - 1)]


def test_by_step_counts_on_across_fits():
    model, recorder = recorded_model(Shift(), "mean")
    callback = NoiseScheduler(lambda t: 0.1 * t, by="step")
    fit(model, callback, epochs=1)
    fit(model, callback, epochs=1)  # t continues from the optimizer's step count
    np.testing.assert_allclose(recorder.used(), 0.1 * np.arange(2 * BATCHES), rtol=1e-5)


def test_per_layer_schedules_nested_and_named():
    first, second = Shift(name="first"), Shift(name="second")
    inner = keras.Sequential([keras.Input((FEATURES,)), second], name="inner")
    recorder = Recorder(32, "mean")
    model = keras.Sequential([keras.Input((FEATURES,)), first, inner, recorder, keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    assert find_noise_layers(model) == [first, second]
    callback = NoiseScheduler({first: 0.5, "second": schedules.step([1], [0.25, 0.0])})
    history = fit(model, callback, epochs=2)
    np.testing.assert_allclose(recorder.used(), np.repeat([0.75, 0.5], BATCHES), rtol=1e-5)
    assert history.history["noise_level/first"] == [0.5, 0.5]
    assert history.history["noise_level/second"] == [0.25, 0.0]


def test_default_targets_include_weight_noise_and_named_layers():
    weight_noise = noisewise.WeightNoise(keras.layers.Dense(1), stddev=0.3, seed=0)
    gauss = noisewise.GaussianNoise(0.3, name="gauss")
    model = keras.Sequential([keras.Input((3,)), gauss, weight_noise])
    model.compile(optimizer="sgd", loss="mse")
    assert find_noise_layers(model) == [gauss, weight_noise]
    x, y = np.zeros((4, 3)), np.zeros((4, 1))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[NoiseScheduler(0.05)])
    assert gauss.get_level() == weight_noise.get_level() == pytest.approx(0.05)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[NoiseScheduler(0.2, layers="gauss")])
    assert gauss.get_level() == pytest.approx(0.2)
    assert weight_noise.get_level() == pytest.approx(0.05)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"schedule": 0.1, "by": "batch"}, "Received: by='batch'"),
        ({"schedule": 0.1, "log_name": ""}, "`log_name`"),
        ({"schedule": 0.1, "layers": []}, "`layers`"),
        ({"schedule": {}}, "empty dict"),
        ({"schedule": {"a": 0.1}, "layers": ["a"]}, "not both"),
        ({"schedule": "high"}, "Received: schedule='high'"),
    ],
)
def test_bad_callback_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NoiseScheduler(**kwargs)


@pytest.mark.parametrize(
    "callback, message",
    [
        (NoiseScheduler(0.1, layers=["nope"]), "No layer named 'nope'"),
        (NoiseScheduler(0.1, layers=["dense"]), "cannot be scheduled"),
        (NoiseScheduler(lambda t: float("nan")), "finite number"),
        (NoiseScheduler(2.0), "does not accept"),
    ],
)
def test_bad_targets_and_levels_fail_at_fit(callback, message):
    model = keras.Sequential([keras.Input((2,)), Shift(), keras.layers.Dense(1, name="dense")])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=message):
        model.fit(np.zeros((2, 2)), np.zeros((2, 1)), verbose=0, callbacks=[callback])


def test_model_without_noise_layers():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="found no noise layers"):
        model.fit(np.zeros((2, 2)), np.zeros((2, 1)), verbose=0, callbacks=[NoiseScheduler(0.1)])


def test_flat_api():
    assert noisewise.NoiseScheduler is NoiseScheduler
    assert noisewise.schedules is schedules
