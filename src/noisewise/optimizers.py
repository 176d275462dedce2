"""Annealed gradient noise around any Keras optimizer (Neelakantan et al. 2015)."""

import math

import keras
from keras import ops

from noisewise._core import keras_compat
from noisewise._core.validation import _is_real, check_non_negative
from noisewise.random import layer_seed


def _is_loss_scale_optimizer(optimizer):
    return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


@keras.saving.register_keras_serializable(package="noisewise")
class GradientNoise(keras.optimizers.Optimizer):
    """Add annealed Gaussian noise to every gradient, then apply ``optimizer``.

    At step ``t`` (the wrapped optimizer's ``iterations``, starting at 0) each
    gradient ``g`` becomes ``g + sigma_t * N(0, 1)`` with
    ``sigma_t ** 2 = eta / (1 + t) ** gamma``, drawn independently for every
    entry. The noisy gradients then go through the wrapped optimizer as usual
    (its clipping, weight decay, loss-scale unscaling and update rule), so
    noise is added before clipping. From Neelakantan et al. (2015), "Adding
    Gradient Noise Improves Learning for Very Deep Networks", who use
    ``gamma = 0.55`` and ``eta`` in {0.01, 0.3, 1.0}.

    Draws come from a ``keras.random.SeedGenerator`` whose state is one of
    this optimizer's variables, so on JAX it travels with the stateless
    training state and every step gets fresh noise. The step count, learning
    rate and slot variables are the wrapped optimizer's; ``variables`` lists
    this wrapper's own variables followed by the wrapped optimizer's.

    Mixed precision: wrap the other way round,
    ``LossScaleOptimizer(GradientNoise(...))`` (what ``compile`` does by
    itself under a ``"mixed_float16"`` policy), so noise is added to unscaled
    gradients. A ``loss_scale_factor`` set on the wrapped optimizer is
    honoured (the noise is scaled with the gradients, and unscaled with them).

    Saving: the class is registered as ``"noisewise>GradientNoise"``; a
    ``.keras`` file holding it loads once ``noisewise.optimizers`` has been
    imported (accessing ``noisewise.GradientNoise`` does that).

    Args:
        optimizer: The optimizer to wrap: a ``keras.optimizers.Optimizer``
            instance, a name such as ``"adam"``, or a serialized config.
        eta: Noise variance at step 0, finite and >= 0 (0 turns the noise off).
        gamma: Decay exponent of the variance, finite and >= 0 (0 keeps it
            constant).
        seed: Optional non-negative integer for reproducible noise.
        name: Optional name of this optimizer.

    Example:
        >>> import keras, numpy as np, noisewise
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> opt = noisewise.GradientNoise("sgd", eta=0.01, gamma=0.55, seed=0)
        >>> model.compile(optimizer=opt, loss="mse")
        >>> _ = model.fit(np.ones((8, 2)), np.ones((8, 1)), verbose=0)
        >>> round(opt.noise_stddev(0) ** 2, 6)
        0.01
    """

    def __init__(self, optimizer, eta=0.01, gamma=0.55, seed=None, name=None):
        super().__init__(learning_rate=0.0, name=name)
        try:
            inner = keras.optimizers.get(optimizer)
        except (ValueError, TypeError):
            inner = None
        if not isinstance(inner, keras.optimizers.Optimizer):
            raise ValueError(
                "`optimizer` must be a Keras optimizer, its name (such as 'adam') or "
                f"its config. Received: optimizer={optimizer!r}"
            )
        if _is_loss_scale_optimizer(inner):
            raise ValueError(
                "GradientNoise must not wrap a LossScaleOptimizer: noise would be "
                "added to scaled gradients. Wrap the other way round, "
                "LossScaleOptimizer(GradientNoise(...)). "
                f"Received: optimizer={inner.__class__.__name__}"
            )
        self.inner_optimizer = inner
        self.eta = check_non_negative("eta", eta)
        self.gamma = check_non_negative("gamma", gamma)
        self.seed = seed
        with keras.name_scope(self.name, caller=self):
            self.seed_generator = keras.random.SeedGenerator(layer_seed(seed), name="seed")
        # The RNG state is optimizer state: it is saved with the optimizer and,
        # on JAX, threaded through stateless_apply like any slot variable.
        keras_compat.track_variable(self, self.seed_generator.state)

    # -- delegation to the wrapped optimizer ---------------------------------
    def build(self, var_list):
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def variables(self):
        return super().variables + self.inner_optimizer.variables

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    def scale_loss(self, loss):
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    # -- draw, then apply ----------------------------------------------------
    def noise_stddev(self, step):
        """Standard deviation ``sqrt(eta / (1 + step) ** gamma)`` at ``step``.

        A Python number gives a float; a tensor or variable gives a tensor.
        """
        if _is_real(step):
            return math.sqrt(self.eta / (1.0 + float(step)) ** self.gamma)
        step = ops.cast(step, "float32")
        return ops.sqrt(self.eta / ops.power(1.0 + step, self.gamma))

    def draw(self, grads):
        """One standard normal tensor per gradient (None where the gradient is None)."""
        return [
            None if g is None
            else keras.random.normal(ops.shape(g), dtype=g.dtype, seed=self.seed_generator)
            for g in grads
        ]

    def apply_noise(self, grads, draws, step):
        """Deterministically turn ``draws`` into noise for ``step`` and add it."""
        std = self.noise_stddev(step)
        if self.inner_optimizer.loss_scale_factor is not None:
            # The wrapped optimizer divides gradients by this factor; scale the
            # noise with them so the unscaled noise has the intended variance.
            std = std * self.inner_optimizer.loss_scale_factor
        return [
            None if g is None else g + ops.cast(std, g.dtype) * z
            for g, z in zip(grads, draws)
        ]

    def _noisy(self, grads, variables):
        if self.eta == 0.0:
            return list(grads)
        # Variables overwritten by their "gradient" (float8 scales) receive
        # values, not gradients: they stay noise-free.
        skip = [g is None or getattr(v, "overwrite_with_gradient", False)
                for g, v in zip(grads, variables)]
        dense = [None if s else _dense(g) for g, s in zip(grads, skip)]
        noisy = self.apply_noise(dense, self.draw(dense), self.iterations)
        return [g if s else n for g, n, s in zip(grads, noisy, skip)]

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is not None:
            trainable_variables = list(trainable_variables)
        if not self.built:
            if trainable_variables is None:
                raise ValueError(
                    "GradientNoise must be built before `apply` is called without "
                    "`trainable_variables`; call `optimizer.build(variables)` first."
                )
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
        variables = trainable_variables or keras_compat.optimizer_trainable_variables(self)
        self.inner_optimizer.apply(self._noisy(grads, variables), trainable_variables)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        if not self.built:
            raise ValueError(
                "To call `stateless_apply`, GradientNoise must be built; call "
                "`optimizer.build(trainable_variables)` first."
            )
        own = len(super().variables)
        mapping = list(zip(self.variables, optimizer_variables))
        with keras.StatelessScope(state_mapping=mapping):
            noisy = self._noisy(grads, keras_compat.optimizer_trainable_variables(self))
            # Read inside the scope: the mapped values, with the advanced seed.
            new_own = [v.value for v in super().variables]
        new_trainable, new_inner = self.inner_optimizer.stateless_apply(
            list(optimizer_variables[own:]), noisy, trainable_variables
        )
        return new_trainable, new_own + list(new_inner)

    # -- serialization -------------------------------------------------------
    def get_config(self):
        return {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "eta": self.eta,
            "gamma": self.gamma,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["optimizer"] = keras.saving.deserialize_keras_object(
            config["optimizer"], custom_objects=custom_objects
        )
        return cls(**config)


def _dense(grad):
    """Sparse gradients (TensorFlow's IndexedSlices) become dense: noise touches every entry."""
    if hasattr(grad, "indices") and hasattr(grad, "dense_shape"):
        return ops.convert_to_tensor(grad)
    return grad
