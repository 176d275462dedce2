"""Adversarial training with ``fit``: a model wrapper whose train step attacks each batch.

:class:`AdversarialModel` wraps a built Keras classifier. Its ``train_step``
replaces a fraction ``ratio`` of each batch by FGSM or PGD examples crafted
against the current weights, optionally adds Gaussian noise to the batch, and
then runs Keras' own train step on the result, so ``compile``, ``fit``,
callbacks, metrics and validation all work as usual on JAX, PyTorch and
TensorFlow (training metrics are those of the perturbed batch; validation and
``evaluate`` see clean data). The wrapped model shares its variables: after ``fit`` it holds the
trained weights and can be saved or evaluated on its own.

Why a wrapper rather than a callback or a data generator: the attack needs the
weights of the step being taken, which only the train step sees (on JAX they
exist only as traced values inside the jitted step).

References:
    Goodfellow, Shlens and Szegedy (2015), "Explaining and Harnessing
    Adversarial Examples" (training on a clean/adversarial mix). Madry et al.
    (2018), "Towards Deep Learning Models Resistant to Adversarial Attacks"
    (PGD training).
"""

import functools
from collections.abc import Mapping

import keras
from keras import ops

from noisewise._core.validation import check_choice, check_int, check_non_negative, check_number, check_range
from noisewise._core.wrapper import ModelWrapper
from noisewise.random import layer_seed
from noisewise.robust import _model, attacks

ATTACKS = ("fgsm", "pgd", None)
_BACKEND = keras.backend.backend()


def _int_labels(y, spec):
    if len(y.shape) == 2 and spec.kind == "categorical" and y.shape[-1] == spec.classes:
        return ops.argmax(y, axis=-1)
    if len(y.shape) == 2:
        return ops.reshape(y, (-1,))
    return y


