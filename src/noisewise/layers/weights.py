"""Weight noise: perturb a wrapped layer's weights in training (Graves 2011)."""

import inspect
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from noisewise._core import sampling as _sampling
from noisewise._core.validation import check_choice, check_non_negative
from noisewise.random import layer_seed


@keras.saving.register_keras_serializable(package="noisewise")
class WeightNoise(keras.layers.Wrapper):
    """Wrap a layer and add Gaussian noise to its weights during training.

    A fresh perturbation ``w + stddev * N(0, 1)`` is drawn once per call (per
    mini-batch) and used for the forward pass; gradients flow to the clean
    weights, which are the only ones stored. At inference the clean weights are
    used, unless ``active_at_inference``. This is the "adaptive weight noise"
    idea of Graves (2011), "Practical Variational Inference for Neural
    Networks", with a fixed standard deviation.

    Args:
        layer: A layer with a ``kernel`` (Dense, Conv*, EinsumDense, ...), or
            with every variable named in ``targets``.
        stddev: Standard deviation of the weight noise, finite and >= 0.
        targets: Names of the wrapped layer's weight attributes to perturb.
            Default ``("kernel",)``; add ``"bias"`` to perturb biases too.
        relative: If True, the noise std is ``stddev`` times each weight
            tensor's own standard deviation (scale-free across layers).
        active_at_inference: Also perturb at inference (Monte Carlo use).
        seed: Optional non-negative integer.
        sampler: ``"auto"``, ``"fast"`` or ``"keras"``, as for
            :class:`~noisewise.GaussianNoise`.
        dtype: Dtype policy of the wrapper, which the wrapped layer then
            computes in too (``"mixed_float16"`` runs the wrapped layer in
            float16 with float32 weights, as ``keras.layers.TimeDistributed``
            does). Default: the wrapped layer's own policy.
        **kwargs: Other ``keras.layers.Layer`` arguments (``name``, ...).

    A mask is passed to the wrapped layer (if its ``call`` takes one) and on
    to the next layer when the wrapped layer supports masking.

    Example:
        >>> import keras, noisewise
        >>> layer = noisewise.WeightNoise(keras.layers.Dense(4), stddev=0.05, seed=0)
        >>> tuple(layer(keras.ops.ones((2, 3)), training=True).shape)
        (2, 4)
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        stddev: float,
        *,
        targets: Sequence[str] = ("kernel",),
        relative: bool = False,
        active_at_inference: bool = False,
        seed: int | None = None,
        sampler: str = "auto",
        **kwargs: Any,
    ) -> None:
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = getattr(layer, "dtype_policy", None)
        super().__init__(layer, **kwargs)
        self._share_policy(layer)
        self.supports_masking = layer.supports_masking
        self._layer_takes_mask = "mask" in inspect.signature(layer.call).parameters
        self.sampler = check_choice("sampler", sampler, _sampling.SAMPLERS)
        self.initial_level = check_non_negative("stddev", stddev)
        if isinstance(targets, str) or not targets or not all(isinstance(t, str) for t in targets):
            raise ValueError(
                "`targets` must be a non-empty list of weight attribute names. "
                f"Received: targets={targets!r}"
            )
        self.targets = tuple(targets)
        self.relative = bool(relative)
        self.active_at_inference = bool(active_at_inference)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(layer_seed(seed))
        self._level = self.add_weight(
            name="stddev", shape=(), dtype="float32", trainable=False,
            initializer=keras.initializers.Constant(self.initial_level),
        )
        if layer.built:
            self._check_targets()

    level_name = "stddev"

    def _share_policy(self, layer):
        # Left with its own policy, the wrapped layer casts a float16 batch back
        # to float32 and returns float32, while the wrapper's output spec says
        # float16 (what Keras' run_layer_test checks).
        if layer.dtype_policy.name == self.dtype_policy.name:
            return
        if layer.built and layer.dtype_policy.variable_dtype != self.dtype_policy.variable_dtype:
            raise ValueError(
                f"WeightNoise computes its layer in its own dtype policy, but layer "
                f"{layer.name!r} is already built with {layer.dtype_policy.variable_dtype} "
                f"weights; wrap an unbuilt layer, or use a policy with "
                f"{layer.dtype_policy.variable_dtype} variables. "
                f"Received: dtype={self.dtype_policy.name!r}"
            )
        layer.dtype_policy = self.dtype_policy

    @property
    def level(self) -> keras.Variable:
        """The noise std variable (a non-trainable ``keras.Variable``)."""
        return self._level

    def get_level(self) -> float:
        """The current noise std as a Python float."""
        return float(ops.convert_to_numpy(self._level.value))

    def set_level(self, value: float) -> None:
        """Set the noise std (validated); takes effect without recompiling."""
        self._level.assign(check_non_negative("stddev", value))

    def _check_targets(self):
        for name in self.targets:
            if not isinstance(getattr(self.layer, name, None), keras.Variable):
                raise ValueError(
                    f"WeightNoise needs a layer with a weight named {name!r}; "
                    f"{type(self.layer).__name__} {self.layer.name!r} has none. "
                    f"Received: layer={self.layer.name!r}, targets={list(self.targets)}"
                )

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        self._check_targets()
        self.built = True

    def call(self, inputs, training=None, mask=None):
        kwargs = {"mask": mask} if self._layer_takes_mask and mask is not None else {}
        if not (training or self.active_at_inference):
            return self.layer(inputs, training=training, **kwargs)
        targets = {id(getattr(self.layer, name)) for name in self.targets}
        level = self._level.value
        # Every variable of the wrapped layer is mapped (a nested scope does not
        # fall back to an outer one); targets, trainable or frozen, are perturbed.
        mapping = []
        for v in self.layer.variables:
            value = ops.cast(v.value, v.dtype)
            if id(v) in targets:
                std = level
                if self.relative:
                    std = std * ops.stop_gradient(ops.std(value))
                z = _sampling.normal(v.shape, self.seed_generator, v.dtype, self.sampler)
                value = value + ops.cast(std, v.dtype) * z
            mapping.append((v, value))
        # The layer's own __call__ (not stateless_call, which calls `call`
        # directly) handles autocasting, masks and passes `training` only to
        # layers whose `call` takes it (Conv2D does not).
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = self.layer(inputs, training=training, **kwargs)
        # Keep the layer's own state updates (BatchNormalization statistics,
        # seed states); perturbed weights are never written back.
        for v in self.layer.non_trainable_variables:
            if id(v) not in targets:
                v.assign(scope.get_current_value(v))
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # keras.layers.Wrapper.from_config pops "layer" from the caller's dict.
        return super().from_config(dict(config), custom_objects=custom_objects)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "stddev": self.initial_level,
                "targets": list(self.targets),
                "relative": self.relative,
                "active_at_inference": self.active_at_inference,
                "seed": self.seed,
                "sampler": self.sampler,
            }
        )
        return config
