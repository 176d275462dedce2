"""Models of a study: built-in MLP and CNN with noise placed by the spec, or the user's.

Pairing is explicit, not an accident of the global random state: every Dense
or Conv kernel of a built-in model is initialised from its own seed,
``derive_seed(replica_seed, "init", k)`` for the k-th weight layer, so replica
``i`` starts from the same weights in every arm, whatever noise layers sit
between those layers. Noise layers get ``derive_seed(replica_seed, "noise",
arm, entry, site)`` and never draw from the global generator.

Noise entries (one table each in an arm's ``noise`` list):

- ``type`` in ``gaussian | uniform | multiplicative | salt_and_pepper |
  poisson`` (:data:`noisewise.layers.NOISE_LAYERS`) or ``dropout |
  gaussian_dropout | alpha_dropout`` (Keras' own layers), with ``where`` in
  ``input | pre_activation | post_activation``: at the model input, between
  each hidden layer's linear part and its activation (``Dense -> noise ->
  Activation``), or after each hidden activation. The output layer gets none.
  Other keys are the layer's arguments (``stddev``, ``clip``, ``rate``, ...).
- ``type = "weight"``: :class:`noisewise.WeightNoise` around every Dense and
  Conv layer (output layer included); keys ``stddev``, ``targets``,
  ``relative``, ``active_at_inference``.
- ``type = "gradient"``: :class:`noisewise.GradientNoise` around the
  optimizer (Neelakantan et al., 2015); keys ``eta``, ``gamma``.
- ``type = "adversarial"``: the model wrapped in
  :class:`noisewise.robust.AdversarialModel` (FGSM/PGD examples crafted each
  step, optionally with Gaussian noise); keys ``attack``, ``eps``, ``norm``,
  ``steps``, ``step_size``, ``random_start``, ``ratio``, ``noise_stddev``,
  ``clip``, ``from_logits``.
- ``type = "consistency"``: the model wrapped in
  :class:`noisewise.consistency.PiModel` (Laine and Aila's Pi-model: a
  consistency loss between two stochastic passes, learning from unlabeled
  rows too, see :mod:`noisewise.study.data.labeled`); keys ``weight``,
  ``rampup_epochs``, ``from_logits``. The arm's model must be stochastic in
  training (a noise layer, dropout, weight noise or augmentation).
- ``type = "mixup"``: the model wrapped in
  :class:`noisewise.augment.mixup.MixupModel` (Zhang et al. 2018: each training
  batch mixed with a permutation of itself, ``lam ~ Beta(alpha, alpha)``, and
  the loss mixed alike); key ``alpha``.

Augmentation (an arm's ``augment`` list, see :mod:`noisewise.augment`): the
spec hands it over as a last noise entry ``{"type": "augment", "transforms":
[...], "value_range": ...}``; :func:`build_model` puts the pipeline
(:func:`noisewise.augment.from_spec`, seeded with ``derive_seed(replica_seed,
"augment", arm)``) right after the input, before any input noise, in built-in
and user models alike. Without ``value_range`` it is the training data's
(min, max). Like Keras' preprocessing layers it is active only in training. The arm's
``augment_probability`` (default 1) is the pipeline's probability of
augmenting an example.

Adaptive levels (a noise entry's ``adapt`` table, an arm's ``augment_adapt``):
the layers holding each adaptive entry's level are recorded with the model
(:func:`level_layers`), so an executor drives them after each validated epoch
(:func:`adaptive_entries` names each entry: ``noise0``, ..., ``augment``).

A user model (``[model] builder = "package.module:function"``) is built by
``function(input_shape=..., num_classes=..., **other_model_keys)`` after
``keras.utils.set_random_seed(replica_seed)``, so the clean model is the same
in every arm of a replica; noise is then added with :func:`noisewise.inject`
(layer types) or by wrapping its Dense/Conv layers (weight noise), both keeping
the clean model's weights.

A saved model (``[model] path = "model.keras"``, relative to the spec's
folder) is loaded with ``keras.saving.load_model(compile=False)``. ``weights =
"keep"`` (default) starts every run from the file's weights, but for the layers
named in ``reinit`` (a new head, say), which are initialised anew, like
``weights = "reinit"`` does for every layer, by ``keras.models.clone_model``
after ``keras.utils.set_random_seed(replica_seed)`` (so replica ``i`` starts
alike in every arm). ``trainable = "all"`` (default) or a list of layer names:
the others are frozen (``layer.trainable = False``). The arm's noise is then
inserted with :func:`noisewise.inject` as for a builder's model. The file's
bytes are part of the study's code fingerprint.

Example:
    >>> from noisewise.study.datasets import load_dataset
    >>> from noisewise.study.models import build_model
    >>> data = load_dataset({"name": "circles"})
    >>> noise = ({"type": "gaussian", "where": "pre_activation", "stddev": 0.1},)
    >>> model = build_model({"name": "mlp", "hidden": [8]}, noise, data, seed=1, arm="demo")
    >>> [layer.__class__.__name__ for layer in model.layers[1:]]
    ['Dense', 'GaussianNoise', 'Activation', 'Dense']
"""

