"""Anomaly detection with noise: a noise-contrast classifier, reconstruction error, baselines.

Three ways to score how anomalous a row is, all "higher = more anomalous":

- :class:`NoiseContrastModel` trains a classifier to tell the normal training
  rows (target 0) from the same rows with Gaussian noise added (target 1); its
  predicted probability of "noisy" is the anomaly score. Rows unlike the
  training data look, to the classifier, more like perturbed ones.
- :func:`reconstruction_scores`: an autoencoder's per-row mean squared error.
- :func:`isolation_forest_scores` and :func:`one_class_svm_scores`: the
  scikit-learn baselines, with their signs turned so that they agree.

:func:`holdout_split` builds the usual benchmark (one class held out of
training as the anomaly) and :func:`detection_metrics` scores a detector by
ROC AUC and average precision, the anomalies being the positive class.

Example:
    >>> import numpy as np
    >>> from noisewise.anomaly import detection_metrics, holdout_split, isolation_forest_scores
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(size=(90, 2)), rng.normal(6.0, 1.0, size=(10, 2))])
    >>> y = np.repeat([0, 1], [90, 10])
    >>> split = holdout_split(x, y, anomaly_class=1, test_size=0.5, seed=0)
    >>> scores = isolation_forest_scores(split.x_train, split.x_test, seed=0)
    >>> detection_metrics(scores, split.is_anomaly)["roc_auc"]
    1.0
"""

from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from noisewise._core.validation import check_choice, check_int, check_number
from noisewise._core.wrapper import ModelWrapper
from noisewise.random import layer_seed

RELATIVE = (None, "std")


def _last_activation(model):
    layer = model.layers[-1] if getattr(model, "layers", None) else None
    while isinstance(layer, keras.layers.Wrapper):  # e.g. WeightNoise around the output layer
        layer = layer.layer
    return getattr(getattr(layer, "activation", None), "__name__", None)


def _check_sigmoid_unit(model):
    try:
        shape = model.output_shape
    except (AttributeError, ValueError):
        shape = None
    activation = _last_activation(model)
    if not (isinstance(shape, tuple) and shape[-1:] == (1,) and activation == "sigmoid"):
        raise ValueError("`model` must be a built keras.Model ending in one sigmoid unit (the "
                         f"probability of 'noisy'). Received: model with output shape {shape} "
                         f"and last activation {activation!r}")


