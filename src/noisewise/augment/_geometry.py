"""Jit-safe geometric augmentation: Keras' layers with a faster, gather-based resampler.

Why not Keras' layers as they are? In Keras 3.15, ``RandomRotation``,
``RandomTranslation``, ``RandomZoom``, ``RandomShear``, ``RandomPerspective``
and ``RandomCrop`` set ``supports_jit = False``, and ``Model.compile`` then
turns off XLA for the *whole model* that contains one of them (on JAX the train
step runs op by op). The flag is there because TensorFlow's XLA cannot compile
``ImageProjectiveTransformV3``; on JAX the affine layers trace fine, but the JAX
resampler interpolates in three dimensions (rows, columns *and* channels: 8
single-value gathers per output value), which makes rotation the slowest step of
a pipeline on a CPU. ``RandomCrop`` cannot be traced on JAX at all (it slices
with traced offsets), and at inference it returns the *uncropped* image, whose
shape differs from its own ``compute_output_shape``.

So the classes here keep Keras' layers (arguments, random draws, seeds, labels,
bounding boxes) and swap only the resampler: :func:`affine_warp` gathers whole
pixels (all channels at once) at the 4 bilinear corners, with exactly the
index rules of ``keras.ops.image.affine_transform`` on JAX (the ``scipy.ndimage``
fill modes). It is made of ``take``/``where``/arithmetic only, so it compiles
under XLA on JAX and TensorFlow, and these layers set ``supports_jit = True``.
:class:`RandomCrop` crops every image at its own offset in training and
center-crops at inference, so the output shape never changes.
"""

import inspect

import keras

from noisewise._core import keras_compat
from noisewise._core.validation import _is_real, is_finite_number

FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")
INTERPOLATIONS = ("nearest", "bilinear")


def _fold(np_, coord, size, mode):
    """Map integral float coordinates into ``[0, size)`` as ``scipy.ndimage`` fill modes do.

    Works on floats holding integers (exact below 2**24): a float ``floor``
    vectorises on a CPU where an integer ``mod`` is a division per element, and
    the folding is the costliest part of a resampler that reflects.
    """
    if mode in ("constant", "nearest") or size == 1:
        return np_.clip(coord, 0.0, size - 1.0)
    if mode == "wrap":
        return coord - size * np_.floor(coord / size)
    # reflect (d c b a | a b c d | d c b a) has period 2n; mirror (d c b | a b c d | c b a)
    # has period 2n - 2. Fold once into a period, then reflect the upper half.
    period = 2.0 * size if mode == "reflect" else 2.0 * size - 2.0
    folded = coord - period * np_.floor(coord / period)
    return np_.where(folded < size, folded, period - (0.0 if mode == "mirror" else 1.0) - folded)


def _take_rows(backend, flat, index):
    """``take(flat, index, axis=0)`` for indices known to be in range.

    On JAX, ``jnp.take`` defaults to filling out-of-range indices with NaN,
    which costs a bounds check and a select per element; "clip" skips both.
    """
    if backend.name == "jax":
        import jax.numpy as jnp

        return jnp.take(flat, index, axis=0, mode="clip")
    return backend.numpy.take(flat, index, axis=0)


def affine_warp(
    backend,
    images,
    transform,
    *,
    interpolation="bilinear",
    fill_mode="constant",
    fill_value=0.0,
    data_format="channels_last",
    output_size=None,
):
    """Resample ``images`` at ``transform``-mapped coordinates (Keras' convention).

    ``transform`` is ``[a0, a1, a2, b0, b1, b2, c0, c1]`` per image, mapping the
    output pixel (x, y) to the input point ((a0 x + a1 y + a2) / k,
    (b0 x + b1 y + b2) / k) with k = c0 x + c1 y + 1, as in
    ``keras.ops.image.affine_transform``, whose JAX implementation this matches.

    Args:
        backend: The namespace to compute with: a layer's ``self.backend``
            (Keras' ``DynamicBackend``, so the layer also works inside tf.data).
        images: (batch, height, width, channels) float tensor, or rank 3.
        transform: (batch, 8) or (8,) float tensor.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill_mode: One of ``FILL_MODES`` (``scipy.ndimage`` semantics).
        fill_value: Value outside the image when ``fill_mode="constant"``.
        data_format: ``"channels_last"`` or ``"channels_first"``.
        output_size: Optional (height, width) of the output grid (default: input).
    """
    np_ = backend.numpy
    unbatched = len(images.shape) == 3
    if unbatched:
        images = np_.expand_dims(images, 0)
    if len(transform.shape) == 1:
        transform = np_.expand_dims(transform, 0)
    if data_format == "channels_first":
        images = np_.transpose(images, (0, 2, 3, 1))
    height, width = (int(d) for d in images.shape[1:3])
    out_h, out_w = output_size or (height, width)

    t = backend.cast(transform, "float32")
    a0, a1, a2, b0, b1, b2, c0, c1 = (np_.reshape(t[:, i], (-1, 1, 1)) for i in range(8))
    ys = np_.reshape(np_.arange(out_h, dtype="float32"), (1, out_h, 1))
    xs = np_.reshape(np_.arange(out_w, dtype="float32"), (1, 1, out_w))
    k = c0 * xs + c1 * ys + 1.0
    src_x = (a0 * xs + a1 * ys + a2) / k
    src_y = (b0 * xs + b1 * ys + b2) / k
    out = resample(backend, images, src_y, src_x, interpolation=interpolation,
                   fill_mode=fill_mode, fill_value=fill_value)

    if data_format == "channels_first":
        out = np_.transpose(out, (0, 3, 1, 2))
    if unbatched:
        out = np_.squeeze(out, 0)
    return out


