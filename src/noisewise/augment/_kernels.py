"""Kernels, resampling matrices and the deterministic parts of the corruptions.

NumPy (float64) for the constant kernels and index tables, ``keras.ops`` for
what runs on the images. See :mod:`noisewise.augment.corruptions`.
"""

import keras
import numpy as np
from keras import ops

from noisewise._core import keras_compat
from noisewise.augment import _geometry


# -- kernels and resampling matrices (NumPy, float64) ---------------------------
def gaussian_kernel1d(sigma, truncate=4.0):
    """scipy.ndimage's Gaussian weights: radius ``int(truncate * sigma + 0.5)``."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype="float64")
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def disk_kernel(radius, alias_blur):
    """ImageNet-C's anti-aliased disk: normalised disk, then an OpenCV-style Gaussian blur."""
    half = 8 if radius <= 8 else int(radius)
    ksize = 3 if radius <= 8 else 5
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx**2 + yy**2 <= radius**2).astype("float64")
    disk /= disk.sum()
    taps = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-(taps**2) / (2.0 * alias_blur**2))
    g /= g.sum()
    pad = ksize // 2
    for axis in (0, 1):  # separable blur with BORDER_REFLECT_101 (numpy "reflect")
        padded = np.pad(disk, [(pad, pad) if a == axis else (0, 0) for a in (0, 1)], mode="reflect")
        disk = sum(g[i] * np.take(padded, np.arange(i, i + disk.shape[axis]), axis=axis)
                   for i in range(ksize))
    # Rows and columns that are exactly zero change nothing; trimming them lets
    # small images use the kernel.
    rows, cols = np.flatnonzero(disk.any(1)), np.flatnonzero(disk.any(0))
    r = max(half - rows.min(), rows.max() - half, half - cols.min(), cols.max() - half)
    return disk[half - r: half + r + 1, half - r: half + r + 1]


