"""Finite or refused: every numeric parameter of the public API refuses NaN and +-inf.

An infinite noise level, learning rate or range only ever produces non-finite
outputs; it is refused where it is given, with the parameter and the value.
Runs on every backend (each builds real layers, optimizers and models).
"""

import math

import keras
import numpy as np
import pytest

import noisewise
from noisewise import augment, robust, schedules
from noisewise._core.validation import check_number, check_range

BAD = [math.nan, math.inf, -math.inf]


def _dense():
    return keras.layers.Dense(2)


def _net():
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])


X, Y = np.zeros((4, 2), "float32"), np.array([0, 1, 0, 1])

# (id, parameter named in the message, factory taking the bad value)
CASES = [
    ("GaussianNoise.stddev", "stddev", lambda v: noisewise.GaussianNoise(v)),
    ("GaussianNoise.clip", "clip", lambda v: noisewise.GaussianNoise(0.1, clip=(0.0, v))),
    ("GaussianNoise.value_range", "value_range",
     lambda v: noisewise.GaussianNoise(0.1, relative="range", value_range=(v, 1.0))),
    ("UniformNoise.amplitude", "amplitude", lambda v: noisewise.UniformNoise(v)),
    ("UniformNoise.clip", "clip", lambda v: noisewise.UniformNoise(0.1, clip=(v, 1.0))),
    ("MultiplicativeNoise.stddev", "stddev", lambda v: noisewise.MultiplicativeNoise(v)),
    ("SaltAndPepperNoise.rate", "rate", lambda v: noisewise.SaltAndPepperNoise(v)),
    ("SaltAndPepperNoise.salt_ratio", "salt_ratio",
     lambda v: noisewise.SaltAndPepperNoise(0.1, salt_ratio=v)),
    ("SaltAndPepperNoise.value_range", "value_range",
     lambda v: noisewise.SaltAndPepperNoise(0.1, value_range=(0.0, v))),
    ("PoissonNoise.peak", "peak", lambda v: noisewise.PoissonNoise(v)),
    ("PoissonNoise.value_range", "value_range",
     lambda v: noisewise.PoissonNoise(10.0, value_range=(v, 1.0))),
    ("WeightNoise.stddev", "stddev", lambda v: noisewise.WeightNoise(_dense(), stddev=v)),
    ("GaussianNoise.set_level", "stddev", lambda v: noisewise.GaussianNoise(0.1).set_level(v)),
    ("PoissonNoise.set_level", "peak", lambda v: noisewise.PoissonNoise(5.0).set_level(v)),
    ("WeightNoise.set_level", "stddev",
     lambda v: noisewise.WeightNoise(_dense(), stddev=0.1).set_level(v)),
    ("GradientNoise.eta", "eta", lambda v: noisewise.GradientNoise("sgd", eta=v)),
    ("GradientNoise.gamma", "gamma", lambda v: noisewise.GradientNoise("sgd", gamma=v)),
    ("schedules.constant", "level", lambda v: schedules.constant(v)),
    ("schedules.linear.start", "start", lambda v: schedules.linear(v, 0.0, steps=3)),
    ("schedules.linear.end", "end", lambda v: schedules.linear(1.0, v, steps=3)),
    ("schedules.cosine.end", "end", lambda v: schedules.cosine(1.0, v, steps=3)),
    ("schedules.exponential.start", "start", lambda v: schedules.exponential(v, rate=0.5)),
    ("schedules.exponential.rate", "rate", lambda v: schedules.exponential(1.0, rate=v)),
    ("schedules.step.values", "values", lambda v: schedules.step([2], [0.1, v])),
    ("schedules.step.boundaries", "boundaries", lambda v: schedules.step([2, v], [1, 2, 3])),
    ("schedules.get", "level", lambda v: schedules.get(v)),
    ("inject.noise", "noise", lambda v: noisewise.inject(_net(), "input", v)),
    ("FastGaussianNoise.stddev", "stddev", lambda v: augment.FastGaussianNoise(v)),
    ("SensorNoise.peak", "peak", lambda v: augment.SensorNoise(v)),
    ("SensorNoise.read_noise", "read_noise", lambda v: augment.SensorNoise(10, read_noise=v)),
    ("TabularNoise.stddev", "stddev", lambda v: augment.TabularNoise(stddev=v)),
    ("TabularNoise.constant_tol", "constant_tol", lambda v: augment.TabularNoise(constant_tol=v)),
    ("TabularNoise.scale", "scale", lambda v: augment.TabularNoise(scale=[0.1, v])),
    ("SNRNoise.snr_db", "snr_db", lambda v: augment.SNRNoise(snr_db=v)),
    ("SNRNoise.snr_db pair", "snr_db", lambda v: augment.SNRNoise(snr_db=(0.0, v))),
    ("RandomGain.gain_db", "gain_db", lambda v: augment.RandomGain(gain_db=(v, 1.0))),
    ("RandomTimeShift.max_shift", "max_shift", lambda v: augment.RandomTimeShift(max_shift=v)),
    ("add_noise.snr_db", "snr_db",
     lambda v: augment.add_noise(np.ones((1, 8)), np.ones((1, 8)), v)),
    ("corrupt.value_range", "value_range",
     lambda v: augment.corrupt(np.zeros((1, 8, 8, 3)), "contrast", 1, value_range=(0, v))),
    ("image_pipeline rotate.factor", "factor",
     lambda v: augment.image_pipeline([{"type": "rotate", "factor": v, "unit": "degrees"}])),
    ("image_pipeline shift.height_factor", "height_factor",
     lambda v: augment.image_pipeline([{"type": "shift", "height_factor": [0.0, v],
                                        "width_factor": 0.1}])),
    ("image_pipeline blur.sigma", "sigma",
     lambda v: augment.image_pipeline([{"type": "blur", "factor": 0.5, "kernel_size": 3,
                                        "sigma": v}])),
    ("image_pipeline brightness.factor", "factor",
     lambda v: augment.image_pipeline([{"type": "brightness", "factor": v}])),
    ("image_pipeline gaussian_noise.noise_std", "noise_std",
     lambda v: augment.image_pipeline([{"type": "gaussian_noise", "noise_std": v}])),
    ("RandomZoom.height_factor", "height_factor", lambda v: augment.RandomZoom(v)),
    ("RandomRotation.factor", "factor", lambda v: augment.RandomRotation((0.0, v))),
    ("RandomShear.x_factor", "x_factor", lambda v: augment.RandomShear(x_factor=v)),
    ("AugmentPipeline.value_range", "value_range",
     lambda v: augment.AugmentPipeline([], value_range=(0, v))),
    ("AdversarialModel.eps", "eps", lambda v: robust.AdversarialModel(_net(), eps=v)),
    ("AdversarialModel.step_size", "step_size",
     lambda v: robust.AdversarialModel(_net(), step_size=v)),
    ("AdversarialModel.ratio", "ratio", lambda v: robust.AdversarialModel(_net(), ratio=v)),
    ("AdversarialModel.noise_stddev", "noise_stddev",
     lambda v: robust.AdversarialModel(_net(), noise_stddev=v)),
    ("AdversarialModel.clip", "clip", lambda v: robust.AdversarialModel(_net(), clip=(0, v))),
    ("fgsm.eps", "eps", lambda v: robust.fgsm(_net(), X, Y, eps=v)),
    ("pgd.step_size", "step_size", lambda v: robust.pgd(_net(), X, Y, eps=0.1, step_size=v)),
    ("SmoothedClassifier.sigma", "sigma", lambda v: robust.SmoothedClassifier(_net(), sigma=v)),
    ("certify.alpha", "alpha", lambda v: robust.certify(_net(), X, 0.5, n0=2, n=4, alpha=v)),
    ("noise_sweep.levels", "levels[1]",
     lambda v: robust.noise_sweep(_net(), X, Y, levels=[0.1, v], draws=1)),
]


