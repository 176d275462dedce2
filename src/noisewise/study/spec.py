"""Study specs: read from TOML or a dict, validated before any training, hashed.

A spec has the sections ``[study]``, ``[data]``, ``[model]``, ``[train]`` and a
list of ``[[arms]]``; see ``examples/circles.toml``. Every error is a
:class:`SpecError` whose message starts with the key path, e.g.
``arms[2].noise[0].stddev: `stddev` must be in [0.0, inf]. Received: stddev=-0.1``.

Defaults (filled in, so that spelling one out does not change the hash):
``study.seeds = 30``, ``study.seed = 0``, ``study.reference`` = the first arm;
``train``: ``epochs = 100``, ``batch_size = 32``, ``optimizer = "adam"``,
``learning_rate = 0.001``, ``optimizer_options = {}``, ``loss = "auto"``
(binary cross-entropy for one sigmoid output, else sparse categorical),
``metrics = ["accuracy"]``, ``validate_every = 1``. The model and dataset
options default as documented in :mod:`~noisewise.study.models` and
:mod:`~noisewise.study.datasets`.

An arm may also augment its training inputs: ``augment`` is a list of
transforms in the format of :func:`noisewise.augment.from_spec` (e.g.
``{ type = "rotate", factor = 10, unit = "degrees" }``), placed at the model's
input before any input noise; ``augment_value_range = [low, high]`` sets the
data range the transforms assume (default: the training data's min and max).

A grid (``grid = { "noise[0].stddev" = [0.01, 0.1] }``) expands an arm into one
arm per combination, named ``hidden[stddev=0.01]`` (the full key path is used
when two grid keys end in the same name). A grid key must address an argument
of an existing noise entry (``noise[i].<argument>``) or augmentation transform
(``augment[i].<argument>``).

An optional ``[robustness]`` table evaluates every trained model under noise,
attacks, randomized smoothing or corruptions (format and metric names in
:mod:`noisewise.robust._study`); its metrics (``certified_acc@r=0.25``,
``adv_acc@fgsm_linf=0.1``, ...) are stored with the run's final metrics, so
arms are compared on them like on ``val_accuracy``.

User data (``path`` or ``loader``) may set ``[data] nonfinite = "drop"`` to
drop the rows whose features are NaN or infinite instead of refusing the data
(the default, ``"refuse"``, is not written into the normalised spec).

Checked before anything runs: every number anywhere in the spec is finite
(``train.learning_rate: `learning_rate` must be a finite number. Received:
learning_rate=inf``) and integers fit TOML's 64 bits; the study name (at most
100 characters as written, so an override's suffix still fits) and arm names
(at most 100; expanded grid names at most 300) are non-empty, without leading
or trailing whitespace and without control or invisible characters (terminal
escapes, tabs, line breaks, zero-width and bidi marks), shown escaped in the
error; and sizes have hard caps: ``study.seeds <= 10,000``, ``train.epochs <=
1,000,000``, ``train.batch_size <= 1,000,000`` and at most 1,000 arms after
grid expansion (the memory a study needs on this machine is the runner's
pre-flight). A spec file must be a UTF-8 text file of at most 10 MiB.

The spec hash is the sha256 of the canonical JSON (sorted keys) of the
normalised spec without ``study.store``: the store uses it to refuse resuming
a study whose spec changed.

Example:
    >>> from noisewise.study import load_spec
    >>> spec = load_spec({
    ...     "study": {"name": "demo", "seeds": 3},
    ...     "data": {"name": "circles"},
    ...     "model": {"name": "mlp", "hidden": [16]},
    ...     "arms": [{"name": "baseline"},
    ...              {"name": "pre", "noise": [{"type": "gaussian",
    ...               "where": "pre_activation", "stddev": 0.1}],
    ...               "grid": {"noise[0].stddev": [0.1, 1.0]}}],
    ... })
    >>> [arm.name for arm in spec.arms]
    ['baseline', 'pre[stddev=0.1]', 'pre[stddev=1.0]']
"""

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import stat
import tomllib
from pathlib import Path

