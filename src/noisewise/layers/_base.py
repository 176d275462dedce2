"""The conventions every noisewise noise layer shares.

A noise layer draws its random parameters first (:meth:`NoiseLayer.draw`) and
then applies them deterministically (:meth:`NoiseLayer.apply_noise`), so a draw
can be logged and replayed. Its level (``stddev``, ``rate``, ...) is a
non-trainable variable, so a schedule can change it during training without
recompiling, and a vectorised trainer can hold a different level per replica.
"""

from typing import Any

import keras
from keras import ops

from noisewise._core import sampling as _sampling
from noisewise._core import keras_compat
from noisewise._core.validation import check_choice, check_number, check_range
from noisewise.random import layer_seed


def expand_mask(mask: Any, x: Any) -> Any:
    """Broadcastable boolean mask of ``x``'s rank (Keras masks are (batch, steps))."""
    mask = ops.cast(mask, "bool")
    while len(mask.shape) < len(x.shape):
        mask = ops.expand_dims(mask, -1)
    return mask


class NoiseLayer(keras.layers.Layer):
    """Base class: level variable, seed, clipping, masks and the inference switch.

    Subclasses set ``level_name`` (the constructor argument holding the level)
    and ``level_bounds`` and implement ``draw`` and ``_noisy``.

    Args:
        level: The noise level, a finite number within ``level_bounds`` (NaN and
            infinity are refused here and in :meth:`set_level`).
        clip: Optional ``(low, high)``; the output is clipped to this range.
        active_at_inference: If True, noise is also added when
            ``training=False`` (Monte Carlo prediction, test-time noise).
        seed: Optional non-negative integer for reproducible draws.
    """

    level_name = "stddev"
    level_bounds = (0.0, None, False)  # low, high, low_open

    def __init__(self, level: float, *, clip: tuple[float, float] | None = None,
                 active_at_inference: bool = False, seed: int | None = None,
                 sampler: str = "auto", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sampler = check_choice("sampler", sampler, _sampling.SAMPLERS)
        self.initial_level = self._check_level(level)
        self.clip = check_range("clip", clip)
        self.active_at_inference = bool(active_at_inference)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(layer_seed(seed))
        self.supports_masking = True
        self._level = self.add_weight(
            name=self.level_name,
            shape=(),
            dtype="float32",
            initializer=keras.initializers.Constant(self.initial_level),
            trainable=False,
        )
        keras_compat.build_at_init(self)

    # -- level ---------------------------------------------------------------
    def _check_level(self, value):
        low, high, low_open = self.level_bounds
        return check_number(self.level_name, value, low=low, high=high, low_open=low_open)

    @property
    def level(self) -> keras.Variable:
        """The level variable (a non-trainable ``keras.Variable``)."""
        return self._level

    def get_level(self) -> float:
        """The current level as a Python float."""
        return float(ops.convert_to_numpy(self._level.value))

    def set_level(self, value: float) -> None:
        """Set the level (validated); takes effect without recompiling."""
        self._level.assign(self._check_level(value))

    def level_tensor(self, dtype):
        return ops.cast(self._level.value, dtype)

    # -- draw, then apply ----------------------------------------------------
    def normal(self, shape, dtype):
        """Standard normal draws from the layer's seed, with its ``sampler``."""
        return _sampling.normal(shape, self.seed_generator, dtype, self.sampler)

    def draw(self, inputs: Any) -> dict[str, Any]:
        """Draw the random parameters for ``inputs``; returns a dict of tensors."""
        raise NotImplementedError

    def _noisy(self, inputs, params, mask):
        """Apply drawn ``params`` to ``inputs`` (before clipping and masking)."""
        raise NotImplementedError

    def apply_noise(self, inputs: Any, params: dict[str, Any], mask: Any = None) -> Any:
        """Deterministically apply drawn ``params``: noise, then clip, then mask."""
        x = self._as_float(inputs)
        out = self._noisy(x, params, mask)
        if self.clip is not None:
            out = ops.clip(out, self.clip[0], self.clip[1])
        if mask is not None:
            out = ops.where(expand_mask(mask, out), out, x)
        return out

    def _as_float(self, inputs):
        if keras.backend.is_float_dtype(keras.backend.standardize_dtype(inputs.dtype)):
            return inputs
        return ops.cast(inputs, self.compute_dtype)

    def call(self, inputs, training=None, mask=None):
        if not (training or self.active_at_inference):
            return self._as_float(inputs)
        x = self._as_float(inputs)
        return self.apply_noise(x, self.draw(x), mask=mask)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                self.level_name: self.initial_level,
                "clip": None if self.clip is None else list(self.clip),
                "active_at_inference": self.active_at_inference,
                "seed": self.seed,
                "sampler": self.sampler,
            }
        )
        return config
