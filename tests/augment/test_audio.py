"""Audio augmentation: SNR-exact noise (synthetic and real speech), colours, gain, shift."""

import os
import shutil
import subprocess

import keras
import numpy as np
import pytest
from scipy.io import wavfile

from noisewise.augment import COLORS, RandomGain, RandomTimeShift, SNRNoise, colored_noise, measure_snr
from noisewise.augment.audio import add_noise

K = 5.0
EPS32 = float(np.finfo("float32").eps)


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def snr_tolerance_db(length):
    """Float32 rounding bound on a measured SNR, from the signal length.

    The layer sums `length` float32 squares for each of the two powers
    (relative error at most length * eps each, for sequential summation), and
    the output adds one rounding per sample; so the power ratio is off by at
    most (2 length + 4) eps relative, i.e. 10 log10(1 + (2 length + 4) eps) dB.
    """
    return 10 * np.log10(1 + (2 * length + 4) * EPS32)


def synthetic_batch(batch=32, length=8000, seed=0):
    """Sums of three random sines with random amplitudes, one per example."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 16000.0
    freqs = rng.uniform(80, 4000, (batch, 3, 1))
    amps = rng.uniform(0.05, 1.0, (batch, 3, 1))
    return (amps * np.sin(2 * np.pi * freqs * t + rng.uniform(0, 6.3, (batch, 3, 1)))).sum(1).astype("float32")


def check_snr(clean, color, snr_range, seed=0):
    layer = SNRNoise(snr_range, color=color, seed=seed)
    x = keras.ops.convert_to_tensor(clean)
    params = layer.draw(x)
    noisy = to_numpy(layer.apply(x, params))
    target = to_numpy(params["snr_db"]).astype("float64")
    assert ((target >= snr_range[0]) & (target <= snr_range[1])).all()
    measured = measure_snr(clean, noisy)
    np.testing.assert_array_less(np.abs(measured - target), snr_tolerance_db(clean[0].size))
    return target


# White, pink and brown run in the fast tests; the other colours with the slow ones.
@pytest.mark.parametrize("color", [pytest.param(c, marks=pytest.mark.slow)
                                   if c in ("blue", "violet") else c for c in sorted(COLORS)])
def test_measured_snr_equals_target_on_synthetic_signals(color):
    check_snr(synthetic_batch(), color, (-5.0, 30.0))


def test_snr_targets_are_uniform_over_the_range():
    target = check_snr(synthetic_batch(batch=256, length=256), "white", (0.0, 20.0), seed=1)
    # Mean of U(0, 20): 10, SE = 20 / sqrt(12 n).
    assert abs(target.mean() - 10.0) < K * 20.0 / np.sqrt(12 * target.size)


def _speech(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng) for real speech")
    path = os.path.join(tmp_path, "speech.wav")
    text = "Noise is added on purpose, and measured, to make models robust."
    subprocess.run(["espeak-ng", "-w", path, text], check=True, capture_output=True)
    rate, samples = wavfile.read(path)
    speech = samples.astype("float32") / 32768.0
    return rate, speech


def test_measured_snr_equals_target_on_real_speech(tmp_path):
    rate, speech = _speech(tmp_path)
    length = rate // 2  # half-second windows of the utterance, some near silent
    clean = np.stack([speech[i:i + length] for i in range(0, len(speech) - length, length // 2)])
    clean = clean[np.sum(clean**2, axis=1) > 0]
    for color in ("white", "pink", "brown"):
        check_snr(clean, color, (0.0, 25.0))


def test_sox_measures_the_same_snr(tmp_path):
    """An independent measurement: sox's RMS of the clean and of the added noise."""
    if shutil.which("sox") is None:
        pytest.skip("sox is not installed (apt-get install sox)")
    rate, speech = _speech(tmp_path)
    clean = speech[None, :]
    noisy = to_numpy(SNRNoise(12.0, color="pink", seed=3)(clean, training=True))

    def rms(signal, name):
        path = os.path.join(tmp_path, name)
        wavfile.write(path, rate, signal.astype("float32"))
        report = subprocess.run(["sox", path, "-n", "stat"], capture_output=True, text=True).stderr
        line = next(row for row in report.splitlines() if row.startswith("RMS     amplitude"))
        return float(line.split(":")[1])

    snr = 20 * np.log10(rms(clean[0], "clean.wav") / rms(noisy[0] - clean[0], "noise.wav"))
    assert abs(snr - 12.0) < 0.01  # sox prints 6 significant digits


@pytest.mark.parametrize("color", ["pink", "brown", pytest.param("blue", marks=pytest.mark.slow)])
def test_colored_noise_spectrum_slope(color):
    """Mean periodogram per bin falls as f**-beta: the ratio between two octaves is 2**beta."""
    beta = COLORS[color]
    batch, length = 64, 4096
    noise = to_numpy(colored_noise((batch, length), color, seed=0)).astype("float64")
    power = np.abs(np.fft.rfft(noise, axis=1)) ** 2
    freqs = np.fft.rfftfreq(length)
    low = (freqs >= 1 / 64) & (freqs < 2 / 64)
    high = (freqs >= 2 / 64) & (freqs < 4 / 64)
    # Average f**beta * P over each octave; both equal the same constant. Each
    # periodogram bin is exponential (relative sd 1), so the log of a mean over
    # m bins has SE 1 / sqrt(m).
    a = np.mean(power[:, low] * freqs[low] ** beta)
    b = np.mean(power[:, high] * freqs[high] ** beta)
    se = np.sqrt(1 / (batch * low.sum()) + 1 / (batch * high.sum()))
    assert abs(np.log(a / b)) < K * se


