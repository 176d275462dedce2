"""A run's model, compiled with its optimizer: the exact initial state every executor starts from.

Both executors start a run from :func:`prepare_model` (the vectorised one
stacks the states of such models), so they train the same models, with the
same loss (label smoothing, ``from_logits``, the regression loss), optimizer
(weight decay, learning-rate schedule) and per-class sample weights.
"""

import inspect
import json

import keras
import numpy as np

from noisewise import losses
from noisewise.layers.schedules import Adaptive
from noisewise.optimizers import GradientNoise
from noisewise.study.config.sections import NOISEWISE_LOSSES, schedule_classes
from noisewise.study.execute.types import RunPlan
from noisewise.study.models import adaptive_entries, build_model, noise_seed
from noisewise.study.stats import is_higher_better


def train_of(plan: RunPlan) -> dict:
    """The ``[train]`` table a run trains with: the study's, with its arm's overrides."""
    return {**plan.train, **(getattr(plan.arm, "train", None) or {})}


def learning_rate(train: dict):
    """``train.learning_rate``, or the Keras schedule of ``train.lr_schedule`` starting from it."""
    entry = train.get("lr_schedule")
    if entry is None:
        return train["learning_rate"]
    cls = schedule_classes()[entry["type"]]
    args = {k: v for k, v in entry.items() if k != "type"}
    if "initial_learning_rate" in inspect.signature(cls.__init__).parameters:
        args["initial_learning_rate"] = train["learning_rate"]
    return cls(**args)


def make_optimizer(train: dict, noise: list, seed: int, arm: str) -> keras.optimizers.Optimizer:
    """The optimizer of ``[train]`` (its weight decay and learning-rate schedule),
    wrapped in GradientNoise when the arm asks for it."""
    config = {"learning_rate": learning_rate(train), **train["optimizer_options"]}
    if train.get("weight_decay"):
        config["weight_decay"] = train["weight_decay"]
    optimizer = keras.optimizers.get({"class_name": train["optimizer"], "config": config})
    for i, entry in enumerate(noise):
        if entry["type"] == "gradient":
            args = {k: v for k, v in entry.items() if k != "type"}
            optimizer = GradientNoise(optimizer, seed=noise_seed(seed, arm, i), **args)
    return optimizer


def adaptive_rules(plan: RunPlan) -> list[tuple[str, Adaptive]]:
    """``(key, schedule)`` of each adaptive entry of the run's arm (``noise0``, ...,
    ``augment``); the direction of the signal is the statistics' own
    (:func:`~noisewise.study.stats.is_higher_better`). Both executors update the
    levels with these, and record them in the history as ``level_{key}``."""
    return [(key, Adaptive(adapt["signal"], adapt["target"], adapt["gain"], adapt["bounds"],
                           mode="max" if is_higher_better(adapt["signal"]) else "min"))
            for key, adapt in adaptive_entries(plan.arm.noise)]


def default_loss(model: keras.Model, task: str = "classification") -> str:
    """Mean squared error for regression; binary cross-entropy for one (sigmoid)
    output unit, else sparse categorical."""
    if task == "regression":
        return "mean_squared_error"
    units = model.output_shape[-1]
    return "binary_crossentropy" if units == 1 else "sparse_categorical_crossentropy"