import os
import weakref
from pathlib import Path

import keras

from noisewise._core import keras_compat
from noisewise._core.validation import check_int, check_number
from noisewise.layers import NOISE_LAYERS, WeightNoise
from noisewise.random import derive_seed

DROPOUT_LAYERS = {
    "dropout": keras.layers.Dropout,
    "gaussian_dropout": keras.layers.GaussianDropout,
    "alpha_dropout": keras.layers.AlphaDropout,
}


def _arguments(entry):
    return {k: v for k, v in entry.items() if k not in ("type", "where", "adapt")}


def adaptive_entries(noise) -> list[tuple[str, dict]]:
    """``(key, adapt table)`` of each adaptive entry of an arm's noise: ``noise{i}``
    for noise entry i, ``augment`` for the augmentation; the history records
    the level of each under ``level_{key}``."""
    return [("augment" if e["type"] == "augment" else f"noise{i}", e["adapt"])
            for i, e in enumerate(noise) if e.get("adapt") is not None]


_LEVEL_LAYERS = weakref.WeakKeyDictionary()  # model -> {key: [layers]}


def level_layers(model: keras.Model) -> dict[str, list]:
    """``{key: layers}``: the layers holding each adaptive entry's level in a model
    :func:`build_model` built (keys as in :func:`adaptive_entries`)."""
    return dict(_LEVEL_LAYERS.get(model, {}))


def _record(net, noise, made):
    """Keep which layers hold each adaptive entry's level (``made``: index -> layers)."""
    sites = {}
    for i, entry in enumerate(noise):
        if entry.get("adapt") is None:
            continue
        key = "augment" if entry["type"] == "augment" else f"noise{i}"
        if not made.get(i):
            raise ValueError(f"{key} adapts its level, and no layer of the model holds it")
        sites[key] = list(made[i])
    if sites:
        _LEVEL_LAYERS[net] = sites
    return net


def noise_layer(entry, seed=None, name=None):
    """The Keras layer of a layer-type noise entry (``type`` + its arguments)."""
    kind, args = entry["type"], _arguments(entry)
    if kind in DROPOUT_LAYERS:
        # Keras' message does not name a range that excludes 1 (1 divides by zero).
        check_number("rate", args.get("rate"), low=0.0, high=1.0, high_open=True)
        return DROPOUT_LAYERS[kind](seed=seed, name=name, **args)
    return NOISE_LAYERS[kind](seed=seed, name=name, **args)


def noise_seed(seed, arm, index, site=0):
    """Seed of the ``site``-th layer made from noise entry ``index`` of ``arm``."""
    return derive_seed(seed, "noise", arm, index, site)


# Caps on the built-in models' sizes, checked in the spec: building the model
# in the pre-flight allocates its weights, so a mistyped `hidden = [50000000]`
# must be refused before that, not by the system's out-of-memory killer.
MAX_UNITS = 100_000
MAX_LAYERS = 1_000
MAX_KERNEL = 1_000


def _check_units(name, value):
    if not isinstance(value, (list, tuple)) or not value or len(value) > MAX_LAYERS:
        raise ValueError(f"`{name}` must be a non-empty list of at most {MAX_LAYERS:,} "
                         f"positive integers. Received: {name}={value!r}")
    return [check_int(f"{name}[{i}]", v, low=1, high=MAX_UNITS) for i, v in enumerate(value)]


