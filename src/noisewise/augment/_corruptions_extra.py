"""Glass and motion blur, snow, frost and spatter, and the size-aware constants.

The five corruptions of Hendrycks and Dietterich (2019) that the published
generators build with ImageMagick, shipped photographs, OpenCV or per-pixel
Python loops (see :mod:`noisewise.augment.corruptions` for the sources). Each
draws its randomness first and hands it to a deterministic ``*_apply``
function, which the tests feed the same draws as a port of the published code.

* glass_blur (c = sigma, max_delta, iterations): Gaussian blur, 8-bit
  truncation, the published pixel loop, Gaussian blur. The loop's "swap"
  ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` assigns NumPy views, so on RGB
  images it copies ``x[h', w']`` into ``x[h, w]`` and leaves ``x[h', w']``; this
  reproduces that copy (for every channel count) with pointer jumping over the
  chain of earlier copies instead of a Python loop. Offsets are drawn in
  ``[-max_delta, max_delta)``, as ``np.random.randint`` draws them.
* motion_blur (c = radius, sigma): ImageMagick's ``MotionBlurImage``: a
  one-sided line of ``2 ceil(radius) + 1`` taps, weights ``exp(-i^2 / (2
  sigma^2))`` normalised, tap i at offset ``(ceil(i cos a - 0.5), ceil(i sin
  a - 0.5))`` (x right, y down), edge pixels repeated (its default virtual
  pixels); angle a uniform in [-45, 45) degrees.
* snow (7 constants): Gaussian snow noise, clipped zoom, threshold, 8-bit
  truncation, motion blur at an angle in [-135, -45) (rounded to 8 bits, as the
  PNG ImageMagick writes), the image brightened towards ``1.5 grey + 0.5``
  (OpenCV's RGB2GRAY weights), plus the snow and its 180-degree rotation.
* frost (c = image weight, frost weight): ``clip(c0 x + c1 F)`` with F a crop
  of a frost texture. The published texture is one of five photographs shipped
  with the generators (cropped at full size for ImageNet, after a 0.2 resize
  for CIFAR); they are not ours to ship, so F is a procedural stand-in drawn
  from the seed (:func:`frost_texture`): a haze of smoothed noise and ice
  needles with hexagonal side branches, tinted blue-grey. Measured on those
  five photographs: channel means 0.57, 0.66, 0.70 (R, G, B), within-image
  std 0.06 to 0.17, neighbour correlation 0.80 to 0.87 (0.25 to 0.43 at 64
  pixels). Ours, measured over seeds 0 to 2 at 464 pixels: means 0.60, 0.68,
  0.73, std 0.13 to 0.16, neighbour correlation 0.92 (0.20 to 0.23 at 64).
* spatter (6 constants): liquid (severities with c5 = 0): smoothed Gaussian
  noise, thresholded, its Canny edges (50, 150), the distance to them capped at
  20, box blur, histogram equalisation, an emboss filter, box blur, added in
  pale turquoise (175, 238, 238); mud (c5 = 1): the thresholded mask smoothed
  and cut at 0.8, blending towards mud brown (63, 42, 20). OpenCV's steps are
  written out in NumPy (:func:`canny`, :func:`equalize_hist`); the distance is
  exact Euclidean where OpenCV's 5x5 chamfer mask (DIST_L2, size 5) is within
  about 2 % of it.

On one-channel images frost's texture and spatter's colours are taken to grey
with the RGB2GRAY weights (0.299, 0.587, 0.114), and snow's grey is the image.
"""

import keras
import numpy as np
import scipy.ndimage as ndi
from keras import ops

from noisewise.augment._kernels import (
    box_resample_matrix,
    depthwise,
    gaussian_kernel1d,
    pad_images,
    zoom_taps,
)

PRESET_SIDE = {"imagenet": 224, "cifar": 32}
FROST_ZOOM = {"imagenet": 1.0, "cifar": 0.2}  # the published frost photos are resized by 0.2 for CIFAR
LUMA = np.array([0.299, 0.587, 0.114], "float32")  # OpenCV's RGB2GRAY
WATER, MUD = np.array([175, 238, 238]) / 255.0, np.array([63, 42, 20]) / 255.0


