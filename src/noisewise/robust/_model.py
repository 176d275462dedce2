"""What a classifier outputs (logits or probabilities, binary or k classes), its loss and its predictions.

Attacks need the loss a model was trained with, and smoothing and accuracy need
the predicted class; both depend on whether the last activation is a softmax or
sigmoid (probabilities) or linear (logits). We read that from the model's
output layer, let the caller say it with ``from_logits``, and refuse what is
neither (a regression head, a ReLU/tanh output, a non-(batch, classes) output).
"""

import inspect
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from noisewise._core import keras_compat

# Keras clips probabilities the same way in its cross-entropy losses.
_EPSILON = 1e-7
_REGRESSION_LOSSES = {
    "mse", "mae", "mape", "msle", "huber", "log_cosh", "logcosh", "cosine_similarity",
    "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "huber_loss",
}


class OutputSpec(NamedTuple):
    """``kind`` is "binary" (one output unit) or "categorical"; ``classes`` counts classes (2 for binary)."""

    kind: str
    from_logits: bool
    classes: int


def _unwrap(model):
    """The innermost model of a wrapper (like AdversarialModel) whose only layer is a model."""
    while not getattr(model, "outputs", None):
        layers = getattr(model, "layers", None) or []
        if len(layers) != 1 or not isinstance(layers[0], keras.Model):
            break
        model = layers[0]
    return model


def _output_layer(model):
    outputs = getattr(model, "outputs", None)
    if outputs and len(outputs) == 1:
        op = keras_compat.producing_operation(outputs[0])
        if op is not None:
            return op
    layers = getattr(model, "layers", None)
    return layers[-1] if layers else None


def _last_activation(model):
    """Name of the output activation ("softmax", "sigmoid", "linear", ...) or None if unknown."""
    layer = _output_layer(model)
    if layer is None:
        return None
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", type(activation).__name__)


def _compiled_loss_name(model):
    loss = getattr(model, "loss", None)
    if isinstance(loss, str):
        return loss
    if loss is not None:
        return getattr(loss, "name", None) or getattr(loss, "__name__", None)
    return None


def inspect_output(model, from_logits=None, probe=None):
    """Return the model's :class:`OutputSpec`, or raise ValueError for a non-classifier.

    Args:
        model: A Keras model.
        from_logits: None (detect from the output activation), True or False.
        probe: Optional input batch, run once to check the output's shape and,
            for probabilities, that they lie in [0, 1].
    """
    if from_logits not in (None, True, False):
        raise ValueError(f"`from_logits` must be None, True or False. Received: from_logits={from_logits!r}")
    loss_name = _compiled_loss_name(model)
    model = _unwrap(model)
    loss_name = loss_name or _compiled_loss_name(model)
    if loss_name and loss_name.lower() in _REGRESSION_LOSSES:
        raise ValueError(
            "`model` must output class logits or probabilities, but it was compiled "
            f"with the regression loss {loss_name!r}. Received: model={model.name!r}"
        )
    out = None
    if probe is not None:
        probe = check_input(model, np.asarray(probe[:2], dtype="float32"))
        raw = model(probe, training=False) if call_accepts_training(model) else model(probe)
        out = np.asarray(ops.convert_to_numpy(raw))
        shape = out.shape
    else:
        try:
            shape = tuple(model.output_shape)
        except (AttributeError, ValueError, TypeError):
            shape = None
    if shape is None or len(shape) != 2 or not isinstance(shape[-1], int):
        raise ValueError(
            "`model` must output one (batch, classes) tensor of logits or probabilities. "
            f"Received: model output shape={shape}"
        )
    units = shape[-1]
    kind = "binary" if units == 1 else "categorical"
    activation = _last_activation(model)
    detected = {"softmax": False, "sigmoid": False, "linear": True}.get(activation)
    if activation is not None and detected is None:
        raise ValueError(
            "`model` must end in a linear (logits), softmax or sigmoid output; its last "
            f"activation is {activation!r}, which gives neither logits nor probabilities. "
            f"Received: model={model.name!r}"
        )
    if from_logits is None:
        if detected is None:
            raise ValueError(
                "Could not tell whether `model` outputs logits or probabilities (no output "
                "activation found); pass from_logits=True or False. Received: from_logits=None"
            )
        from_logits = detected
    elif detected is not None and detected != from_logits:
        raise ValueError(
            f"`from_logits={from_logits}` contradicts the model's last activation "
            f"{activation!r}. Received: from_logits={from_logits}"
        )
    if activation == "sigmoid" and units > 1:
        raise ValueError(
            "`model` has a multi-label output (sigmoid over several units); attacks and "
            f"smoothing need one class per example. Received: output shape={shape}"
        )
    if activation == "softmax" and units == 1:
        raise ValueError(f"`model` has a softmax over one unit (always 1). Received: output shape={shape}")
    if out is not None and not from_logits and (out.min() < -1e-6 or out.max() > 1 + 1e-6):
        raise ValueError(
            "`model` was taken to output probabilities but returned values outside [0, 1]. "
            f"Received: outputs in [{out.min():.4g}, {out.max():.4g}]"
        )
    return OutputSpec(kind, bool(from_logits), 2 if units == 1 else units)


