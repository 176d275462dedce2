"""Image-quality metrics (PSNR, SSIM) and classical denoisers to compare against.

Everything here works on NumPy batches: ``(n, h, w)`` for grey images or
``(n, h, w, c)`` for colour (``channel_axis=1`` for ``(n, c, h, w)``), values
in ``[0, data_range]``. Metrics return one value per image, so a study can
average them, pair them across methods, or put an interval on them. No Keras
is imported: the metrics score a model's output, they do not train through it.

``ssim`` reproduces ``skimage.metrics.structural_similarity(..., data_range=R,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``, the settings
scikit-image recommends to match Wang et al. (2004), per image; the tests check
the two agree to 1e-6 on random 8x8 and 32x32x3 images.

Example:

>>> import numpy as np
>>> clean = np.random.default_rng(0).uniform(size=(4, 8, 8))
>>> noisy = add_gaussian_noise(clean, stddev=0.2, seed=1)
>>> psnr(clean, noisy).shape, ssim(clean, gaussian_blur(noisy, sigma=0.8)).shape
((4,), (4,))
"""

import numpy as np
from scipy import ndimage

from noisewise._core.validation import check_int, check_number, check_range

# scikit-image's SSIM truncates its Gaussian at 3.5 sigma: an 11-tap window for
# sigma=1.5, as in Wang et al. (2004).
_SSIM_TRUNCATE = 3.5
_UNIFORM_WIN = 7  # scikit-image's default window without Gaussian weights