@keras.saving.register_keras_serializable(package="noisewise")
class NoiseContrastModel(ModelWrapper):
    """Train ``model`` to tell normal rows from noisy copies; score anomalies by it.

    Each training batch ``x`` becomes ``[x, x + noise]`` with targets ``[0, 1]``
    (``noise = stddev * scale * N(0, 1)``, ``scale`` 1 or the batch's
    per-feature std), and the loss is the compiled loss (binary cross-entropy
    by default) over these ``2 n`` rows, sample weights applying to both
    copies of a row. The ``2 n`` rows go through one forward pass, so batch
    normalisation sees clean and noisy rows together and cannot tell the two
    halves apart by their batch statistics. Evaluation (``evaluate``,
    validation data) computes the same loss with fresh noise, so the
    validation loss of held-out normal rows can stop training early.

    **Labels are ignored**: ``fit(x)`` (``y=None``) is the usual call; labels
    given anyway (class codes, zeros) change nothing, which lets the wrapper
    sit where a pipeline always passes ``(x, y)``. Compiled metrics see the
    clean rows of a batch against target 0 (e.g. "accuracy" is the fraction of
    normal rows scored below 0.5); to measure detection, use
    :meth:`anomaly_scores` with :func:`detection_metrics`.

    The noise comes from the wrapper's own seed generator, so a seed fixes it,
    and it is drawn inside Keras' stateless training step (JAX, torch and
    TensorFlow alike, and under ``jax.vmap``). ``predict`` returns the wrapped
    model's output.

    Args:
        model: A built single-input Keras model ending in one sigmoid unit.
        stddev: Noise standard deviation, > 0 (in data units, or in per-feature
            standard deviations when ``relative="std"``).
        relative: ``None`` (absolute) or ``"std"`` (times the batch's
            per-feature std over every axis but the last, as the noise layers do).
        seed: Seed of the noise draws (None: a random one).

    Example:
        >>> import keras, numpy as np
        >>> from noisewise.anomaly import NoiseContrastModel
        >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
        ...                         keras.layers.Dense(1, activation="sigmoid")])
        >>> detector = NoiseContrastModel(net, stddev=0.5, seed=0)
        >>> detector.compile(optimizer="adam")
        >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        >>> history = detector.fit(x, epochs=1, verbose=0)
        >>> detector.anomaly_scores(x[:3]).shape
        (3,)
    """

    def __init__(self, model, *, stddev=0.5, relative=None, seed=None, **kwargs):
        super().__init__(model, **kwargs)
        _check_sigmoid_unit(self.model)
        self.stddev = check_number("stddev", stddev, low=0.0, low_open=True)
        self.relative = check_choice("relative", relative, RELATIVE)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(layer_seed(seed), name="contrast_seed")


    def compile(self, optimizer="rmsprop", loss="binary_crossentropy", **kwargs):
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config):
        # Keras skips a custom compile on loading; replaying the saved one restores it.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def add_noise(self, x):
        """``x + stddev * scale * N(0, 1)``: one draw of the training noise (advances the seed)."""
        x = ops.convert_to_tensor(x, dtype=self.compute_dtype)
        scale = self.stddev
        if self.relative == "std":
            axes = tuple(range(len(x.shape) - 1))
            scale = scale * ops.stop_gradient(ops.std(x, axis=axes, keepdims=True))
        noise = keras.random.normal(ops.shape(x), dtype=x.dtype, seed=self.seed_generator)
        return x + ops.cast(scale, x.dtype) * noise

    def contrast_batch(self, x, sample_weight=None):
        """``([x, x + noise], targets [0, 1] of shape (2 n, 1), weights doubled or None)``."""
        x = ops.convert_to_tensor(x, dtype=self.compute_dtype)
        n = ops.shape(x)[0]
        both = ops.concatenate([x, self.add_noise(x)], axis=0)
        targets = ops.concatenate([ops.zeros((n, 1), x.dtype), ops.ones((n, 1), x.dtype)], axis=0)
        if sample_weight is not None:
            sample_weight = ops.concatenate([sample_weight, sample_weight], axis=0)
        return both, targets, sample_weight

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        del y, y_pred  # labels are ignored; the clean rows are passed again with the noisy ones
        both, targets, weights = self.contrast_batch(x, sample_weight)
        pred = self(both, training=training)
        return super().compute_loss(both, targets, pred, weights, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, ops.zeros_like(y_pred), y_pred, sample_weight)

    def anomaly_scores(self, x, batch_size=None):
        """The predicted probability of "noisy" per row, shape ``(n,)`` (float64)."""
        out = self.predict(x, batch_size=batch_size, verbose=0)
        return np.asarray(out, dtype="float64").reshape(len(out))

    def get_config(self):
        return {"name": self.name, "model": keras.saving.serialize_keras_object(self.model),
                "stddev": self.stddev, "relative": self.relative, "seed": self.seed}


def _rows(name, x, min_rows=1):
    x = np.asarray(x)
    if x.ndim < 1 or len(x) < min_rows or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"`{name}` must be a numeric array of at least {min_rows} row(s). "
                         f"Received: {name} of shape {x.shape} and dtype {x.dtype}")
    return x


