"""Common image corruptions at severities 1 to 5, as in ImageNet-C and CIFAR-10-C.

Hendrycks and Dietterich (2019), "Benchmarking Neural Network Robustness to
Common Corruptions and Perturbations", ICLR. The severity constants in
``SEVERITY`` are copied from the paper's released generators in
https://github.com/hendrycks/robustness, folder ``ImageNet-C/create_c/``:
``make_imagenet_c.py`` (preset ``"imagenet"``, tuned for 224x224 images) and
``make_cifar_c.py`` (preset ``"cifar"``, for 32x32 images); each list is the
``c = [...][severity - 1]`` line of the function of the same name there. Each
corruption works on the unit range ([0, 1] after dividing 8-bit images by 255),
as those functions do.

Implemented with ``keras.ops`` (batched, any backend, on the accelerator),
except ``jpeg_compression``, which round-trips through Pillow on the host, and
frost and spatter, computed with NumPy on the host (their textures and OpenCV
steps are data-dependent loops and look-ups). Glass and motion blur, snow,
frost and spatter are described in :mod:`noisewise.augment._corruptions_extra`;
frost there is a procedural stand-in for the published photographs.

* gaussian_noise: ``clip(x + c N(0, 1))``
* shot_noise: ``clip(Poisson(x c) / c)``
* impulse_noise: a fraction c of values set to 0 or 1 (half each), per value,
  as ``skimage.util.random_noise(mode="s&p", amount=c)``
* speckle_noise: ``clip(x + x c N(0, 1))``
* gaussian_blur: ``skimage.filters.gaussian(sigma=c)``, i.e. a separable
  Gaussian over rows and columns, truncated at 4 sigma, edges replicated
* defocus_blur: correlation with the anti-aliased disk of radius c[0] (the
  disk blurred by a 3x3 (5x5 above radius 8) Gaussian of sigma c[1], as OpenCV's
  ``GaussianBlur``), image borders reflected without repeating the edge
  (OpenCV's BORDER_REFLECT_101)
* zoom_blur: the mean of the image and its central zooms by each factor of
  ``np.arange(*c)`` (``clipped_zoom``: ``scipy.ndimage.zoom(order=1)`` of the
  central crop), as 2-tap interpolation along rows then columns (see
  :func:`zoom_taps`). Rows and columns are zoomed separately, so images need
  not be square (the published code assumes they are).
* contrast: ``clip((x - mean) c + mean)``, mean per image and channel
* brightness: HSV value ``V = max(R, G, B)`` shifted to ``clip(V + c)`` with hue
  and saturation kept. For fixed H and S, RGB is proportional to V, so this is
  exactly ``x V' / V`` (and ``V'`` in every channel where V = 0).
* saturate: HSV saturation ``S = (V - min) / V`` set to ``clip(S c0 + c1)``,
  i.e. ``V - (S'/S)(V - x)``; grey pixels (S = 0, hue 0 = red by the HSV
  convention) become ``(V, V(1 - S'), V(1 - S'))``. RGB images only.
* fog: ``clip((x + c0 F) max(x) / (max(x) + c0))`` with F the published
  diamond-square ``plasma_fractal`` (wibble decay c1), one per image, on a map
  of the next power of two at least as large as the image (256 for 224x224
  ImageNet, 32 for CIFAR, as published), cropped to the image.
* elastic_transform: a random affine warp (3 control points moved by up to
  c2 pixels; bilinear, borders as BORDER_REFLECT_101), then a displacement
  field of uniform noise smoothed by a Gaussian of sigma c1 (truncated at 3
  sigma, reflected borders) and scaled by c0, sampled bilinearly with reflected
  borders. OpenCV's ``warpAffine`` rounds source positions to 1/32 pixel; this
  computes them exactly.
* pixelate: Pillow's BOX resize down to ``int(size c)`` and back up, built as
  two resampling matrices with Pillow's own weights.
* jpeg_compression: Pillow JPEG at quality c (8-bit, as the reference).

Random corruptions draw their parameters first (the noise, the fractal's
uniforms, the warp's control points and fields) and then apply them, so the
deterministic part (:func:`plasma_fractal`, :func:`elastic_apply`) can be
checked against the published code fed the same draws.

Image size: the published constants are tuned for 224 (ImageNet) or 32
(CIFAR) pixels. By default (``size_aware=True``) smaller images get the
pixel-size constants scaled by their side over the preset's (see
:func:`noisewise.augment._corruptions_extra.size_constants`), so a corruption
covers the same fraction of the image as at the preset's size. Measured with
elastic_transform on 64 8x8 digits (mean absolute change over the value range,
severities 1 to 5): CIFAR constants 0.135 0.120 0.108 0.101 0.080 scaled, 0.354
0.333 0.309 0.290 0.231 unscaled; ImageNet 0.18 0.30 0.04 0.05 0.05 scaled,
0.41 0.40 0.37 0.37 0.38 unscaled. The published severities are not ordered by
pixel change even at their own size (ImageNet severities 1 and 2 are large
affine warps: 0.13 0.18 0.07 0.07 0.07 on 224x224 photographs), and scaling
keeps that order rather than inventing one.

Channels: saturate needs RGB; snow, frost and spatter need RGB or one channel
(``COLOUR_CHANNELS``); the others take any number of channels. Outputs are
float32 in ``value_range``, not rounded to 8 bits (the released datasets were
saved as 8-bit files).
"""

