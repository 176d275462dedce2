"""A layer conformance harness, in the style of Keras' ``run_layer_test``.

A :class:`Case` names a layer class, its constructor arguments and an input
shape; :func:`run_check` runs one of ``CHECKS`` on it and raises
``AssertionError`` naming the case and what differed:

* ``shape_and_dtype``: eager calls in both modes agree with
  ``compute_output_shape`` and ``compute_output_spec`` (shape and dtype).
* ``symbolic``: a call on ``keras.Input`` gives the eager shape and dtype, and
  the functional model gives the eager inference output.
* ``precision``: under ``float16``, ``bfloat16``, ``mixed_float16`` and
  ``mixed_bfloat16`` the output dtype is the layer's ``compute_dtype`` and what
  ``compute_output_spec`` says, the output is finite, and mixed policies keep
  float32 variables.
* ``config``: ``get_config``/``from_config`` and Keras (de)serialization round
  trip, and the rebuilt layer gives the same output for the same seed.
* ``save_and_load``: a model holding the layer saved to a ``.keras`` file loads
  as the same class and gives the same outputs, in training too (Keras saves
  no seed state, so both draw from the seed's start).
* ``seeds``: the same seed gives the same output, another seed another one,
  and each call draws afresh (random layers only).
* ``training``: the inference output is the input (or deterministic, for a
  crop), ``training=None`` means what the case says, training differs from
  inference, a layer configured to stay on stays on, and compiled ``predict``
  gives the inference output.
* ``masks``: ``supports_masking`` is what the case says; a layer that supports
  masking passes a ``Masking`` layer's mask on (and leaves masked steps alone
  when the case says so).
* ``compiled_fit``: one compiled training step through the layer gives a
  finite loss (the layer traces under ``jit_compile="auto"``).

A case skips a check only with a written reason (``skip``).
"""

import copy
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