import keras

from noisewise._validation import (
    _is_real, check_int, check_name, check_number, check_range, is_finite_number,
)
from noisewise.study import datasets, models


class SpecError(ValueError):
    """An invalid study spec; the message starts with the offending key path.

    The message is one printable line: a control or invisible character from
    the spec (a key, a name, a cell of the data) is shown escaped (``\\x1b``),
    so it never reaches a terminal raw.
    """

    def __init__(self, message):
        text = str(message)
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in text))


@dataclasses.dataclass(frozen=True, eq=False)
class Arm:
    """One expanded arm: its name, noise entries and, for grid arms, the grid point.

    Attributes:
        name: Unique arm name (``parent[key=value]`` for grid arms).
        noise: Tuple of noise entry dicts. An arm with ``augment`` ends it with
            ``{"type": "augment", "transforms": [...], "value_range": ...}``,
            so every executor hands it to ``models.build_model`` with the noise.
        parent: The grid arm it was expanded from, else None.
        params: ``{grid key path: value}`` of this grid point (empty otherwise).
        position: Index in the expanded arm list.
        augment: Tuple of the arm's augmentation transforms (empty if none).
    """

    name: str
    noise: tuple = ()
    parent: str = None
    params: dict = dataclasses.field(default_factory=dict)
    position: int = 0
    augment: tuple = ()


_TRAIN = {
    "epochs": 100, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.001,
    "optimizer_options": {}, "loss": "auto", "metrics": ["accuracy"], "validate_every": 1,
}
_SECTIONS = ("study", "data", "model", "train", "arms", "robustness")
# Hard caps, checked before anything runs: a billion seeds or epochs once grew
# memory until the system killed the process. What fits this machine (memory
# of a chunk, size of the stored curves) is the runner's pre-flight.
MAX_SEEDS = 10_000
MAX_EPOCHS = 1_000_000
MAX_BATCH_SIZE = 1_000_000
MAX_ARMS = 1_000
# Names reach terminals, reports and file names. The study name as written is
# capped at MAX_NAME, so the suffix an override adds (":seeds=10000,epochs=
# 1000000" at most, given the caps) always fits; an expanded grid arm's name
# carries its grid values and gets more room.
MAX_NAME = 100
MAX_GRID_NAME = 300
_OVERRIDE_SUFFIX = re.compile(r":(?:seeds=\d+(?:,epochs=\d+)?|epochs=\d+)$")
_MAX_DEPTH = 32  # tables and lists nested deeper are no spec (and may be cyclic dicts)
MAX_SPEC_BYTES = 10 * 2**20
NONFINITE = ("refuse", "drop")
_GRID_KEY = re.compile(r"^noise\[(\d+)\]\.([A-Za-z_]\w*)$")
_AUGMENT_GRID_KEY = re.compile(r"^augment\[(\d+)\]\.([A-Za-z_]\w*)$")


def _fail(path, message):
    raise SpecError(f"{path}: {message}")


def _table(value, path, required=True):
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        _fail(path, f"must be a table (dict). Received: {value!r}")
    return value


def _unknown(table, allowed, path):
    extra = sorted(set(table) - set(allowed), key=str)
    if extra:
        _fail(f"{path}.{extra[0]}", f"unknown key; allowed keys: {', '.join(sorted(allowed))}")