@pytest.mark.parametrize("value", BAD, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name, factory", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_non_finite_numbers_are_refused_with_the_parameter_and_value(name, factory, value):
    with pytest.raises(ValueError) as info:
        factory(value)
    message = str(info.value)
    assert f"`{name}`" in message, message
    assert "finite" in message, message
    assert repr(value) in message or str(value) in message, message


# An int max_shift counts samples: any size is a valid (if long) shift.
FLOAT_CASES = [c for c in CASES if c[0] != "RandomTimeShift.max_shift"]


@pytest.mark.parametrize("name, factory", [c[1:] for c in FLOAT_CASES],
                         ids=[c[0] for c in FLOAT_CASES])
def test_an_integer_beyond_a_float_is_refused_not_an_overflow(name, factory):
    with pytest.raises(ValueError, match="finite"):
        factory(10**400)


def test_finite_values_still_pass_and_the_range_message_is_unchanged():
    assert check_number("stddev", 1e30, low=0.0) == 1e30
    assert check_range("clip", (-1e30, 1e30)) == (-1e30, 1e30)
    with pytest.raises(ValueError, match=r"^`stddev` must be in \[0.0, inf\]. Received: stddev=-1"):
        check_number("stddev", -1, low=0.0)
    with pytest.raises(ValueError,
                       match=r"^`stddev` must be a finite number. Received: stddev=inf$"):
        check_number("stddev", math.inf, low=0.0)
    # Infinity only where a caller asks for it explicitly.
    assert check_number("bound", math.inf, finite=False) == math.inf
    with pytest.raises(ValueError, match="finite"):
        check_number("bound", math.nan, finite=False)


def test_numpy_scalars_are_checked_too():
    with pytest.raises(ValueError, match=r"`stddev` must be a finite number"):
        noisewise.GaussianNoise(np.float32("inf"))
    layer = noisewise.GaussianNoise(np.float32(0.5))
    assert layer.get_level() == 0.5


def test_a_refused_level_leaves_the_layer_as_it_was():
    layer = noisewise.GaussianNoise(0.2)
    with pytest.raises(ValueError):
        layer.set_level(math.inf)
    assert layer.get_level() == pytest.approx(0.2)
    out = keras.ops.convert_to_numpy(layer(np.ones((3, 4), "float32"), training=True))
    assert np.isfinite(out).all()
