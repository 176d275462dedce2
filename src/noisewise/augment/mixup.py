"""Mixup training as a model wrapper, for inputs of any shape and sparse labels.

Keras' ``MixUp`` layer mixes an image batch and its one-hot labels together,
so it sits in a data pipeline, never at a model's input, and it needs one-hot
labels. :class:`MixupModel` mixes inside the training step instead (Zhang et
al. 2018, "mixup: Beyond Empirical Risk Minimization"): each training batch
is replaced by ``lam * x + (1 - lam) * x[perm]`` with ``lam ~ Beta(alpha,
alpha)`` drawn per batch and ``perm`` a random permutation of the batch, and
the loss is ``lam * loss(y, f(mixed)) + (1 - lam) * loss(y[perm], f(mixed))``.
That equals the loss on mixed one-hot labels for every loss linear in its
labels (the cross-entropies, :class:`noisewise.losses.GeneralizedCrossEntropy`
with soft labels), and works with the integer labels a study trains on.

The draws come from the wrapper's own seed generator, so a seed fixes them,
and they run inside Keras' stateless training step, so the vectorised
executor trains mixup arms too. Training metrics are those of the unmixed
batch; evaluation and inference see the wrapped model alone.

Example:
    >>> import keras, numpy as np
    >>> from noisewise.augment.mixup import MixupModel
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    >>> mix = MixupModel(net, alpha=0.2, seed=0)
    >>> mix.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    >>> history = mix.fit(x, np.arange(32) % 3, epochs=1, verbose=0)
    >>> mix.predict(x[:2], verbose=0).shape
    (2, 3)
"""

import keras
from keras import ops

from noisewise._core.validation import check_number
from noisewise._core.wrapper import ModelWrapper
from noisewise.random import layer_seed


@keras.saving.register_keras_serializable(package="noisewise")
class MixupModel(ModelWrapper):
    """Train ``model`` on mixup batches (see the module docstring).

    Args:
        model: A built single-input, single-output Keras model.
        alpha: The Beta distribution's parameter, > 0 (Zhang et al. used 0.1
            to 0.4 on ImageNet; small values mix little, 1 mixes uniformly).
        seed: Seed of the mixing draws (None: a random one).
    """

    def __init__(self, model, *, alpha=0.2, seed=None, **kwargs):
        super().__init__(model, **kwargs)
        self.alpha = check_number("alpha", alpha, low=0.0, low_open=True)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(layer_seed(seed), name="mixup_seed")


    def mix(self, x):
        """``(mixed x, lam, perm)`` for one batch: the draws of a training step."""
        n = ops.shape(x)[0]
        lam = keras.random.beta((), self.alpha, self.alpha, seed=self.seed_generator)
        perm = ops.argsort(keras.random.uniform((n,), seed=self.seed_generator))
        lam_x = ops.cast(lam, x.dtype)
        return lam_x * x + (1.0 - lam_x) * ops.take(x, perm, axis=0), lam, perm

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not training or x is None or y is None:
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        mixed, lam, perm = self.mix(ops.convert_to_tensor(x))
        pred = self(mixed, training=True)
        other = None if sample_weight is None else ops.take(sample_weight, perm, axis=0)
        first = super().compute_loss(x, y, pred, sample_weight, training=training)
        second = super().compute_loss(x, ops.take(y, perm, axis=0), pred, other,
                                      training=training)
        lam = ops.cast(lam, first.dtype)
        return lam * first + (1.0 - lam) * second

    def get_config(self):
        return {"name": self.name, "model": keras.saving.serialize_keras_object(self.model),
                "alpha": self.alpha, "seed": self.seed}
