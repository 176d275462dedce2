"""Image augmentation pipelines from a short spec, on Keras' preprocessing layers.

A spec is a list of dicts, one per transform, each with a ``type`` and the
transform's arguments, in Python or in a study's TOML::

    augment = [
      {type = "flip", mode = "horizontal"},
      {type = "rotate", factor = 15, unit = "degrees"},
      {type = "gaussian_noise", noise_std = 10, clip = [0, 255]},
    ]

:func:`image_pipeline` turns it into an :class:`AugmentPipeline`, a Keras layer
that works at a model's input (training only; ``predict`` and ``evaluate`` pass
``training=False`` and get the images back unchanged, or center-cropped) and in
a data pipeline (``pipeline.augment(numpy_batch)``, compiled on JAX and
TensorFlow, returns NumPy). Noise levels are in the data's own units: with
``value_range=(0, 255)``, ``noise_std=10`` adds noise of standard deviation 10
grey levels (``keras.layers.GaussianNoise`` refuses a std above 1, and
ImageDataGenerator, which never had a noise option, is gone from Keras 3).

Choices, and the Keras 3.15 pitfalls they avoid:

* Rotation, shift, zoom and shear use the Keras layers with a jit-safe
  resampler (:mod:`noisewise.augment._geometry`): Keras' versions set
  ``supports_jit=False``, which silently turns off XLA for the *whole model*
  that contains them, and their JAX resampler is the slowest step of a CPU
  pipeline. The random draws, arguments and seeds are Keras' own.
* ``crop`` crops each image at its own offset and center-crops at inference,
  so the output shape is the same in both modes (``keras.layers.RandomCrop``
  returns the uncropped image at inference).
* ``gaussian_noise`` draws from a counter-based sampler on JAX, several times
  faster than Threefry with the same Gaussian distribution
  (:mod:`noisewise._core.sampling`); ``sampler="keras"`` opts out.
* ``mixup`` and ``cutmix`` mix labels too, which a layer at a model's input
  never sees: they are allowed only in a data pipeline called with
  ``{"images": x, "labels": y}`` (``from_spec`` refuses them).
* ``randaugment`` is Keras' layer as is: it contains geometric layers that
  disable XLA, and it compiles for minutes under XLA on a CPU, so pipelines
  containing it run eagerly in ``augment`` and switch off jit in a model.
* On a CPU, XLA fuses a resampling step into the element-wise layers after it
  and recomputes its gathers per channel and per consumer, and recomputes the
  noise sampler for both passes of a contrast layer (a whole pipeline in one
  program ran 2-3x slower than its parts; ``jax.lax.optimization_barrier`` does
  not help, the CPU compiler drops it). ``augment`` on JAX therefore compiles
  one program per transform, runs the batch through them a few images at a
  time (intermediates stay in the CPU cache), and lets each program after the
  first overwrite its input chunk in place (buffer donation): a fresh output
  buffer per step cost as much in page faults as a cheap transform. Inside a
  jit-compiled model the fusion is XLA's call; on a CPU, augmenting in the
  data pipeline is faster. ``benchmarks/bench_augment.py`` measures it against
  Keras' own layers and albumentations.
"""

import copy
import warnings
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from noisewise import layers as nw_layers
from noisewise._core import keras_compat
from noisewise._core.validation import (
    _is_real, check_int, check_number, check_range, is_finite_number,
)
from noisewise.augment import _geometry
from noisewise.augment._runner import JaxRunner, to_numpy
from noisewise.layers._base import NoiseLayer
from noisewise.layers.noise import poisson
from noisewise.random import derive_seed, layer_seed


# The old name of GaussianNoise, which gained the same `sampler` argument: kept
# for code that imports it and, registered under its old name, for saved models.
FastGaussianNoise = nw_layers.GaussianNoise
keras.saving.get_custom_objects()["noisewise>FastGaussianNoise"] = nw_layers.GaussianNoise