def _check_activation(name, value):
    if not isinstance(value, str):
        raise ValueError(f"`{name}` must be a Keras activation name. Received: {name}={value!r}")
    try:
        keras.activations.get(value)
    except ValueError:
        raise ValueError(f"`{name}` must be a Keras activation name such as 'relu' or "
                         f"'tanh'. Received: {name}={value!r}") from None
    return value


def _check_size(name, value):
    return check_int(name, value, low=1, high=MAX_KERNEL)


# name -> {option: (default, check)}
BUILTIN = {
    "mlp": {"hidden": ([64], _check_units), "activation": ("relu", _check_activation)},
    "cnn": {"filters": ([16, 32], _check_units), "kernel_size": (3, _check_size),
            "pool": (2, _check_size), "hidden": ([64], _check_units),
            "activation": ("relu", _check_activation)},
}


class _Builder:
    """Lays out one built-in model; knows which noise goes where."""

    def __init__(self, noise, seed, arm):
        self.noise, self.seed, self.arm = noise, seed, arm
        self.n_weight_layers = 0
        self.sites = {}  # entry index -> layers made so far
        self.made = {}  # entry index -> the layers themselves

    def _seed(self, index):
        site = self.sites.get(index, 0)
        self.sites[index] = site + 1
        return noise_seed(self.seed, self.arm, index, site)

    def place(self, where, x, tag):
        for i, entry in enumerate(self.noise):
            if entry.get("where") == where:
                layer = noise_layer(entry, seed=self._seed(i), name=f"{tag}_{where}_noise{i}")
                self.made.setdefault(i, []).append(layer)
                x = layer(x)
        return x

    def weight_layer(self, cls, *args, **kwargs):
        k = self.n_weight_layers
        self.n_weight_layers += 1
        layer = cls(
            *args, kernel_initializer=keras.initializers.GlorotUniform(
                seed=derive_seed(self.seed, "init", k)),
            bias_initializer="zeros", **kwargs,
        )
        for i, entry in enumerate(self.noise):
            if entry["type"] == "weight":
                layer = WeightNoise(layer, seed=self._seed(i), name=f"{layer.name}_weight_noise",
                                    **_arguments(entry))
                self.made.setdefault(i, []).append(layer)
        return layer

    def block(self, x, layer, activation, tag):
        x = layer(x)
        x = self.place("pre_activation", x, tag)
        x = keras.layers.Activation(activation, name=f"{tag}_activation")(x)
        return self.place("post_activation", x, tag)

    def head(self, x, num_classes, task="classification"):
        """One sigmoid unit (binary), k softmax units, or for regression one
        linear unit per target (``num_classes`` is then the number of targets)."""
        if task == "regression":
            units, activation = num_classes, None
        else:
            units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
        return self.weight_layer(keras.layers.Dense, units, activation=activation,
                                 name="output")(x)


def _mlp(b, x, hidden, activation):
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    for k, units in enumerate(hidden):
        x = b.block(x, b.weight_layer(keras.layers.Dense, units, name=f"dense_{k}"),
                    activation, f"dense_{k}")
    return x


def _cnn(b, x, filters, kernel_size, pool, hidden, activation):
    if len(x.shape) != 4:
        raise ValueError(
            "model 'cnn' needs image data shaped (n, height, width, channels). "
            f"Received: input shape {tuple(x.shape[1:])}; use model 'mlp' for flat features"
        )
    for k, n in enumerate(filters):
        conv = b.weight_layer(keras.layers.Conv2D, n, kernel_size, padding="same",
                              name=f"conv_{k}")
        x = b.block(x, conv, activation, f"conv_{k}")
        if min(x.shape[1:3]) >= pool:
            x = keras.layers.MaxPooling2D(pool, name=f"pool_{k}")(x)
    return _mlp(b, x, hidden, activation)