def colour(x, rgb, name):
    """``rgb`` for 3-channel images, its grey for 1-channel ones."""
    channels = int(x.shape[-1])
    if channels not in (1, 3):
        raise ValueError(f"{name} needs RGB or one-channel images. Received: {channels} channels")
    rgb = np.asarray(rgb, "float32")
    return rgb if channels == 3 else np.array([rgb @ LUMA], "float32")


def blur(x, sigma):
    """skimage's ``gaussian(sigma)`` over rows and columns: truncated at 4 sigma, edges repeated."""
    g = gaussian_kernel1d(sigma)
    r = len(g) // 2
    return depthwise(depthwise(pad_images(x, r, "edge"), g[:, None]), g[None, :])


# -- glass blur --------------------------------------------------------------------
def glass_apply(x, c, shifts):
    """Deterministic part of glass_blur.

    Args:
        x: (batch, height, width, channels) unit-range images.
        c: (sigma, max_delta, iterations).
        shifts: (batch, iterations, height - 2 max_delta, width - 2 max_delta, 2)
            integers in [-max_delta, max_delta): the published ``dx, dy`` of each
            step, in loop order (rows and columns descending from
            ``size - max_delta`` to ``max_delta + 1``).
    """
    sigma, d, iterations = c
    # 8-bit truncation as np.uint8. The 1e-4 (of a level) keeps float32 rounding from
    # dropping exact levels; on the test photographs 0.5 % of values still land on the
    # other side of a level than in float64 (sigma 0.25, whose blur leaves many a hair below one).
    y = ops.floor(ops.clip(blur(x, sigma), 0.0, 1.0) * 255.0 + 1e-4) / 255.0
    for it in range(iterations):
        y = _glass_pass(y, d, shifts[:, it])
    return ops.clip(blur(y, sigma), 0.0, 1.0)


def _glass_pass(x, d, shifts):
    b, h, w, ch = ops.shape(x)[0], int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    nh, nw, n = h - 2 * d, w - 2 * d, h * w
    if nh <= 0 or nw <= 0:
        return x
    # Loop order to the pixel grid: flip to ascending rows and columns, pad to the image.
    grid = ops.pad(ops.flip(ops.flip(ops.cast(shifts, "int32"), 1), 2), [[0, 0], [d + 1, d - 1], [d + 1, d - 1],
                                                                         [0, 0]])
    rows, cols = np.mgrid[0:h, 0:w]
    inside = (rows > d) & (rows <= h - d) & (cols > d) & (cols <= w - d)
    order = np.where(inside, (h - d - rows) * nw + (w - d - cols), n).reshape(-1).astype("int32")
    p = ops.convert_to_tensor(np.arange(n, dtype="int32")[None])
    src = p + ops.reshape(grid[..., 1] * w + grid[..., 0], (-1, n))
    # Step t copies the value its source holds at step t: the source's own copy if
    # the loop visited it earlier, else its value before the pass. Follow the chain
    # of earlier copies to its end by pointer jumping (chains are at most n long).
    earlier = ops.take(ops.convert_to_tensor(order), src) < ops.convert_to_tensor(order[None])
    ptr = ops.where(earlier, src, p)
    for _ in range(int(np.ceil(np.log2(n))) + 1):
        ptr = ops.take_along_axis(ptr, ptr, axis=1)
    final = ops.take_along_axis(src, ptr, axis=1)
    flat = ops.reshape(x, (b, n, ch))
    out = ops.take_along_axis(flat, ops.broadcast_to(ops.expand_dims(final, -1), (b, n, ch)), axis=1)
    return ops.reshape(out, (b, h, w, ch))


def glass_shift_shape(batch, height, width, c):
    return (batch, c[2], max(height - 2 * c[1], 0), max(width - 2 * c[1], 0), 2)


# -- motion blur -------------------------------------------------------------------
def motion_kernel(radius, sigma):
    """ImageMagick's motion-blur weights: ``2 ceil(radius) + 1`` one-sided Gaussian taps."""
    width = int(2 * np.ceil(radius) + 1)  # GetOptimalKernelWidth1D for radius > 0
    s = max(abs(float(sigma)), 1e-12)  # MagickEpsilon
    k = np.exp(-(np.arange(width, dtype="float64") ** 2) / (2.0 * s * s))
    return k / k.sum()


