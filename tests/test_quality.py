"""PSNR, SSIM and the classical denoisers: closed forms, scikit-image, and bad input."""

import subprocess
import sys

import numpy as np
import pytest

from noisewise.quality import add_gaussian_noise, gaussian_blur, median_filter, psnr, ssim


def _noisy_pair(shape, seed=0, stddev=0.2):
    rng = np.random.default_rng(seed)
    clean = rng.uniform(size=shape)
    return clean, np.clip(clean + stddev * rng.standard_normal(shape), 0.0, 1.0)


def test_importing_quality_imports_no_keras():
    code = "import sys, noisewise.quality; print('keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


# --- PSNR ---------------------------------------------------------------------------------

@pytest.mark.parametrize("offset", [0.01, 0.1, 0.25])
def test_psnr_of_a_constant_offset_is_minus_twenty_log10_offset(offset):
    x = np.random.default_rng(1).uniform(size=(3, 8, 8))
    np.testing.assert_allclose(psnr(x, x + offset), 10 * np.log10(1.0 / offset**2), rtol=1e-12)
    # data_range scales the peak: 255-valued images with an offset of 255 * offset score the same
    np.testing.assert_allclose(psnr(255 * x, 255 * (x + offset), data_range=255.0), 10 * np.log10(1 / offset**2))


def test_psnr_is_per_image_and_infinite_for_identical_images():
    x = np.zeros((3, 4, 4, 2))
    y = x.copy()
    y[1] += 0.1
    y[2, 0, 0, 0] = 0.5  # MSE = 0.25 / 32
    got = psnr(x, y)
    assert got.shape == (3,)
    assert got[0] == np.inf
    np.testing.assert_allclose(got[1:], [20.0, 10 * np.log10(32 / 0.25)])
    np.testing.assert_allclose(psnr(x, y, axis=(1, 2))[1], np.full(2, 20.0))  # one value per image and channel


def test_psnr_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    x, y = _noisy_pair((4, 32, 32, 3))
    want = [metrics.peak_signal_noise_ratio(x[i], y[i], data_range=1.0) for i in range(4)]
    np.testing.assert_allclose(psnr(x, y), want, rtol=0, atol=1e-9)


# --- SSIM ---------------------------------------------------------------------------------

def test_ssim_of_an_image_with_itself_is_one():
    x = np.random.default_rng(2).uniform(size=(4, 8, 8))
    np.testing.assert_allclose(ssim(x, x), 1.0, atol=1e-12)
    c = np.random.default_rng(3).uniform(size=(2, 16, 16, 3))
    np.testing.assert_allclose(ssim(c, c), 1.0, atol=1e-12)


@pytest.mark.parametrize("a, b", [(0.2, 0.3), (0.5, 0.9), (0.0, 1.0)])
def test_ssim_of_two_constants_is_the_luminance_term(a, b):
    # No variance anywhere, so the contrast-structure factor is C2 / C2 and
    # SSIM = (2ab + C1) / (a^2 + b^2 + C1) at every pixel.
    c1 = (0.01 * 1.0) ** 2
    want = (2 * a * b + c1) / (a**2 + b**2 + c1)
    got = ssim(np.full((2, 8, 8), a), np.full((2, 8, 8), b))
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_ssim_with_one_uniform_window_is_the_global_formula():
    # A 7x7 image, a 7x7 box window, reflected borders: only the centre pixel is
    # kept, and its window is the whole image, so SSIM is Wang's formula on the
    # image's own mean, variance and covariance (population statistics).
    x, y = _noisy_pair((5, 7, 7), seed=4)
    c1, c2 = 0.01**2, 0.03**2
    want = []
    for xi, yi in zip(x, y):
        mx, my = xi.mean(), yi.mean()
        cov = ((xi - mx) * (yi - my)).mean()
        want.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (xi.var() + yi.var() + c2)))
    np.testing.assert_allclose(ssim(x, y, gaussian_weights=False), want, rtol=1e-10)


def test_ssim_falls_as_the_noise_grows_and_is_symmetric():
    clean = np.random.default_rng(5).uniform(size=(8, 16, 16))
    scores = [ssim(clean, add_gaussian_noise(clean, s, seed=0)).mean() for s in (0.05, 0.1, 0.2, 0.4)]
    assert np.all(np.diff(scores) < 0), scores
    noisy = add_gaussian_noise(clean, 0.2, seed=1)
    np.testing.assert_allclose(ssim(clean, noisy), ssim(noisy, clean), rtol=1e-12)


def _skimage_ssim(metrics, x, y, **kwargs):
    return [metrics.structural_similarity(x[i], y[i], data_range=1.0, use_sample_covariance=False, **kwargs)
            for i in range(len(x))]


def test_ssim_matches_scikit_image_on_8x8_digits_sized_images():
    metrics = pytest.importorskip("skimage.metrics")
    x, y = _noisy_pair((6, 8, 8), seed=6)
    # scikit-image refuses its default 11-pixel window on 8x8; ours shrinks to 7
    want = _skimage_ssim(metrics, x, y, gaussian_weights=True, sigma=1.5, win_size=7)
    np.testing.assert_allclose(ssim(x, y), want, rtol=0, atol=1e-6)
    want = _skimage_ssim(metrics, x, y, gaussian_weights=True, sigma=1.5, win_size=5)
    np.testing.assert_allclose(ssim(x, y, win_size=5), want, rtol=0, atol=1e-6)