def _user_model(model, noise, data, seed, arm, base_dir):
    from noisewise.study.datasets import resolve_callable  # datasets imports nothing of ours

    options = {k: v for k, v in model.items() if k != "builder"}
    build = resolve_callable(model["builder"], base_dir, what="builder")
    keras_compat.set_random_seed(seed)
    net = build(input_shape=data.input_shape, num_classes=data.num_classes, **options)
    if not isinstance(net, keras.Model):
        name = model["builder"] if isinstance(model["builder"], str) else getattr(
            model["builder"], "__qualname__", repr(model["builder"]))
        raise ValueError(f"builder {name!r} must return a keras.Model. "
                         f"Received: {type(net).__name__}")
    return _with_noise(net, noise, data, seed, arm)


def _with_noise(net, noise, data, seed, arm):
    """A user's or a saved model with the arm's noise and augmentation, weights kept.

    A noise entry whose placement matches no layer of the model is refused: the
    arm would silently train the clean model.
    """
    from noisewise.injection import inject, injection_points

    made = {}
    for i, entry in enumerate(noise):
        before = _level_names(net)
        if entry["type"] == "weight":
            net = _wrap_weights(net, entry, noise_seed(seed, arm, i))
        elif entry["type"] not in ("gradient", "augment", "adversarial", "consistency", "mixup"):
            if not injection_points(net, entry["where"]):
                raise ValueError(f"noise[{i}] ({entry['type']}, where={entry['where']!r}) "
                                 f"matches no layer of model {net.name!r}: the arm would "
                                 "train without it")
            template = noise_layer(entry, seed=noise_seed(seed, arm, i))
            net = inject(net, where=entry["where"], noise=template)
        made[i] = _level_names(net) - before
    by_name = {layer.name: layer for layer in keras_compat.flatten_layers(net)}
    made = {i: [by_name[n] for n in sorted(names)] for i, names in made.items()}
    augment = augmentation(noise, data, seed, arm)
    if augment is not None:  # outermost, so it runs before injected input noise
        inputs = keras.Input(shape=data.input_shape, name="x")
        net = keras.Model(inputs, net(augment(inputs)), name=net.name)
        made[_augment_index(noise)] = [augment]
    return _record(net, noise, made)


def _augment_index(noise):
    return [i for i, e in enumerate(noise) if e["type"] == "augment"][-1]


def _level_names(net):
    return {layer.name for layer in keras_compat.flatten_layers(net)
            if callable(getattr(layer, "set_level", None))}


def _pretrained(model, noise, data, seed, arm, base_dir):
    """The saved model of ``[model] path``: weights kept or re-initialised, layers frozen."""
    path = Path(base_dir or os.getcwd()) / model["path"]
    if not path.is_file():
        raise ValueError(f"model.path: no such .keras file: {model['path']!r} (looked in "
                         f"{path.parent.resolve()})")
    keras_compat.set_random_seed(seed)  # re-initialised weights: drawn from the replica seed
    net = keras.saving.load_model(path, compile=False)
    if not isinstance(net, keras.Model):
        raise ValueError(f"model.path: {model['path']!r} holds a {type(net).__name__}, "
                         "not a keras.Model")
    expected, rows = tuple(net.input_shape[1:]), data.input_shape
    if len(expected) != len(rows) or any(e not in (None, r) for e, r in zip(expected, rows)):
        raise ValueError(f"model.path: {model['path']!r} takes inputs of shape {expected}, "
                         f"and the data's rows have shape {rows}")
    names = [layer.name for layer in net.layers]
    for key in ("reinit", "trainable"):
        missing = [n for n in model[key] if n not in names] if model[key] != "all" else []
        if missing:
            raise ValueError(f"model.{key}: no layer named {missing} in {model['path']!r}. "
                             f"Layers: {names}")
    if model["weights"] == "reinit" or model["reinit"]:
        fresh = keras.models.clone_model(net)  # new weights from the layers' initialisers
        if model["weights"] == "keep":
            for old, new in zip(net.layers, fresh.layers):
                if old.name not in model["reinit"]:
                    new.set_weights(old.get_weights())
        net = fresh
    if model["trainable"] != "all":
        for layer in net.layers:
            layer.trainable = layer.name in model["trainable"]
    return _with_noise(net, noise, data, seed, arm)