def motion_blur_apply(x, radius, sigma, angles):
    """ImageMagick's ``MotionBlurImage(radius, sigma, angle)`` with one angle (degrees) per image."""
    b, h, w, ch = ops.shape(x)[0], int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    k = motion_kernel(radius, sigma)
    theta = ops.cast(angles, "float32") * np.float32(np.pi / 180.0)
    taps = ops.convert_to_tensor(np.arange(len(k), dtype="float32")[None])
    ox = ops.cast(ops.ceil(taps * ops.cos(theta)[:, None] - 0.5), "int32")
    oy = ops.cast(ops.ceil(taps * ops.sin(theta)[:, None] - 0.5), "int32")
    ys = ops.convert_to_tensor(np.arange(h, dtype="int32")[None])
    xs = ops.convert_to_tensor(np.arange(w, dtype="int32")[None])
    flat = ops.reshape(x, (b, h * w, ch))
    out = None
    for j, weight in enumerate(k):
        if weight == 0.0:  # underflowed taps (sigma far below radius) add nothing
            continue
        r = ops.clip(ys + oy[:, j: j + 1], 0, h - 1)
        q = ops.clip(xs + ox[:, j: j + 1], 0, w - 1)
        idx = ops.reshape(r[:, :, None] * w + q[:, None, :], (b, h * w, 1))
        term = np.float32(weight) * ops.take_along_axis(flat, ops.broadcast_to(idx, (b, h * w, ch)), axis=1)
        out = term if out is None else out + term
    return ops.reshape(out, (b, h, w, ch))


# -- snow --------------------------------------------------------------------------
def clipped_zoom(x, factor):
    """The published ``clipped_zoom`` (see :func:`zoom_taps`) of (batch, h, w, c) images."""
    for axis, size in ((1, int(x.shape[1])), (2, int(x.shape[2]))):
        i0, i1, wt = zoom_taps(size, factor)
        wt = ops.reshape(ops.convert_to_tensor(wt.astype("float32")), [-1 if a == axis else 1 for a in range(4)])
        a, b = ops.take(x, i0, axis=axis), ops.take(x, i1, axis=axis)
        x = a + wt * (b - a)
    return x


def snow_apply(x, c, noise, angles):
    """Deterministic part of snow: ``noise`` is the (batch, h, w, 1) N(c0, c1) layer, ``angles`` in degrees."""
    layer = clipped_zoom(noise, c[2])
    layer = ops.where(layer < c[3], 0.0, layer)
    layer = ops.floor(ops.clip(layer, 0.0, 1.0) * 255.0) / 255.0  # the 8-bit image handed to ImageMagick
    layer = ops.round(motion_blur_apply(layer, c[4], c[5], angles) * 255.0) / 255.0
    grey = x if int(x.shape[-1]) == 1 else ops.sum(x * ops.convert_to_tensor(LUMA), axis=-1, keepdims=True)
    x = c[6] * x + (1 - c[6]) * ops.maximum(x, grey * 1.5 + 0.5)
    return ops.clip(x + layer + ops.flip(ops.flip(layer, 1), 2), 0.0, 1.0)


def snow(x, c, seed):
    colour(x, LUMA, "snow")
    b, h, w = ops.shape(x)[0], int(x.shape[1]), int(x.shape[2])
    noise = keras.random.normal((b, h, w, 1), mean=c[0], stddev=c[1], seed=seed)
    return snow_apply(x, c, noise, keras.random.uniform((b,), -135.0, -45.0, seed=seed))


def motion_blur(x, c, seed):
    angles = keras.random.uniform((ops.shape(x)[0],), -45.0, 45.0, seed=seed)
    return ops.clip(motion_blur_apply(x, c[0], c[1], angles), 0.0, 1.0)


def glass_blur(x, c, seed):
    shape = glass_shift_shape(ops.shape(x)[0], int(x.shape[1]), int(x.shape[2]), c)
    return glass_apply(x, c, keras.random.randint(shape, -c[1], c[1], seed=seed))


