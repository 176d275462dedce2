"""Losses that tolerate noisy labels: generalized and symmetric cross-entropy.

Both read the same inputs as Keras' cross-entropies: sparse integer labels
(shape ``(n,)`` or ``(n, 1)``) or one-hot (or soft) labels ``(n, k)``
against ``k`` probabilities (or logits with ``from_logits=True``), and 0/1
labels against one sigmoid unit ``(n, 1)``, read as the two classes
``[1 - p, p]``. Everything is computed with ``keras.ops`` (on JAX, PyTorch
and TensorFlow) from the log-probabilities: ``log_softmax`` of logits, or
probabilities clipped to ``[epsilon, 1]`` (Keras' ``epsilon()``, 1e-7).

Soft labels ``y`` enter linearly, ``sum_j y_j * loss_j``, as in Keras'
cross-entropy, so label smoothing and mixup mean the same here.

Saving: both classes are registered as ``"noisewise>..."``; a model compiled
with one loads once ``noisewise.losses`` is imported.
"""

import math

import keras
from keras import ops

from noisewise._core.validation import check_number


def _log_probabilities(y_true, y_pred, from_logits):
    """``(labels, log p)``, both ``(n, k)``: one-hot (or soft) labels and the
    log-probabilities of the k classes (k = 2 for one sigmoid unit)."""
    k = y_pred.shape[-1]
    if k == 1:  # one sigmoid unit: the classes [0, 1] with probabilities [1 - p, p]
        y = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1, 1))
        labels = ops.concatenate([1.0 - y, y], axis=-1)
        if from_logits:
            z = ops.reshape(y_pred, (-1, 1))
            return labels, ops.concatenate([ops.log_sigmoid(-z), ops.log_sigmoid(z)], axis=-1)
        p = ops.reshape(y_pred, (-1, 1))
        y_pred = ops.concatenate([1.0 - p, p], axis=-1)
    elif len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == k:
        labels = ops.cast(y_true, y_pred.dtype)
    else:  # sparse class codes
        codes = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        labels = ops.one_hot(codes, k, dtype=y_pred.dtype)
    if from_logits:
        return labels, ops.log_softmax(y_pred, axis=-1)
    eps = keras.config.epsilon()
    return labels, ops.log(ops.clip(y_pred, eps, 1.0))


def _check_from_logits(value):
    if not isinstance(value, bool):
        raise ValueError("`from_logits` must be True (the model outputs logits) or False "
                         f"(probabilities). Received: from_logits={value!r}")
    return value


@keras.saving.register_keras_serializable(package="noisewise")
class GeneralizedCrossEntropy(keras.losses.Loss):
    """The generalized cross-entropy ``(1 - p_y ** q) / q`` (Zhang and Sabuncu, 2018).

    ``p_y`` is the probability the model gives the labelled class. As ``q``
    goes to 0 the loss becomes the cross-entropy ``-log p_y``; at ``q = 1``
    it is ``1 - p_y``, the mean absolute error between the one-hot label and
    the probabilities, halved, which is robust to symmetric label noise but
    slow to train. "Generalized Cross Entropy Loss for Training Deep Neural
    Networks with Noisy Labels" (NeurIPS 2018) uses ``q = 0.7``.

    Args:
        q: Exponent in (0, 1].
        from_logits: Whether the model outputs logits (True) or probabilities.
        reduction: As Keras losses (default ``"sum_over_batch_size"``).
        name: Name of the loss.
        dtype: Dtype of the computation (default Keras' ``floatx``).

    Example:
        >>> import numpy as np, noisewise.losses as nl
        >>> loss = nl.GeneralizedCrossEntropy(q=1.0)
        >>> p = np.array([[0.8, 0.2], [0.4, 0.6]])
        >>> round(float(loss(np.array([0, 1]), p)), 6)  # the mean of 1 - p_y
        0.3
    """

    def __init__(self, q=0.7, from_logits=False, reduction="sum_over_batch_size",
                 name="generalized_cross_entropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.q = check_number("q", q, low=0.0, high=1.0, low_open=True)
        self.from_logits = _check_from_logits(from_logits)

    def call(self, y_true, y_pred):
        labels, log_p = _log_probabilities(y_true, y_pred, self.from_logits)
        # p ** q as exp(q log p): stable for logits, and exact at small q.
        return ops.sum(labels * (1.0 - ops.exp(self.q * log_p)), axis=-1) / self.q

    def get_config(self):
        return {**super().get_config(), "q": self.q, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="noisewise")
class SymmetricCrossEntropy(keras.losses.Loss):
    """``alpha * CE + beta * RCE``: cross-entropy plus reverse cross-entropy (Wang et al., 2019).

    ``CE = -sum_j y_j log p_j`` is the cross-entropy and ``RCE = -sum_j p_j
    log y_j`` the reverse one, with the labels clipped to ``[exp(A), 1]`` so
    ``log 0`` is ``A``; for a one-hot label ``RCE = -A (1 - p_y)``. From
    "Symmetric Cross Entropy for Robust Learning with Noisy Labels" (ICCV
    2019), which uses ``A = -4``, ``beta = 1`` and ``alpha`` from 0.01 to 6.

    Args:
        alpha: Weight of the cross-entropy, finite and >= 0.
        beta: Weight of the reverse cross-entropy, finite and >= 0 (not both 0).
        A: The log of a zero label, finite and < 0.
        from_logits: Whether the model outputs logits (True) or probabilities.
        reduction: As Keras losses (default ``"sum_over_batch_size"``).
        name: Name of the loss.
        dtype: Dtype of the computation (default Keras' ``floatx``).

    Example:
        >>> import numpy as np, noisewise.losses as nl
        >>> loss = nl.SymmetricCrossEntropy(alpha=0.0, beta=1.0, A=-4.0)
        >>> round(float(loss(np.array([0]), np.array([[0.75, 0.25]]))), 6)  # -A (1 - p_y)
        1.0
    """

    def __init__(self, alpha=0.1, beta=1.0, A=-4.0, from_logits=False,
                 reduction="sum_over_batch_size", name="symmetric_cross_entropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = check_number("alpha", alpha, low=0.0)
        self.beta = check_number("beta", beta, low=0.0)
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("`alpha` and `beta` must not both be 0 (the loss would be 0). "
                             f"Received: alpha={alpha!r}, beta={beta!r}")
        self.A = check_number("A", A, high=0.0, high_open=True)
        self.from_logits = _check_from_logits(from_logits)

    def call(self, y_true, y_pred):
        labels, log_p = _log_probabilities(y_true, y_pred, self.from_logits)
        ce = -ops.sum(labels * log_p, axis=-1)
        log_labels = ops.log(ops.clip(labels, math.exp(self.A), 1.0))
        rce = -ops.sum(ops.exp(log_p) * log_labels, axis=-1)
        return self.alpha * ce + self.beta * rce

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta, "A": self.A,
                "from_logits": self.from_logits}


# The names a study spec uses (train.loss, arms[i].train.loss), to their classes.
LOSSES = {"generalized_cross_entropy": GeneralizedCrossEntropy,
          "symmetric_cross_entropy": SymmetricCrossEntropy}
