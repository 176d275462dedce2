"""Monte Carlo prediction: a model's stochastic layers drawing, seed by seed
(:mod:`noisewise.uncertainty` says how they are switched on and seeded)."""

import contextlib
import dataclasses
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from noisewise._core import keras_compat
from noisewise._core.validation import check_int
from noisewise.layers import WeightNoise
from noisewise.layers._base import NoiseLayer
from noisewise.random import derive_seed

KINDS = ("dropout", "noise", "augment")
DEFAULT_KINDS = ("dropout", "noise")
_DROPOUT = (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.AlphaDropout)
_NOISE = (NoiseLayer, WeightNoise, keras.layers.GaussianNoise)


# -- which layers draw ----------------------------------------------------------

def _kind(layer):
    if getattr(layer, "scheduled_by_default", True) is False:  # an augmentation pipeline
        return "augment"
    if isinstance(layer, _DROPOUT):
        return "dropout"
    if isinstance(layer, _NOISE):
        return "noise"
    return None


def stochastic_layers(model: keras.layers.Layer,
                      stochastic: Sequence[Any] = DEFAULT_KINDS) -> list[keras.layers.Layer]:
    """The layers of ``model`` that :func:`predict_mc` switches on, in a fixed order.

    Args:
        model: A Keras model (nested models and wrappers are searched).
        stochastic: Kinds among ``"dropout"`` (Keras ``Dropout``, its spatial
            variants, ``GaussianDropout``, ``AlphaDropout``), ``"noise"``
            (noisewise noise layers, ``WeightNoise``, Keras ``GaussianNoise``)
            and ``"augment"`` (an augmentation pipeline inside the model, such
            as a noisewise ``AugmentPipeline``: test-time augmentation), or
            layer objects of the model, or a mix. The layers inside an
            augmentation pipeline belong to it: a kind never switches them
            alone (a layer object named here does).
    """
    if isinstance(stochastic, str) or not isinstance(stochastic, Sequence):
        stochastic = [stochastic]
    for item in stochastic:
        if not isinstance(item, keras.layers.Layer) and item not in KINDS:
            raise ValueError(f"`stochastic` must hold kinds among {', '.join(KINDS)} or layers "
                             f"of the model. Received: stochastic={list(stochastic)!r}")
    kinds = {item for item in stochastic if isinstance(item, str)}
    chosen = {id(item) for item in stochastic if isinstance(item, keras.layers.Layer)}
    layers = keras_compat.flatten_layers(model)
    inside = {id(sub) for layer in layers if _kind(layer) == "augment"
              for sub in keras_compat.flatten_layers(layer, include_self=False)}
    inside |= {id(sub) for layer in layers if isinstance(layer, WeightNoise)
               for sub in keras_compat.flatten_layers(layer, include_self=False)}
    out = [layer for layer in layers if id(layer) in chosen
           or (id(layer) not in inside and _kind(layer) in kinds)]
    missing = chosen - {id(layer) for layer in layers}
    if missing:
        names = [item.name for item in stochastic if id(item) in missing]
        raise ValueError(f"`stochastic` names layers that are not in model {model.name!r}. "
                         f"Received: {names}")
    return out


def _forced(call):
    def training_call(*args, **kwargs):
        kwargs["training"] = True
        return call(*args, **kwargs)
    return training_call


@contextlib.contextmanager
def _switched_on(layers, augment=None):
    """Inside, each of ``layers`` draws at inference; on exit every switch, and the
    seed states of ``layers`` and ``augment``, are as they were."""
    undo = []
    reseeded = [*layers, *([augment] if isinstance(augment, keras.layers.Layer) else [])]
    states = [(v, keras.ops.convert_to_numpy(v.value)) for layer in reseeded
              for v in _seed_states(layer)]
    try:
        for layer in layers:
            if hasattr(layer, "active_at_inference"):  # the layer's own switch
                undo.append((layer, "active_at_inference", layer.active_at_inference))
                layer.active_at_inference = True
            else:  # no switch of its own: called with training=True, this layer only
                undo.append((layer, "call", layer.__dict__.get("call")))
                layer.call = _forced(layer.call)
        yield
    finally:
        for layer, name, old in reversed(undo):
            if name == "call" and old is None:
                del layer.call
            else:
                setattr(layer, name, old)
        for variable, value in states:
            variable.assign(value)