def test_colored_noise_zero_mean_unit_power_and_3d():
    noise = to_numpy(colored_noise((4, 1000, 2), "brown", seed=1))
    assert noise.shape == (4, 1000, 2)
    np.testing.assert_allclose(np.mean(noise**2, axis=(1, 2)), 1.0, rtol=1e-4)
    np.testing.assert_allclose(noise.mean(axis=1), 0.0, atol=1e-4)  # DC bin removed


def test_snr_layer_seeded_inference_identity_and_stereo():
    stereo = np.stack([synthetic_batch(4, 500, 1), synthetic_batch(4, 500, 2)], axis=-1)
    a = to_numpy(SNRNoise((5, 10), seed=4)(stereo, training=True))
    b = to_numpy(SNRNoise((5, 10), seed=4)(stereo, training=True))
    np.testing.assert_array_equal(a, b)
    assert a.shape == stereo.shape and a.dtype == np.float32
    snr = measure_snr(stereo, a)
    assert ((snr > 5 - 0.01) & (snr < 10 + 0.01)).all()
    np.testing.assert_array_equal(to_numpy(SNRNoise(5, seed=4)(stereo, training=False)), stereo)


def test_silence_stays_silent():
    silent = np.zeros((2, 100), "float32")
    np.testing.assert_array_equal(to_numpy(add_noise(silent, colored_noise((2, 100), seed=0), 10.0)), silent)


def test_gain_in_decibels():
    x = synthetic_batch(16, 200)
    layer = RandomGain((-6.0, 6.0), seed=0)
    params = layer.draw(keras.ops.convert_to_tensor(x))
    y = to_numpy(layer.apply(keras.ops.convert_to_tensor(x), params))
    gain_db = to_numpy(params["gain_db"])
    assert ((gain_db >= -6) & (gain_db <= 6)).all()
    measured = 20 * np.log10(np.abs(y).max(1) / np.abs(x).max(1))
    np.testing.assert_allclose(measured, gain_db, atol=1e-4)
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)


@pytest.mark.parametrize("mode", ["roll", "zeros"])
def test_time_shift_moves_each_example(mode):
    x = np.tile(np.arange(1, 51, dtype="float32"), (32, 1))
    layer = RandomTimeShift(5, mode=mode, seed=0)
    params = layer.draw(keras.ops.convert_to_tensor(x))
    y = to_numpy(layer.apply(keras.ops.convert_to_tensor(x), params))
    shifts = to_numpy(params["shift"])
    assert set(shifts.tolist()) <= set(range(-5, 6)) and len(set(shifts.tolist())) > 3
    for row, s in zip(y, shifts):
        expected = np.roll(x[0], s)
        if mode == "zeros":
            expected[:s] = 0 if s > 0 else expected[:s]
            if s < 0:
                expected[s:] = 0
        np.testing.assert_array_equal(row, expected)


def test_time_shift_fraction_and_channels():
    x = np.random.default_rng(0).normal(size=(3, 100, 2)).astype("float32")
    y = to_numpy(RandomTimeShift(0.1, seed=2)(x, training=True))
    assert y.shape == x.shape
    np.testing.assert_allclose(np.sort(y, axis=1), np.sort(x, axis=1))  # a roll keeps the samples


def test_errors_name_the_parameter():
    with pytest.raises(ValueError, match="`color` must be one of"):
        SNRNoise(10, color="grey")
    with pytest.raises(ValueError, match="`snr_db` must be a number or a pair"):
        SNRNoise((10, 5))
    with pytest.raises(ValueError, match="`max_shift` must be"):
        RandomTimeShift(-1)
    with pytest.raises(ValueError, match="`gain_db`"):
        RandomGain((6, -6))
    with pytest.raises(ValueError, match=r"expects \(batch, time\)"):
        SNRNoise(10)(np.zeros((2, 3, 4, 5), "float32"), training=True)


LAYERS = {
    "snr": lambda seed, **kw: SNRNoise((0.0, 20.0), color="pink", seed=seed, **kw),
    "gain": lambda seed, **kw: RandomGain((-6.0, 6.0), seed=seed, **kw),
    "shift": lambda seed, **kw: RandomTimeShift(0.2, mode="zeros", seed=seed, **kw),
}


@pytest.mark.parametrize("name", [pytest.param("snr", marks=pytest.mark.slow), "gain", "shift"])
def test_audio_layer_shape_dtype_seed_inference_and_config(name):
    make = LAYERS[name]
    x = synthetic_batch(8, 400, seed=5).astype("float64")  # float64 in, float32 out
    for shape in (x, np.stack([x, x[::-1]], axis=-1)):  # mono and stereo
        a = to_numpy(make(3)(shape, training=True))
        assert a.shape == shape.shape and a.dtype == np.float32
        np.testing.assert_array_equal(a, to_numpy(make(3)(shape, training=True)))
        assert not np.array_equal(a, to_numpy(make(4)(shape, training=True)))
        assert not np.allclose(a, shape)
    layer = make(3)
    for training in (False, None):
        np.testing.assert_array_equal(to_numpy(layer(x, training=training)), x.astype("float32"))
    active = make(3, active_at_inference=True)
    assert not np.allclose(to_numpy(active(x, training=False)), x)
    clone = type(layer).from_config(layer.get_config())
    np.testing.assert_array_equal(to_numpy(clone(x, training=True)),
                                  to_numpy(make(3)(x, training=True)))
    model = keras.Sequential([keras.Input((400,)), make(3)])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x.astype("float32"))