import functools
import io

import keras
import numpy as np
from keras import ops

from noisewise._core.validation import check_choice, check_int, check_range
from noisewise.augment import _corruptions_extra
from noisewise.augment._corruptions_extra import size_constants
from noisewise.augment._kernels import (  # noqa: F401 -- public helpers, re-exported
    box_resample_matrix,
    depthwise,
    disk_kernel,
    elastic_apply,
    gaussian_kernel1d,
    fractal_size,
    pad_images,
    plasma_fractal,
    plasma_uniforms,
    zoom_taps,
)
from noisewise.layers.noise import poisson
from noisewise.random import layer_seed

SEVERITY = {
    "imagenet": {
        "gaussian_noise": [0.08, 0.12, 0.18, 0.26, 0.38],
        "shot_noise": [60, 25, 12, 5, 3],
        "impulse_noise": [0.03, 0.06, 0.09, 0.17, 0.27],
        "speckle_noise": [0.15, 0.2, 0.35, 0.45, 0.6],
        "gaussian_blur": [1, 2, 3, 4, 6],
        "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
        "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
        "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],
        "saturate": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)],
        "pixelate": [0.6, 0.5, 0.4, 0.3, 0.25],
        "jpeg_compression": [25, 18, 15, 10, 7],
        # np.arange(start, stop, step) of zoom factors, as published (float
        # rounding included: (1, 1.11, 0.01) gives 12 factors, 1.0 to 1.11).
        "zoom_blur": [(1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02),
                      (1, 1.31, 0.03)],
        "fog": [(1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)],
        # (alpha, sigma, affine) in pixels; "244 should have been 224" says the source.
        "elastic_transform": [(244 * 2, 244 * 0.7, 244 * 0.1), (244 * 2, 244 * 0.08, 244 * 0.2),
                              (244 * 0.05, 244 * 0.01, 244 * 0.02),
                              (244 * 0.07, 244 * 0.01, 244 * 0.02),
                              (244 * 0.12, 244 * 0.01, 244 * 0.02)],
        "glass_blur": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],  # sigma, delta, iterations
        "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],  # radius, sigma
        "snow": [(0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
                 (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)],
        "frost": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
        "spatter": [(0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
                    (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)],
    },
    "cifar": {
        "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
        "shot_noise": [500, 250, 100, 75, 50],
        "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
        "speckle_noise": [0.06, 0.1, 0.12, 0.16, 0.2],
        "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1],
        "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
        "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
        "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],
        "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
        "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
        "jpeg_compression": [80, 65, 58, 50, 40],
        "zoom_blur": [(1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01),
                      (1, 1.26, 0.01)],
        "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
        "elastic_transform": [(32 * 0, 32 * 0, 32 * 0.08), (32 * 0.05, 32 * 0.2, 32 * 0.07),
                              (32 * 0.08, 32 * 0.06, 32 * 0.06), (32 * 0.1, 32 * 0.04, 32 * 0.05),
                              (32 * 0.1, 32 * 0.03, 32 * 0.03)],
        "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
        "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
        "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
                 (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
        "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
        "spatter": [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                    (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)],
    },
}
CORRUPTIONS = tuple(SEVERITY["imagenet"])
PRESETS = tuple(SEVERITY)
# The channel counts a corruption accepts, where it does not take any.
COLOUR_CHANNELS = {"saturate": (3,), "snow": (1, 3), "frost": (1, 3), "spatter": (1, 3)}


# -- the corruptions, on unit-range float32 (batch, height, width, channels) --------
def _hsv_value(x):
    return ops.max(x, axis=-1, keepdims=True)


def _gaussian_noise(x, c, seed):
    return ops.clip(x + c * keras.random.normal(ops.shape(x), seed=seed), 0.0, 1.0)


def _shot_noise(x, c, seed):
    return ops.clip(poisson(x * c, seed, "float32") / c, 0.0, 1.0)


def _impulse_noise(x, c, seed):
    hit = keras.random.uniform(ops.shape(x), seed=seed) < c
    salt = keras.random.uniform(ops.shape(x), seed=seed) < 0.5
    return ops.where(hit, ops.cast(salt, x.dtype), x)


def _speckle_noise(x, c, seed):
    return ops.clip(x + x * c * keras.random.normal(ops.shape(x), seed=seed), 0.0, 1.0)


def _gaussian_blur(x, c, seed):
    g = gaussian_kernel1d(c)
    r = len(g) // 2
    y = pad_images(x, r, "edge")
    y = depthwise(y, g[:, None])
    return ops.clip(depthwise(y, g[None, :]), 0.0, 1.0)


def _defocus_blur(x, c, seed):
    k = disk_kernel(*c)
    return ops.clip(depthwise(pad_images(x, len(k) // 2, "reflect"), k), 0.0, 1.0)


def _contrast(x, c, seed):
    means = ops.mean(x, axis=(1, 2), keepdims=True)
    return ops.clip((x - means) * c + means, 0.0, 1.0)


def _brightness(x, c, seed):
    v = _hsv_value(x)
    v_new = ops.clip(v + c, 0.0, 1.0)
    safe_v = ops.where(v > 0, v, 1.0)
    return ops.clip(ops.where(v > 0, x * (v_new / safe_v), v_new), 0.0, 1.0)


def _saturate(x, c, seed):
    if int(x.shape[-1]) != 3:
        raise ValueError(
            f"saturate needs RGB images (3 channels). Received: {int(x.shape[-1])} channels"
        )
    v = _hsv_value(x)
    lo = ops.min(x, axis=-1, keepdims=True)
    s = ops.where(v > 0, (v - lo) / ops.where(v > 0, v, 1.0), 0.0)
    s_new = ops.clip(s * c[0] + c[1], 0.0, 1.0)
    ratio = s_new / ops.where(s > 0, s, 1.0)
    coloured = v - ratio * (v - x)
    red = ops.convert_to_tensor(np.array([0.0, 1.0, 1.0], "float32"))
    grey = v * (1.0 - red * s_new)  # hue 0: (V, V(1 - S'), V(1 - S'))
    return ops.clip(ops.where(s > 0, coloured, grey), 0.0, 1.0)


def _pixelate(x, c, seed):
    h, w = int(x.shape[1]), int(x.shape[2])
    sh, sw = int(h * c), int(w * c)
    rows = box_resample_matrix(sh, h) @ box_resample_matrix(h, sh)
    cols = box_resample_matrix(sw, w) @ box_resample_matrix(w, sw)
    rows = ops.convert_to_tensor(rows.astype("float32"))
    cols = ops.convert_to_tensor(cols.astype("float32"))
    return ops.einsum("ih,bhwc,jw->bijc", rows, x, cols)


def _jpeg_compression(x, c, seed):
    from PIL import Image

    pixels = np.clip(np.rint(np.asarray(ops.convert_to_numpy(x)) * 255.0), 0, 255).astype("uint8")
    out = np.empty(pixels.shape, "float32")
    for i, image in enumerate(pixels):
        grey = image.shape[-1] == 1
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if grey else image).save(buffer, "JPEG", quality=int(c))
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), "float32") / 255.0
        out[i] = decoded[..., None] if grey else decoded
    return ops.convert_to_tensor(out)


def _zoom_blur(x, c, seed):
    h, w = int(x.shape[1]), int(x.shape[2])
    out = x
    for factor in np.arange(*c):
        zoomed = x
        for axis, size in ((1, h), (2, w)):
            i0, i1, wt = zoom_taps(size, factor)
            wt = ops.reshape(ops.convert_to_tensor(wt.astype("float32")),
                             [-1 if a == axis else 1 for a in range(4)])
            a, b = ops.take(zoomed, i0, axis=axis), ops.take(zoomed, i1, axis=axis)
            zoomed = a + wt * (b - a)
        out = out + zoomed
    return ops.clip(out / (len(np.arange(*c)) + 1), 0.0, 1.0)


def _fog(x, c, seed):
    h, w = int(x.shape[1]), int(x.shape[2])
    uniforms = plasma_uniforms(ops.shape(x)[0], fractal_size(h, w), seed)
    fractal = plasma_fractal(uniforms, c[1])[:, :h, :w, None]
    max_val = ops.max(x, axis=(1, 2, 3), keepdims=True)
    return ops.clip((x + c[0] * fractal) * max_val / (max_val + c[0]), 0.0, 1.0)


def _elastic_transform(x, c, seed):
    batch, h, w = ops.shape(x)[0], int(x.shape[1]), int(x.shape[2])
    shift = keras.random.uniform((batch, 3, 2), -c[2], c[2], seed=seed)
    fields = keras.random.uniform((batch, 2, h, w), -1.0, 1.0, seed=seed)
    return elastic_apply(x, c, shift, fields)


# Defined here as _name, or in _corruptions_extra as name.
_FUNCTIONS = {name: globals().get(f"_{name}") or getattr(_corruptions_extra, name) for name in CORRUPTIONS}


def corrupt(images, name: str, severity: int, *, seed: int | None = None,
            value_range: tuple[float, float] = (0, 255), preset: str = "imagenet",
            size_aware: bool = True) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1 to 5) to a batch of images.

    Args:
        images: (batch, height, width, channels) or (height, width, channels),
            channels last, values in ``value_range`` (uint8 or float).
        name: One of ``CORRUPTIONS``.
        severity: Integer 1..5.
        seed: Optional non-negative integer; the same seed gives the same
            corruption (on the same backend).
        value_range: ``(0, 255)`` or ``(0, 1)`` (any ``(low, high)``): images
            are mapped to [0, 1], corrupted, and mapped back.
        preset: ``"imagenet"`` (constants of ``make_imagenet_c.py``) or
            ``"cifar"`` (``make_cifar_c.py``, for small images).
        size_aware: Scale the pixel-size constants of images smaller than
            the preset's side (224 or 32) by their side over it (see the
            module docstring); False applies the published constants as
            they are.

    Returns:
        float32 tensor of the input's shape, in ``value_range``.

    Example:
        >>> import numpy as np
        >>> from noisewise.augment import corrupt
        >>> x = np.full((2, 16, 16, 3), 128, "uint8")
        >>> y = corrupt(x, "gaussian_noise", 3, seed=0)
        >>> tuple(y.shape)
        (2, 16, 16, 3)
    """
    check_choice("name", name, CORRUPTIONS)
    check_int("severity", severity, low=1)
    if severity > 5:
        raise ValueError(f"`severity` must be in [1, 5]. Received: severity={severity}")
    check_choice("preset", preset, PRESETS)
    if not isinstance(size_aware, bool):
        raise ValueError(f"`size_aware` must be True or False. Received: size_aware={size_aware!r}")
    low, high = check_range("value_range", value_range, allow_none=False)
    x = ops.cast(ops.convert_to_tensor(images), "float32")
    if len(x.shape) not in (3, 4):
        raise ValueError(f"`images` must be (batch, height, width, channels) or (height, width, "
                         f"channels). Received: shape={tuple(x.shape)}")
    single = len(x.shape) == 3
    if single:
        x = ops.expand_dims(x, 0)
    generator = keras.random.SeedGenerator(layer_seed(seed))
    c = size_constants(name, SEVERITY[preset][name][severity - 1], preset, int(x.shape[1]), int(x.shape[2]),
                       size_aware)
    if keras.backend.backend() == "jax" and name not in _ON_HOST:
        static = name in _STATIC_CONSTANTS
        run = _jax_compiled(name, c if static else None)
        out = run(x, generator.state.value, float(low), float(high),
                  None if static else np.asarray(c, "float32"))
    else:
        out = _corrupt(name, c, x, generator, low, high)
    return ops.squeeze(out, 0) if single else out


def _corrupt(name, c, x, generator, low, high):
    unit = (x - low) / (high - low)
    out = _FUNCTIONS[name](unit, c, generator)
    return low + ops.cast(out, "float32") * (high - low)


# Constants that set shapes (kernel sizes, resampling matrices) are baked into
# the compiled program; the others are arguments, so all severities share one.
_STATIC_CONSTANTS = ("gaussian_blur", "defocus_blur", "pixelate", "zoom_blur", "elastic_transform",
                     "glass_blur", "motion_blur", "snow")
_ON_HOST = ("jpeg_compression", "frost", "spatter")  # NumPy or Pillow: not compiled


@functools.lru_cache(maxsize=None)
def _jax_compiled(name, static_c):
    """One XLA program per corruption on JAX (op-by-op dispatch compiles every
    primitive separately, which dominates for a single batch). The seed state is
    an argument, so one program serves every seed."""
    import jax

    generator = keras.random.SeedGenerator(0)

    @jax.jit
    def run(x, state, low, high, c):
        with keras.StatelessScope(state_mapping=[(generator.state, state)]):
            return _corrupt(name, static_c if c is None else c, x, generator, low, high)

    return run
