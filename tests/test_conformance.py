"""Every layer the package exports, through the conformance harness (tests/conformance.py).

The case table below is the list of exported layers: a test fails when a layer
exported from a public module (or registered with Keras under ``noisewise``)
has neither a case nor a written reason for having none.
"""

import importlib

import conformance
import keras
import numpy as np
import pytest
from conformance import CHECKS, Case
from keras import ops

from noisewise import augment, layers

BACKEND = keras.backend.backend()
IMAGE = (2, 8, 8, 3)
PIXELS = (0.0, 255.0)
AUDIO = (2, 64)
STAY_ON = {"active_at_inference": True}
IMAGE_LAYER_MASKS = "Keras' image preprocessing layers take no mask"


def _weight_noise_kwargs():
    init = keras.initializers.GlorotUniform(seed=0)
    return {"layer": keras.layers.Dense(3, kernel_initializer=init), "stddev": 0.1}


def _noise(cls, level, **kwargs):
    return Case(cls, {cls.level_name: level, **kwargs}, stay_on=STAY_ON,
                supports_masking=True, mask_untouched=True)


def _image(cls, kwargs, **fields):
    fields = {"input_shape": IMAGE, "input_range": PIXELS, "default_training": True,
              **fields, "skip": {"masks": IMAGE_LAYER_MASKS, **fields.get("skip", {})}}
    return Case(cls, kwargs, **fields)


CASES = [
    _noise(layers.GaussianNoise, 0.1),
    _noise(layers.UniformNoise, 0.1),
    _noise(layers.MultiplicativeNoise, 0.2),
    _noise(layers.SaltAndPepperNoise, 0.3),
    _noise(layers.PoissonNoise, 20.0),
    Case(augment.SensorNoise, {"peak": 20.0, "read_noise": 2.0}, input_range=PIXELS,
         stay_on=STAY_ON, supports_masking=True, mask_untouched=True),
    Case(layers.WeightNoise, _weight_noise_kwargs, inference="deterministic",
         stay_on=STAY_ON, supports_masking=True),
    Case(layers.NoisyDense, {"units": 3}, inference="deterministic", stay_on=STAY_ON,
         supports_masking=True),
    _image(augment.RandomRotation, {"factor": 0.1}),
    _image(augment.RandomTranslation, {"height_factor": 0.2, "width_factor": 0.2}),
    _image(augment.RandomZoom, {"height_factor": 0.3}),
    _image(augment.RandomShear, {"x_factor": 0.2, "y_factor": 0.2}),
    _image(augment.RandomCrop, {"height": 6, "width": 5}, input_shape=(2, 12, 12, 3),
           inference="deterministic"),
    _image(augment.AugmentPipeline, {"spec": [{"type": "flip", "mode": "horizontal"},
                                              {"type": "gaussian_noise", "noise_std": 10}],
                                     "value_range": PIXELS}),
    Case(augment.SNRNoise, {"snr_db": (5.0, 20.0), "color": "pink"}, input_shape=AUDIO,
         input_range=(-1.0, 1.0), stay_on=STAY_ON),
    Case(augment.RandomGain, {"gain_db": (-6.0, 6.0)}, input_shape=AUDIO,
         input_range=(-1.0, 1.0), stay_on=STAY_ON),
    Case(augment.RandomTimeShift, {"max_shift": 0.25}, input_shape=AUDIO,
         input_range=(-1.0, 1.0), stay_on=STAY_ON),
    Case(augment.TabularNoise, {"stddev": 0.5, "scale": [1.0, 2.0, 0.0]}, input_shape=(4, 3),
         input_range=(-3.0, 3.0)),
]

# Exported layer classes (by name) that get no case, and why.
NO_CASE = {
    "NoiseLayer": "abstract base (draw and _noisy are the subclass's); every subclass has a case",
    "AdversarialModel": "a keras.Model that trains another model (its own train_step), "
                        "not a layer; tests/robust/test_adversarial.py covers it",
    "PiModel": "a keras.Model that trains another model with a consistency loss, "
               "not a layer; tests/test_consistency.py covers it",
    "MixupModel": "a keras.Model that trains another model on mixed batches, not a layer; "
                  "tests/augment/test_mixup.py covers it",
    "NoiseContrastModel": "a keras.Model that trains a detector on clean and noisy rows, not "
                          "a layer; tests/test_anomaly.py covers it",
    "GAN": "a keras.Model that trains a generator and a discriminator, not a layer; "
           "tests/test_gan.py covers it",
}