# -- frost (NumPy, on the host) -------------------------------------------------------
def frost_texture(rng, size):
    """A (size, size, 3) procedural frost texture in [0, 1], features in photo pixels.

    Haze: three octaves of wrapped Gaussian-smoothed noise (sigmas 24, 6 and 1.5
    pixels). Ice: needles 6 to 40 pixels long at uniform angles, each with
    three side branches at +-60 degrees (ice grows hexagonally), splatted at
    half-pixel steps and smoothed to about a pixel wide. Tint: blue-grey
    (0.82, 0.94, 1.0), the photographs' channel ratios.
    """
    haze = sum(a * ndi.gaussian_filter(rng.standard_normal((size, size)), s, mode="wrap") * s
               for s, a in ((48.0, 1.0), (12.0, 0.4), (3.0, 0.2)))
    haze = (haze - haze.mean()) / haze.std()
    n = max(1, int(size * size / 150))
    start = rng.uniform(0, size, (n, 2))
    angle = rng.uniform(0, np.pi, n)
    length = rng.uniform(6, 40, n)
    bright = rng.uniform(0.3, 1.0, n)
    # Three branches per needle, from a point along it, at +-60 degrees, 0.2 to 0.5 as long.
    at = rng.uniform(0.2, 0.9, (n, 3))
    side = rng.choice([-1.0, 1.0], (n, 3))
    b_start = start[:, None] + at[..., None] * length[:, None, None] * np.stack(
        [np.sin(angle), np.cos(angle)], -1)[:, None]
    b_angle = angle[:, None] + side * np.pi / 3
    b_length = length[:, None] * rng.uniform(0.2, 0.5, (n, 3))
    starts = np.concatenate([start, b_start.reshape(-1, 2)])
    angles = np.concatenate([angle, b_angle.ravel()])
    lengths = np.concatenate([length, b_length.ravel()])
    brights = np.concatenate([bright, np.repeat(bright, 3) * 0.8])
    steps = np.arange(0, 40, 0.5)
    mask = steps[None] <= lengths[:, None]
    points = starts[:, None] + steps[None, :, None] * np.stack([np.sin(angles), np.cos(angles)], -1)[:, None]
    ij = np.floor(points[mask]).astype(int) % size
    ice = np.zeros((size, size))
    np.maximum.at(ice, (ij[:, 0], ij[:, 1]), np.broadcast_to(brights[:, None], mask.shape)[mask])
    ice = ndi.gaussian_filter(ice, 0.7, mode="wrap") * 2.5
    level = np.clip(0.62 + 0.13 * haze + 0.3 * np.clip(ice, 0, 1), 0.0, 1.0)
    return (level[..., None] * np.array([0.82, 0.94, 1.0])).astype("float32")


def frost_crop(h, w, c):
    return max(1, int(round(h * c[2]))), max(1, int(round(w * c[2])))


def frost_apply(x, c, texture, offsets):
    """``clip(c0 x + c1 F)``, F a crop of ``texture`` at ``offsets`` resampled to the image.

    Args:
        x: (batch, h, w, channels) unit-range NumPy images.
        c: (image weight, frost weight, texture pixels per image pixel).
        texture: (size, size, 3) from :func:`frost_texture`.
        offsets: (batch, 2) integer top-left corners of the crops.
    """
    h, w = x.shape[1:3]
    rh, rw = frost_crop(h, w, c)
    rows, cols = box_resample_matrix(rh, h), box_resample_matrix(rw, w)  # Pillow's BOX, i.e. area
    tint = colour(x, np.eye(3), "frost")  # identity for RGB, the grey weights for one channel
    out = np.empty(x.shape, "float32")
    for i, (top, left) in enumerate(np.asarray(offsets)):
        crop = texture[top: top + rh, left: left + rw] @ tint.T
        f = np.tensordot(np.tensordot(rows, crop, axes=(1, 0)), cols, axes=(1, 1)).transpose(0, 2, 1)
        out[i] = np.clip(c[0] * x[i] + c[1] * f, 0.0, 1.0)
    return out


def frost(x, c, seed):
    colour(x, np.eye(3), "frost")
    b, (rh, rw) = int(x.shape[0]), frost_crop(int(x.shape[1]), int(x.shape[2]), c)
    size = 2 * max(rh, rw) + 16  # crops from a texture larger than any of them, as from a photograph
    rng = np.random.default_rng(int(ops.convert_to_numpy(keras.random.randint((), 0, 2**31 - 1, seed=seed))))
    top = keras.random.randint((b, 1), 0, size - rh + 1, seed=seed)
    offsets = ops.convert_to_numpy(ops.concatenate([top, keras.random.randint((b, 1), 0, size - rw + 1, seed=seed)],
                                                   axis=1))
    x = np.asarray(ops.convert_to_numpy(x), "float32")
    return ops.convert_to_tensor(frost_apply(x, c, frost_texture(rng, size), offsets))