def _as_images(name, value, *, ndims=None):
    """``value`` as a finite float64 array, with ``ndims`` checked when given."""
    try:
        x = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged nested lists
        raise ValueError(f"`{name}` must be an array of numbers. Received: {name}={value!r:.80}") from error
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"`{name}` must be an array of real numbers. Received: {name} of dtype {x.dtype}")
    if ndims is not None and x.ndim not in ndims:
        allowed = " or ".join(str(d) for d in ndims)
        raise ValueError(f"`{name}` must be a batch of images with {allowed} dimensions ((n, h, w) or "
                         f"(n, h, w, c)). Received: {name}.shape={x.shape}")
    if x.size == 0:
        raise ValueError(f"`{name}` must not be empty. Received: {name}.shape={x.shape}")
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` must contain only finite values. Received: {name} with "
                         f"{int(np.sum(~np.isfinite(x)))} NaN or infinite entries")
    return x


def _pair(reference, estimate, *, ndims=None):
    x = _as_images("reference", reference, ndims=ndims)
    y = _as_images("estimate", estimate, ndims=ndims)
    if x.shape != y.shape:
        raise ValueError("`estimate` must have the same shape as `reference`. "
                         f"Received: reference.shape={x.shape}, estimate.shape={y.shape}")
    return x, y


def _spatial_axes(ndim, channel_axis):
    """The two image axes of an ``(n, h, w)`` or ``(n, h, w, c)`` / ``(n, c, h, w)`` batch."""
    if ndim == 3:
        if channel_axis is not None:
            raise ValueError("`channel_axis` must be None for a batch of grey images (n, h, w). "
                             f"Received: channel_axis={channel_axis!r}")
        return (1, 2)
    if channel_axis is None:
        channel_axis = -1
    if isinstance(channel_axis, bool) or channel_axis not in (1, 3, -1, -3):
        raise ValueError("`channel_axis` must be None, -1 or 3 for (n, h, w, c), or 1 for (n, c, h, w). "
                         f"Received: channel_axis={channel_axis!r}")
    return (1, 2) if channel_axis % 4 == 3 else (2, 3)


def _output_dtype(images):
    dtype = np.asarray(images).dtype
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def psnr(reference, estimate, data_range=1.0, axis=None):
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range**2 / MSE)``, per image.

    An image identical to its reference has MSE 0 and PSNR ``+inf`` (returned,
    not an error, and without a warning); its mean over a batch is then ``inf``
    too, which is the honest answer.

    Args:
        reference: clean images, an array whose first axis is the batch.
        estimate: images of the same shape to score.
        data_range: the span of the values (1.0 for images in [0, 1], 255 for bytes).
        axis: axes to average the squared error over; ``None`` (default) means every
            axis but the first, giving one value per image.

    Returns:
        A float64 array: one PSNR per image (shape ``(n,)`` with ``axis=None``).

    Example:

    >>> x = np.zeros((2, 8, 8))
    >>> psnr(x, x + 0.1)  # 10 log10(1 / 0.1**2) = 20 dB
    array([20., 20.])
    """
    x, y = _pair(reference, estimate)
    data_range = check_number("data_range", data_range, low=0.0, low_open=True)
    if axis is None:
        if x.ndim < 2:
            raise ValueError("`reference` must have a batch axis and at least one image axis when "
                             f"`axis` is None. Received: reference.shape={x.shape}")
        axis = tuple(range(1, x.ndim))
    try:
        mse = np.mean((x - y) ** 2, axis=axis)
    except (TypeError, ValueError) as error:  # numpy.AxisError is a ValueError; so is a repeated axis
        raise ValueError(f"`axis` must be None, an axis or a tuple of axes of an array of {x.ndim} "
                         f"dimensions. Received: axis={axis!r}") from error
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def ssim(reference, estimate, data_range=1.0, *, gaussian_weights=True, sigma=1.5, win_size=None,
         K1=0.01, K2=0.03, channel_axis=None):
    """Structural similarity (Wang et al. 2004), per image, as scikit-image computes it.

    Local means, variances (population, not sample) and covariance come from a
    Gaussian filter of ``sigma`` truncated at 3.5 sigma (11 taps for 1.5) with
    reflected borders, or a ``win_size`` box filter if ``gaussian_weights`` is
    False; the SSIM map is averaged after cropping ``(win_size - 1) // 2`` pixels
    from each border, and over channels, as scikit-image does.

    Small images: scikit-image refuses a window larger than the image, and the
    default window is 11 (Gaussian) or 7 (box). Here, when ``win_size`` is None,
    the default shrinks to the largest odd size that fits the smaller side, so an
    8x8 image gets ``win_size=7``: the same as scikit-image called with
    ``win_size=7``. With Gaussian weights the window only sets the crop (the
    Gaussian keeps its 11 taps, reflected at the borders), so an 8x8 score is the
    mean of the central 2x2 of the SSIM map. An explicit ``win_size`` must be odd
    and fit the image.

    Args:
        reference: clean images, ``(n, h, w)`` or ``(n, h, w, c)``.
        estimate: images of the same shape to score.
        data_range: the span of the values (1.0 for [0, 1]); sets ``C1 = (K1 R)**2``
            and ``C2 = (K2 R)**2``.
        gaussian_weights: Gaussian (True, the paper's) or uniform window weights.
        sigma: the Gaussian's standard deviation in pixels, > 0.
        win_size: odd window side <= the smaller image side, or None for the default.
        K1: luminance constant, > 0.
        K2: contrast constant, > 0.
        channel_axis: for 4-D input, -1 / 3 (channels last, the default) or 1
            (channels first); must be None for 3-D input.

    Returns:
        A float64 array of shape ``(n,)``; 1.0 for an image identical to its reference.

    Example:

    >>> x = np.random.default_rng(0).uniform(size=(3, 8, 8))
    >>> np.allclose(ssim(x, x), 1.0)
    True
    """
    x, y = _pair(reference, estimate, ndims=(3, 4))
    spatial = _spatial_axes(x.ndim, channel_axis)
    data_range = check_number("data_range", data_range, low=0.0, low_open=True)
    sigma = check_number("sigma", sigma, low=0.0, low_open=True)
    K1 = check_number("K1", K1, low=0.0, low_open=True)
    K2 = check_number("K2", K2, low=0.0, low_open=True)
    side = min(x.shape[a] for a in spatial)
    if win_size is None:
        default = 2 * int(_SSIM_TRUNCATE * sigma + 0.5) + 1 if gaussian_weights else _UNIFORM_WIN
        win_size = min(default, side if side % 2 else side - 1)
    else:
        check_int("win_size", win_size, low=1)
        if win_size % 2 == 0 or win_size > side:
            raise ValueError(f"`win_size` must be odd and at most the smaller image side ({side}). "
                             f"Received: win_size={win_size}")

    if gaussian_weights:
        sigmas = [sigma if a in spatial else 0.0 for a in range(x.ndim)]  # 0: that axis is not filtered

        def local_mean(image):
            return ndimage.gaussian_filter(image, sigmas, mode="reflect", truncate=_SSIM_TRUNCATE)
    else:
        sizes = [win_size if a in spatial else 1 for a in range(x.ndim)]

        def local_mean(image):
            return ndimage.uniform_filter(image, sizes, mode="reflect")

    ux, uy = local_mean(x), local_mean(y)
    vx = local_mean(x * x) - ux * ux
    vy = local_mean(y * y) - uy * uy
    vxy = local_mean(x * y) - ux * uy
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    ssim_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (win_size - 1) // 2
    crop = [slice(pad, x.shape[a] - pad) if a in spatial else slice(None) for a in range(x.ndim)]
    return ssim_map[tuple(crop)].mean(axis=tuple(range(1, x.ndim)), dtype=np.float64)


def gaussian_blur(images, sigma, *, channel_axis=None):
    """Blur each image and channel with a Gaussian of ``sigma`` pixels (reflected borders).

    A classical denoiser to compare learned ones against; the filter is
    ``scipy.ndimage.gaussian_filter`` (truncated at 4 sigma) over the two image
    axes only, so images and channels never mix.

    Args:
        images: ``(n, h, w)`` or ``(n, h, w, c)``.
        sigma: the Gaussian's standard deviation in pixels, > 0.
        channel_axis: as in `ssim`.

    Returns:
        The blurred batch, same shape, the input's float dtype (float64 for integers).

    Example:

    >>> np.allclose(gaussian_blur(np.full((1, 8, 8), 0.3), sigma=1.0), 0.3)
    True
    """
    x = _as_images("images", images, ndims=(3, 4))
    spatial = _spatial_axes(x.ndim, channel_axis)
    sigma = check_number("sigma", sigma, low=0.0, low_open=True)
    sigmas = [sigma if a in spatial else 0.0 for a in range(x.ndim)]
    return ndimage.gaussian_filter(x, sigmas, mode="reflect").astype(_output_dtype(images), copy=False)


def median_filter(images, size, *, channel_axis=None):
    """Median of each ``size`` x ``size`` neighbourhood, per image and channel (reflected borders).

    The classical remedy for impulse (salt-and-pepper) noise: an isolated
    outlier is never the median of its neighbourhood. ``size`` must be odd so
    the window is centred (an even one would shift the image by half a pixel).

    Args:
        images: ``(n, h, w)`` or ``(n, h, w, c)``.
        size: odd window side >= 1 (1 returns the images unchanged).
        channel_axis: as in `ssim`.

    Returns:
        The filtered batch, same shape, the input's float dtype (float64 for integers).

    Example:

    >>> x = np.zeros((1, 5, 5)); x[0, 2, 2] = 1.0
    >>> float(median_filter(x, 3).max())
    0.0
    """
    x = _as_images("images", images, ndims=(3, 4))
    spatial = _spatial_axes(x.ndim, channel_axis)
    check_int("size", size, low=1)
    if size % 2 == 0:
        raise ValueError(f"`size` must be an odd integer >= 1. Received: size={size}")
    sizes = [size if a in spatial else 1 for a in range(x.ndim)]
    return ndimage.median_filter(x, size=sizes, mode="reflect").astype(_output_dtype(images), copy=False)


def add_gaussian_noise(images, stddev, seed, clip=(0.0, 1.0)):
    """``images + stddev * N(0, 1)``, drawn from ``seed``, then clipped to ``clip``.

    The draw comes from ``numpy.random.default_rng(seed)``, so the same seed gives
    the same noisy test set on every machine and backend, and paired methods are
    scored on identical inputs.

    Args:
        images: an array of any shape (typically ``(n, h, w)`` or ``(n, h, w, c)``).
        stddev: the noise's standard deviation, >= 0, in the images' units.
        seed: an integer >= 0.
        clip: ``(low, high)`` to clip the result to, or None to leave it unclipped.

    Returns:
        The noisy array, same shape, the input's float dtype (float64 for integers).

    Example:

    >>> x = np.full((2, 8, 8), 0.5)
    >>> np.array_equal(add_gaussian_noise(x, 0.1, seed=3), add_gaussian_noise(x, 0.1, seed=3))
    True
    """
    x = _as_images("images", images)
    stddev = check_number("stddev", stddev, low=0.0)
    check_int("seed", seed, low=0)
    clip = check_range("clip", clip, allow_none=True)
    noisy = x + stddev * np.random.default_rng(seed).standard_normal(x.shape)
    if clip is not None:
        noisy = np.clip(noisy, *clip)
    return noisy.astype(_output_dtype(images), copy=False)