def _check_leaves(value, path, name, depth=0):
    """Refuse NaN, +-inf and integers beyond TOML's 64 bits anywhere in a section.

    One sweep before the section checks, so that every numeric key (noise
    levels, optimizer options, loader arguments, robustness budgets) is
    refused with its key path, including those only Keras reads later.
    """
    if depth > _MAX_DEPTH:
        _fail(path, f"nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                _fail(path, f"keys must be strings. Received key: {key!r}")
            _check_leaves(item, f"{path}.{key}", key, depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_leaves(item, f"{path}[{i}]", f"{name}[{i}]", depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -(2**63) <= value < 2**63:
            _fail(path, f"`{name}` must be a 64-bit integer (TOML's range). "
                  f"Received: an integer of {value.bit_length()} bits")
    elif _is_real(value) and not is_finite_number(value):
        _fail(path, f"`{name}` must be a finite number. Received: {name}={value!r}")


def _named(path, value, max_length):
    return _checked(path, lambda n, v: check_name(n, v, max_length=max_length), "name", value)


def _check_study_name(name):
    if not isinstance(name, str) or not name.strip():
        _fail("study.name", f"required: a non-empty string naming the study. Received: {name!r}")
    suffix = _OVERRIDE_SUFFIX.search(name)
    written = name[:suffix.start()] if suffix else name
    if len(written) > MAX_NAME:
        _fail("study.name", f"must be at most {MAX_NAME} characters (a --seeds or --epochs "
              f"override adds a suffix to it). Received: {len(written)} characters, "
              f"{written[:40]!r}...")
    _named("study.name", name, MAX_NAME + len(suffix.group()) if suffix else MAX_NAME)
    return name


def _checked(path, check, name, value):
    """Run a noisewise check (raises ValueError) and prefix its message with the path."""
    try:
        return check(name, value)
    except ValueError as e:
        _fail(path, str(e))


def _options(table, catalog, path):
    """Fill defaults and check the options of a built-in dataset or model."""
    out = {}
    for key, (default, check) in catalog.items():
        value = table.get(key, default)
        out[key] = _checked(f"{path}.{key}", check, key, copy.deepcopy(value))
    return out


def _callable_ref(value, path):
    if not isinstance(value, str) or not re.fullmatch(r"[\w.]+:[\w.]+", value):
        _fail(path, f"must be 'package.module:function'. Received: {value!r}")
    return value


def _check_data(data):
    data = dict(_table(data, "data"))
    sources = [k for k in ("name", "path", "loader") if k in data]
    if len(sources) != 1:
        _fail("data", "give exactly one of `name` (built-in: "
              f"{', '.join(datasets.BUILTIN)}), `path` (.npz or .csv) or `loader` "
              f"('module:function'). Received keys: {sorted(data)}")
    source = sources[0]
    # `nonfinite` (user data only) is written into the normalised spec only when
    # it is not the default, so existing specs keep their hash.
    nonfinite = data.pop("nonfinite", "refuse") if source != "name" else "refuse"
    if nonfinite not in NONFINITE:
        _fail("data.nonfinite", f"must be one of {', '.join(map(repr, NONFINITE))} (what to do "
              f"with rows holding NaN or infinite values). Received: {nonfinite!r}")
    extra = {"nonfinite": nonfinite} if nonfinite != "refuse" else {}
    if source == "name":
        name = data["name"]
        if name not in datasets.BUILTIN:
            _fail("data.name", f"unknown dataset {name!r}; built-in datasets: "
                  f"{', '.join(datasets.BUILTIN)} (or use `path` / `loader`)")
        _unknown(data, ["name", *datasets.BUILTIN[name]], "data")
        return {"name": name, **_options(data, datasets.BUILTIN[name], "data")}
    if source == "path":
        path = data["path"]
        suffix = Path(path).suffix.lower() if isinstance(path, str) else None
        if suffix not in datasets.FILE_OPTIONS:
            _fail("data.path", f"must be a .npz or .csv file. Received: {path!r}")
        catalog = datasets.FILE_OPTIONS[suffix]
        _unknown(data, ["path", *catalog], "data")
        return {"path": path, **_options(data, catalog, "data"), **extra}
    _callable_ref(data["loader"], "data.loader")
    return {**data, **extra}


def _check_model(model):
    model = dict(_table(model, "model"))
    if ("name" in model) == ("builder" in model):
        _fail("model", "give exactly one of `name` (built-in: "
              f"{', '.join(models.BUILTIN)}) or `builder` ('module:function'). "
              f"Received keys: {sorted(model)}")
    if "builder" in model:
        _callable_ref(model["builder"], "model.builder")
        return model
    name = model["name"]
    if name not in models.BUILTIN:
        _fail("model.name", f"unknown model {name!r}; built-in models: "
              f"{', '.join(models.BUILTIN)} (or use `builder`)")
    _unknown(model, ["name", *models.BUILTIN[name]], "model")
    return {"name": name, **_options(model, models.BUILTIN[name], "model")}


def _int(path, value, low, high=None):
    return _checked(path, lambda n, v: check_int(n, v, low=low, high=high),
                    path.rsplit(".", 1)[-1], value)


def _check_train(train):
    train = _table(train, "train", required=False)
    _unknown(train, _TRAIN, "train")
    out = {**copy.deepcopy(_TRAIN), **copy.deepcopy(train)}
    caps = {"epochs": MAX_EPOCHS, "batch_size": MAX_BATCH_SIZE, "validate_every": None}
    for key, cap in caps.items():
        out[key] = _int(f"train.{key}", out[key], 1, cap)
    out["learning_rate"] = _checked("train.learning_rate", lambda n, v: check_number(
        n, v, low=0.0, low_open=True), "learning_rate", out["learning_rate"])
    options = _table(out["optimizer_options"], "train.optimizer_options")
    try:
        keras.optimizers.get({"class_name": out["optimizer"],
                              "config": {"learning_rate": out["learning_rate"], **options}})
    except Exception as e:  # noqa: BLE001 -- Keras raises several kinds for bad options
        _fail("train.optimizer", f"not a usable Keras optimizer with these options "
              f"({e}). Received: optimizer={out['optimizer']!r}, options={options}")
    if out["loss"] != "auto":
        try:
            keras.losses.get(out["loss"])
        except (ValueError, TypeError):
            _fail("train.loss", f"must be 'auto' or a Keras loss name. Received: {out['loss']!r}")
    metrics = out["metrics"]
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        _fail("train.metrics", f"must be a list of Keras metric names. Received: {metrics!r}")
    for i, m in enumerate(metrics):
        try:
            keras.metrics.get(m)
        except (ValueError, TypeError):
            _fail(f"train.metrics[{i}]", f"unknown Keras metric {m!r}")
    return out


def _plain_numbers(entry):
    """Ints to floats in noise arguments, so ``stddev = 1`` and ``1.0`` hash alike."""
    out = {}
    for key, value in entry.items():
        if key == "noise_shape":
            out[key] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, list):
            out[key] = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                        for v in value]
        else:
            out[key] = value
    return out


def _check_noise(entry, path):
    entry = _table(entry, path)
    kind = entry.get("type")
    if kind not in models.NOISE_TYPES:
        _fail(f"{path}.type", f"unknown noise type {kind!r}; allowed: "
              f"{', '.join(models.NOISE_TYPES)}")
    required, allowed = models.noise_arguments(kind)
    has_where = kind not in models.UNPLACED
    _unknown(entry, ["type", *(["where"] if has_where else []), *allowed], path)
    if has_where and entry.get("where") not in models.WHERE:
        _fail(f"{path}.where", f"must be one of {', '.join(models.WHERE)}. "
              f"Received: {entry.get('where')!r}")
    for key in required:
        if key not in entry:
            _fail(f"{path}.{key}", f"missing; a {kind!r} noise entry needs `{key}`")
    entry = _plain_numbers(entry)
    try:
        models.check_noise(entry)
    except (ValueError, TypeError) as e:
        named = re.match(r"`(\w+)`", str(e))
        key = named.group(1) if named and named.group(1) in entry else None
        _fail(f"{path}.{key}" if key else path, str(e))
    return entry


def _check_grid_value(entry, path):
    try:
        models.check_noise(entry)
    except (ValueError, TypeError) as e:
        _fail(path, str(e))


def _grid_points(arm, path):
    grid = _table(arm.get("grid"), f"{path}.grid", required=False)
    keys = []
    for key, values in grid.items():
        match, section = _GRID_KEY.match(key), "noise"
        if not match and _AUGMENT_GRID_KEY.match(key):
            match, section = _AUGMENT_GRID_KEY.match(key), "augment"
        entries = arm.get(section) or []
        if not match or int(match.group(1)) >= len(entries):
            _fail(f"{path}.grid.{key}", f"no such key in arm {arm.get('name')!r}: a grid key "
                  f"must be noise[i].<argument> with i < {len(arm.get('noise') or [])} or "
                  f"augment[i].<argument> with i < {len(arm.get('augment') or [])}")
        index, leaf = int(match.group(1)), match.group(2)
        kind = entries[index].get("type")
        if section == "noise":
            _, allowed = models.noise_arguments(kind)
        else:
            allowed = _augment_arguments(kind)
        if leaf not in allowed:
            _fail(f"{path}.grid.{key}", f"no such key: {kind!r} {section} "
                  f"has arguments {', '.join(allowed)}")
        if not isinstance(values, list) or not values:
            _fail(f"{path}.grid.{key}", f"must be a non-empty list of values. Received: {values!r}")
        keys.append((key, section, index, leaf, values))
    return keys


def _label(keys, combo):
    leaves = [leaf for _, _, _, leaf, _ in keys]
    parts = []
    for (key, _, _, leaf, _), value in zip(keys, combo):
        shown = leaf if leaves.count(leaf) == 1 else key
        parts.append(f"{shown}={value}")
    return ",".join(parts)


def _expand_arm(arm, path, position):
    name = arm.get("name")
    if isinstance(name, str) and name:
        _named(f"{path}.name", name, MAX_NAME)  # first: an escape sequence holds a bracket
    if not isinstance(name, str) or not name or any(c in name for c in "[]"):
        _fail(f"{path}.name", f"must be a non-empty string without brackets. Received: {name!r}")
    _unknown(arm, ["name", "noise", "grid", "augment", "augment_value_range"], path)
    noise = arm.get("noise", [])
    if not isinstance(noise, list):
        _fail(f"{path}.noise", f"must be a list of noise tables. Received: {noise!r}")
    clean = [_check_noise(e, f"{path}.noise[{i}]") for i, e in enumerate(noise)]
    for kind in models.UNPLACED:
        if sum(e["type"] == kind for e in clean) > 1:
            _fail(f"{path}.noise", f"at most one {kind!r} entry per arm")
    augment, value_range = _check_augment(arm, path)
    keys = _grid_points({**arm, "noise": clean, "augment": augment}, path)
    normalised = {"name": name, "noise": clean}
    if augment:  # absent or empty: the normalised arm (and its hash) as before
        normalised["augment"] = augment
    if value_range is not None:
        normalised["augment_value_range"] = list(value_range)
    if not keys:
        return normalised, [_arm(name, clean, augment, value_range, position=position)]
    size = math.prod(len(values) for *_, values in keys)
    if position + size > MAX_ARMS:  # before expanding: a large grid is a large product
        _fail(f"{path}.grid", f"expands to {size:,} arms, and a study has at most "
              f"{MAX_ARMS:,} arms ({position} before this one)")
    grid = {key: [_plain_numbers({leaf: v})[leaf] if section == "noise" else v for v in values]
            for key, section, _, leaf, values in keys}
    normalised["grid"] = grid
    for key, section, index, leaf, values in keys:  # each value alone, so the error names it
        for j, value in enumerate(grid[key]):
            where = f"{path}.grid.{key}[{j}]"
            if section == "noise":
                _check_grid_value({**clean[index], leaf: value}, where)
            else:
                _check_augment_grid_value({**augment[index], leaf: value}, where, value_range)
    expanded = []
    for combo in itertools.product(*grid.values()):
        entries = {"noise": copy.deepcopy(clean), "augment": copy.deepcopy(augment)}
        for (key, section, index, leaf, _), value in zip(keys, combo):
            entries[section][index][leaf] = value
        label = f"{name}[{_label(keys, combo)}]"
        _named(f"{path}.grid", label, MAX_GRID_NAME)
        for i, entry in enumerate(entries["noise"]):
            _check_grid_value(entry, f"{path}.grid ({label}).noise[{i}]")
        for i, entry in enumerate(entries["augment"]):
            _check_augment_grid_value(entry, f"{path}.grid ({label}).augment[{i}]", value_range)
        expanded.append(_arm(label, entries["noise"], entries["augment"], value_range,
                             parent=name, params=dict(zip(grid, combo)),
                             position=position + len(expanded)))
    return normalised, expanded


# -- augmentation at the model input: arms[i].augment (noisewise.augment) --------
# An arm's ``augment`` list uses the transform spec of noisewise.augment.from_spec
# (``{type = "rotate", factor = 10, unit = "degrees"}``, ...); the optional
# ``augment_value_range = [low, high]`` is the data's range for the transforms
# that need one (brightness, contrast, noise clipping), by default the training
# data's minimum and maximum. Numbers are kept as written (a Keras kernel size
# must stay an int), and models.build_model puts the pipeline before any input
# noise.
def _augment_arguments(kind):
    from noisewise.augment.image import TRANSFORMS

    return list(TRANSFORMS[kind][1]) if kind in TRANSFORMS else []


def _check_augment_entry(entry, path, value_range):
    from noisewise.augment.image import TRANSFORMS, build_transform

    entry = _table(entry, path)
    kind = entry.get("type")
    if kind not in TRANSFORMS:
        _fail(f"{path}.type",
              f"unknown transform {kind!r}; allowed: {', '.join(sorted(TRANSFORMS))}")
    if TRANSFORMS[kind][3]:
        _fail(f"{path}.type", f"{kind!r} mixes labels, which a layer at the model's input never "
              "sees; use it in a data pipeline (noisewise.augment.image_pipeline)")
    _unknown(entry, ["type", *TRANSFORMS[kind][1]], path)
    try:
        build_transform(entry, seed=0, value_range=value_range or (0.0, 1.0), where=path)
    except ValueError as e:
        text, prefix = str(e), f"{path} ({kind}): "
        if not text.startswith(prefix):
            raise SpecError(text) from None  # already names its key path
        detail = text[len(prefix):]
        named = re.search(r"`(\w+)`", detail)
        key = named.group(1) if named else None
        if key == "stddev" and "noise_std" in entry:
            key = "noise_std"  # the alias the entry used
        _fail(f"{path}.{key}" if key in entry else path, detail)
    return copy.deepcopy(entry)


def _check_augment_grid_value(entry, path, value_range):
    try:
        _check_augment_entry(entry, "augment", value_range)
    except SpecError as e:
        _fail(path, str(e).split(": ", 1)[-1])


def _check_augment(arm, path):
    """The arm's validated transforms and its ``augment_value_range`` (or None)."""
    value_range = arm.get("augment_value_range")
    if value_range is not None:
        value_range = _checked(f"{path}.augment_value_range",
                               lambda n, v: check_range(n, v, allow_none=False),
                               "augment_value_range", value_range)
    augment = arm.get("augment", [])
    if not isinstance(augment, list):
        _fail(f"{path}.augment", f"must be a list of transform tables. Received: {augment!r}")
    if value_range is not None and not augment:
        _fail(f"{path}.augment_value_range", "given without an `augment` list")
    clean = [_check_augment_entry(e, f"{path}.augment[{i}]", value_range)
             for i, e in enumerate(augment)]
    return clean, value_range


def _arm(name, noise, augment, value_range, **kwargs):
    if augment:
        entry = {"type": "augment", "transforms": copy.deepcopy(list(augment)),
                 "value_range": None if value_range is None else list(value_range)}
        noise = [*noise, entry]
    return Arm(name, tuple(noise), augment=tuple(augment), **kwargs)


@dataclasses.dataclass(frozen=True, eq=False)
class StudySpec:
    """A validated, normalised study spec.

    Attributes:
        name, seeds, seed, store, reference: From ``[study]`` (defaults filled).
        data, model, train: The normalised tables.
        arms: The expanded arms (:class:`Arm`), grid points included.
        base_dir: Folder relative paths are resolved against (the spec file's
            folder; the current directory for dict specs).
        robustness: The ``[robustness]`` table or None: evaluations run on
            every trained model, their metrics stored with the run's final
            metrics (see :mod:`noisewise.robust._study`).
    """

    name: str
    seeds: int
    seed: int
    store: str
    reference: str
    data: dict
    model: dict
    train: dict
    arms: tuple
    base_dir: str
    _normalised: dict = dataclasses.field(repr=False)
    robustness: dict = None

    def to_dict(self):
        """The normalised spec as a plain dict (arms unexpanded, grids kept)."""
        return copy.deepcopy(self._normalised)

    @property
    def spec_hash(self):
        d = self.to_dict()
        d["study"].pop("store", None)
        text = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    hash = spec_hash

    def arm(self, name):
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(name)

    def store_path(self):
        """``study.store`` resolved against the spec folder, or None when unset."""
        if self.store is None:
            return None
        return str(Path(self.base_dir) / self.store)


def validate(raw, base_dir=None):
    """Validate and normalise a spec dict; returns a :class:`StudySpec`."""
    raw = _table(raw, "spec")
    _unknown(raw, _SECTIONS, "spec")
    for section in _SECTIONS:
        if section in raw:
            _check_leaves(raw[section], section, section)
    raw = copy.deepcopy(raw)
    study = dict(_table(raw.get("study"), "study"))
    _unknown(study, ["name", "seeds", "seed", "store", "reference"], "study")
    name = _check_study_name(study.get("name"))
    seeds = _int("study.seeds", study.get("seeds", 30), 1, MAX_SEEDS)
    seed = _int("study.seed", study.get("seed", 0), 0)
    store = study.get("store")
    if store is not None and not isinstance(store, str):
        _fail("study.store", f"must be a file path. Received: {store!r}")
    if "data" not in raw:
        _fail("data", "missing section: say which dataset to train on, e.g. "
              "[data] name = \"circles\"")
    data = _check_data(raw["data"])
    if "model" not in raw:
        _fail("model", "missing section, e.g. [model] name = \"mlp\"")
    model = _check_model(raw["model"])
    train = _check_train(raw.get("train"))
    arms_raw = raw.get("arms")
    if not isinstance(arms_raw, list) or not arms_raw:
        _fail("arms", "need at least one [[arms]] table (e.g. a baseline without noise)")
    if len(arms_raw) > MAX_ARMS:
        _fail("arms", f"a study has at most {MAX_ARMS:,} arms. Received: {len(arms_raw):,}")
    normalised_arms, arms = [], []
    for i, arm in enumerate(arms_raw):
        normal, expanded = _expand_arm(_table(arm, f"arms[{i}]"), f"arms[{i}]", len(arms))
        normalised_arms.append(normal)
        arms.extend(expanded)
        if len(arms) > MAX_ARMS:
            _fail("arms", f"a study has at most {MAX_ARMS:,} arms; arms[{i}] brings them "
                  f"to {len(arms):,}")
    names = [a.name for a in arms]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        _fail("arms", f"arm names must be unique. Repeated: {duplicated}")
    reference = study.get("reference", names[0])
    if reference not in names:
        _fail("study.reference", f"must name an arm: {', '.join(names)}. Received: {reference!r}")
    robustness = _check_robustness(raw.get("robustness"))
    normalised = {
        "study": {"name": name, "seeds": seeds, "seed": seed, "reference": reference,
                  **({"store": store} if store is not None else {})},
        "data": data, "model": model, "train": train, "arms": normalised_arms,
        **({"robustness": robustness} if robustness is not None else {}),
    }
    return StudySpec(name, seeds, seed, store, reference, data, model, train, tuple(arms),
                     str(base_dir or os.getcwd()), normalised, robustness=robustness)


def _check_robustness(table):
    """The optional ``[robustness]`` table: evaluations run on every trained model."""
    if table is None:
        return None
    table = copy.deepcopy(_table(table, "robustness"))
    from noisewise.robust._study import check_config

    try:
        check_config(table)
    except ValueError as e:
        message = str(e)
        found = re.match(r"^`(robustness(?:\.[\w\[\]]+)*)`", message)
        _fail(found.group(1) if found else "robustness", message)
    return table


def _override(raw, seeds, epochs):
    """Apply CLI overrides; a changed value also renames the study (see load_spec)."""
    raw = copy.deepcopy(raw)
    study = raw.setdefault("study", {})
    parts = []
    if seeds is not None and seeds != study.get("seeds", 30):
        study["seeds"] = seeds
        parts.append(f"seeds={seeds}")
    train = raw.setdefault("train", {}) if isinstance(raw.get("train", {}), dict) else {}
    if epochs is not None and epochs != train.get("epochs", _TRAIN["epochs"]):
        train["epochs"] = epochs
        parts.append(f"epochs={epochs}")
    if parts and isinstance(study.get("name"), str):
        study["name"] = f"{study['name']}:{','.join(parts)}"
    return raw


def load_spec(source, *, seeds=None, epochs=None, base_dir=None):
    """Load and validate a study spec.

    Args:
        source: Path to a TOML file, a dict with the same structure, or a
            :class:`StudySpec` (returned as is when no override is given).
        seeds: Optional override of ``study.seeds``.
        epochs: Optional override of ``train.epochs``. Overrides are part of
            the spec (and of its hash), and a study run with an override that
            changes a value is stored under its own name,
            ``"<name>:seeds=2,epochs=50"``, so a quick run never collides with
            (or mixes into) the full study.
        base_dir: Folder for relative paths; default the TOML file's folder,
            or the current directory for a dict.

    Returns:
        A :class:`StudySpec`.

    Raises:
        SpecError: On any invalid key or value (message starts with its path).
    """
    if isinstance(source, StudySpec):
        if seeds is None and epochs is None:
            return source
        return validate(_override(source.to_dict(), seeds, epochs), source.base_dir)
    if isinstance(source, dict):
        raw = source
    else:
        path = Path(os.fspath(source))
        raw = _read_toml(path)
        base_dir = base_dir or path.resolve().parent
    return validate(_override(raw, seeds, epochs), base_dir)


def _read_toml(path):
    """The TOML file's tables; every way a path can fail to be a spec is a SpecError."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise SpecError(f"{path}: is a folder, not a spec file")
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device could block or never end
            raise SpecError(f"{path}: not a regular file, so not a spec file")
        if info.st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: {info.st_size:,} bytes is too large for a spec file "
                            f"(at most {MAX_SPEC_BYTES:,})")
        data = path.read_bytes()
    except SpecError:
        raise
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (OSError, ValueError) as e:  # permissions, a name too long, a NUL in the path
        detail = getattr(e, "strerror", None) or e
        raise SpecError(f"{path}: cannot read the spec file ({detail})") from None
    if b"\x00" in data:
        raise SpecError(f"{path}: not a text file (it holds NUL bytes); a spec is a TOML file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not a text file (byte {e.start} is not UTF-8); a spec is "
                        "a UTF-8 TOML file") from None
    try:
        return tomllib.loads(text.removeprefix("\ufeff"))  # an editor's byte-order mark
    except (ValueError, RecursionError) as e:  # TOMLDecodeError, or nesting past the stack
        detail = e if isinstance(e, ValueError) else "nested too deeply"
        raise SpecError(f"{path}: not valid TOML ({detail})") from None