def resample(backend, images, src_y, src_x, *, interpolation="bilinear", fill_mode="constant",
             fill_value=0.0):
    """Sample ``images`` at the points ``(src_y, src_x)``, as ``scipy.ndimage.map_coordinates``.

    Args:
        backend: The namespace to compute with (a layer's ``self.backend``,
            or ``keras_compat.dynamic_backend()`` outside a layer).
        images: (batch, height, width, channels) tensor.
        src_y, src_x: (batch, out_h, out_w) float32 row and column of the
            input point each output pixel reads.
        interpolation: ``"bilinear"`` (``order=1``) or ``"nearest"``.
        fill_mode: One of ``FILL_MODES``, ``scipy.ndimage``'s rules.
        fill_value: Value outside the image when ``fill_mode="constant"``.
    """
    np_ = backend.numpy
    height, width, channels = (int(d) for d in images.shape[1:])
    out_h, out_w = (int(d) for d in src_y.shape[1:])
    dtype = images.dtype
    batch = backend.core.shape(images)[0]
    src_y, src_x = backend.cast(src_y, "float32"), backend.cast(src_x, "float32")
    if fill_mode == "constant":
        # A one-pixel border of fill_value, and every coordinate clipped onto
        # it: a point off the image reads the fill, with no mask per corner.
        images = np_.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=fill_value)
        height, width = height + 2, width + 2
        src_y, src_x = src_y + 1.0, src_x + 1.0
        fold_mode = "nearest"
    else:
        fold_mode = fill_mode
    flat = np_.reshape(images, (-1, channels))
    base = np_.reshape(np_.arange(batch, dtype="int32") * (height * width), (-1, 1, 1))

    def rows(y):  # row coordinate -> offset of the (folded) row in ``flat``, as int32
        return base + backend.cast(_fold(np_, y, height, fold_mode), "int32") * width

    def cols(x):
        return backend.cast(_fold(np_, x, width, fold_mode), "int32")

    def sample(row, col):
        values = _take_rows(backend, flat, np_.reshape(row + col, (-1,)))
        return np_.reshape(values, (-1, out_h, out_w, channels))

    if interpolation == "nearest":
        # Round half away from zero, as scipy and JAX do.
        y = np_.sign(src_y) * np_.floor(np_.abs(src_y) + 0.5)
        x = np_.sign(src_x) * np_.floor(np_.abs(src_x) + 0.5)
        return sample(rows(y), cols(x))
    y0, x0 = np_.floor(src_y), np_.floor(src_x)
    if backend.name == "jax":
        return _bilinear_windows(images, y0, x0, src_y - y0, src_x - x0, fold_mode)
    wy = np_.expand_dims(backend.cast(src_y - y0, dtype), -1)
    wx = np_.expand_dims(backend.cast(src_x - x0, dtype), -1)
    r0, r1, c0, c1 = rows(y0), rows(y0 + 1.0), cols(x0), cols(x0 + 1.0)
    v00, v01, v10, v11 = sample(r0, c0), sample(r0, c1), sample(r1, c0), sample(r1, c1)
    top = v00 + wx * (v01 - v00)
    bottom = v10 + wx * (v11 - v10)
    return top + wy * (bottom - top)


_NUMPY_PAD = {"nearest": "edge", "reflect": "symmetric", "mirror": "reflect", "wrap": "wrap"}