@keras.saving.register_keras_serializable(package="noisewise")
class SensorNoise(NoiseLayer):
    """Camera-like noise: Poisson shot noise plus Gaussian read noise.

    A pixel of relative brightness u in [0, 1] collects ``Poisson(u * peak)``
    photons (shot noise, variance proportional to the signal); the readout adds
    ``N(0, read_noise**2)`` in data units. Raising a camera's ISO amplifies a
    smaller photon count, so ISO ~ 1 / peak: halve ``peak`` to emulate doubling
    the ISO. The model is the Poisson-Gaussian model of Foi et al. (2008),
    "Practical Poissonian-Gaussian noise modeling and fitting for single-image
    raw-data", IEEE TIP 17(10).

    Args:
        peak: Expected photon count of a full-scale pixel, > 0.
        read_noise: Standard deviation of the read noise in data units, >= 0.
        value_range: ``(low, high)`` of the data; defaults to ``(0, 255)``.
        clip: Optional ``(low, high)`` to clip the output to.
        seed: Optional integer seed.

    Example:
        >>> import numpy as np
        >>> from noisewise.augment import SensorNoise
        >>> layer = SensorNoise(peak=100, read_noise=2.0, clip=(0, 255), seed=0)
        >>> tuple(layer(np.full((1, 4, 4, 3), 100.0), training=True).shape)
        (1, 4, 4, 3)
    """

    level_name = "peak"
    level_bounds = (0.0, None, True)

    def __init__(self, peak, *, read_noise=0.0, value_range=(0.0, 255.0), **kwargs):
        super().__init__(peak, **kwargs)
        self.read_noise = check_number("read_noise", read_noise, low=0.0)
        self.value_range = check_range("value_range", value_range, allow_none=False)

    def draw(self, inputs):
        low, high = self.value_range
        unit = ops.clip((inputs - low) / (high - low), 0.0, 1.0)
        lam = ops.stop_gradient(unit * self.level_tensor(inputs.dtype))
        return {
            "counts": poisson(lam, self.seed_generator, inputs.dtype),
            "z": keras.random.normal(
                ops.shape(inputs), dtype=inputs.dtype, seed=self.seed_generator
            ),
        }

    def _noisy(self, x, params, mask):
        low, high = self.value_range
        shot = low + params["counts"] / self.level_tensor(x.dtype) * (high - low)
        return shot + self.read_noise * params["z"]

    def get_config(self):
        return {**super().get_config(), "read_noise": self.read_noise,
                "value_range": list(self.value_range)}


_CHUNK_BYTES = 5 * 2**19  # 2.5 MiB: a chunk's float32 images stay in the CPU cache


def _tabular_noise(**kwargs):
    from noisewise.augment.tabular import TabularNoise

    return TabularNoise(**kwargs)