# -- spatter (NumPy, on the host): OpenCV's steps written out --------------------------
def _correlate_reflect101(image, kernel):
    return ndi.correlate(image.astype("float64"), kernel, mode="mirror")  # scipy "mirror" = BORDER_REFLECT_101


def canny(image, low, high):
    """OpenCV's ``Canny(image, low, high)`` (3x3 Sobel, L1 magnitude) of a 2-D uint8 image, as a bool mask."""
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    img = image.astype("int64")
    dx = ndi.correlate(img, sobel, mode="nearest")  # Canny's Sobel repeats the border
    dy = ndi.correlate(img, sobel.T, mode="nearest")
    mag = np.abs(dx) + np.abs(dy)
    m = np.pad(mag, 1)  # outside the image the magnitude is 0
    h, w = mag.shape

    def at(di, dj):
        return m[1 + di: 1 + di + h, 1 + dj: 1 + dj + w]

    # Direction sectors in OpenCV's fixed point (CANNY_SHIFT 15, tan 22.5 degrees).
    ax, ay = np.abs(dx), np.abs(dy) << 15
    tg22 = ax * int(0.4142135623730950488016887242097 * (1 << 15) + 0.5)
    tg67 = tg22 + (ax << 16)
    s = np.where((dx ^ dy) < 0, -1, 1)
    horizontal = (mag > at(0, -1)) & (mag >= at(0, 1))
    vertical = (mag > at(-1, 0)) & (mag >= at(1, 0))
    diag_pos = (mag > at(-1, -1)) & (mag > at(1, 1))
    diag_neg = (mag > at(-1, 1)) & (mag > at(1, -1))
    diagonal = np.where(s > 0, diag_pos, diag_neg)
    maximum = np.where(ay < tg22, horizontal, np.where(ay > tg67, vertical, diagonal))
    candidate = (mag > int(np.floor(low))) & maximum
    # Hysteresis: 8-connected runs of candidates that hold a pixel above `high`.
    labels, _ = ndi.label(candidate, structure=np.ones((3, 3)))
    strong = np.unique(labels[candidate & (mag > int(np.floor(high)))])
    return np.isin(labels, strong[strong > 0])


def equalize_hist(image):
    """OpenCV's ``equalizeHist`` of a uint8 image (float32 scale, rounded look-up table)."""
    hist = np.bincount(image.ravel(), minlength=256)
    first = int(np.flatnonzero(hist)[0])
    if hist[first] == image.size:
        return np.full_like(image, first)
    scale = np.float32(255.0) / np.float32(image.size - hist[first])
    lut = np.zeros(256, "float32")
    lut[first + 1:] = np.cumsum(hist[first + 1:]).astype("float32") * scale
    return np.clip(np.rint(lut), 0, 255).astype("uint8")[image]


def _box3(image):
    return _correlate_reflect101(image, np.full((3, 3), 1.0 / 9.0))


def spatter_mask(liquid, c):
    """The liquid (c5 = 0) or mud (c5 = 1) mask of one image from its thresholded ``liquid`` layer."""
    if c[5] == 0:
        layer = np.clip(liquid * 255, 0, 255).astype("uint8")  # clipped where np.uint8 would wrap
        edges = canny(layer, 50, 150)
        dist = np.minimum(ndi.distance_transform_edt(~edges), 20.0) if edges.any() else np.full(layer.shape, 20.0)
        dist = equalize_hist(np.clip(_box3(dist.astype("float32")), 0, 255).astype("uint8"))
        emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        dist = np.clip(np.rint(_correlate_reflect101(dist, emboss)), 0, 255)  # filter2D to CV_8U
        dist = np.rint(_box3(dist))  # cv2.blur of uint8 rounds
        m = layer.astype("float32") * dist.astype("float32")
        top = m.max()
        return m / top * c[4] if top > 0 else m
    mask = ndi.gaussian_filter((liquid > c[3]).astype("float32"), c[4], mode="nearest", truncate=4.0)
    return np.where(mask < 0.8, 0.0, mask)


