"""Audio augmentation: noise at a target SNR (white, pink, brown), gain and time shift.

Audio is a batch of shape (batch, time) or (batch, time, channels); every
transform draws one random parameter per example, so a batch mixes conditions.
All of it is ``keras.ops`` and ``keras.random`` with a ``SeedGenerator``, so it
runs batched on every backend and inside a model.

SNR convention: ``SNR_dB = 10 log10(P_signal / P_noise)`` with P the mean
square over the example (all its samples and channels). The noise is scaled
per example from that example's own signal power *and its realised noise
power*, as ``torchaudio.functional.add_noise`` does, so the SNR you measure on
the output is the SNR you asked for (up to float32 rounding), for every example
and every colour. An all-zero example stays all zero (its SNR is undefined).

Coloured noise is white Gaussian noise shaped in the frequency domain with
``keras.ops.rfft``/``irfft``: its power spectral density falls as 1/f**beta
(beta = 0 white, 1 pink, 2 brown/red; -1 blue, -2 violet), i.e. amplitudes are
multiplied by f**(-beta/2); the DC bin is set to zero so the noise has zero mean.
The shaping is circular over the example length (the noise wraps around).
"""

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from noisewise._core.validation import _is_real, check_choice, check_number, check_range
from noisewise.random import layer_seed

COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0, "violet": -2.0}


def _reduce_axes(x):
    return tuple(range(1, len(x.shape)))


def _power(x):
    return ops.mean(ops.square(x), axis=_reduce_axes(x), keepdims=True)