CHECKS = (
    "shape_and_dtype", "symbolic", "precision", "config", "save_and_load", "seeds",
    "training", "masks", "compiled_fit",
)
POLICIES = ("float16", "bfloat16", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class Case:
    """One layer under test.

    Args:
        cls: The layer class.
        kwargs: Constructor arguments, or a callable returning fresh ones (for
            arguments that cannot be shared, such as a wrapped layer).
        input_shape: Shape of the input batch (fully defined).
        input_range: The input is uniform on this range.
        random: The layer draws random numbers in training.
        inference: ``"identity"`` (training=False returns the input) or
            ``"deterministic"`` (the same output on every inference call).
        default_training: What a call without ``training`` does (Keras'
            preprocessing layers augment; noise layers do not).
        stay_on: Constructor arguments that keep the noise on at inference.
        supports_masking: Whether the layer passes a mask on.
        mask_untouched: Masked steps come back unchanged.
        skip: ``{check: reason}`` for checks that do not apply.
        id: Test id (default: the class name).
    """

    cls: type
    kwargs: Any = dataclasses.field(default_factory=dict)
    input_shape: tuple = (2, 5, 4)
    input_range: tuple = (0.0, 1.0)
    random: bool = True
    inference: str = "identity"
    default_training: bool = False
    stay_on: dict | None = None
    supports_masking: bool = False
    mask_untouched: bool = False
    skip: dict = dataclasses.field(default_factory=dict)
    id: str | None = None

    @property
    def name(self):
        return self.id or self.cls.__name__

    def make(self, **overrides):
        """A fresh layer; a ``seed`` override is dropped for a layer that draws nothing."""
        kwargs = self.kwargs() if callable(self.kwargs) else copy.deepcopy(self.kwargs)
        if not self.random:
            overrides.pop("seed", None)
        return self.cls(**{**kwargs, **overrides})

    def data(self, dtype="float32"):
        low, high = self.input_range
        return np.random.default_rng(0).uniform(low, high, self.input_shape).astype(dtype)


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def _equal(case, what, a, b):
    a, b = to_numpy(a), to_numpy(b)
    assert a.shape == b.shape and np.array_equal(a, b), (
        f"{case.name}: {what} differ (largest difference "
        f"{np.max(np.abs(a.astype('float64') - b.astype('float64'))) if a.shape == b.shape else 'n/a'}"
        f", shapes {a.shape} and {b.shape})"
    )


def _differ(case, what, a, b):
    a, b = to_numpy(a), to_numpy(b)
    assert a.shape != b.shape or not np.array_equal(a, b), f"{case.name}: {what} are identical"


def _plain(config):
    """A config as JSON would store it (tuples become lists), to compare two configs."""
    return json.loads(json.dumps(config, sort_keys=True, default=repr))


def check_shape_and_dtype(case, tmp_path=None):
    layer = case.make(seed=1)
    x = case.data()
    for training in (True, False):
        y = layer(x, training=training)
        shape = tuple(layer.compute_output_shape(case.input_shape))
        spec = layer.compute_output_spec(keras.KerasTensor(case.input_shape, "float32"))
        assert tuple(y.shape) == shape == tuple(spec.shape), (
            f"{case.name} (training={training}): output shape {tuple(y.shape)}, "
            f"compute_output_shape {shape}, compute_output_spec {tuple(spec.shape)}"
        )
        assert _dtype(y) == layer.compute_dtype == spec.dtype, (
            f"{case.name} (training={training}): output dtype {_dtype(y)}, compute_dtype "
            f"{layer.compute_dtype}, compute_output_spec {spec.dtype}"
        )


def check_symbolic(case, tmp_path=None):
    x = case.data()
    eager = case.make(seed=1)
    expected = eager(x, training=False)
    inputs = keras.Input(case.input_shape[1:])
    layer = case.make(seed=1)
    outputs = layer(inputs)
    want = (None,) + tuple(expected.shape[1:])
    assert tuple(outputs.shape) == want, (
        f"{case.name}: symbolic output shape {tuple(outputs.shape)}, eager {want}")
    assert outputs.dtype == _dtype(expected), (
        f"{case.name}: symbolic output dtype {outputs.dtype}, eager {_dtype(expected)}")
    _equal(case, "functional model and eager inference outputs",
           keras.Model(inputs, outputs)(x, training=False), expected)


def check_precision(case, tmp_path=None):
    x = case.data()
    for policy in POLICIES:
        layer = case.make(seed=1, dtype=policy)
        for training in (True, False):
            y = layer(x, training=training)
            spec = layer.compute_output_spec(keras.KerasTensor(x.shape, layer.compute_dtype))
            assert _dtype(y) == layer.compute_dtype == spec.dtype, (
                f"{case.name} (dtype={policy!r}, training={training}): output dtype "
                f"{_dtype(y)}, compute_dtype {layer.compute_dtype}, "
                f"compute_output_spec {spec.dtype}"
            )
            values = to_numpy(ops.cast(y, "float32"))
            assert np.isfinite(values).all(), (
                f"{case.name} (dtype={policy!r}, training={training}): non-finite output")
        if policy.startswith("mixed"):
            for weight in layer.weights:
                if keras.backend.is_float_dtype(weight.dtype):
                    assert _dtype(weight) == "float32", (
                        f"{case.name} (dtype={policy!r}): weight {weight.path} is "
                        f"{_dtype(weight)}, mixed precision keeps float32 variables")


def check_config(case, tmp_path=None):
    x = case.data()
    layer = case.make(seed=3)
    config = layer.get_config()
    clone = case.cls.from_config(copy.deepcopy(config))
    assert type(clone) is case.cls
    assert _plain(clone.get_config()) == _plain(config), (
        f"{case.name}: from_config(get_config()) has another config:\n"
        f"{_plain(clone.get_config())}\n!=\n{_plain(config)}")
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is case.cls and _plain(revived.get_config()) == _plain(config)
    _equal(case, "outputs of the layer and its clone from config",
           clone(x, training=True), layer(x, training=True))


def _model(case, **overrides):
    inputs = keras.Input(case.input_shape[1:])
    return keras.Model(inputs, case.make(**overrides)(inputs))


def check_save_and_load(case, tmp_path):
    x = case.data()
    # Keras saves no seed-generator state: a loaded layer draws from its seed's
    # start, as the saved one did before its first call.
    model = _model(case, seed=5)
    path = tmp_path / f"{case.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.layers[-1]) is case.cls, (
        f"{case.name}: loaded layer is {type(loaded.layers[-1]).__name__}")
    _equal(case, "inference outputs before saving and after loading",
           loaded(x, training=False), model(x, training=False))
    _equal(case, "training outputs before saving and after loading",
           loaded(x, training=True), model(x, training=True))