def spatter_apply(x, c, liquid):
    """Deterministic part of spatter: ``liquid`` is the (batch, h, w) N(c0, c1) draw of each image."""
    out = np.empty(x.shape, "float32")
    water, mud = colour(x, WATER, "spatter"), colour(x, MUD, "spatter")
    for i, layer in enumerate(liquid):
        layer = ndi.gaussian_filter(layer.astype("float64"), c[2], mode="nearest", truncate=4.0)
        layer[layer < c[3]] = 0
        m = spatter_mask(layer, c)[..., None]
        out[i] = x[i] + m * water if c[5] == 0 else x[i] * (1 - m) + m * mud
    return np.clip(out, 0.0, 1.0)


def spatter(x, c, seed):
    colour(x, WATER, "spatter")
    b, h, w = int(x.shape[0]), int(x.shape[1]), int(x.shape[2])
    liquid = ops.convert_to_numpy(keras.random.normal((b, h, w), mean=c[0], stddev=c[1], seed=seed))
    return ops.convert_to_tensor(spatter_apply(np.asarray(ops.convert_to_numpy(x), "float32"), c, liquid))


# -- constants for the image size ---------------------------------------------------
def _field_rms(sigma, n):
    """RMS row norm of skimage's 1-D ``gaussian(sigma, mode="reflect", truncate=3)`` on n samples."""
    if sigma <= 0:
        return 1.0
    g = gaussian_kernel1d(sigma, truncate=3.0)
    r = len(g) // 2
    src = np.pad(np.arange(n), r, mode="symmetric")[np.arange(n)[:, None] + np.arange(2 * r + 1)[None]]
    matrix = np.zeros((n, n))
    np.add.at(matrix, (np.repeat(np.arange(n), 2 * r + 1), src.ravel()), np.tile(g, n))
    return float(np.sqrt(np.mean(np.sum(matrix**2, axis=1))))


def _elastic(c, s, side, h, w):
    alpha, sigma, affine = c
    # The displacement is alpha times smoothed noise whose RMS falls as sigma grows:
    # alpha is rescaled so the RMS displacement, like sigma and the affine shift,
    # is the same fraction of the image as at the preset's size.
    rms = _field_rms(sigma, side) ** 2 / (_field_rms(sigma * s, h) * _field_rms(sigma * s, w))
    return (alpha * s * rms, sigma * s, affine * s)


_SCALE = {
    "gaussian_blur": lambda c, s: c * s,
    "defocus_blur": lambda c, s: (c[0] * s, c[1] * s),
    "glass_blur": lambda c, s: (c[0] * s, max(1, int(round(c[1] * s))), c[2]),  # shifts of at least 1 pixel
    "motion_blur": lambda c, s: (c[0] * s, c[1] * s),
    "snow": lambda c, s: (*c[:2], max(1.0, c[2] * s), c[3], c[4] * s, c[5] * s, c[6]),  # zoom >= 1
    "spatter": lambda c, s: (*c[:2], c[2] * s, c[3], c[4] * s if c[5] == 1 else c[4], c[5]),
}


def size_constants(name, c, preset, height, width, scale=True):
    """The constants ``c`` of ``name`` for a ``height`` x ``width`` image.

    With ``scale``, images smaller than the preset's side (224 or 32) get
    their pixel-size constants (blur sigmas and radii, shifts, displacements,
    snow flakes, frost crystals) multiplied by ``s = min(height, width) /
    side``, so a corruption covers the same fraction of the image as the
    published one does at the preset's size; images at least that large, and
    ``scale=False``, use the published constants. Relative constants (noise
    levels, zoom factors, pixelate's fraction, fog's map) never change. Frost
    gains a third constant, texture pixels per image pixel.
    """
    side = PRESET_SIDE[preset]
    s = min(1.0, min(height, width) / side) if scale else 1.0
    if name == "frost":
        # The published crop covers `side` photo pixels per image side at the preset's size.
        crop = max(min(height, width), side) if scale else min(height, width)
        return (*c, crop / FROST_ZOOM[preset] / min(height, width))
    if s == 1.0:
        return c
    if name == "elastic_transform":
        return _elastic(c, s, side, height, width)
    return _SCALE[name](c, s) if name in _SCALE else c
