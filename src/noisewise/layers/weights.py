"""Weight noise: perturb a wrapped layer's weights in training (Graves 2011)."""

import keras
from keras import ops

from noisewise._validation import check_non_negative
from noisewise.random import layer_seed


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
        stddev: Standard deviation of the weight noise, >= 0.
        targets: Names of the wrapped layer's weight attributes to perturb.
            Default ``("kernel",)``; add ``"bias"`` to perturb biases too.
        relative: If True, the noise std is ``stddev`` times each weight
            tensor's own standard deviation (scale-free across layers).
        active_at_inference: Also perturb at inference (Monte Carlo use).
        seed: Optional non-negative integer.

    Example:
        >>> import keras, noisewise
        >>> layer = noisewise.WeightNoise(keras.layers.Dense(4), stddev=0.05, seed=0)
        >>> layer(keras.ops.ones((2, 3)), training=True).shape
        (2, 4)
    """

    def __init__(self, layer, stddev, *, targets=("kernel",), relative=False,
                 active_at_inference=False, seed=None, **kwargs):
        super().__init__(layer, **kwargs)
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

    @property
    def level(self):
        return self._level

    def get_level(self):
        return float(ops.convert_to_numpy(self._level.value))

    def set_level(self, value):
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

    def call(self, inputs, training=None):
        if not (training or self.active_at_inference):
            return self.layer(inputs, training=training)
        noisy = {id(getattr(self.layer, name)) for name in self.targets}
        level = self._level.value
        def value(v):
            if id(v) not in noisy:
                return v.value
            std = level
            if self.relative:
                std = std * ops.stop_gradient(ops.std(v.value))
            z = keras.random.normal(v.shape, dtype=v.dtype, seed=self.seed_generator)
            return v.value + ops.cast(std, v.dtype) * z
        trainable = [value(v) for v in self.layer.trainable_variables]
        non_trainable = [v.value for v in self.layer.non_trainable_variables]
        outputs, new_non_trainable = self.layer.stateless_call(
            trainable, non_trainable, inputs, training=training
        )
        for var, new in zip(self.layer.non_trainable_variables, new_non_trainable):
            var.assign(new)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "stddev": self.initial_level,
                "targets": list(self.targets),
                "relative": self.relative,
                "active_at_inference": self.active_at_inference,
                "seed": self.seed,
            }
        )
        return config