# type -> (constructor, allowed keys, needs value_range, mixes labels)
_G = ("fill_mode", "interpolation", "fill_value")
TRANSFORMS = {
    "flip": (keras.layers.RandomFlip, ("mode",), False, False),
    "rotate": (_geometry.RandomRotation, ("factor", "unit") + _G, False, False),
    "shift": (_geometry.RandomTranslation, ("height_factor", "width_factor") + _G, False, False),
    "zoom": (_geometry.RandomZoom, ("height_factor", "width_factor") + _G, False, False),
    "shear": (_geometry.RandomShear, ("x_factor", "y_factor") + _G, False, False),
    "crop": (_geometry.RandomCrop, ("height", "width"), False, False),
    "brightness": (keras.layers.RandomBrightness, ("factor",), True, False),
    "contrast": (keras.layers.RandomContrast, ("factor",), True, False),
    "color_jitter": (
        keras.layers.RandomColorJitter,
        ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor"), True, False,
    ),
    "saturation": (keras.layers.RandomSaturation, ("factor",), True, False),
    "hue": (keras.layers.RandomHue, ("factor",), True, False),
    "grayscale": (keras.layers.RandomGrayscale, ("factor",), False, False),
    "blur": (keras.layers.RandomGaussianBlur, ("factor", "kernel_size", "sigma"), True, False),
    "erasing": (keras.layers.RandomErasing, ("factor", "scale", "fill_value"), True, False),
    "randaugment": (keras.layers.RandAugment, ("num_ops", "factor", "interpolation"), True, False),
    "mixup": (keras.layers.MixUp, ("alpha",), False, True),
    "cutmix": (keras.layers.CutMix, ("factor",), False, True),
    "gaussian_noise": (
        nw_layers.GaussianNoise, ("stddev", "noise_std", "relative", "clip", "sampler"), False,
        False,
    ),
    "uniform_noise": (nw_layers.UniformNoise, ("amplitude", "relative", "clip"), False, False),
    "speckle_noise": (nw_layers.MultiplicativeNoise, ("stddev", "clip"), False, False),
    "salt_and_pepper": (nw_layers.SaltAndPepperNoise, ("rate", "salt_ratio", "clip"), True, False),
    "shot_noise": (nw_layers.PoissonNoise, ("peak", "clip"), True, False),
    "sensor_noise": (SensorNoise, ("peak", "read_noise", "clip"), True, False),
    "tabular_noise": (
        _tabular_noise, ("stddev", "categorical", "constant", "constant_tol"), False, False,
    ),
}
_CLIPPED = ("gaussian_noise", "uniform_noise", "speckle_noise", "shot_noise", "sensor_noise")


def _needs_range(where, kind, value_range):
    if value_range is None:
        raise ValueError(f"{where}: type {kind!r} needs the pipeline's `value_range`. "
                         "Received: value_range=None")
    return value_range


def _entry_kwargs(where, kind, entry, value_range):
    """Validated constructor arguments of one spec entry (without the seed)."""
    _, allowed, needs_range, _ = TRANSFORMS[kind]
    unknown = sorted(set(entry) - set(allowed) - {"type"})
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))} for type {kind!r}. "
            f"Allowed: {', '.join(allowed)}"
        )
    for key, value in entry.items():
        # Keras' transforms take an infinite factor and return NaN images, or
        # overflow sizing a blur kernel: refuse it here, with the key.
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if _is_real(v) and not is_finite_number(v):
                raise ValueError(f"{where}.{key}: `{key}` must be a finite number. "
                                 f"Received: {key}={value!r}")
    kwargs = {k: v for k, v in entry.items() if k != "type"}
    if needs_range:
        kwargs["value_range"] = _needs_range(where, kind, value_range)
    if kind == "rotate":
        unit = kwargs.pop("unit", None)
        if unit not in ("degrees", "fraction"):
            raise ValueError(
                f"{where}.unit: rotate needs `unit`, 'degrees' or 'fraction' (Keras' factor, "
                f"a fraction of a full turn). Received: unit={unit!r}"
            )
        if unit == "degrees" and "factor" in kwargs:
            f = kwargs["factor"]
            if not all(_is_real(v) for v in (f if isinstance(f, (list, tuple)) else [f])):
                raise ValueError(f"{where}.factor: `factor` must be a number or a pair "
                                 f"(low, high) of numbers. Received: factor={f!r}")
            kwargs["factor"] = [v / 360.0 for v in f] if isinstance(f, (list, tuple)) else f / 360.0
    if kind == "gaussian_noise" and "noise_std" in kwargs:
        if "stddev" in kwargs:
            raise ValueError(
                f"{where}: give `stddev` or its alias `noise_std`, not both. Received: "
                f"stddev={kwargs['stddev']!r}, noise_std={kwargs['noise_std']!r}"
            )
        kwargs["stddev"] = kwargs.pop("noise_std")
    if kind in _CLIPPED:
        # Noise clips to the data's range unless told otherwise (clip = false).
        clip = kwargs.pop("clip", True)
        kwargs["clip"] = value_range if clip is True else (None if clip is False else clip)
        if kind in ("shot_noise", "sensor_noise"):
            kwargs["value_range"] = _needs_range(where, kind, value_range)
    return kwargs