def _window_starts(jnp, v0, size, mode):
    """First row (in the image padded by one) of the 2-row window holding rows v0 and v0 + 1.

    Folded, the two rows are neighbours going up, going down (a reflection
    between them), equal (the edge row, repeated by "reflect" and "nearest")
    or the last and first rows ("wrap"); the one-pixel padding holds the rows
    the window needs in the last two cases. Returns the start and whether the
    window runs downwards (then the weight flips).
    """
    f0, f1 = _fold(jnp, v0, size, mode), _fold(jnp, v0 + 1.0, size, mode)
    up = (f1 == f0 + 1.0) | ((f0 == size - 1.0) & (f1 == 0.0))
    down = f1 == f0 - 1.0
    edge = jnp.where(f0 == 0.0, 0.0, float(size))
    return jnp.where(up, f0 + 1.0, jnp.where(down, f1 + 1.0, edge)).astype("int32"), down


def _bilinear_windows(images, y0, x0, wy, wx, mode):
    """Bilinear sampling on JAX with one gather of a 2x2xC window per output pixel.

    XLA's CPU gather costs about the same per index whatever the slice size, so
    one 2x2 window instead of four single pixels makes rotation ~25% faster;
    the result is that of the four-gather path (the same rows, the same weights).
    """
    import jax.numpy as jnp
    from jax import lax

    batch, height, width, channels = images.shape
    ry, down_y = _window_starts(jnp, y0, height, mode)
    rx, down_x = _window_starts(jnp, x0, width, mode)
    wy = jnp.where(down_y, 1.0 - wy, wy)[..., None].astype(images.dtype)
    wx = jnp.where(down_x, 1.0 - wx, wx)[..., None].astype(images.dtype)
    padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=_NUMPY_PAD[mode])
    shape = (batch,) + tuple(ry.shape[1:])
    index = jnp.stack([jnp.broadcast_to(jnp.arange(batch, dtype="int32")[:, None, None], shape),
                       jnp.broadcast_to(ry, shape), jnp.broadcast_to(rx, shape)], axis=-1)
    numbers = lax.GatherDimensionNumbers(offset_dims=(3, 4, 5), collapsed_slice_dims=(0,),
                                         start_index_map=(0, 1, 2))
    window = lax.gather(padded, index, numbers, slice_sizes=(1, 2, 2, channels), mode="clip")
    top = window[..., 0, 0, :] + wx * (window[..., 0, 1, :] - window[..., 0, 0, :])
    bottom = window[..., 1, 0, :] + wx * (window[..., 1, 1, :] - window[..., 1, 0, :])
    return top + wy * (bottom - top)


class _WarpImageOps:
    """``backend.image`` with ``affine_transform`` replaced by :func:`affine_warp`."""

    def __init__(self, backend):
        self._backend = backend

    def affine_transform(self, images, transform, interpolation="bilinear",
                         fill_mode="constant", fill_value=0, data_format=None):
        return affine_warp(
            self._backend, images, transform, interpolation=interpolation,
            fill_mode=fill_mode, fill_value=fill_value,
            data_format=data_format or keras.config.image_data_format(),
        )

    def __getattr__(self, name):
        return getattr(self._backend.image, name)


class _WarpBackend:
    """Forwards to Keras' ``DynamicBackend``, except for ``image.affine_transform``."""

    def __init__(self, dynamic):
        self._dynamic = dynamic

    @property
    def image(self):
        return _WarpImageOps(self._dynamic)

    def __getattr__(self, name):
        return getattr(self._dynamic, name)


class _JitSafeWarp:
    """Mixin: route the Keras layer's resampling through :func:`affine_warp`."""

    def __init__(self, *args, **kwargs):
        # Keras checks most factors' ranges but lets NaN through (RandomZoom), and
        # a NaN factor makes every image NaN: refuse any non-finite number here.
        bound = inspect.signature(super().__init__).bind_partial(*args, **kwargs)
        for name, value in bound.arguments.items():
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if _is_real(v) and not is_finite_number(v):
                    raise ValueError(f"`{name}` must be a finite number. "
                                     f"Received: {name}={value!r}")
        super().__init__(*args, **kwargs)
        self.backend = _WarpBackend(self.backend)
        self.supports_jit = True


_DOC = """Keras' ``{name}`` with a jit-safe, gather-based resampler.

Same arguments, random draws and seeds as ``keras.layers.{name}`` (see its
documentation); with the same seed it gives the same output as the Keras layer
on the JAX backend up to float rounding (at the borders with ``fill_mode`` other
than ``"constant"``, TensorFlow's own resampler differs slightly). It sets
``supports_jit = True``, so a model containing it keeps XLA compilation.

Example:
    >>> import numpy as np
    >>> from noisewise.augment import {name}
    >>> layer = {name}({example}, seed=0)
    >>> tuple(layer(np.zeros((2, 8, 8, 3)), training=True).shape)
    (2, 8, 8, 3)
"""


