"""Consistency regularisation with ``fit``: the Pi-model of Laine and Aila (2017).

:class:`PiModel` wraps a Keras classifier holding some source of training
noise (noisewise noise layers, Keras dropout, or an ``augment`` layer given to
the wrapper). Each training batch mixes labeled and unlabeled rows; a row is
**unlabeled when its label is negative** (``-1`` for integer class codes, a
first entry below 0 for one-hot rows). The loss of a batch of ``B`` rows is

    (1 / B) * sum over its labeled rows of the compiled loss on pass 1
    + w(t) * mean over all rows and C classes of (p1 - p2) ** 2

where ``p1`` and ``p2`` are the class probabilities of two stochastic passes
over the same batch (independent noise draws; gradients flow through both) and
``w(t) = weight * exp(-5 * (1 - T) ** 2)``, ``T = min(t / rampup_epochs, 1)``
at epoch ``t`` (from 0; at ``t = 0`` the factor is e^-5, about 0.0067). The
supervised term divides by the whole batch, as the paper's Algorithm 1 does
(Keras' ``sum_over_batch_size`` with zero weights on unlabeled rows), so a
batch without labels contributes only consistency.
Training metrics count labeled rows only (``compile`` passes its ``metrics``
on as ``weighted_metrics``, which Keras weighs by the sample weights);
``evaluate`` and validation see the supervised loss alone.

``fit`` sets ``w(t)`` at the start of every epoch (a callback it adds); in a
loop of your own, call :meth:`PiModel.set_epoch`. The current value is the
non-trainable variable ``consistency_weight``, so changing it never recompiles.
With ``weight = 0`` the second pass is skipped and training is that of the
wrapped model, step for step.

Reference:
    Laine and Aila (2017), "Temporal Ensembling for Semi-Supervised
    Learning", ICLR (the Pi-model, Section 2.1 and Algorithm 1; the ramp-up
    curve exp(-5 (1 - T)^2) of its Appendix A).
"""

import math

import keras
from keras import ops

from noisewise._core.validation import check_int, check_number
from noisewise._core.wrapper import ModelWrapper

_PROBABILITIES = {"softmax": False, "sigmoid": False, "linear": True}