def augmentation(noise, data, seed, arm):
    """The arm's augmentation layer (an ``AugmentPipeline``), or None without one."""
    entries = [e for e in noise if e["type"] == "augment"]
    if not entries:
        return None
    from noisewise.augment import AugmentPipeline

    entry = entries[-1]
    value_range = entry.get("value_range")
    if value_range is None:
        low, high = float(data.x_train.min()), float(data.x_train.max())
        if not low < high:
            raise ValueError(f"augmentation needs the data's value range, and the training "
                             f"data is constant ({low}); set the arm's `augment_value_range`")
        value_range = (low, high)
    layer = AugmentPipeline(entry["transforms"], seed=derive_seed(seed, "augment", arm),
                            value_range=value_range, allow_label_mixing=False, name="augment",
                            probability=entry.get("probability", 1.0))
    return layer.adapt(data.x_train)  # fits tabular_noise; a no-op for the others


def _wrap_weights(model, entry, seed):
    """Copy of ``model`` with WeightNoise around every Dense/Conv layer, weights kept."""
    pairs = []

    def clone(layer):
        copy = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D,
                              keras.layers.Conv3D)):
            pairs.append((layer, copy))
            return WeightNoise(copy, seed=derive_seed(seed, len(pairs)), **_arguments(entry))
        pairs.append((layer, copy))
        return copy

    new = keras.models.clone_model(model, clone_function=clone)
    for source, copy in pairs:
        copy.set_weights(source.get_weights())
    return new


def build_model(model, noise, data, seed, arm, base_dir=None):
    """Build the (uncompiled) model of one run.

    Args:
        model: The validated ``[model]`` table.
        noise: The arm's noise entries (gradient noise is the optimizer's
            business and ignored here).
        data: The run's :class:`~noisewise.study.datasets.Dataset`.
        seed: The replica seed (shared by every arm of the replica).
        arm: The arm name (seeds the noise layers).
        base_dir: Folder a user builder module is imported from, and that a
            ``.keras`` path is relative to.

    Returns:
        A ``keras.Model`` with 1 sigmoid output (binary) or ``num_classes``
        softmax outputs (built-in models); for a regression task, one linear
        output per target.
    """
    if "builder" in model or "path" in model:
        # Automatic layer names (and the noise seeds inject derives from them)
        # must not depend on how many models this process built before.
        with keras_compat.fresh_layer_names():
            build = _user_model if "builder" in model else _pretrained
            net = build(model, noise, data, seed, arm, base_dir)
            sites = _LEVEL_LAYERS.get(net, {})
            net = _training_wrapper(net, noise, seed, arm, data)
            if sites:
                _LEVEL_LAYERS[net] = sites
            return net
    options = {k: default for k, (default, _) in BUILTIN[model["name"]].items()}
    options.update((k, v) for k, v in model.items() if k != "name")
    b = _Builder(tuple(noise), seed, arm)
    inputs = keras.Input(shape=data.input_shape, name="x")
    augment = augmentation(noise, data, seed, arm)
    x = b.place("input", inputs if augment is None else augment(inputs), "x")
    if augment is not None:
        b.made[_augment_index(noise)] = [augment]
    body = _mlp if model["name"] == "mlp" else _cnn
    x = body(b, x, **options)
    head = b.head(x, data.num_classes, getattr(data, "task", "classification"))
    net = keras.Model(inputs, head, name=f"{model['name']}")
    return _record(_training_wrapper(net, noise, seed, arm, data), noise, b.made)


def _training_wrapper(net, noise, seed, arm, data=None):
    """``net`` in the training wrapper of the arm's ``adversarial``, ``consistency``
    or ``mixup`` entry (an arm has at most one), or ``net`` itself without one."""
    for i, entry in enumerate(noise):
        if entry["type"] == "adversarial":
            from noisewise.robust import adversarial_model

            return adversarial_model(net, _arguments(entry), seed=noise_seed(seed, arm, i))
        if entry["type"] == "consistency":
            from noisewise.study.data.labeled import consistency_model

            return consistency_model(net, _arguments(entry), data, arm, i)
        if entry["type"] == "mixup":
            from noisewise.augment.mixup import MixupModel

            return MixupModel(net, alpha=entry["alpha"], seed=noise_seed(seed, arm, i))
    return net
