"""A GAN whose discriminator sees instance noise, and the ring-of-Gaussians mode test.

:class:`GAN` trains a generator and a discriminator with ``fit``, one
discriminator update and one generator update per batch, each network with its
own optimizer, on JAX, PyTorch and TensorFlow. It offers two classic remedies
for an over-confident discriminator:

- **Instance noise** (Sonderby et al. 2016, "Amortised MAP Inference for Image
  Super-resolution"; Arjovsky and Bottou 2017, "Towards Principled Methods for
  Training Generative Adversarial Networks"): Gaussian noise of standard
  deviation ``instance_noise`` is added to everything the discriminator sees,
  real and generated samples alike, in both updates, so the two distributions
  overlap and the discriminator's gradient stays informative. The stddev is the
  level variable of a :class:`~noisewise.layers.GaussianNoise` sublayer, so it
  can be annealed during training without recompiling (see below).
- **One-sided label smoothing** (Salimans et al. 2016, "Improved Techniques for
  Training GANs"): the discriminator's targets for real samples are
  ``1 - label_smoothing``; those for generated samples stay 0.

The generator minimises the non-saturating loss ``-log D(G(z))`` (Goodfellow et
al. 2014).

Annealing: the GAN has ``get_level``/``set_level`` (the instance-noise stddev),
so :class:`~noisewise.NoiseScheduler` drives it like a noise layer, per epoch
or per step: ``NoiseScheduler(schedules.linear(0.5, 0.0, steps=300), layers=[gan],
by="step")``. The scheduler's default target search finds the ``instance_noise``
sublayer too, along with any noise layers inside the two networks.

:func:`ring_of_gaussians` samples the standard mode-collapse test (Metz et al.
2017, "Unrolled Generative Adversarial Networks") and :func:`mode_coverage`
scores samples against its modes.
"""

import math
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from noisewise._core.validation import check_int, check_number
from noisewise.layers.noise import GaussianNoise
from noisewise.random import derive_seed, layer_seed

_BACKEND = keras.backend.backend()


class _OptimizerPair(keras.optimizers.Optimizer):
    """The two optimizers seen as one, so ``fit`` carries both states.

    ``fit`` threads ``model.optimizer.variables`` through the training step (on
    JAX, as explicit state), so both optimizers' variables must be listed
    there. The pair never applies gradients itself; the GAN's step calls each
    optimizer on its own network. Its ``iterations`` are the generator
    optimizer's, one per batch.
    """

    def __init__(self, d_optimizer, g_optimizer, discriminator, generator):
        super().__init__(learning_rate=0.0, name="gan_optimizers")
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self._networks = (discriminator, generator)

    def build(self, var_list):
        discriminator, generator = self._networks
        for optimizer, network in ((self.d_optimizer, discriminator), (self.g_optimizer, generator)):
            if not optimizer.built:
                optimizer.build(network.trainable_variables)
        super().build(var_list)

    @property
    def variables(self):
        return self.d_optimizer.variables + self.g_optimizer.variables + super().variables

    @property
    def iterations(self):
        return self.g_optimizer.iterations

    def finalize_variable_values(self, var_list):
        discriminator, generator = self._networks
        self.d_optimizer.finalize_variable_values(discriminator.trainable_variables)
        self.g_optimizer.finalize_variable_values(generator.trainable_variables)


def _shape(x):
    return (None,) + tuple(x.shape[1:])


def _from_logits(discriminator, from_logits):
    if from_logits not in (None, True, False):
        raise ValueError("`from_logits` must be None (detect from the discriminator's last "
                         f"activation), True or False. Received: from_logits={from_logits!r}")
    if from_logits is not None:
        return from_logits
    layers = getattr(discriminator, "layers", None)
    activation = getattr(getattr(layers[-1], "activation", None), "__name__", None) if layers else None
    detected = {"sigmoid": False, "linear": True}.get(activation)
    if detected is None:
        raise ValueError("Could not tell whether the discriminator outputs logits or "
                         f"probabilities (last activation {activation!r}); pass from_logits=True "
                         "or False to `compile`. Received: from_logits=None")
    return detected