def rampup(epoch: float, rampup_epochs: int) -> float:
    """The Gaussian ramp-up factor ``exp(-5 * (1 - T) ** 2)``, ``T = min(epoch / rampup_epochs, 1)``.

    Args:
        epoch: The epoch (from 0), >= 0.
        rampup_epochs: Epochs to reach 1, >= 0 (0: always 1).

    Example:
        >>> from noisewise.consistency import rampup
        >>> round(rampup(0, 10), 6), round(rampup(5, 10), 6), rampup(10, 10)
        (0.006738, 0.286505, 1.0)
    """
    epoch = check_number("epoch", epoch, low=0.0)
    rampup_epochs = check_int("rampup_epochs", rampup_epochs, low=0)
    if rampup_epochs == 0:
        return 1.0
    t = min(epoch / rampup_epochs, 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def _from_logits(model, from_logits):
    if from_logits not in (None, True, False):
        raise ValueError("`from_logits` must be None (detect from the output activation), "
                         f"True or False. Received: from_logits={from_logits!r}")
    layer = model.layers[-1] if getattr(model, "layers", None) else None
    while isinstance(layer, keras.layers.Wrapper):  # e.g. WeightNoise around the output layer
        layer = layer.layer
    activation = "softmax" if isinstance(layer, keras.layers.Softmax) else getattr(
        getattr(layer, "activation", None), "__name__", None)
    if from_logits is None:
        if activation not in _PROBABILITIES:
            raise ValueError("Could not tell whether `model` outputs logits or probabilities "
                             f"(last activation {activation!r}); pass from_logits=True or "
                             "False. Received: from_logits=None")
        return _PROBABILITIES[activation]
    return from_logits


class _RampUp(keras.callbacks.Callback):
    def __init__(self, pi):
        super().__init__()
        self.pi = pi  # not `model`: fit sets that attribute itself

    def on_epoch_begin(self, epoch, logs=None):
        self.pi.set_epoch(epoch)


@keras.saving.register_keras_serializable(package="noisewise")
class PiModel(ModelWrapper):
    """Train ``model`` with the Pi-model's consistency loss, labeled and unlabeled rows together.

    Args:
        model: A built single-output Keras classifier (softmax or sigmoid
            probabilities, or logits) that is stochastic in training mode.
        weight: The largest consistency weight ``w_max``, >= 0 (the paper
            scaled its own by the labeled fraction of the training rows).
        rampup_epochs: Epochs of the Gaussian ramp-up, >= 0 (0: ``weight``
            from the first epoch; the paper used 80).
        augment: Optional Keras layer applied to the inputs of every training
            pass (a random layer draws anew on each pass; inactive in inference).
        from_logits: None to detect from the output activation, or True/False.

    Example:
        >>> import keras, numpy as np
        >>> from noisewise.consistency import PiModel
        >>> net = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.2, seed=0),
        ...                         keras.layers.Dense(3, activation="softmax")])
        >>> pi = PiModel(net, weight=10.0, rampup_epochs=5)
        >>> pi.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        >>> x = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")
        >>> y = np.where(np.arange(32) < 8, np.arange(32) % 3, -1)   # 8 labeled rows
        >>> history = pi.fit(x, y, epochs=2, verbose=0)
        >>> round(float(pi.consistency_weight.numpy()), 4)     # w(1) = 10 exp(-5 (4/5)^2)
        0.4076
    """

    def __init__(self, model, *, weight=1.0, rampup_epochs=0, augment=None, from_logits=None,
                 **kwargs):
        super().__init__(model, **kwargs)
        model = self.model
        if isinstance(augment, dict):
            augment = keras.saving.deserialize_keras_object(augment)
        if augment is not None and not isinstance(augment, keras.layers.Layer):
            raise ValueError("`augment` must be None or a Keras layer (so its random state "
                             f"is part of the training state). Received: augment={augment!r}")
        self.weight = check_number("weight", weight, low=0.0)
        self.rampup_epochs = check_int("rampup_epochs", rampup_epochs, low=0)
        self.augment = augment
        self.from_logits = _from_logits(model, from_logits)
        self._given_from_logits = from_logits
        self.consistency_weight = keras.Variable(
            self.weight_at(0), trainable=False, dtype="float32", name="consistency_weight")

    def weight_at(self, epoch: float) -> float:
        """``w(epoch)``: ``weight`` times the ramp-up factor (:func:`rampup`)."""
        return self.weight * rampup(epoch, self.rampup_epochs)

    def set_epoch(self, epoch: float) -> None:
        """Set the consistency weight to ``w(epoch)`` (``fit`` does it every epoch)."""
        self.consistency_weight.assign(self.weight_at(epoch))

    def passes_differ(self, x) -> bool:
        """Whether two training-mode passes over ``x`` differ: without that, the
        consistency term is 0 and the wrapper trains as the plain model would.

        The non-trainable state (noise seeds, batch-norm statistics) is put back
        afterwards, so checking changes nothing of what training will draw.
        """
        saved = [ops.convert_to_numpy(v.value) for v in self.non_trainable_variables]
        try:
            first = ops.convert_to_numpy(self(x, training=True))
            second = ops.convert_to_numpy(self(x, training=True))
        finally:
            for variable, value in zip(self.non_trainable_variables, saved):
                variable.assign(value)
        return bool((first != second).any())

    def call(self, inputs, training=None):
        if training and self.augment is not None:
            inputs = self.augment(inputs, training=True)
        return self.model(inputs, training=training)

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, **kwargs):
        # Keras applies sample weights to `weighted_metrics` only: moved there,
        # the metrics count labeled rows alone (unlabeled rows weigh 0).
        if isinstance(metrics, (list, tuple)):
            metrics, weighted_metrics = None, [*metrics, *(weighted_metrics or [])]
        super().compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights,
                        metrics=metrics, weighted_metrics=weighted_metrics, **kwargs)

    def compile_from_config(self, config):
        # Keras skips a custom compile on loading; the saved config is the one
        # this compile passed on (metrics already moved), so replaying it is exact.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, *args, **kwargs):
        if len(args) > 5:  # callbacks given by position (x, y, batch_size, epochs, verbose, ...)
            args = (*args[:5], self._with_rampup(args[5]), *args[6:])
        else:
            kwargs["callbacks"] = self._with_rampup(kwargs.get("callbacks"))
        return super().fit(*args, **kwargs)

    def _with_rampup(self, callbacks):
        ramp = _RampUp(self)
        if isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks.append(ramp)
            return callbacks
        return [ramp, *(callbacks or [])]

    def _labeled(self, y, sample_weight):
        """``(y with unlabeled rows set to class 0, per-row weights 0 on unlabeled rows)``."""
        first = y[:, 0] if len(y.shape) == 2 and y.shape[-1] > 1 else ops.reshape(y, (-1,))
        mask = ops.cast(first >= 0, "float32")
        y = ops.where(y >= 0, y, ops.zeros_like(y))
        if sample_weight is not None:
            mask = mask * ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
        return y, mask

    def probabilities(self, outputs):
        """Class probabilities ``(n, C)`` of the model's outputs (``[1 - p, p]`` for one unit)."""
        if outputs.shape[-1] == 1:
            p = ops.sigmoid(outputs) if self.from_logits else outputs
            return ops.concatenate([1.0 - p, p], axis=-1)
        return ops.softmax(outputs, axis=-1) if self.from_logits else outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        y, mask = self._labeled(y, sample_weight)
        loss = super().compute_loss(x, y, y_pred, mask, training=training)
        if training and self.weight > 0:
            # The second stochastic pass: on JAX this runs inside Keras'
            # stateless scope, so it reads (and advances) the seed state the
            # first pass left, drawing independent noise.
            second = self(x, training=True)
            diff = self.probabilities(y_pred) - self.probabilities(second)
            consistency = ops.mean(ops.square(ops.cast(diff, "float32")))
            loss = loss + ops.cast(self.consistency_weight * consistency, loss.dtype)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        y, mask = self._labeled(y, sample_weight)
        return super().compute_metrics(x, y, y_pred, mask)

    def get_config(self):
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.model),
            "weight": self.weight, "rampup_epochs": self.rampup_epochs,
            "augment": None if self.augment is None else
            keras.saving.serialize_keras_object(self.augment),
            "from_logits": self._given_from_logits,
        }


# The arguments a study arm's ``{type = "consistency", ...}`` entry may set.
STUDY_KEYS = ("weight", "rampup_epochs", "from_logits")


def pi_model(model: keras.Model, config: dict) -> PiModel:
    """Wrap ``model`` in a :class:`PiModel` from a study arm's config dict.

    Args:
        model: The arm's built (uncompiled) classifier, with its noise layers.
        config: Keys among ``weight, rampup_epochs, from_logits``.

    Returns:
        A :class:`PiModel`; ``model`` holds the trained weights afterwards.
    """
    unknown = sorted(set(config) - set(STUDY_KEYS))
    if unknown:
        raise ValueError(f"Unknown consistency key {unknown[0]!r}; allowed: "
                         f"{', '.join(STUDY_KEYS)}. Received: {unknown[0]}={config[unknown[0]]!r}")
    return PiModel(model, **config)