def colored_noise(shape: Sequence[int], color: str = "white", seed: int | None = None,
                  dtype: str = "float32") -> np.ndarray:
    """Zero-mean noise with power spectrum ~ 1/f**beta along axis 1, unit power per example.

    Args:
        shape: (batch, time) or (batch, time, channels).
        color: One of ``COLORS`` (``"white"``, ``"pink"``, ``"brown"``,
            ``"blue"``, ``"violet"``).
        seed: Integer or ``keras.random.SeedGenerator``.
        dtype: Float dtype.

    Example:
        >>> from noisewise.augment.audio import colored_noise
        >>> n = colored_noise((2, 1000), "pink", seed=0)
        >>> tuple(n.shape)
        (2, 1000)
    """
    beta = COLORS[check_choice("color", color, tuple(COLORS))]
    if len(shape) not in (2, 3):
        raise ValueError(
            f"`shape` must be (batch, time) or (batch, time, channels). Received: {shape}"
        )
    white = keras.random.normal(shape, dtype="float32", seed=seed)
    if beta != 0.0:
        length = int(shape[1])
        x = ops.moveaxis(white, 1, -1)
        real, imag = ops.rfft(x)
        freqs = np.arange(length // 2 + 1, dtype="float64") / length
        gain = np.zeros_like(freqs)
        gain[1:] = freqs[1:] ** (-beta / 2.0)
        gain = ops.convert_to_tensor(gain.astype("float32"))
        x = ops.irfft((real * gain, imag * gain), fft_length=length)
        white = ops.moveaxis(x, -1, 1)
    noise = white / ops.sqrt(ops.maximum(_power(white), 1e-30))
    return ops.cast(noise, dtype)


def _snr_range(snr_db):
    if isinstance(snr_db, (list, tuple)):
        ok = len(snr_db) == 2
        low, high = (check_number("snr_db", v) for v in snr_db) if ok else (None, None)
        if not ok or low > high:
            raise ValueError(f"`snr_db` must be a number or a pair (low, high) with low <= high. "
                             f"Received: snr_db={snr_db!r}")
        return low, high
    value = check_number("snr_db", snr_db)
    return value, value


def add_noise(signal, noise, snr_db):
    """``signal + s * noise`` with s chosen so each example's SNR is exactly ``snr_db``.

    Args:
        signal: (batch, time[, channels]) tensor.
        noise: Tensor of the same shape (any power; only its shape of spectrum matters).
        snr_db: Scalar or (batch,) tensor of target SNRs in dB.
    """
    if _is_real(snr_db) or isinstance(snr_db, (list, tuple, np.ndarray)):
        # A tensor may be traced; a number or array can be checked here.
        for v in np.ravel(np.asarray(snr_db, dtype=object)):
            check_number("snr_db", v)
    signal = ops.convert_to_tensor(signal)
    dtype = signal.dtype
    snr = ops.reshape(ops.cast(snr_db, dtype), (-1,) + (1,) * (len(signal.shape) - 1))
    p_signal, p_noise = _power(signal), _power(noise)
    scale = ops.sqrt(p_signal / (ops.maximum(p_noise, 1e-30) * ops.power(10.0, snr / 10.0)))
    return signal + ops.cast(scale, dtype) * ops.cast(noise, dtype)


def measure_snr(clean, noisy) -> float:
    """Per-example SNR in dB of ``noisy`` against ``clean`` (NumPy, float64)."""
    clean = np.asarray(clean, dtype="float64")
    noise = np.asarray(noisy, dtype="float64") - clean
    axes = tuple(range(1, clean.ndim))
    return 10.0 * np.log10(np.sum(clean**2, axis=axes) / np.sum(noise**2, axis=axes))


class _AudioLayer(keras.layers.Layer):
    """Shared seed and inference switch; subclasses implement ``draw`` and ``apply``."""

    def __init__(self, seed=None, active_at_inference=False, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.active_at_inference = bool(active_at_inference)
        self.seed_generator = keras.random.SeedGenerator(layer_seed(seed))

    def _check(self, x):
        if len(x.shape) not in (2, 3):
            raise ValueError(
                f"{type(self).__name__} expects (batch, time) or (batch, time, channels). "
                f"Received: shape={tuple(x.shape)}"
            )

    def call(self, inputs, training=None):
        x = ops.cast(inputs, self.compute_dtype)
        self._check(x)
        if not (training or self.active_at_inference):
            return x
        return self.apply(x, self.draw(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed,
                "active_at_inference": self.active_at_inference}


@keras.saving.register_keras_serializable(package="noisewise")
class SNRNoise(_AudioLayer):
    """Add white or coloured noise at a target SNR, drawn per example.

    Args:
        snr_db: Target SNR in dB, or a pair (low, high): each example's SNR is
            drawn uniformly in dB from that range.
        color: ``"white"``, ``"pink"``, ``"brown"``, ``"blue"`` or ``"violet"``.
        seed: Optional non-negative integer.
        active_at_inference: Also add noise when ``training=False``.

    Example:
        >>> import numpy as np
        >>> from noisewise.augment import SNRNoise, measure_snr
        >>> t = np.arange(16000) / 16000
        >>> clean = np.stack([np.sin(2 * np.pi * 440 * t)] * 4).astype("float32")
        >>> noisy = SNRNoise((5, 20), color="pink", seed=0)(clean, training=True)
        >>> snr = measure_snr(clean, np.asarray(noisy))
        >>> bool(((snr > 4.99) & (snr < 20.01)).all())
        True
    """

    def __init__(self, snr_db=(0.0, 20.0), color="white", **kwargs):
        super().__init__(**kwargs)
        self.snr_db = _snr_range(snr_db)
        self.color = check_choice("color", color, tuple(COLORS))

    def draw(self, x):
        batch = ops.shape(x)[0]
        low, high = self.snr_db
        return {
            "snr_db": keras.random.uniform((batch,), low, high, seed=self.seed_generator),
            "noise": colored_noise(tuple(x.shape), self.color, self.seed_generator, x.dtype),
        }

    def apply(self, x, params):
        return add_noise(x, params["noise"], params["snr_db"])

    def get_config(self):
        return {**super().get_config(), "snr_db": list(self.snr_db), "color": self.color}


@keras.saving.register_keras_serializable(package="noisewise")
class RandomGain(_AudioLayer):
    """Multiply each example by a gain drawn uniformly in dB.

    Args:
        gain_db: Pair (low, high) in dB; e.g. (-6, 6) scales by 0.5 to 2.
        seed: Optional non-negative integer.

    Example:
        >>> import numpy as np
        >>> from noisewise.augment import RandomGain
        >>> tuple(RandomGain((-6, 6), seed=0)(np.ones((3, 100)), training=True).shape)
        (3, 100)
    """

    def __init__(self, gain_db=(-6.0, 6.0), **kwargs):
        super().__init__(**kwargs)
        self.gain_db = check_range("gain_db", gain_db, allow_none=False)

    def draw(self, x):
        low, high = self.gain_db
        batch = ops.shape(x)[0]
        return {"gain_db": keras.random.uniform((batch,), low, high, seed=self.seed_generator)}

    def apply(self, x, params):
        gain = ops.power(10.0, ops.cast(params["gain_db"], x.dtype) / 20.0)
        return x * ops.reshape(gain, (-1,) + (1,) * (len(x.shape) - 1))

    def get_config(self):
        return {**super().get_config(), "gain_db": list(self.gain_db)}


@keras.saving.register_keras_serializable(package="noisewise")
class RandomTimeShift(_AudioLayer):
    """Shift each example in time by a random whole number of samples.

    Args:
        max_shift: Largest shift, as a fraction of the length (float in
            [0, 1]) or a number of samples (int). The shift is uniform on
            {-max, ..., max}; positive shifts delay the signal.
        mode: ``"roll"`` (wrap around, nothing lost) or ``"zeros"`` (pad with
            silence, samples shifted out are lost).
        seed: Optional non-negative integer.

    Example:
        >>> import numpy as np
        >>> from noisewise.augment import RandomTimeShift
        >>> tuple(RandomTimeShift(0.1, seed=0)(np.ones((2, 50)), training=True).shape)
        (2, 50)
    """

    def __init__(self, max_shift=0.1, mode="roll", **kwargs):
        super().__init__(**kwargs)
        if isinstance(max_shift, bool) or not isinstance(max_shift, (int, float)):
            raise ValueError(f"`max_shift` must be a float in [0, 1] or an int >= 0. "
                             f"Received: max_shift={max_shift!r}")
        if isinstance(max_shift, float):
            check_number("max_shift", max_shift, low=0.0, high=1.0)
        elif max_shift < 0:
            raise ValueError(f"`max_shift` must be >= 0. Received: max_shift={max_shift!r}")
        self.max_shift = max_shift
        self.mode = check_choice("mode", mode, ("roll", "zeros"))

    def _max_samples(self, length):
        if isinstance(self.max_shift, float):
            return int(round(self.max_shift * length))
        return min(self.max_shift, length)

    def draw(self, x):
        m = self._max_samples(int(x.shape[1]))
        u = keras.random.uniform((ops.shape(x)[0],), seed=self.seed_generator)
        # floor(U * (2m + 1)) - m is uniform on {-m, ..., m}.
        return {"shift": ops.cast(ops.floor(u * (2 * m + 1)), "int32") - m}

    def apply(self, x, params):
        length = int(x.shape[1])
        source = ops.arange(length, dtype="int32")[None, :] - params["shift"][:, None]
        inside = (source >= 0) & (source < length)
        source = ops.mod(source, length)
        if len(x.shape) == 3:
            source, inside = source[..., None], inside[..., None]
        out = ops.take_along_axis(x, ops.broadcast_to(source, ops.shape(x)), axis=1)
        if self.mode == "zeros":
            out = ops.where(inside, out, ops.zeros_like(out))
        return out

    def get_config(self):
        return {**super().get_config(), "max_shift": self.max_shift, "mode": self.mode}