def _seed_states(layer):
    # Every keras.random.SeedGenerator a layer (and its sublayers) draws from
    # keeps its state in a variable of this name, listed in `layer.variables`.
    return [v for v in layer.variables if v.name == "seed_generator_state"]


def _reseed(layers, seed):
    for j, layer in enumerate(layers):
        for k, state in enumerate(_seed_states(layer)):
            state.assign(np.array([derive_seed(seed, "layer", j, k), 0], dtype=state.dtype))


def draw_seeds(seed: int, n: int) -> list[int]:
    """The seed of each of the ``n`` draws of ``predict_mc(..., n=n, seed=seed)``."""
    check_int("seed", seed, low=0)
    check_int("n", n, low=1)
    return [derive_seed(seed, "mc", i) for i in range(n)]


# -- one draw, and n of them -----------------------------------------------------

def _to_probabilities(out, from_logits):
    out = np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2:
        raise ValueError(f"predict_mc needs outputs of shape (rows, classes). "
                         f"Received: output shape {out.shape}")
    if from_logits:
        if out.shape[1] == 1:
            out = 1.0 / (1.0 + np.exp(-out))
        else:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
    if out.shape[1] == 1:  # one sigmoid unit: the positive class
        out = np.concatenate([1.0 - out, out], axis=1)
    return out


def _apply_augment(augment, batch, seed):
    if isinstance(augment, keras.layers.Layer):
        _reseed([augment], derive_seed(seed, "augment"))
        return augment(batch, training=True)
    try:
        takes_seed = "seed" in inspect.signature(augment).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        takes_seed = False
    return augment(batch, seed=derive_seed(seed, "augment")) if takes_seed else augment(batch)


def _draw(model, x, seed, layers, batch_size, augment, from_logits):
    _reseed(layers, seed)
    parts = []
    size = len(x) if batch_size is None else batch_size
    for start in range(0, len(x), max(size, 1)):
        batch = x[start:start + size]
        if augment is not None:
            batch = _apply_augment(augment, batch, derive_seed(seed, "batch", start))
        parts.append(_to_probabilities(model(batch, training=False), from_logits))
    return np.concatenate(parts, axis=0)


def _check_call(n, seed, batch_size, augment):
    if n is not None:
        check_int("n", n, low=1)
    check_int("seed", seed, low=0)
    if batch_size is not None:
        check_int("batch_size", batch_size, low=1)
    if augment is not None and not callable(augment):
        raise ValueError(f"`augment` must be a callable taking a batch and returning one, or "
                         f"None. Received: augment={augment!r}")


def stochastic_call(model: keras.layers.Layer, x: Any, seed: int, *,
                    stochastic: Sequence[Any] = DEFAULT_KINDS, batch_size: int | None = None,
                    augment: Callable | None = None, from_logits: bool = False) -> np.ndarray:
    """One stochastic prediction of ``model`` on ``x``: probabilities (rows, classes).

    The chosen layers draw (see :func:`stochastic_layers`), every other layer
    runs as at inference, and the draws depend on ``seed`` alone: the switched
    layers' seed generators are reset from it first. Draw ``i`` of
    :func:`predict_mc` is ``stochastic_call(model, x, draw_seeds(seed, n)[i])``
    with the same other arguments.

    Args:
        model: A Keras model.
        x: Inputs (an array, or what the model takes, sliceable by rows).
        seed: Non-negative integer.
        stochastic: Which layers draw (:func:`stochastic_layers`).
        batch_size: Rows per call, default all at once.
        augment: Optional callable applied to each batch before the model:
            a Keras layer (called with ``training=True``, its seed generators
            reset from ``seed``) or a function (called with ``seed=`` when it
            takes a ``seed`` argument).
        from_logits: The model outputs logits: softmax (sigmoid for one
            unit) is applied.

    Example:
        >>> import keras, numpy as np
        >>> from noisewise.uncertainty import stochastic_call
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5, seed=0),
        ...                           keras.layers.Dense(1, activation="sigmoid")])
        >>> p = stochastic_call(model, np.ones((3, 2), "float32"), seed=7)
        >>> p.shape, bool(np.allclose(p, stochastic_call(model, np.ones((3, 2), "float32"), 7)))
        ((3, 2), True)
    """
    _check_call(None, seed, batch_size, augment)
    layers = stochastic_layers(model, stochastic)
    with _switched_on(layers, augment):
        return _draw(model, x, seed, layers, batch_size, augment, from_logits)