def build_transform(entry, *, seed=None, value_range=(0, 255), index=0, where=None, dtype=None):
    """Build the Keras layer for one spec entry (see ``TRANSFORMS`` for the types).

    ``dtype`` is the dtype policy of the layer (default: Keras' global policy).
    """
    where = where or f"augment[{index}]"
    if not isinstance(entry, dict) or "type" not in entry:
        raise ValueError(f"{where}: each entry must be a dict with a 'type'. Received: {entry!r}")
    kind = entry["type"]
    if kind not in TRANSFORMS:
        raise ValueError(f"{where}.type: unknown transform {kind!r}; allowed: "
                         f"{', '.join(sorted(TRANSFORMS))}")
    kwargs = _entry_kwargs(where, kind, entry, value_range)
    layer_seed = None if seed is None else derive_seed(seed, "augment", index, kind)
    try:
        if dtype is not None:
            kwargs["dtype"] = dtype
        return TRANSFORMS[kind][0](**kwargs, seed=layer_seed)
    except (ValueError, TypeError, NotImplementedError) as err:
        raise ValueError(f"{where} ({kind}): {err}") from err


@keras.saving.register_keras_serializable(package="noisewise")
class AugmentPipeline(keras.layers.Layer):
    """A sequence of augmentation layers built from a spec (see :func:`image_pipeline`).

    Like Keras' preprocessing layers it augments unless called with
    ``training=False`` (a model passes ``training=False`` in ``predict`` and
    ``evaluate``). Integer images are cast to float32 first; the output is
    float32 in the same value range.

    Args:
        spec: List of dicts, each ``{"type": ..., **arguments}``.
        seed: Optional integer; each transform gets a seed derived from it, so
            the same seed replays the same augmentations.
        value_range: ``(low, high)`` of the images, used by the transforms that
            need it (brightness, contrast, noise clipping, ...). ``None`` for
            non-image data.
        allow_label_mixing: Allow ``mixup``/``cutmix`` (data pipelines only).
        probability: Probability, in [0, 1], that an example is augmented (the
            ``p`` of StyleGAN2-ADA, Karras et al. 2020): each example of a
            batch is drawn (from the pipeline's seed) to pass through the
            transforms or to come out as at inference (unchanged, or
            center-cropped); a dict batch's ``"images"`` and ``"labels"`` are
            selected alike. It is a non-trainable variable, the pipeline's
            level (``get_level``/``set_level``), so
            :class:`~noisewise.NoiseScheduler` and an adaptive schedule
            (:func:`noisewise.schedules.adaptive`) change it without
            recompiling. At 1 (the default) every example is augmented, with
            the transforms' draws of a pipeline without it.

    Example:
        >>> import numpy as np
        >>> from noisewise.augment import AugmentPipeline
        >>> aug = AugmentPipeline([{"type": "gaussian_noise", "stddev": 0.5}], seed=0,
        ...                       value_range=None, probability=0.0)
        >>> x = np.ones((4, 3), "float32")
        >>> bool((aug.augment(x) == x).all())
        True
    """

    level_name = "probability"
    # A NoiseScheduler without `layers` drives noise layers, not this probability.
    scheduled_by_default = False

    def __init__(self, spec, seed=None, value_range=(0, 255), allow_label_mixing=True,
                 probability=1.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(spec, (list, tuple)):
            raise ValueError(f"`spec` must be a list of dicts. Received: spec={spec!r}")
        self.spec = copy.deepcopy(list(spec))
        self.seed = seed
        self.value_range = None if value_range is None else check_range("value_range", value_range)
        self.allow_label_mixing = bool(allow_label_mixing)
        self.transforms = []
        for i, entry in enumerate(self.spec):
            # The transforms compute in the pipeline's precision; with their own
            # default policy they would cast a float16 batch back to float32.
            layer = build_transform(entry, seed=seed, value_range=self.value_range, index=i,
                                    dtype=self.dtype_policy)
            if TRANSFORMS[entry["type"]][3] and not self.allow_label_mixing:
                raise ValueError(
                    f"augment[{i}].type: {entry['type']!r} mixes labels, which a layer at a "
                    "model's input never sees; use it in a data pipeline: "
                    "image_pipeline(spec).augment({'images': x, 'labels': y})"
                )
            self.transforms.append(layer)
        self.supports_jit = all(
            sub.supports_jit for t in self.transforms for sub in keras_compat.flatten_layers(t)
        )
        self._compiled = {}
        self.initial_probability = check_number("probability", probability, low=0.0, high=1.0)
        # The draws that pick the augmented examples have a seed of their own,
        # so the transforms draw as they would without them.
        self.selection_seed = keras.random.SeedGenerator(
            layer_seed(None if seed is None else derive_seed(seed, "augment", "probability")))
        self._level = self.add_weight(
            name="probability", shape=(), dtype="float32", trainable=False,
            initializer=keras.initializers.Constant(self.initial_probability))

    @property
    def level(self):
        """The probability variable (a non-trainable ``keras.Variable``)."""
        return self._level

    def get_level(self) -> float:
        """The probability of augmenting an example, as a Python float."""
        return float(ops.convert_to_numpy(self._level.value))

    def set_level(self, value: float) -> None:
        """Set the probability (in [0, 1]); takes effect without recompiling."""
        self._level.assign(check_number("probability", value, low=0.0, high=1.0))

    def _picked(self, n):
        """Boolean (n,): which examples of a batch of ``n`` are augmented."""
        u = keras.random.uniform((n,), seed=self.selection_seed)
        return ops.less(u, ops.cast(self._level.value, u.dtype))

    def build(self, input_shape):
        shape = input_shape
        for layer in self.transforms:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def adapt(self, data):
        """Fit the transforms that learn from data (``tabular_noise``); returns self."""
        for layer in self.transforms:
            if hasattr(layer, "adapt"):
                layer.adapt(data)
        return self

    def call(self, data, training=True, select=True):
        data = self._cast(data)
        out = self._run(self.transforms, data, training)
        if not training or not select:
            return out
        plain = self._run(self.transforms, data, False)
        images = out["images"] if isinstance(out, dict) else out
        return _select(self._picked(ops.shape(images)[0]), out, plain, ops.where)

    def _cast(self, data):
        if isinstance(data, dict):
            return {**data, "images": self._as_float(data["images"])}
        return self._as_float(data)

    def _as_float(self, x):
        x = ops.convert_to_tensor(x)
        if keras.backend.is_float_dtype(keras.backend.standardize_dtype(x.dtype)):
            return x
        return ops.cast(x, self.compute_dtype)

    @staticmethod
    def _run(layers, data, training):
        for layer in layers:
            # Keras' image layers take the whole dict (labels, boxes) and write
            # into it; noise layers see only the images.
            if isinstance(data, dict) and not hasattr(layer, "transform_images"):
                data = {**data, "images": layer(data["images"], training=training)}
            else:
                data = layer(dict(data) if isinstance(data, dict) else data, training=training)
        return data

    def compute_output_shape(self, input_shape):
        for layer in self.transforms:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    def augment(self, data, training=True, chunk_size=None):
        """Augment a batch in a data pipeline: NumPy (or tensors) in, NumPy out.

        Args:
            data: An image batch, or a dict ``{"images": ..., "labels": ...}``.
            training: False returns the inference output (identity, or the
                center crop).
            chunk_size: Images per step. The batch runs through the whole
                pipeline a few images at a time, so each step's intermediates
                stay in the CPU cache (on a shared 2-core machine, 256 images
                of 224x224x3 ran 2-4x faster in chunks of 4 than at once).
                Default: as many images as fit in 2.5 MiB of float32; a
                pipeline with ``mixup``/``cutmix`` is never chunked (they mix
                images across the whole batch).

        Compiled with XLA on JAX (one program per transform) and as a
        ``tf.function`` on TensorFlow when every transform supports it; eager
        otherwise (and on PyTorch).
        """
        images = data["images"] if isinstance(data, dict) else data
        n = int(images.shape[0])
        if not self.built:
            self.build(tuple(images.shape))
        if training and self.get_level() < 1.0:
            picked = to_numpy(self._picked(n))
            out = self._augment(data, True, chunk_size, images, n)
            return _select(picked, out, self._augment(data, False, chunk_size, images, n),
                           np.where)
        return self._augment(data, training, chunk_size, images, n)

    def _augment(self, data, training, chunk_size, images, n):
        """Every example through the transforms (``training``), or none."""
        key = (bool(training), isinstance(data, dict))
        if key not in self._compiled:
            self._compiled[key] = self._compile(bool(training))
        run = self._compiled[key]
        if chunk_size is None:
            per_image = 4 * int(np.prod(images.shape[1:]))
            chunk_size = max(1, _CHUNK_BYTES // per_image)
        chunk_size = check_int("chunk_size", chunk_size, low=1)
        if any(TRANSFORMS[e["type"]][3] for e in self.spec) or n <= chunk_size:
            return keras.tree.map_structure(to_numpy, run(data))
        if isinstance(run, JaxRunner):
            return run.map_chunks(data, n, chunk_size)
        out = None
        for start in range(0, n, chunk_size):
            part = keras.tree.map_structure(lambda a: a[start:start + chunk_size], data)
            result = keras.tree.map_structure(to_numpy, run(part))
            if out is None:
                out = keras.tree.map_structure(
                    lambda r: np.empty((n,) + r.shape[1:], r.dtype), result)
            keras.tree.map_structure(
                lambda o, r: o.__setitem__(slice(start, start + len(r)), r), out, result)
        return out

    def _compile(self, training):
        backend = keras.backend.backend()
        if backend == "jax" and self.supports_jit:
            return JaxRunner(
                [self._jax_segment([layer], first=i == 0, training=training)
                 for i, layer in enumerate(self.transforms)],
                cast=self._cast,
            )
        if backend == "tensorflow" and self.supports_jit:
            import tensorflow as tf

            return tf.function(lambda data: self(data, training=training, select=False),
                               reduce_retracing=True)
        return lambda data: self(data, training=training, select=False)

    def _jax_segment(self, layers, first, training):
        import jax

        variables = [v for layer in layers for v in layer.non_trainable_variables]

        def step(values, data):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
                out = self._run(layers, self._cast(data) if first else data, training)
            new = [scope.get_current_value(v) for v in variables]
            return out, [v if n is None else n for n, v in zip(new, values)]

        donating = jax.jit(step, donate_argnums=(1,))

        def donate(values, data):
            # XLA cannot overwrite the input of a resampler (or a cast) in place;
            # JAX says so once, when it compiles, and the buffer is just freed.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Some donated buffers")
                return donating(values, data)

        return variables, jax.jit(step), donate

    def get_config(self):
        return {
            **super().get_config(),
            "spec": _plain(self.spec),
            "seed": self.seed,
            "value_range": None if self.value_range is None else list(self.value_range),
            "allow_label_mixing": self.allow_label_mixing,
            "probability": self.initial_probability,
        }


def _plain(value):
    """Builtin lists and dicts (Keras wraps a layer's list attributes in tracked ones)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return (tuple if isinstance(value, tuple) else list)(_plain(v) for v in value)
    return value


def _select(picked, out, plain, where):
    """``out`` for the picked examples, ``plain`` for the others (images and labels)."""
    def one(a, b):
        mask = ops.reshape(picked, (-1,) + (1,) * (len(a.shape) - 1)) if where is ops.where \
            else np.reshape(picked, (-1,) + (1,) * (a.ndim - 1))
        return where(mask, a, b)

    if not isinstance(out, dict):
        return one(out, plain)
    return {**out, **{k: one(out[k], plain[k]) for k in ("images", "labels")
                      if k in out and k in plain}}


def image_pipeline(spec: Sequence, seed: int | None = None,
                   value_range: tuple[float, float] = (0, 255)) -> AugmentPipeline:
    """Build an augmentation pipeline from a spec (list of dicts).

    Args:
        spec: List of ``{"type": ..., **arguments}``; types and their keys are
            in ``TRANSFORMS`` (``flip``, ``rotate`` (with ``unit``), ``shift``,
            ``zoom``, ``shear``, ``crop``, ``brightness``, ``contrast``,
            ``color_jitter``, ``saturation``, ``hue``, ``grayscale``, ``blur``,
            ``erasing``, ``randaugment``, ``mixup``, ``cutmix``,
            ``gaussian_noise``, ``uniform_noise``, ``speckle_noise``,
            ``salt_and_pepper``, ``shot_noise``, ``sensor_noise``,
            ``tabular_noise``). Arguments are those of the Keras or noisewise
            layer behind the type. Noise types clip to ``value_range`` unless
            ``clip`` is given (``false`` turns clipping off).
        seed: Optional non-negative integer for reproducible augmentation.
        value_range: ``(low, high)`` of the pixel values, ``(0, 255)`` for
            uint8 images, ``(0, 1)`` for floats.

    Returns:
        An :class:`AugmentPipeline` (a Keras layer).

    Example:
        >>> import numpy as np, noisewise
        >>> aug = noisewise.augment.image_pipeline(
        ...     [{"type": "flip", "mode": "horizontal"},
        ...      {"type": "rotate", "factor": 15, "unit": "degrees"},
        ...      {"type": "gaussian_noise", "noise_std": 10}], seed=0)
        >>> batch = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype="uint8")
        >>> out = aug.augment(batch)
        >>> out.shape, str(out.dtype), bool(out.min() >= 0 and out.max() <= 255)
        ((4, 32, 32, 3), 'float32', True)
    """
    return AugmentPipeline(spec, seed=seed, value_range=value_range, allow_label_mixing=True)


def from_spec(spec: Sequence, seed: int | None = None,
              value_range: tuple[float, float] = (0, 255)) -> AugmentPipeline:
    """The layer a model builder puts at its input for a study arm's ``augment`` list.

    As :func:`image_pipeline`, but label-mixing types (``mixup``, ``cutmix``)
    are refused, because a layer at a model's input never sees the labels.
    Call ``.adapt(x_train)`` on the result when the spec contains
    ``tabular_noise`` (a no-op otherwise). Errors name the entry, e.g.
    ``augment[1].unit: ...``, so a caller can prefix its own key path.

    Example:
        >>> import keras, noisewise
        >>> aug = noisewise.augment.from_spec([{"type": "flip", "mode": "horizontal"}], seed=1)
        >>> inputs = keras.Input((8, 8, 1))
        >>> model = keras.Model(inputs, keras.layers.Flatten()(aug(inputs)))
        >>> model.output_shape
        (None, 64)
    """
    return AugmentPipeline(spec, seed=seed, value_range=value_range, allow_label_mixing=False)


def validate_spec(spec, value_range=(0, 255), allow_label_mixing=False):
    """Check a spec by building it (nothing is kept); returns a deep copy of it."""
    return AugmentPipeline(spec, value_range=value_range,
                           allow_label_mixing=allow_label_mixing).spec