def test_ssim_matches_scikit_image_on_colour_images():
    metrics = pytest.importorskip("skimage.metrics")
    x, y = _noisy_pair((3, 32, 32, 3), seed=7)
    want = _skimage_ssim(metrics, x, y, gaussian_weights=True, sigma=1.5, channel_axis=-1)
    np.testing.assert_allclose(ssim(x, y), want, rtol=0, atol=1e-6)
    first = (x.transpose(0, 3, 1, 2), y.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(ssim(*first, channel_axis=1), want, rtol=0, atol=1e-6)
    want = _skimage_ssim(metrics, x, y, gaussian_weights=False, channel_axis=-1)  # 7x7 box
    np.testing.assert_allclose(ssim(x, y, gaussian_weights=False), want, rtol=0, atol=1e-6)
    want = _skimage_ssim(metrics, x, y, gaussian_weights=True, sigma=2.5, channel_axis=-1)
    np.testing.assert_allclose(ssim(x, y, sigma=2.5), want, rtol=0, atol=1e-6)


# --- denoisers and noise ------------------------------------------------------------------

def test_blur_of_a_constant_image_is_itself_and_blur_lowers_the_variance():
    np.testing.assert_allclose(gaussian_blur(np.full((2, 8, 8, 3), 0.4), sigma=1.2), 0.4, atol=1e-12)
    x = np.random.default_rng(8).uniform(size=(2, 16, 16))
    assert gaussian_blur(x, 1.0).var() < 0.5 * x.var()
    assert gaussian_blur(x.astype("float32"), 1.0).dtype == np.float32


def test_blur_and_median_never_mix_images_or_channels():
    x = np.zeros((2, 8, 8, 2))
    x[0, :, :, 0] = 1.0
    for out in (gaussian_blur(x, 2.0), median_filter(x, 3)):
        np.testing.assert_allclose(out[0, :, :, 0], 1.0, atol=1e-12)
        assert np.all(out[0, :, :, 1] == 0) and np.all(out[1] == 0)


def test_median_filter_removes_an_isolated_impulse_and_keeps_an_edge():
    x = np.zeros((1, 9, 9))
    x[0, :, 5:] = 1.0  # a vertical edge survives a median
    impulse = x.copy()
    impulse[0, 2, 2] = 1.0
    impulse[0, 6, 7] = 0.0
    np.testing.assert_array_equal(median_filter(impulse, 3), x)
    np.testing.assert_array_equal(median_filter(impulse, 1), impulse)


def test_noise_is_reproducible_from_its_seed_and_clipped():
    x = np.random.default_rng(9).uniform(size=(50, 8, 8))
    a = add_gaussian_noise(x, 0.3, seed=11)
    np.testing.assert_array_equal(a, add_gaussian_noise(x, 0.3, seed=11))
    assert not np.array_equal(a, add_gaussian_noise(x, 0.3, seed=12))
    assert a.min() == 0.0 and a.max() == 1.0  # 3,200 draws at stddev 0.3 reach both bounds
    free = add_gaussian_noise(x, 0.3, seed=11, clip=None)
    want = x + 0.3 * np.random.default_rng(11).standard_normal(x.shape)
    np.testing.assert_array_equal(free, want)
    np.testing.assert_array_equal(a, np.clip(want, 0, 1))
    # the noise itself: mean 0 and sd 0.3, within 5 standard errors for 3,200 draws
    z = free - x
    assert abs(z.mean()) < 5 * 0.3 / np.sqrt(z.size)
    assert abs(z.std() - 0.3) < 5 * 0.3 / np.sqrt(2 * z.size)


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("call, match", [
    (lambda x: psnr(x, x[:, :4]), r"`estimate` must have the same shape.*reference.shape=\(2, 8, 8\)"),
    (lambda x: ssim(x, x[:1]), r"estimate.shape=\(1, 8, 8\)"),
    (lambda x: psnr(x, x, data_range=0), r"`data_range`.*Received: data_range=0"),
    (lambda x: ssim(x, x, data_range=-1.0), r"Received: data_range=-1"),
    (lambda x: ssim(x, x, sigma=0), r"`sigma`.*Received: sigma=0"),
    (lambda x: ssim(x, x, win_size=4), r"`win_size` must be odd.*Received: win_size=4"),
    (lambda x: ssim(x, x, win_size=9), r"at most the smaller image side \(8\). Received: win_size=9"),
    (lambda x: ssim(x, x, K1=0.0), r"Received: K1=0"),
    (lambda x: ssim(x, x, channel_axis=-1), r"`channel_axis` must be None.*Received: channel_axis=-1"),
    (lambda x: ssim(x[0], x[0]), r"`reference` must be a batch of images.*Received: reference.shape=\(8, 8\)"),
    (lambda x: psnr(x, x, axis=5), r"`axis`.*Received: axis=5"),
    (lambda x: psnr(x, np.where(x > 0.5, np.nan, x)), r"`estimate` must contain only finite values"),
    (lambda x: gaussian_blur(x, sigma=-1.0), r"`sigma`.*Received: sigma=-1"),
    (lambda x: median_filter(x, 2), r"`size` must be an odd integer >= 1. Received: size=2"),
    (lambda x: median_filter(x[..., None], 3, channel_axis=2), r"Received: channel_axis=2"),
    (lambda x: add_gaussian_noise(x, -0.1, seed=0), r"`stddev`.*Received: stddev=-0.1"),
    (lambda x: add_gaussian_noise(x, 0.1, seed=None), r"`seed` must be an integer. Received: seed=None"),
    (lambda x: add_gaussian_noise(x, 0.1, seed=0, clip=(1, 0)), r"`clip`"),
])
def test_bad_input_names_the_parameter_and_the_value(call, match):
    x = np.random.default_rng(10).uniform(size=(2, 8, 8))
    with pytest.raises(ValueError, match=match):
        call(x)