PUBLIC_MODULES = ("noisewise", "noisewise.layers", "noisewise.augment", "noisewise.robust",
                  "noisewise.injection", "noisewise.study", "noisewise.layers.schedules")


def _exported_layer_classes():
    found = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, keras.layers.Layer):
                found[value] = f"{module_name}.{name}"
    # Registered for loading but exported nowhere still counts as public.
    for key, value in keras.saving.get_custom_objects().items():
        if key.startswith("noisewise>") and isinstance(value, type) \
                and issubclass(value, keras.layers.Layer):
            found.setdefault(value, key)
    return found


def _missing_cases():
    covered = {case.cls for case in CASES}
    return [where for cls, where in _exported_layer_classes().items()
            if cls not in covered and cls.__name__ not in NO_CASE]


def test_every_exported_layer_has_a_case_or_a_reason():
    missing = _missing_cases()
    assert not missing, f"exported layers with no conformance case: {missing}"
    for case in CASES:
        unknown = set(case.skip) - set(CHECKS)
        assert not unknown, f"{case.name}: skip names unknown checks {unknown}"
        assert all(isinstance(r, str) and r for r in case.skip.values()), case.name


PARAMS = [
    pytest.param(case, check, id=f"{case.name}-{check}",
                 marks=[pytest.mark.skip(reason=case.skip[check])] if check in case.skip else [])
    for case in CASES for check in CHECKS
]


@pytest.mark.parametrize("case, check", PARAMS)
def test_conformance(case, check, tmp_path):
    conformance.run_check(case, check, tmp_path)


# ----------------------------------------------------------------- the harness can fail
def test_a_new_layer_without_a_case_is_reported():
    class Uncovered(keras.layers.Layer):
        pass

    objects = keras.saving.get_custom_objects()
    objects["noisewise>Uncovered"] = Uncovered
    try:
        assert _missing_cases() == ["noisewise>Uncovered"]
    finally:
        del objects["noisewise>Uncovered"]


class _AlwaysFloat32(keras.layers.Layer):
    """Computes in float32 whatever its policy: the old WeightNoise defect."""

    def call(self, inputs, training=None):
        return ops.cast(inputs, "float32")

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="conformance_test")
class _ForgetsSeed(layers.GaussianNoise):
    """Drops its seed from the config, so a clone draws other numbers."""

    def get_config(self):
        return {**super().get_config(), "seed": None}


def test_precision_check_catches_a_layer_that_ignores_its_policy():
    case = Case(_AlwaysFloat32, random=False)
    conformance.run_check(case, "shape_and_dtype")  # float32 is right under float32
    with pytest.raises(AssertionError, match="dtype='float16'.*output dtype float32"):
        conformance.run_check(case, "precision")


def test_config_check_catches_a_config_that_loses_an_argument():
    with pytest.raises(AssertionError, match="another config|differ"):
        conformance.run_check(Case(_ForgetsSeed, {"stddev": 0.1}), "config")


def test_training_check_catches_noise_at_inference():
    case = Case(layers.GaussianNoise, {"stddev": 0.1, "active_at_inference": True})
    with pytest.raises(AssertionError, match="inference output and input differ"):
        conformance.run_check(case, "training")


def test_fast_gaussian_noise_is_gaussian_noise():
    # The old name keeps working, in code and in saved files.
    assert augment.FastGaussianNoise is layers.GaussianNoise
    legacy = {"class_name": "FastGaussianNoise", "module": "noisewise.augment.image",
              "registered_name": "noisewise>FastGaussianNoise",
              "config": {"stddev": 0.5, "seed": 1, "sampler": "keras"}}
    revived = keras.saving.deserialize_keras_object(legacy)
    assert type(revived) is layers.GaussianNoise and revived.sampler == "keras"
    x = np.ones((2, 3), "float32")
    assert not np.array_equal(conformance.to_numpy(revived(x, training=True)), x)