@keras.saving.register_keras_serializable(package="noisewise")
class AdversarialModel(ModelWrapper):
    """Train ``model`` on adversarial (and optionally noisy) examples with ``fit``.

    Args:
        model: A built single-input Keras classifier (logits or probabilities, as for
            :func:`noisewise.robust.fgsm`).
        attack: "pgd" (default), "fgsm", or None for no attack (then only
            ``noise_stddev`` acts: Gaussian data augmentation).
        eps: Attack budget, >= 0, in the data's units.
        norm: "linf" or "l2".
        steps: PGD steps (ignored by FGSM).
        step_size: PGD step; defaults to ``2.5 * eps / steps``.
        random_start: Start PGD from a random point of the ball.
        ratio: Fraction in [0, 1] of each batch replaced by its adversarial
            version (the first ``round(ratio * batch)`` examples; ``fit``
            shuffles, so which examples varies). 1 is Madry et al.'s training;
            0.5 mixes clean and adversarial examples as Goodfellow et al. did.
        noise_stddev: If > 0, Gaussian noise of this standard deviation is
            added to the whole training batch after the attack (not clipped,
            matching the noise model of randomized smoothing).
        clip: Optional ``(low, high)`` data range for the attack.
        from_logits: None to detect from the output activation, or True/False.
        seed: Optional non-negative integer for the random start and noise.

    Example:
        >>> import keras, numpy as np
        >>> from noisewise.robust import AdversarialModel
        >>> net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
        >>> adv = AdversarialModel(net, attack="fgsm", eps=0.1, ratio=0.5, seed=0)
        >>> adv.compile(optimizer="adam",
        ...             loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        >>> x, y = np.random.default_rng(0).normal(size=(32, 2)), np.arange(32) % 3
        >>> history = adv.fit(x, y, epochs=1, verbose=0)
        >>> net.predict(x, verbose=0).shape   # `net` now holds the trained weights
        (32, 3)
    """

    def __init__(self, model, *, attack="pgd", eps=0.1, norm="linf", steps=7, step_size=None,
                 random_start=True, ratio=1.0, noise_stddev=0.0, clip=None, from_logits=None,
                 seed=None, **kwargs):
        super().__init__(model, **kwargs)
        self.attack = check_choice("attack", attack, ATTACKS)
        self.eps = check_non_negative("eps", eps)
        self.norm = attacks.check_norm(norm)
        self.steps = 1 if attack == "fgsm" else check_int("steps", steps, low=1)
        if step_size is not None:
            step_size = check_number("step_size", step_size, low=0.0, low_open=True)
        self.step_size = step_size
        self.random_start = bool(random_start)
        self.ratio = check_number("ratio", ratio, low=0.0, high=1.0)
        self.noise_stddev = check_non_negative("noise_stddev", noise_stddev)
        self.clip = check_range("clip", clip)
        self.from_logits = from_logits
        self.seed = seed
        self.spec = _model.inspect_output(self.model, from_logits)
        self.seed_generator = keras.random.SeedGenerator(layer_seed(seed))

    def _start(self, x):
        if self.attack != "pgd" or not self.random_start:
            return None
        shape = ops.shape(x)
        if self.norm == "linf":
            return keras.random.uniform(shape, -self.eps, self.eps, dtype=x.dtype, seed=self.seed_generator)
        d = 1
        for s in x.shape[1:]:
            d *= s
        g = keras.random.normal(shape, dtype=x.dtype, seed=self.seed_generator)
        u = keras.random.uniform(shape[:1], dtype=x.dtype, seed=self.seed_generator)
        radius = self.eps * ops.power(u, 1.0 / d)
        return g / ops.maximum(attacks.l2_norm(g), 1e-12) * attacks.per_example(radius, x)

    def perturb_batch(self, x, y, state=None):
        """The training inputs for one batch: adversarial part, clean part, then noise."""
        if not keras.backend.is_float_dtype(keras.backend.standardize_dtype(x.dtype)):
            x = ops.cast(x, self.compute_dtype)
        if self.attack is not None and self.ratio > 0 and self.eps > 0:
            n = ops.shape(x)[0]
            k = n if self.ratio == 1.0 else (
                int(round(self.ratio * n)) if isinstance(n, int)
                else ops.cast(ops.round(self.ratio * ops.cast(n, "float32")), "int32"))
            xa, ya = x[:k], _int_labels(y, self.spec)[:k]
            step = self.eps if self.attack == "fgsm" else (self.step_size or 2.5 * self.eps / self.steps)
            loss_fn = functools.partial(_model.per_example_loss, self.spec)
            xa = attacks.perturb(self, xa, ya, loss_fn, eps=self.eps, norm=self.norm,
                                 steps=self.steps, step_size=step, delta=self._start(xa),
                                 clip=self.clip, state=state)
            x = ops.concatenate([ops.stop_gradient(xa), x[k:]], axis=0)
        if self.noise_stddev > 0:
            z = keras.random.normal(ops.shape(x), dtype=x.dtype, seed=self.seed_generator)
            x = x + self.noise_stddev * z
        return x

    if _BACKEND == "jax":

        def train_step(self, state, data):
            trainable, non_trainable, optimizer_vars, metrics_vars = state
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            # The step's weights and seed state are traced values: map them in,
            # and carry the advanced seed state out, or every step would reuse
            # the first step's random numbers.
            mapping = list(zip(self.trainable_variables, trainable))
            mapping += list(zip(self.non_trainable_variables, non_trainable))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                x = self.perturb_batch(x, y, state=(trainable, non_trainable))
            non_trainable = [scope.get_current_value(v) for v in self.non_trainable_variables]
            state = (trainable, non_trainable, optimizer_vars, metrics_vars)
            return super().train_step(state, (x, y, sample_weight))

    else:

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            return super().train_step((self.perturb_batch(x, y), y, sample_weight))

    def get_config(self):
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.model),
            "attack": self.attack, "eps": self.eps, "norm": self.norm, "steps": self.steps,
            "step_size": self.step_size, "random_start": self.random_start, "ratio": self.ratio,
            "noise_stddev": self.noise_stddev, "clip": None if self.clip is None else list(self.clip),
            "from_logits": self.from_logits, "seed": self.seed,
        }


# The arguments a study arm's ``{type = "adversarial", ...}`` entry may set.
STUDY_KEYS = ("attack", "eps", "norm", "steps", "step_size", "random_start", "ratio",
              "noise_stddev", "clip", "from_logits")


def adversarial_model(model: keras.Model, config: Mapping, seed: int | None = None) -> AdversarialModel:
    """Wrap ``model`` for adversarial training from a study arm's config dict.

    Args:
        model: The arm's built (uncompiled) Keras classifier.
        config: Keys among ``attack, eps, norm, steps, step_size, random_start,
            ratio, noise_stddev, clip, from_logits`` (see :class:`AdversarialModel`).
        seed: The run's seed (the attack's random start and noise derive from it).

    Returns:
        An :class:`AdversarialModel`; compile and fit it as the model itself.
        The original ``model`` holds the trained weights afterwards.
    """
    unknown = sorted(set(config) - set(STUDY_KEYS))
    if unknown:
        raise ValueError(
            f"Unknown adversarial training key {unknown[0]!r}; allowed: {', '.join(STUDY_KEYS)}. "
            f"Received: {unknown[0]}={config[unknown[0]]!r}"
        )
    return AdversarialModel(model, seed=seed, **config)
