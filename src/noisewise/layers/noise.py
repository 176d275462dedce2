"""Noise layers: Gaussian, multiplicative, uniform, salt-and-pepper and Poisson.

Unlike ``keras.layers.GaussianNoise`` these accept any level (std 50 on 0-255
pixels), clip to a valid range, scale relative to the data, leave masked steps
untouched, and can stay active at inference.
"""

from typing import Any

import keras
from keras import ops

from noisewise._core.validation import check_choice, check_number, check_range
from noisewise.layers._base import NoiseLayer, expand_mask

RELATIVE = (None, "std", "range")


def _masked_feature_std(x, mask):
    """Per-feature (last axis) std over every other axis, ignoring masked steps."""
    axes = tuple(range(len(x.shape) - 1))
    if mask is None:
        return ops.std(x, axis=axes, keepdims=True)
    w = ops.cast(expand_mask(mask, x), x.dtype)
    w = ops.broadcast_to(w, ops.shape(x))
    n = ops.maximum(ops.sum(w, axis=axes, keepdims=True), 1.0)
    mean = ops.sum(w * x, axis=axes, keepdims=True) / n
    var = ops.sum(w * ops.square(x - mean), axis=axes, keepdims=True) / n
    return ops.sqrt(var)


class _AdditiveNoise(NoiseLayer):
    """Shared handling of ``relative`` and ``value_range`` for additive noise."""

    def __init__(self, level: float, *, relative: str | None = None,
                 value_range: tuple[float, float] | None = None, **kwargs: Any) -> None:
        super().__init__(level, **kwargs)
        self.relative = check_choice("relative", relative, RELATIVE)
        self.value_range = check_range("value_range", value_range)
        if relative == "range" and self.value_range is None and self.clip is None:
            raise ValueError(
                "`relative='range'` needs `value_range` (or `clip`) to know the "
                "data's range. Received: value_range=None, clip=None"
            )

    def scale(self, x, mask=None):
        """Multiplier turning the level into data units (1 when absolute)."""
        if self.relative == "std":
            return ops.stop_gradient(_masked_feature_std(x, mask))
        if self.relative == "range":
            low, high = self.value_range or self.clip
            return ops.cast(high - low, x.dtype)
        return ops.cast(1.0, x.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "relative": self.relative,
                "value_range": None if self.value_range is None else list(self.value_range),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="noisewise")
class GaussianNoise(_AdditiveNoise):
    """Add zero-mean Gaussian noise: ``x + stddev * scale * N(0, 1)``.

    Args:
        stddev: Standard deviation, any finite value >= 0 (in the data's units, or
            relative to the data when ``relative`` is set). 0 adds nothing but
            keeps the same variables, so a schedule can start from 0.
        relative: ``None`` (absolute), ``"std"`` (times the batch's per-feature
            standard deviation, masked steps excluded) or ``"range"`` (times
            ``high - low`` of ``value_range``, or of ``clip`` if not given).
        value_range: Optional ``(low, high)`` of the data, for ``relative="range"``.
        clip: Optional ``(low, high)``; the noisy output is clipped to it.
        active_at_inference: Also add noise when ``training=False``.
        seed: Optional non-negative integer.
        sampler: Source of the normal numbers: ``"keras"``
            (``keras.random.normal``), ``"fast"`` (a counter-based hash with
            an inverse-CDF transform, see :mod:`noisewise._core.sampling`) or
            ``"auto"`` (``"fast"`` on JAX, where it is about twice as fast
            and XLA fuses it, else ``"keras"``). Both give exact Gaussian
            marginals; a seed replays the same numbers on the same backend.

    Call arguments:
        inputs: Tensor of any rank. Integer inputs are cast to the layer's
            compute dtype (in both modes, so the output dtype never changes).
        training: Python bool; noise is added only when True (unless
            ``active_at_inference``).
        mask: Optional Keras mask; masked steps are returned unchanged, and the
            mask is passed on.

    Example:
        >>> import keras, numpy as np, noisewise
        >>> layer = noisewise.GaussianNoise(50.0, clip=(0, 255), seed=0)
        >>> y = layer(np.full((2, 4), 128.0), training=True)
        >>> bool(keras.ops.all((y >= 0) & (y <= 255)))
        True
    """

    level_name = "stddev"

    def __init__(self, stddev: float, **kwargs: Any) -> None:
        super().__init__(stddev, **kwargs)

    def draw(self, inputs):
        return {
            "z": self.normal(ops.shape(inputs), inputs.dtype)
        }

    def _noisy(self, x, params, mask):
        return x + self.level_tensor(x.dtype) * self.scale(x, mask) * params["z"]


@keras.saving.register_keras_serializable(package="noisewise")
class UniformNoise(_AdditiveNoise):
    """Add uniform noise on ``[-amplitude, amplitude]`` (times the relative scale).

    The added noise has standard deviation ``amplitude / sqrt(3)``. Arguments
    as for :class:`GaussianNoise`, with ``amplitude`` (>= 0) as the level.
    """

    level_name = "amplitude"

    def __init__(self, amplitude: float, **kwargs: Any) -> None:
        super().__init__(amplitude, **kwargs)

    def draw(self, inputs):
        return {
            "u": keras.random.uniform(
                ops.shape(inputs), minval=-1.0, maxval=1.0, dtype=inputs.dtype,
                seed=self.seed_generator,
            )
        }

    def _noisy(self, x, params, mask):
        return x + self.level_tensor(x.dtype) * self.scale(x, mask) * params["u"]