class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing, which Keras offers
    for one-hot labels only: the labels become one-hot inside the loss.

    Args:
        label_smoothing: Weight moved from the true class to a uniform share
            over all k classes (Szegedy et al., 2016).
        from_logits: Whether the model outputs logits.
    """

    def __init__(self, label_smoothing=0.0, from_logits=False,
                 name="sparse_categorical_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing, self.from_logits = label_smoothing, from_logits

    def call(self, y_true, y_pred):
        codes = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        one_hot = keras.ops.one_hot(codes, keras.ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=self.from_logits, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "from_logits": self.from_logits}


_PROBABILITY_LOSSES = ("binary_crossentropy", "sparse_categorical_crossentropy")


def is_probability_loss(train: dict) -> bool:
    """Whether ``train``'s loss reads its inputs as probabilities (or logits with
    ``from_logits``): the cross-entropies, ``auto`` included."""
    return train["loss"] == "auto" or "crossentropy" in train["loss"] or \
        train["loss"] in NOISEWISE_LOSSES


def make_loss(train: dict, model: keras.Model, task: str = "classification"):
    """The loss of ``[train]`` for ``model``: a name, or a Keras loss object when
    ``from_logits`` or ``label_smoothing`` is set, or a :mod:`noisewise.losses`
    object (``generalized_cross_entropy``, ``symmetric_cross_entropy``).

    Raises:
        ValueError: An option the loss cannot honour (``label_smoothing`` on a
            regression, ``from_logits`` with a loss that is no cross-entropy).
    """
    name = default_loss(model, task) if train["loss"] == "auto" else train["loss"]
    smoothing, logits = train.get("label_smoothing") or 0.0, bool(train.get("from_logits"))
    if name in NOISEWISE_LOSSES:
        return _noisewise_loss(name, train, task, smoothing, logits)
    if not smoothing and not logits:
        return name
    if task == "regression":
        raise ValueError("train.label_smoothing and train.from_logits apply to classifiers; "
                         "the data's task is regression")
    if name not in _PROBABILITY_LOSSES:
        raise ValueError(f"train.from_logits and train.label_smoothing apply to the losses "
                         f"{', '.join(_PROBABILITY_LOSSES)} (or 'auto'). Received: loss={name!r}")
    if name == "binary_crossentropy":
        return keras.losses.BinaryCrossentropy(from_logits=logits, label_smoothing=smoothing)
    if not smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
    return SmoothedSparseCrossentropy(label_smoothing=smoothing, from_logits=logits)


def _noisewise_loss(name, train, task, smoothing, logits):
    """A loss of :mod:`noisewise.losses` with ``train.loss_options`` (defaults filled)."""
    if task == "regression":
        raise ValueError(f"train.loss: {name!r} is a classification loss; the data's task "
                         "is regression")
    if smoothing:
        raise ValueError(f"train.label_smoothing applies to the cross-entropies, not to "
                         f"{name!r}; give the arm one or the other")
    return losses.LOSSES[name](from_logits=logits, **(train.get("loss_options") or {}))


def make_metrics(train: dict, model: keras.Model) -> list:
    """``train.metrics``; on one logit output unit (``from_logits``), accuracy
    thresholds at 0 and AUC reads logits, under the same names.

    Raises:
        ValueError: A metric that would read logits as probabilities.
    """
    metrics = list(train["metrics"])
    if not train.get("from_logits") or model.output_shape[-1] != 1:
        return metrics  # k logits: accuracy takes the argmax, which logits keep
    out = []
    for name in metrics:
        if name in ("accuracy", "binary_accuracy", "acc"):
            out.append(keras.metrics.BinaryAccuracy(threshold=0.0, name=name))
        elif name == "auc":
            out.append(keras.metrics.AUC(from_logits=True, name=name))
        else:
            raise ValueError(f"train.metrics: {name!r} would read the logits of a one-unit "
                             "output as probabilities; with train.from_logits = true use "
                             "'accuracy' or 'auc'")
    return out


def class_weights(train: dict, data) -> np.ndarray | None:
    """Per-class training weights (float32, one per class code) of
    ``train.class_weight``, or None.

    ``"balanced"``: ``n / (k * n_c)`` over the training split (after the
    validation split is taken out), as scikit-learn's ``compute_class_weight``.
    A table maps class labels, as written in the data (``"0"``, ``"cat"``), to
    weights; classes it does not name weigh 1. Executors apply them as
    per-sample weights of the training batches (never of validation or test).

    Raises:
        ValueError: A label that is no class of the data, or a regression task.
    """
    entry = train.get("class_weight")
    if entry is None:
        return None
    if getattr(data, "task", "classification") == "regression":
        raise ValueError("train.class_weight applies to classifiers; the data's task is regression")
    k = data.num_classes
    if entry == "balanced":
        # Over the labeled rows: a consistency arm's unlabeled ones are -1.
        y = np.asarray(data.y_train)
        y = y[y >= 0] if y.ndim == 1 else y
        counts = np.bincount(y, minlength=k)
        return (len(y) / (k * np.maximum(counts, 1))).astype("float32")
    names = [str(c) for c in (data.classes or range(k))]
    weights = np.ones(k, dtype="float32")
    for label, weight in entry.items():
        if label not in names:
            raise ValueError(f"train.class_weight.{label}: not a class of the data; its "
                             f"classes: {', '.join(names[:20])}")
        weights[names.index(label)] = weight
    return weights


def prepare_model(plan: RunPlan) -> keras.Model:
    """The run's model, compiled, with its optimizer built: its exact initial state."""
    train = train_of(plan)
    # No global seeding here: built-in models seed every initializer and noise
    # layer explicitly, and user builders run under a seeded Keras (see
    # noisewise.study.models).
    model = build_model(plan.model, plan.arm.noise, plan.data, plan.seed, plan.arm.name,
                        base_dir=plan.base_dir)
    task = getattr(plan.data, "task", "classification")
    model.compile(optimizer=make_optimizer(train, plan.arm.noise, plan.seed, plan.arm.name),
                  loss=make_loss(train, model, task), metrics=make_metrics(train, model))
    model.optimizer.build(model.trainable_variables)
    return model