def box_resample_matrix(in_size, out_size):
    """Pillow's BOX filter as an (out_size, in_size) matrix (ImagingResample's weights)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    m = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        t = (np.arange(lo, hi) - center + 0.5) / filterscale
        w = ((t > -0.5) & (t <= 0.5)).astype("float64")
        m[i, lo:hi] = w / w.sum() if w.sum() else 0.0
    return m


def zoom_taps(size, factor):
    """``clipped_zoom`` along one axis as 2-tap linear interpolation (i0, i1, weight).

    The published ``clipped_zoom`` crops the central ``ceil(size / factor)``
    pixels, zooms them with ``scipy.ndimage.zoom(order=1)`` (output length
    ``round(crop * factor)``, input coordinate ``i (crop - 1) / (out - 1)``)
    and keeps the central ``size`` outputs.
    """
    crop = int(np.ceil(size / factor))
    top = (size - crop) // 2
    out = int(round(crop * factor))
    trim = (out - size) // 2
    i = np.arange(trim, trim + size, dtype="float64")
    src = top + (i * (crop - 1) / (out - 1) if out > 1 else 0.0 * i)
    i0 = np.floor(src).astype("int32")
    return i0, np.minimum(i0 + 1, top + crop - 1).astype("int32"), src - i0


def plasma_fractal(uniforms, wibbledecay):
    """The published diamond-square height map, from pre-drawn uniforms, in [0, 1].

    Args:
        uniforms: One ``(squares, diamonds_a, diamonds_b)`` triple per level,
            each (batch, n, n) with values in [-1, 1) and n = 1, 2, 4, ...,
            mapsize / 2: the draws of ``fillsquares`` and ``filldiamonds``, in
            their order (``np.random.uniform(-wibble, wibble)`` is
            ``wibble * u``).
        wibbledecay: Divides the random amplitude ``wibble`` (100 at first)
            after each level.

    Returns:
        (batch, mapsize, mapsize) float32, each map scaled to min 0 and max 1.
    """
    corners = ops.zeros_like(uniforms[0][0])
    wibble = 100.0
    for squares_u, diamonds_a_u, diamonds_b_u in uniforms:
        n = int(corners.shape[1])
        # Each new value is the mean of its 4 neighbours (wrapping around) plus
        # wibble * uniform(-wibble, wibble), as in the published wibbledmean.
        squares = corners + ops.roll(corners, -1, axis=1)
        squares = (squares + ops.roll(squares, -1, axis=2)) / 4 + wibble * wibble * squares_u
        rows = squares + ops.roll(squares, 1, axis=1) + corners + ops.roll(corners, -1, axis=2)
        cols = squares + ops.roll(squares, 1, axis=2) + corners + ops.roll(corners, -1, axis=1)
        diamonds_a = rows / 4 + wibble * wibble * diamonds_a_u  # even rows, odd columns
        diamonds_b = cols / 4 + wibble * wibble * diamonds_b_u  # odd rows, even columns
        even = ops.reshape(ops.stack([corners, diamonds_a], axis=-1), (-1, n, 2 * n))
        odd = ops.reshape(ops.stack([diamonds_b, squares], axis=-1), (-1, n, 2 * n))
        corners = ops.reshape(ops.stack([even, odd], axis=2), (-1, 2 * n, 2 * n))
        wibble = wibble / wibbledecay
    corners = corners - ops.min(corners, axis=(1, 2), keepdims=True)
    return corners / ops.max(corners, axis=(1, 2), keepdims=True)


def fractal_size(height, width):
    """Side of the fractal map: the next power of two at least as large as the image."""
    return max(2, 1 << int(np.ceil(np.log2(max(height, width)))))


def plasma_uniforms(batch, mapsize, seed):
    """The uniform draws of :func:`plasma_fractal` for ``batch`` maps of ``mapsize``."""
    out, n = [], 1
    while n < mapsize:
        out.append(tuple(keras.random.uniform((batch, n, n), -1.0, 1.0, seed=seed)
                         for _ in range(3)))
        n *= 2
    return out


def elastic_apply(x, c, shift, fields):
    """Deterministic part of elastic_transform, given its draws.

    Args:
        x: (batch, height, width, channels) unit-range images.
        c: The severity's (alpha, sigma, affine).
        shift: (batch, 3, 2) offsets of the 3 affine control points (in
            [-affine, affine]).
        fields: (batch, 2, height, width) uniforms in [-1, 1) for dx and dy.
    """
    alpha, sigma, _ = c
    h, w = int(x.shape[1]), int(x.shape[2])
    # cv2.getAffineTransform(pts1, pts1 + shift): the 2x3 M with M [p, 1] = p + shift,
    # solved with the (constant) inverse of [pts1, 1]; points are (x, y) for OpenCV.
    center = np.array([h // 2, w // 2], "float64")
    square = min(h, w) // 3
    pts1 = np.array([center + square, [center[0] + square, center[1] - square],
                     center - square])
    a_inv = np.linalg.inv(np.concatenate([pts1, np.ones((3, 1))], axis=1)).astype("float32")
    m = ops.einsum("ij,bjk->bki", a_inv, ops.convert_to_tensor(pts1, "float32") + shift)
    # warpAffine samples the source at M^-1 (x, y): invert [R | t] to [R^-1 | -R^-1 t].
    a, b, tx = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    cc, d, ty = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    det = a * d - b * cc
    ia, ib, ic, id_ = d / det, -b / det, -cc / det, a / det
    inverse = ops.stack([ia, ib, -(ia * tx + ib * ty), ic, id_, -(ic * tx + id_ * ty),
                         ops.zeros_like(a), ops.zeros_like(a)], axis=1)
    be = keras_compat.dynamic_backend()
    x = _geometry.affine_warp(be, x, inverse, fill_mode="mirror")  # BORDER_REFLECT_101
    # skimage's gaussian(sigma, mode="reflect", truncate=3) of each field, times alpha.
    f = ops.transpose(ops.cast(fields, "float32"), (0, 2, 3, 1))
    if sigma > 0:
        g = gaussian_kernel1d(sigma, truncate=3.0)
        r = len(g) // 2
        f = depthwise(depthwise(pad_images(f, r, "symmetric"), g[:, None]), g[None, :])
    f = f * alpha
    ys = ops.reshape(ops.arange(h, dtype="float32"), (1, h, 1))
    xs = ops.reshape(ops.arange(w, dtype="float32"), (1, 1, w))
    out = _geometry.resample(be, x, ys + f[..., 1], xs + f[..., 0], fill_mode="reflect")
    return ops.clip(out, 0.0, 1.0)


def _pad_index(n, pad, mode):
    return np.pad(np.arange(n), pad, mode=mode).astype("int32")


def pad_images(x, pad, mode):
    """Pad axes 1 and 2 by gathering, exact for any pad width (numpy's modes)."""
    h, w = int(x.shape[1]), int(x.shape[2])
    x = ops.take(x, _pad_index(h, pad, mode), axis=1)
    return ops.take(x, _pad_index(w, pad, mode), axis=2)


def depthwise(x, kernel2d):
    channels = int(x.shape[-1])
    k = np.repeat(np.asarray(kernel2d, "float32")[:, :, None, None], channels, axis=2)
    return ops.depthwise_conv(x, ops.convert_to_tensor(k), strides=1, padding="valid")