def reconstruction_scores(model, x, batch_size=None):
    """Per-row mean squared reconstruction error ``mean((x - model(x)) ** 2)`` over all but the first axis.

    Args:
        model: A Keras autoencoder whose output has the shape of its input.
        x: Rows to score, an array of shape ``(n, ...)``.
        batch_size: Prediction batch size (None: Keras' default, 32).

    Returns:
        A float64 array of shape ``(n,)``; higher is more anomalous.

    Example:
        >>> import keras, numpy as np
        >>> from noisewise.anomaly import reconstruction_scores
        >>> identity = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
        >>> reconstruction_scores(identity, np.ones((2, 3))).tolist()
        [0.0, 0.0]
    """
    x = _rows("x", x)
    if batch_size is not None:
        check_int("batch_size", batch_size, low=1)
    out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype="float64")
    if out.shape != x.shape:
        raise ValueError("`model` must reconstruct its input (output shape equal to the input's). "
                         f"Received: input shape {x.shape}, output shape {out.shape}")
    err = np.square(x.astype("float64") - out)
    return err.reshape(len(x), -1).mean(axis=1)


class HoldoutSplit(NamedTuple):
    """Training rows of the normal classes; test rows of all classes, flagged."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    is_anomaly: np.ndarray


def holdout_split(x, y, anomaly_class, *, test_size, seed):
    """Split for anomaly detection with ``anomaly_class`` held out of training.

    All rows are split once, stratified by class (so the test set holds every
    class, the anomaly at its natural share); then the anomaly rows are dropped
    from the training part, which is left unused. Any class may be the anomaly:
    one digit against the nine others, or breast-cancer's malignant tumours,
    which scikit-learn's ``load_breast_cancer`` codes as class 0.

    Args:
        x: Rows, an array of shape ``(n, ...)``.
        y: Integer or string class labels, shape ``(n,)``.
        anomaly_class: The label of the anomaly class; must occur in ``y``.
        test_size: Test fraction in (0, 1), or a number of test rows >= 1.
        seed: Seed of the split, an integer >= 0.

    Returns:
        A :class:`HoldoutSplit` ``(x_train, y_train, x_test, y_test, is_anomaly)``;
        ``is_anomaly`` is a bool array over the test rows.

    Example:
        >>> import numpy as np
        >>> from noisewise.anomaly import holdout_split
        >>> s = holdout_split(np.arange(40.0)[:, None], np.arange(40) % 4, 3, test_size=0.2, seed=0)
        >>> sorted(set(s.y_train.tolist())), len(s.y_train), int(s.is_anomaly.sum()), len(s.y_test)
        ([0, 1, 2], 24, 2, 8)
    """
    from sklearn.model_selection import train_test_split  # scikit-learn loads on use only

    x = _rows("x", x, min_rows=2)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"`y` must be a 1-D array of labels, one per row of x ({len(x)}). "
                         f"Received: y of shape {y.shape}")
    classes = np.unique(y)
    if anomaly_class not in set(classes.tolist()):
        raise ValueError(f"`anomaly_class` must be one of the labels in y ({classes.tolist()}). "
                         f"Received: anomaly_class={anomaly_class!r}")
    if len(classes) < 2:
        raise ValueError("`y` must hold at least one normal class besides the anomaly. "
                         f"Received: y with the single label {anomaly_class!r}")
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        test_size = check_int("test_size", int(test_size), low=1, high=len(x) - 1)
    else:
        test_size = check_number("test_size", test_size, low=0.0, high=1.0, low_open=True,
                                 high_open=True)
    check_int("seed", seed, low=0)
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=test_size, random_state=seed, stratify=y)
    except ValueError as err:  # too few rows of a class to put one on each side
        raise ValueError(f"Could not split stratified with test_size={test_size!r}: {err}") from None
    keep = y_train != anomaly_class
    return HoldoutSplit(x_train[keep], y_train[keep], x_test, y_test, y_test == anomaly_class)


def _flat(name, x):
    x = _rows(name, x)
    return x.reshape(len(x), -1)


def isolation_forest_scores(x_train, x_test, seed, **kwargs):
    """Isolation-forest anomaly scores of ``x_test`` after fitting on ``x_train``.

    The score is ``-IsolationForest.score_samples``: the paper's ``s(x, n)`` in
    (0, 1], near 1 for rows isolated in few splits (anomalies), below 0.5 for
    normal ones. Rows of any shape are flattened.

    Args:
        x_train: Normal training rows.
        x_test: Rows to score.
        seed: The forest's ``random_state``, an integer >= 0.
        **kwargs: Other ``sklearn.ensemble.IsolationForest`` arguments.

    Returns:
        A float64 array of shape ``(len(x_test),)``; higher is more anomalous.
    """
    from sklearn.ensemble import IsolationForest  # scikit-learn loads on use only

    check_int("seed", seed, low=0)
    if "random_state" in kwargs:
        raise ValueError("`random_state` is set by `seed`; pass seed only. "
                         f"Received: random_state={kwargs['random_state']!r}")
    forest = IsolationForest(random_state=seed, **kwargs).fit(_flat("x_train", x_train))
    return -np.asarray(forest.score_samples(_flat("x_test", x_test)), dtype="float64")


def one_class_svm_scores(x_train, x_test, **kwargs):
    """One-class SVM anomaly scores of ``x_test`` after fitting on ``x_train``.

    The score is ``-OneClassSVM.decision_function``: positive outside the
    learned support (predicted outliers), negative inside. The RBF kernel's
    default ``gamma="scale"`` adapts to the data's overall variance, but
    features on very different scales should be standardised first. Rows of
    any shape are flattened; the fit is deterministic (no seed).

    Args:
        x_train: Normal training rows.
        x_test: Rows to score.
        **kwargs: ``sklearn.svm.OneClassSVM`` arguments (``nu``, ``gamma``, ``kernel``...).

    Returns:
        A float64 array of shape ``(len(x_test),)``; higher is more anomalous.
    """
    from sklearn.svm import OneClassSVM  # scikit-learn loads on use only

    svm = OneClassSVM(**kwargs).fit(_flat("x_train", x_train))
    return -np.asarray(svm.decision_function(_flat("x_test", x_test)), dtype="float64")


def detection_metrics(scores, is_anomaly):
    """ROC AUC and average precision of anomaly ``scores``, the anomalies being positive.

    Args:
        scores: One score per row, higher meaning more anomalous.
        is_anomaly: One flag per row (bool, or 0/1); at least one of each kind.

    Returns:
        ``{"roc_auc": float, "average_precision": float}`` (scikit-learn's
        ``roc_auc_score`` and ``average_precision_score``). A random score has
        ROC AUC 0.5 and average precision about the anomaly share.

    Example:
        >>> from noisewise.anomaly import detection_metrics
        >>> detection_metrics([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
        {'roc_auc': 0.75, 'average_precision': 0.8333333333333333}
    """
    from sklearn.metrics import average_precision_score, roc_auc_score  # loads on use only

    scores = np.asarray(scores)
    flags = np.asarray(is_anomaly)
    if scores.ndim != 1 or not np.issubdtype(scores.dtype, np.number) or not np.isfinite(scores).all():
        raise ValueError("`scores` must be a 1-D array of finite numbers. "
                         f"Received: scores of shape {scores.shape} and dtype {scores.dtype}")
    if flags.shape != scores.shape:
        raise ValueError(f"`is_anomaly` must have one flag per score ({len(scores)}). "
                         f"Received: is_anomaly of shape {flags.shape}")
    if flags.dtype != bool:
        if not np.issubdtype(flags.dtype, np.number) or not np.isin(flags, (0, 1)).all():
            raise ValueError("`is_anomaly` must hold booleans or 0/1. "
                             f"Received: values {np.unique(flags)[:5].tolist()}")
        flags = flags.astype(bool)
    anomalies = int(flags.sum())
    if anomalies == 0 or anomalies == len(flags):
        raise ValueError("`is_anomaly` must hold at least one anomaly and one normal row. "
                         f"Received: {anomalies} anomalies among {len(flags)} rows")
    return {"roc_auc": float(roc_auc_score(flags, scores)),
            "average_precision": float(average_precision_score(flags, scores))}