def check_seeds(case, tmp_path=None):
    x = case.data()
    first = case.make(seed=7)(x, training=True)
    _equal(case, "outputs of two layers with seed 7", case.make(seed=7)(x, training=True), first)
    _differ(case, "outputs with seeds 7 and 8", case.make(seed=8)(x, training=True), first)
    layer = case.make(seed=7)
    _differ(case, "two successive training calls", layer(x, training=True),
            layer(x, training=True))


def check_training(case, tmp_path=None):
    x = case.data()
    layer = case.make(seed=9)
    inference = layer(x, training=False)
    if case.inference == "identity":
        _equal(case, "inference output and input", inference, x)
    else:
        _equal(case, "two inference outputs", layer(x, training=False), inference)
    if case.random:
        _differ(case, "training and inference outputs", layer(x, training=True), inference)
    default = layer(x)
    if case.default_training:
        _differ(case, "output without `training` and inference output", default, inference)
    else:
        _equal(case, "output without `training` and inference output", default, inference)
    if case.stay_on is not None:
        on = case.make(seed=9, **case.stay_on)
        _differ(case, f"inference output with {case.stay_on} and inference output",
                on(x, training=False), inference)
    _equal(case, "compiled predict and eager inference outputs",
           _model(case, seed=9).predict(x, verbose=0), inference)


class MaskProbe(keras.layers.Layer):
    """Returns the mask it receives (as float32), to see that a layer passed it on."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        return ops.cast(mask, "float32")


def check_masks(case, tmp_path=None):
    layer = case.make(seed=13)
    assert layer.supports_masking == case.supports_masking, (
        f"{case.name}: supports_masking is {layer.supports_masking}, the case says "
        f"{case.supports_masking}")
    if not case.supports_masking:
        return
    kept = np.ones(case.input_shape[:2], bool)
    kept[0, -2:] = kept[1, :1] = False
    x = case.data()
    x[~kept] = -1.0  # Masking(-1) marks these steps and zeroes them
    inputs = keras.Input(case.input_shape[1:])
    masked = keras.layers.Masking(-1.0)(inputs)
    outputs = layer(masked)
    model = keras.Model(inputs, [masked, outputs, MaskProbe()(outputs)])
    before, after, mask = model(x, training=True)
    _equal(case, "mask after the layer and mask before it", mask, kept.astype("float32"))
    if case.mask_untouched:
        _equal(case, "masked steps before and after the layer",
               to_numpy(after)[~kept], to_numpy(before)[~kept])
        _differ(case, "kept steps before and after the layer",
                to_numpy(after)[kept], to_numpy(before)[kept])
    _equal(case, "compute_mask and the mask given",
           layer.compute_mask(x, ops.convert_to_tensor(kept)), kept)


def check_compiled_fit(case, tmp_path=None):
    x = case.data()
    inputs = keras.Input(case.input_shape[1:])
    hidden = keras.layers.Flatten()(case.make(seed=11)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(optimizer="sgd", loss="mse", jit_compile="auto")
    history = model.fit(x, np.zeros((len(x), 1), "float32"), batch_size=len(x), verbose=0)
    loss = history.history["loss"][-1]
    assert np.isfinite(loss), f"{case.name}: compiled training step gave loss {loss}"


_CHECKS: dict[str, Callable] = {name: globals()[f"check_{name}"] for name in CHECKS}


def run_check(case, check, tmp_path=None):
    """Run one check of ``CHECKS`` on ``case`` (``tmp_path`` is needed by ``save_and_load``)."""
    _CHECKS[check](case, tmp_path)


def run_layer_test(case, tmp_path):
    """Every check the case does not skip, in order; the first failure raises."""
    for check in CHECKS:
        if check not in case.skip:
            run_check(case, check, tmp_path)