@keras.saving.register_keras_serializable(package="noisewise")
class MultiplicativeNoise(NoiseLayer):
    """Speckle noise: ``x * (1 + stddev * N(0, 1))``.

    Zeros stay zero and the noise grows with the signal, as in speckle and
    multiplicative Gaussian dropout. Other arguments as for :class:`GaussianNoise`.
    """

    level_name = "stddev"

    def __init__(self, stddev: float, **kwargs: Any) -> None:
        super().__init__(stddev, **kwargs)

    def draw(self, inputs):
        return {
            "z": self.normal(ops.shape(inputs), inputs.dtype)
        }

    def _noisy(self, x, params, mask):
        return x * (1.0 + self.level_tensor(x.dtype) * params["z"])


@keras.saving.register_keras_serializable(package="noisewise")
class SaltAndPepperNoise(NoiseLayer):
    """Replace a fraction ``rate`` of values by ``low`` (pepper) or ``high`` (salt).

    Args:
        rate: Probability in [0, 1] that a value is replaced.
        salt_ratio: Probability in [0, 1] that a replaced value is salt (``high``).
        value_range: ``(low, high)`` of the data; defaults to ``(0, 1)``.
        Other arguments as for :class:`GaussianNoise`.
    """

    level_name = "rate"
    level_bounds = (0.0, 1.0, False)

    def __init__(self, rate: float, *, salt_ratio: float = 0.5,
                 value_range: tuple[float, float] = (0.0, 1.0), **kwargs: Any) -> None:
        super().__init__(rate, **kwargs)
        self.salt_ratio = check_number("salt_ratio", salt_ratio, low=0.0, high=1.0)
        self.value_range = check_range("value_range", value_range, allow_none=False)

    def draw(self, inputs):
        shape = ops.shape(inputs)
        return {
            "hit": keras.random.uniform(shape, dtype=inputs.dtype, seed=self.seed_generator),
            "salt": keras.random.uniform(shape, dtype=inputs.dtype, seed=self.seed_generator),
        }

    def _noisy(self, x, params, mask):
        low, high = self.value_range
        replaced = ops.where(
            params["salt"] < self.salt_ratio,
            ops.cast(high, x.dtype),
            ops.cast(low, x.dtype),
        )
        return ops.where(params["hit"] < self.level_tensor(x.dtype), replaced, x)

    def get_config(self):
        config = super().get_config()
        config.update({"salt_ratio": self.salt_ratio, "value_range": list(self.value_range)})
        return config


def poisson(lam: Any, seed: Any, dtype: str) -> Any:
    """Exact Poisson draws built only on ``keras.random.gamma`` and ``binomial``.

    One step of Ahrens and Dieter's (1974) gamma-binomial method: the m-th
    arrival of a unit-rate Poisson process is G ~ Gamma(m); if G > lam, the
    count in [0, lam] is Binomial(m - 1, lam / G). With
    m = lam + 10 sqrt(lam) + 10, G <= lam has probability below 1e-20 (the
    chance that Poisson(lam) >= m), so this single step is exact in practice.
    """
    lam = ops.cast(lam, "float32")
    m = ops.floor(lam + 10.0 * ops.sqrt(lam) + 10.0)
    shape = ops.shape(lam)
    g = keras.random.gamma(shape, alpha=m, dtype="float32", seed=seed)
    p = ops.clip(lam / g, 0.0, 1.0)
    counts = keras.random.binomial(shape, counts=m - 1.0, probabilities=p, dtype="float32", seed=seed)
    return ops.cast(counts, dtype)


@keras.saving.register_keras_serializable(package="noisewise")
class PoissonNoise(NoiseLayer):
    """Shot noise: photon counts with ``peak`` expected counts at full scale.

    Values are mapped to [0, 1] with ``value_range``, each becomes
    ``Poisson(x * peak) / peak`` and is mapped back, so for ``x`` in
    ``value_range`` the output's mean is ``x`` and its variance
    ``(x - low) * (high - low) / peak`` in data units: a larger ``peak`` means
    less noise (ImageNet-C's shot noise uses peaks 60, 25, 12, 5 and 3).
    Gradients pass straight through (d output / d x = 1).

    Args:
        peak: Expected photon count of a full-scale value, > 0.
        value_range: ``(low, high)`` of the data; defaults to ``(0, 1)``.
        Other arguments as for :class:`GaussianNoise`.
    """

    level_name = "peak"
    level_bounds = (0.0, None, True)

    def __init__(self, peak: float, *, value_range: tuple[float, float] = (0.0, 1.0),
                 **kwargs: Any) -> None:
        super().__init__(peak, **kwargs)
        self.value_range = check_range("value_range", value_range, allow_none=False)

    def _unit(self, x):
        low, high = self.value_range
        return ops.clip((x - low) / (high - low), 0.0, 1.0)

    def draw(self, inputs):
        lam = self._unit(inputs) * self.level_tensor(inputs.dtype)
        return {"counts": poisson(ops.stop_gradient(lam), self.seed_generator, inputs.dtype)}

    def _noisy(self, x, params, mask):
        low, high = self.value_range
        noisy = low + params["counts"] / self.level_tensor(x.dtype) * (high - low)
        # The counts carry no gradient, which would stop layers before this one
        # from learning. The output's mean is x, so pass d(out)/dx = 1 straight
        # through; x - stop_gradient(x) is exactly 0 in the forward pass.
        return noisy + (x - ops.stop_gradient(x))

    def get_config(self):
        config = super().get_config()
        config["value_range"] = list(self.value_range)
        return config