def _entropy(p):
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


@dataclasses.dataclass(frozen=True)
class MCPrediction:
    """What :func:`predict_mc` returns (NumPy float64 arrays; entropies in nats).

    Attributes:
        mean: (rows, classes) mean probabilities over the draws.
        entropy: (rows,) predictive entropy ``H(mean)``: total uncertainty.
        mutual_information: (rows,) ``H(mean) - mean_i H(p_i)`` (BALD): the
            part of the entropy due to disagreement between draws
            (model uncertainty); 0 when every draw is the same.
        std: (rows, classes) standard deviation over the draws (ddof=0).
        samples: (n, rows, classes) every draw, or None unless asked for.
        n: Number of draws.
        seed: The seed the draws derive from.
    """

    mean: np.ndarray
    entropy: np.ndarray
    mutual_information: np.ndarray
    std: np.ndarray
    samples: np.ndarray | None
    n: int
    seed: int


def predict_mc(model: keras.layers.Layer, x: Any, n: int = 30, seed: int = 0, *,
               stochastic: Sequence[Any] = DEFAULT_KINDS, batch_size: int | None = None,
               augment: Callable | None = None, from_logits: bool = False,
               return_samples: bool = False) -> MCPrediction:
    """Monte Carlo prediction: ``n`` stochastic calls of ``model`` on ``x``, summarised.

    Args:
        model: A trained Keras classifier (softmax, one sigmoid unit, or
            logits with ``from_logits``).
        x: Inputs.
        n: Number of draws, an integer >= 1.
        seed: Non-negative integer; draw ``i`` uses ``draw_seeds(seed, n)[i]``.
        stochastic: Which layers draw (:func:`stochastic_layers`), default
            dropout and noise layers; ``"augment"`` adds the model's own
            augmentation pipeline.
        batch_size: Rows per call, default all at once.
        augment: Optional test-time augmentation applied to each batch before
            the model (see :func:`stochastic_call`).
        from_logits: The model outputs logits.
        return_samples: Keep every draw in ``samples``.

    Returns:
        An :class:`MCPrediction`. A model with nothing that draws (no
        stochastic layer of the chosen kinds, no ``augment``) gives ``n``
        equal draws, with a ``UserWarning``.

    Example:
        >>> import keras, numpy as np
        >>> from noisewise.uncertainty import draw_seeds, predict_mc, stochastic_call
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5, seed=0),
        ...                           keras.layers.Dense(3, activation="softmax")])
        >>> x = np.ones((4, 2), "float32")
        >>> mc = predict_mc(model, x, n=3, seed=1, return_samples=True)
        >>> bool(np.allclose(mc.samples[2], stochastic_call(model, x, draw_seeds(1, 3)[2])))
        True
    """
    _check_call(n, seed, batch_size, augment)
    layers = stochastic_layers(model, stochastic)
    if not layers and augment is None:
        warnings.warn(f"predict_mc: model {model.name!r} has no stochastic layer of the kinds "
                      f"{list(stochastic)!r} and no `augment` was given, so every draw is the "
                      "same deterministic prediction", UserWarning, stacklevel=2)
    with _switched_on(layers, augment):
        samples = np.stack([_draw(model, x, s, layers, batch_size, augment, from_logits)
                            for s in draw_seeds(seed, n)])
    mean = samples.mean(axis=0)
    entropy = _entropy(mean)
    # Rounding can put H(mean) a hair below the mean entropy; the information is >= 0.
    information = np.maximum(entropy - _entropy(samples).mean(axis=0), 0.0)
    return MCPrediction(mean=mean, entropy=entropy, mutual_information=information,
                        std=samples.std(axis=0), samples=samples if return_samples else None,
                        n=n, seed=seed)