class _ShearFactorsAsGiven:
    """Mixin: ``get_config`` returns the shear factors as the caller gave them.

    Keras 3.15's ``RandomShear`` stores ``x_factor=0.2`` as ``(-0.2, 0.2)`` and
    writes that pair to its config, which its own constructor then refuses
    (factors must lie in [0, 1]): a saved model with it could not be loaded.
    """

    def __init__(self, x_factor=0.0, y_factor=0.0, *args, **kwargs):
        super().__init__(x_factor, y_factor, *args, **kwargs)
        self._factors_given = {
            "x_factor": list(x_factor) if isinstance(x_factor, (list, tuple)) else x_factor,
            "y_factor": list(y_factor) if isinstance(y_factor, (list, tuple)) else y_factor,
        }

    def get_config(self):
        return {**super().get_config(), **self._factors_given}


def _jit_safe(keras_cls, example, mixins=()):
    cls = type(
        keras_cls.__name__, (*mixins, _JitSafeWarp, keras_cls),
        {"__doc__": _DOC.format(name=keras_cls.__name__, example=example),
         "__module__": __name__},
    )
    return keras.saving.register_keras_serializable(package="noisewise")(cls)


RandomRotation = _jit_safe(keras.layers.RandomRotation, "0.1")
RandomTranslation = _jit_safe(keras.layers.RandomTranslation, "0.1, 0.1")
RandomZoom = _jit_safe(keras.layers.RandomZoom, "0.2")
RandomShear = _jit_safe(keras.layers.RandomShear, "0.1, 0.1", mixins=(_ShearFactorsAsGiven,))


@keras.saving.register_keras_serializable(package="noisewise")
class RandomCrop(keras.layers.RandomCrop):
    """Random crop in training, center crop at inference; jit-safe on every backend.

    Unlike ``keras.layers.RandomCrop`` (one offset for the whole batch, the full
    uncropped image at inference, not traceable on JAX), every image gets its
    own offset, inference returns the central ``height x width`` window, and the
    output is always ``(batch, height, width, channels)``. Images smaller than
    the crop raise ValueError (Keras resizes them instead).

    Args:
        height: Crop height in pixels.
        width: Crop width in pixels.
        seed: Optional integer seed.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.

    Example:
        >>> import numpy as np
        >>> from noisewise.augment import RandomCrop
        >>> crop = RandomCrop(24, 24, seed=0)
        >>> tuple(crop(np.zeros((2, 32, 32, 3)), training=True).shape)
        (2, 24, 24, 3)
        >>> tuple(crop(np.zeros((2, 32, 32, 3)), training=False).shape)
        (2, 24, 24, 3)
    """

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(height, width, seed=seed, data_format=data_format, **kwargs)
        self.supports_jit = True

    def _image_size(self, shape):
        h, w = shape[self.height_axis], shape[self.width_axis]
        if h is None or w is None:
            raise ValueError(
                f"RandomCrop needs a fully defined height and width. Received: shape={shape}"
            )
        if h < self.height or w < self.width:
            raise ValueError(
                f"RandomCrop of {self.height}x{self.width} needs images at least that "
                f"large. Received: images of {h}x{w}"
            )
        return int(h), int(w)

    def get_random_transformation(self, data, training=True, seed=None):
        images = data["images"] if isinstance(data, dict) else data
        shape = self.backend.shape(images)
        h, w = self._image_size(shape)
        batch = shape[0] if len(shape) == 4 else 1
        np_ = self.backend.numpy
        if not training:
            top = np_.full((batch,), (h - self.height) // 2, dtype="float32")
            left = np_.full((batch,), (w - self.width) // 2, dtype="float32")
        else:
            if seed is None:
                seed = keras_compat.preprocessing_seed_generator(self)
            # floor(U * (n + 1)) is uniform on {0, ..., n}.
            u = self.backend.random.uniform((2, batch), seed=seed)
            top = np_.floor(u[0] * (h - self.height + 1))
            left = np_.floor(u[1] * (w - self.width + 1))
        return {"top": top, "left": left}

    def transform_images(self, images, transformation, training=True):
        images = self.backend.cast(images, self.compute_dtype)
        np_ = self.backend.numpy
        zeros = np_.zeros_like(transformation["top"])
        ones = np_.ones_like(zeros)
        # A pure integer translation: x_in = x_out + left, y_in = y_out + top.
        matrix = np_.stack(
            [ones, zeros, transformation["left"], zeros, ones, transformation["top"],
             zeros, zeros], axis=1,
        )
        return affine_warp(
            self.backend, images, matrix, interpolation="nearest", fill_mode="nearest",
            data_format=self.data_format, output_size=(self.height, self.width),
        )

    def transform_segmentation_masks(self, segmentation_masks, transformation, training=True):
        return self.transform_images(segmentation_masks, transformation, training=training)

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        raise NotImplementedError(
            "noisewise RandomCrop crops each image at its own offset and does not "
            "transform bounding boxes; use keras.layers.RandomCrop for detection data."
        )