def input_shape(model):
    """The per-example input shape of a single-input model (None where a size is free), or None if unknown."""
    model = _unwrap(model)
    inputs = getattr(model, "inputs", None)
    if inputs:
        return tuple(inputs[0].shape[1:]) if len(inputs) == 1 else None
    try:
        shape = model.input_shape
    except (AttributeError, ValueError, TypeError):
        return None
    if isinstance(shape, tuple) and all(d is None or isinstance(d, int) for d in shape):
        return shape[1:]
    return None


def check_input(model, x, name="x", *, reshape=False):
    """``x`` if its examples have the model's input shape; else refuse in one line naming both shapes.

    Checked before the first forward pass, because Keras' own error for a
    wrong shape prints the whole tensor. With ``reshape``, examples holding
    as many values as the model's input (flat 64 against 8x8x1) are reshaped
    to it instead.
    """
    expected = input_shape(model)
    got = tuple(x.shape[1:])
    if expected is None or got == expected:
        return x
    if None in expected:  # a free size: only the rank and the fixed sizes can be checked
        if len(expected) == len(got) and all(e is None or e == g for e, g in zip(expected, got)):
            return x
    elif reshape and int(np.prod(expected)) == int(np.prod(got)):
        return x.reshape((len(x),) + expected)
    fit = " and cannot be reshaped to it" if reshape else ""
    raise ValueError(
        f"`model` takes examples of shape {expected}{_size(expected)}, but `{name}` holds examples of "
        f"shape {got}{_size(got)}{fit}. Received: {name} of shape {tuple(x.shape)}"
    )


def _size(shape):
    return "" if None in shape else f" ({int(np.prod(shape))} values)"


def labels(y, spec, name="y"):
    """Integer class labels from integer, (n, 1) or one-hot labels."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == spec.classes and spec.classes > 1 and spec.kind == "categorical":
        y = y.argmax(axis=1)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"`{name}` must hold one label per example. Received: {name} of shape {y.shape}")
    if not np.all((y >= 0) & (y < spec.classes) & (y == np.round(y))):
        raise ValueError(
            f"`{name}` must hold integer class labels in [0, {spec.classes - 1}]. "
            f"Received: values in [{y.min()}, {y.max()}]"
        )
    return y.astype("int32")


def per_example_loss(spec, y, out):
    """Cross-entropy per example, as the model's own Keras loss would compute it."""
    if spec.kind == "binary":
        z = out[:, 0]
        y = ops.cast(y, z.dtype)
        if spec.from_logits:
            return ops.softplus(z) - y * z
        p = ops.clip(z, _EPSILON, 1.0 - _EPSILON)
        return -(y * ops.log(p) + (1.0 - y) * ops.log(1.0 - p))
    onehot = ops.one_hot(ops.cast(y, "int32"), spec.classes, dtype=out.dtype)
    if spec.from_logits:
        logp = ops.log_softmax(out, axis=-1)
    else:
        logp = ops.log(ops.clip(out, _EPSILON, 1.0 - _EPSILON))
    return -ops.sum(onehot * logp, axis=-1)


def classes_from_outputs(spec, out):
    """Predicted class per example (NumPy)."""
    out = np.asarray(out)
    if spec.kind == "binary":
        return (out[:, 0] > (0.0 if spec.from_logits else 0.5)).astype("int32")
    return out.argmax(axis=1).astype("int32")


def predict(model, x, batch_size=512):
    """Model outputs for ``x`` (NumPy), in batches through Keras' compiled predict step."""
    x = np.asarray(x)
    parts = [
        np.asarray(model.predict_on_batch(x[i : i + batch_size]))
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0,))


def call_accepts_training(model):
    try:
        return "training" in inspect.signature(model.call).parameters
    except (TypeError, ValueError):
        return False