def state_variables(model: keras.Model) -> list:
    """The variables that make up a compiled model's training state: weights,
    non-trainable variables (noise seeds and levels) and optimizer slots."""
    return [*model.trainable_variables, *model.non_trainable_variables,
            *model.optimizer.variables]


def program_key(plan: RunPlan, noise: list | None = None) -> str:
    """Everything that shapes a run's compiled program, as a string; seeds and
    weights are state. ``noise`` replaces the arm's noise entries (a vectorised
    executor leaves out the levels it holds as state)."""
    where = str(plan.base_dir) if "builder" in plan.model else None  # user code may differ
    noise = plan.arm.noise if noise is None else noise
    data = plan.data
    shapes = [data.input_shape, data.num_classes]
    if getattr(data, "task", "classification") != "classification":
        shapes.append(data.task)
    if getattr(data, "x_val", None) is not None:  # sizes of the validation and test loops
        shapes.append([len(data.x_val), len(data.x_test)])
    return json.dumps([plan.model, train_of(plan), noise, *shapes, where], sort_keys=True,
                      default=str)


# -- pre-flight: the model's output against the task, before anything trains ----
# Refuse, never switch to from_logits on our own: the loss the user wrote
# would silently become another one, and a logits head trained as
# probabilities (or the reverse) trains badly without a word.
_CLASSIFICATION_METRICS = ("acc", "auc", "precision", "recall")
_PROBE_ROWS = 32  # training rows the model is run on
_SUM_TOLERANCE = 1e-3


def _final_activation(model):
    """Name of the activation the model's last layer applies, or None when it cannot be told."""
    layer = model.layers[-1] if getattr(model, "layers", None) else None
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) if callable(activation) else None