@keras.saving.register_keras_serializable(package="noisewise")
class GAN(keras.Model):
    """A generator and a discriminator trained adversarially with ``fit``.

    Args:
        generator: A Keras model mapping ``(batch, latent_dim)`` to samples.
        discriminator: A Keras model mapping samples to one score per example,
            shape ``(batch, 1)``: a logit, or a probability (sigmoid output).
        latent_dim: Size of the generator's standard normal input.
        instance_noise: Initial stddev (>= 0) of the Gaussian noise added to
            every discriminator input, real and generated; 0 adds none but
            keeps the variable, so a schedule can start or end at 0.
        label_smoothing: One-sided smoothing ``s`` in [0, 1): real targets
            ``1 - s``, generated targets 0.
        seed: Optional non-negative integer; the latent draws and the instance
            noise come from the model's own seed generators, so a seed replays a
            run on one backend (given the same initial weights).

    Both networks are called once at construction on two latent vectors, to
    check that the generator's output fits the discriminator's input and that
    the discriminator outputs one unit.

    Example:
        >>> import keras, numpy as np
        >>> from noisewise.gan import GAN, ring_of_gaussians
        >>> g = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(2)])
        >>> d = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(1)])
        >>> gan = GAN(g, d, latent_dim=4, instance_noise=0.1, label_smoothing=0.1, seed=0)
        >>> gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
        >>> x, centers = ring_of_gaussians(256, seed=0)
        >>> history = gan.fit(x, batch_size=64, epochs=1, verbose=0)
        >>> sorted(history.history)
        ['d_loss', 'g_loss']
        >>> gan.generate(5, seed=1).shape
        (5, 2)
    """

    def __init__(self, generator, discriminator, *, latent_dim, instance_noise=0.0,
                 label_smoothing=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(generator, dict):
            generator = keras.saving.deserialize_keras_object(generator)
        if isinstance(discriminator, dict):
            discriminator = keras.saving.deserialize_keras_object(discriminator)
        self.latent_dim = check_int("latent_dim", latent_dim, low=1)
        self.label_smoothing = check_number("label_smoothing", label_smoothing, low=0.0, high=1.0,
                                            high_open=True)
        self.seed = None if seed is None else check_int("seed", seed, low=0)
        self.generator, self.discriminator = generator, discriminator
        self._check_shapes()
        self.instance_noise_layer = GaussianNoise(
            check_number("instance_noise", instance_noise, low=0.0),
            seed=None if seed is None else derive_seed(seed, "instance_noise"), name="instance_noise")
        self.seed_generator = keras.random.SeedGenerator(layer_seed(seed))
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.built = True

    def _check_shapes(self):
        try:
            fake = self.generator(ops.zeros((2, self.latent_dim)), training=False)
        except Exception as err:  # a generator that cannot take the latent vectors at all
            raise ValueError(f"The generator cannot be called on latent vectors of shape "
                             f"(None, {self.latent_dim}): {err}. Received: latent_dim={self.latent_dim}") from None
        try:
            wanted = tuple(self.discriminator.input_shape)
        except (AttributeError, ValueError, TypeError):  # a subclassed model declares no input
            wanted = None
        made = _shape(fake)
        mismatch = ValueError(f"The generator's output shape {made} does not match the discriminator's "
                              f"input shape {wanted or 'unknown'}. Received: generator output shape={made}, "
                              f"discriminator input shape={wanted}")
        if wanted is not None and (len(wanted) != len(made) or any(
                w is not None and w != m for w, m in zip(wanted[1:], made[1:]))):
            raise mismatch
        try:
            out = self.discriminator(fake, training=False)
        except Exception:
            raise mismatch from None
        if tuple(out.shape) != (2, 1):
            raise ValueError("The discriminator must output one unit per example, shape (None, 1). "
                             f"Received: discriminator output shape={_shape(out)}")

    # -- instance noise level (what NoiseScheduler drives) -------------------
    @property
    def level(self):
        """The instance-noise stddev variable (non-trainable)."""
        return self.instance_noise_layer.level

    def get_level(self) -> float:
        return self.instance_noise_layer.get_level()

    def set_level(self, value: float) -> None:
        """Set the instance-noise stddev (>= 0); takes effect without recompiling."""
        self.instance_noise_layer.set_level(value)

    def noisy(self, x, training=True):
        """What the discriminator sees: ``x`` plus the instance noise (when training)."""
        return self.instance_noise_layer(x, training=training)

    # -- compile, losses ------------------------------------------------------
    def compile(self, d_optimizer="adam", g_optimizer="adam", loss=None, *, from_logits=None, **kwargs):
        """Set the two optimizers and the loss.

        Args:
            d_optimizer: The discriminator's optimizer (instance or name).
            g_optimizer: The generator's optimizer; a different instance.
            loss: None for binary cross-entropy (the generator minimising the
                non-saturating ``-log D(G(z))``), or a callable
                ``loss(y_true, y_pred)`` used in its place (averaged over the batch).
            from_logits: For the default loss: None detects it from the
                discriminator's last activation (sigmoid: probabilities;
                linear: logits), or True/False.
            **kwargs: Passed to ``keras.Model.compile`` (``jit_compile``,
                ``steps_per_execution``, ``run_eagerly``).
        """
        d, g = keras.optimizers.get(d_optimizer), keras.optimizers.get(g_optimizer)
        if d is g:
            raise ValueError("`d_optimizer` and `g_optimizer` must be two optimizer instances, since "
                             f"each holds its network's state. Received: the same {type(d).__name__} twice")
        if loss is not None and not callable(loss):
            raise ValueError(f"`loss` must be None or a callable loss(y_true, y_pred). Received: loss={loss!r}")
        self.d_optimizer, self.g_optimizer = d, g
        self.from_logits = _from_logits(self.discriminator, from_logits) if loss is None else from_logits
        self.loss_fn = loss
        pair = _OptimizerPair(d, g, self.discriminator, self.generator)
        super().compile(optimizer=pair, **kwargs)
        pair.build(self.trainable_variables)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def _loss(self, target, scores):
        y_true = ops.full_like(scores, target)
        if self.loss_fn is not None:
            return ops.mean(self.loss_fn(y_true, scores))
        return ops.mean(keras.losses.binary_crossentropy(y_true, scores, from_logits=self.from_logits))

    def _latent(self, n):
        return keras.random.normal((n, self.latent_dim), seed=self.seed_generator)

    def discriminator_loss(self, real):
        """``BCE(1 - s, D(real + noise)) + BCE(0, D(G(z) + noise))``, the generator held fixed."""
        fake = ops.stop_gradient(self.generator(self._latent(ops.shape(real)[0]), training=True))
        real_scores = self.discriminator(self.noisy(real), training=True)
        fake_scores = self.discriminator(self.noisy(fake), training=True)
        return self._loss(1.0 - self.label_smoothing, real_scores) + self._loss(0.0, fake_scores)

    def generator_loss(self, n):
        """The non-saturating loss ``BCE(1, D(G(z) + noise))`` on ``n`` fresh latent vectors."""
        fake = self.generator(self._latent(n), training=True)
        return self._loss(1.0, self.discriminator(self.noisy(fake), training=True))

    def _real(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = ops.convert_to_tensor(x)
        return x if keras.backend.is_float_dtype(x.dtype) else ops.cast(x, self.compute_dtype)

    def _logs(self, d_loss, g_loss):
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {m.name: m.result() for m in self.metrics}

    # -- the training step, per backend ---------------------------------------
    if _BACKEND == "jax":

        def train_step(self, state, data):
            import jax  # the backend's own module, present whenever this backend runs

            trainable, non_trainable, optimizer_vars, metrics_vars = state
            real = self._real(data)
            position = {id(v): i for i, v in enumerate(self.trainable_variables)}

            def stateless(trainable, non_trainable, fn):
                # Every variable mapped to its traced value; the advanced seed and
                # batch-norm states are read back, or each step would repeat them.
                mapping = list(zip(self.trainable_variables, trainable))
                mapping += list(zip(self.non_trainable_variables, non_trainable))
                with keras.StatelessScope(state_mapping=mapping) as scope:
                    loss = fn()
                return loss, [scope.get_current_value(v) for v in self.non_trainable_variables]

            def update(network, optimizer, opt_vars, fn, trainable, non_trainable):
                index = [position[id(v)] for v in network.trainable_variables]

                def loss_of(own, non_trainable):
                    merged = list(trainable)
                    for i, value in zip(index, own):
                        merged[i] = value
                    return stateless(merged, non_trainable, fn)

                own = [trainable[i] for i in index]
                (loss, non_trainable), grads = jax.value_and_grad(loss_of, has_aux=True)(own, non_trainable)
                own, opt_vars = optimizer.stateless_apply(opt_vars, grads, own)
                trainable = list(trainable)
                for i, value in zip(index, own):
                    trainable[i] = value
                return loss, trainable, non_trainable, list(opt_vars)

            n_d, n_g = len(self.d_optimizer.variables), len(self.g_optimizer.variables)
            d_loss, trainable, non_trainable, d_vars = update(
                self.discriminator, self.d_optimizer, optimizer_vars[:n_d],
                lambda: self.discriminator_loss(real), trainable, non_trainable)
            g_loss, trainable, non_trainable, g_vars = update(
                self.generator, self.g_optimizer, optimizer_vars[n_d:n_d + n_g],
                lambda: self.generator_loss(real.shape[0]), trainable, non_trainable)
            optimizer_vars = d_vars + g_vars + list(optimizer_vars[n_d + n_g:])
            mapping = list(zip(self.metrics_variables, metrics_vars))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                logs = self._logs(d_loss, g_loss)
            metrics_vars = [scope.get_current_value(v) for v in self.metrics_variables]
            return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)

    elif _BACKEND == "torch":

        def train_step(self, data):
            import torch  # the backend's own module, present whenever this backend runs

            real = self._real(data)
            losses = []
            for network, optimizer, fn in (
                    (self.discriminator, self.d_optimizer, lambda: self.discriminator_loss(real)),
                    (self.generator, self.g_optimizer, lambda: self.generator_loss(real.shape[0]))):
                self.zero_grad()
                loss = fn()
                loss.backward()
                weights = network.trainable_weights
                with torch.no_grad():
                    optimizer.apply([v.value.grad for v in weights], weights)
                losses.append(loss.detach())
            return self._logs(*losses)

    else:

        def train_step(self, data):
            import tensorflow as tf  # the backend's own module, present whenever this backend runs

            real = self._real(data)
            losses = []
            for network, optimizer, fn in (
                    (self.discriminator, self.d_optimizer, lambda: self.discriminator_loss(real)),
                    (self.generator, self.g_optimizer, lambda: self.generator_loss(ops.shape(real)[0]))):
                with tf.GradientTape() as tape:
                    loss = fn()
                weights = network.trainable_weights
                optimizer.apply(tape.gradient(loss, weights), weights)
                losses.append(loss)
            return self._logs(*losses)

    # -- use -------------------------------------------------------------------
    def call(self, inputs, training=None):
        return self.generator(inputs, training=training)

    def generate(self, n, seed=None):
        """``n`` samples as a NumPy array; ``seed`` (an integer) replays the same latent draws.

        Without a seed the model's own seed generator is used (and advanced).
        """
        n = check_int("n", n, low=1)
        generator = self.seed_generator if seed is None else keras.random.SeedGenerator(layer_seed(seed))
        z = keras.random.normal((n, self.latent_dim), seed=generator)
        return ops.convert_to_numpy(self.generator(z, training=False))

    def get_config(self):
        return {
            "name": self.name,
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "latent_dim": self.latent_dim,
            "instance_noise": self.instance_noise_layer.initial_level,
            "label_smoothing": self.label_smoothing,
            "seed": self.seed,
        }


def ring_of_gaussians(n, *, modes=8, radius=2.0, std=0.02, seed):
    """``n`` samples of an equal mixture of ``modes`` Gaussians on a circle.

    The mode centres are ``radius * (cos(2 pi k / modes), sin(2 pi k / modes))``;
    each sample picks a mode uniformly and adds isotropic noise of stddev
    ``std``. The defaults are the 2-D test of Metz et al. (2017) and Srivastava
    et al. (2017): 8 modes, radius 2, stddev 0.02.

    Args:
        n: Number of samples (>= 1).
        modes: Number of mixture components (>= 1).
        radius: Radius of the circle (> 0).
        std: Each component's standard deviation (> 0).
        seed: Non-negative integer for NumPy's generator.

    Returns:
        ``(samples, centers)``: float32 arrays of shapes ``(n, 2)`` and ``(modes, 2)``.

    Example:
        >>> x, centers = ring_of_gaussians(1000, seed=0)
        >>> x.shape, centers.shape
        ((1000, 2), (8, 2))
    """
    n, modes = check_int("n", n, low=1), check_int("modes", modes, low=1)
    radius = check_number("radius", radius, low=0.0, low_open=True)
    std = check_number("std", std, low=0.0, low_open=True)
    rng = np.random.default_rng(check_int("seed", seed, low=0))
    angles = 2.0 * math.pi * np.arange(modes) / modes
    centers = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    which = rng.integers(0, modes, size=n)
    samples = centers[which] + std * rng.standard_normal((n, 2))
    return samples.astype("float32"), centers.astype("float32")


class ModeCoverage(NamedTuple):
    """What :func:`mode_coverage` returns."""

    modes: int  # modes holding at least the threshold of high-quality samples
    high_quality: float  # share of samples within k * std of their nearest mode
    counts: np.ndarray  # high-quality samples per mode, shape (modes,)


def mode_coverage(samples, centers, std, *, k=3.0, min_count=1, min_fraction=None):
    """Modes covered and the share of high-quality samples (Srivastava et al. 2017).

    The convention of VEEGAN (Srivastava et al. 2017, "VEEGAN: Reducing Mode
    Collapse in GANs using Implicit Variational Learning", after Metz et al.
    2017), on 2,500 generated samples: a sample is *high quality* when it lies
    within ``k = 3`` standard deviations of its nearest mode centre, and a mode
    is covered when high-quality samples fall to it. Here a mode is covered
    when it holds at least ``min_count`` of them (default 1, as there), or at
    least ``min_fraction`` of all samples when that is given (whichever is
    larger), which guards against a stray sample counting as a mode.

    Args:
        samples: Array ``(n, d)`` of generated samples.
        centers: Array ``(modes, d)`` of mode centres.
        std: The components' standard deviation (> 0), in the samples' units.
        k: Radius of the high-quality ball, in stddevs (> 0).
        min_count: High-quality samples a mode needs to count (>= 1).
        min_fraction: Optional share in (0, 1] of all samples a mode needs.

    Returns:
        A :class:`ModeCoverage` ``(modes, high_quality, counts)``.

    Example:
        >>> x, centers = ring_of_gaussians(2500, seed=0)
        >>> cover = mode_coverage(x, centers, 0.02)
        >>> cover.modes, cover.high_quality > 0.98
        (8, True)
    """
    samples, centers = np.asarray(samples, dtype="float64"), np.asarray(centers, dtype="float64")
    if samples.ndim != 2 or samples.shape[0] == 0 or centers.ndim != 2 or centers.shape[0] == 0 \
            or samples.shape[1] != centers.shape[1]:
        raise ValueError("`samples` (n, d) and `centers` (modes, d) must be non-empty 2-D arrays of the "
                         f"same width. Received: samples shape={samples.shape}, centers shape={centers.shape}")
    if not np.all(np.isfinite(samples)):
        raise ValueError("`samples` must be finite (a diverged generator?). "
                         f"Received: {int(np.sum(~np.isfinite(samples)))} non-finite values")
    std = check_number("std", std, low=0.0, low_open=True)
    k = check_number("k", k, low=0.0, low_open=True)
    threshold = check_int("min_count", min_count, low=1)
    if min_fraction is not None:
        fraction = check_number("min_fraction", min_fraction, low=0.0, high=1.0, low_open=True)
        threshold = max(threshold, math.ceil(fraction * samples.shape[0]))
    distances = np.linalg.norm(samples[:, None, :] - centers[None, :, :], axis=-1)
    nearest = np.argmin(distances, axis=1)
    good = distances[np.arange(samples.shape[0]), nearest] <= k * std
    counts = np.bincount(nearest[good], minlength=centers.shape[0])
    return ModeCoverage(int(np.sum(counts >= threshold)), float(np.mean(good)), counts)


__all__ = ["GAN", "ModeCoverage", "mode_coverage", "ring_of_gaussians"]