def _units_problem(model, data):
    shape = tuple(model.output_shape)
    units, k = shape[-1], data.num_classes
    if getattr(data, "task", "classification") == "regression":
        if len(shape) != 2 or units != k:
            return (f"the model's output has shape {shape[1:]} per row, and the regression "
                    f"data has {k} target(s) per row: end the model with {k} linear unit(s)")
        activation = _final_activation(model)
        y = np.asarray(data.y_train)
        if activation == "softmax" or (activation == "sigmoid" and (y.min() < 0 or y.max() > 1)):
            return (f"the model ends with a {activation}, which cannot output the regression "
                    f"targets (from {y.min():.3g} to {y.max():.3g}): end it with linear units")
        return None
    allowed = (1, 2) if k == 2 else (k,)
    if len(shape) != 2 or units not in allowed:
        need = "1 (sigmoid) or 2 (softmax) output units" if k == 2 else \
            f"{k} output units (softmax)"
        return (f"the model has {units} output unit(s) per row (output shape {shape[1:]}), "
                f"and the data has {k} classes: a {k}-class task needs {need}")
    return None


def _logits_problem(model, data, train):
    if not is_probability_loss(train):
        return None
    outputs = keras.ops.convert_to_numpy(model(data.x_train[:_PROBE_ROWS], training=False))
    outputs = np.asarray(outputs, dtype="float64").reshape(len(outputs), -1)
    activation = _final_activation(model)
    in_range = bool(((outputs >= 0) & (outputs <= 1)).all())
    sums = outputs.sum(axis=1)
    normalised = outputs.shape[1] == 1 or bool((np.abs(sums - 1) <= _SUM_TOLERANCE).all())
    looks_like_probabilities = activation in ("softmax", "sigmoid") or (
        activation in (None, "linear") and in_range and normalised and outputs.shape[1] > 1)
    if train.get("from_logits"):
        if looks_like_probabilities:
            what = f"a {activation}" if activation in ("softmax", "sigmoid") else \
                "rows of probabilities (in [0, 1], summing to 1)"
            return (f"train.from_logits = true, but the model's output is {what}: the loss "
                    "would read probabilities as logits; remove from_logits, or end the "
                    "model without the final activation")
        return None
    if activation == "linear" or not (in_range and normalised):
        seen = f"values from {outputs.min():.3g} to {outputs.max():.3g}"
        if outputs.shape[1] > 1:
            seen += f", rows summing to {sums.min():.3g}..{sums.max():.3g}"
        return (f"the model's outputs are not probabilities ({seen} on {len(outputs)} training "
                "rows) and the loss reads probabilities: end the model with a softmax "
                "(a sigmoid for one unit), or set train.from_logits = true if it outputs logits")
    return None


def _train_problem(train, data):
    if getattr(data, "task", "classification") != "regression":
        return None
    for i, name in enumerate(train["metrics"]):
        if any(word in name for word in _CLASSIFICATION_METRICS):
            return (f"train.metrics[{i}]: {name!r} is a classification metric, and the data's "
                    "task is regression; use e.g. 'mae' or 'mse'")
    return None


def _predict_problem(plan):
    if getattr(plan.arm, "predict", None) is None:
        return None
    data = plan.data
    if getattr(data, "task", "classification") != "classification":
        return (f"arms: {plan.arm.name!r} has `predict`, which measures a classifier's "
                "calibration; the data's task is regression")
    if getattr(data, "streaming", False):
        return (f"arms: {plan.arm.name!r} has `predict`, which predicts the test split as "
                "arrays; this data is a streaming source")
    return None


def preflight(plan: RunPlan, model: keras.Model) -> None:
    """Check a run's freshly built ``model`` against its data and ``[train]``
    before anything trains: output units against the classes (1 or 2 for
    binary, k for k classes, the number of targets for regression), logits
    against probabilities at the output (a cross-entropy reads probabilities
    unless ``train.from_logits``), and the training options against the task.

    Raises:
        ValueError: One line saying what is wrong and what to change.
    """
    train, data = train_of(plan), plan.data
    problem = (_train_problem(train, data) or _predict_problem(plan)
               or _units_problem(model, data))
    if problem is None and getattr(data, "task", "classification") == "classification":
        problem = _logits_problem(model, data, train)
    if problem is not None:
        raise ValueError(problem)
    make_loss(train, model, getattr(data, "task", "classification"))
    make_metrics(train, model)
    class_weights(train, data)
