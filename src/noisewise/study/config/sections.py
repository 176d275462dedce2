"""Checks of the [study], [data], [model], [train] and [robustness] sections.

Each returns its section normalised (defaults filled, so that spelling one out
does not change the hash) or raises a SpecError naming the key path.
"""

import copy
import inspect
import re
from pathlib import Path

from noisewise._core.validation import _is_real, check_int, check_number, is_finite_number
from noisewise.robust.config import ConfigError, check_config
from noisewise.study import datasets, models
from noisewise.study.config.errors import checked, fail, named, table, unknown

TRAIN_DEFAULTS = {
    "epochs": 100, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.001,
    "optimizer_options": {}, "loss": "auto", "metrics": ["accuracy"], "validate_every": 1,
}
SECTIONS = ("study", "data", "model", "train", "arms", "robustness")
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
NONFINITE = ("refuse", "drop")


def check_leaves(value, path, name, depth=0):
    """Refuse NaN, +-inf and integers beyond TOML's 64 bits anywhere in a section.

    One sweep before the section checks, so that every numeric key (noise
    levels, optimizer options, loader arguments, robustness budgets) is
    refused with its key path, including those only Keras reads later.
    """
    if depth > _MAX_DEPTH:
        fail(path, f"nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                fail(path, f"keys must be strings. Received key: {key!r}")
            check_leaves(item, f"{path}.{key}", key, depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_leaves(item, f"{path}[{i}]", f"{name}[{i}]", depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -(2**63) <= value < 2**63:
            fail(path, f"`{name}` must be a 64-bit integer (TOML's range). "
                 f"Received: an integer of {value.bit_length()} bits")
    elif _is_real(value) and not is_finite_number(value):
        fail(path, f"`{name}` must be a finite number. Received: {name}={value!r}")


def integer(path, value, low, high=None):
    return checked(path, lambda n, v: check_int(n, v, low=low, high=high),
                   path.rsplit(".", 1)[-1], value)


def check_study(study):
    """``(name, seeds, seed, store, reference or None)`` of the [study] table."""
    study = dict(table(study, "study"))
    unknown(study, ["name", "seeds", "seed", "store", "reference"], "study")
    name = _check_study_name(study.get("name"))
    seeds = integer("study.seeds", study.get("seeds", 30), 1, MAX_SEEDS)
    seed = integer("study.seed", study.get("seed", 0), 0)
    store = study.get("store")
    if store is not None and not isinstance(store, str):
        fail("study.store", f"must be a file path. Received: {store!r}")
    return name, seeds, seed, store, study.get("reference")


def _check_study_name(name):
    if not isinstance(name, str) or not name.strip():
        fail("study.name", f"required: a non-empty string naming the study. Received: {name!r}")
    suffix = _OVERRIDE_SUFFIX.search(name)
    written = name[:suffix.start()] if suffix else name
    if len(written) > MAX_NAME:
        fail("study.name", f"must be at most {MAX_NAME} characters (a --seeds or --epochs "
             f"override adds a suffix to it). Received: {len(written)} characters, "
             f"{written[:40]!r}...")
    named("study.name", name, MAX_NAME + len(suffix.group()) if suffix else MAX_NAME)
    return name


def _options(entries, catalog, path):
    """Fill defaults and check the options of a built-in dataset or model."""
    out = {}
    for key, (default, check) in catalog.items():
        value = entries.get(key, default)
        out[key] = checked(f"{path}.{key}", check, key, copy.deepcopy(value))
    return out


def _callable_ref(value, path):
    if not isinstance(value, str) or not re.fullmatch(r"[\w.]+:[\w.]+", value):
        fail(path, f"must be 'package.module:function'. Received: {value!r}")
    return value


def check_data(data):
    data = dict(table(data, "data"))
    sources = [k for k in ("name", "path", "loader") if k in data]
    if len(sources) != 1:
        fail("data", "give exactly one of `name` (built-in: "
             f"{', '.join(datasets.BUILTIN)}), `path` (.npz or .csv) or `loader` "
             f"('module:function'). Received keys: {sorted(data)}")
    source = sources[0]
    # `nonfinite` (user data only) is written into the normalised spec only when
    # it is not the default, so existing specs keep their hash.
    nonfinite = data.pop("nonfinite", "refuse") if source != "name" else "refuse"
    if nonfinite not in NONFINITE:
        fail("data.nonfinite", f"must be one of {', '.join(map(repr, NONFINITE))} (what to do "
             f"with rows holding NaN or infinite values). Received: {nonfinite!r}")
    extra = {"nonfinite": nonfinite} if nonfinite != "refuse" else {}
    if source == "name":
        name = data["name"]
        if name not in datasets.BUILTIN:
            fail("data.name", f"unknown dataset {name!r}; built-in datasets: "
                 f"{', '.join(datasets.BUILTIN)} (or use `path` / `loader`)")
        unknown(data, ["name", *datasets.BUILTIN[name]], "data")
        return {"name": name, **_options(data, datasets.BUILTIN[name], "data")}
    if source == "path":
        path = data["path"]
        suffix = Path(path).suffix.lower() if isinstance(path, str) else None
        if suffix not in datasets.FILE_OPTIONS:
            fail("data.path", f"must be a .npz or .csv file. Received: {path!r}")
        catalog = datasets.FILE_OPTIONS[suffix]
        unknown(data, ["path", *catalog], "data")
        return {"path": path, **_options(data, catalog, "data"), **extra}
    _callable_ref(data["loader"], "data.loader")
    return {**data, **extra}


def check_model(model):
    model = dict(table(model, "model"))
    if ("name" in model) == ("builder" in model):
        fail("model", "give exactly one of `name` (built-in: "
             f"{', '.join(models.BUILTIN)}) or `builder` ('module:function'). "
             f"Received keys: {sorted(model)}")
    if "builder" in model:
        _callable_ref(model["builder"], "model.builder")
        return model
    name = model["name"]
    if name not in models.BUILTIN:
        fail("model.name", f"unknown model {name!r}; built-in models: "
             f"{', '.join(models.BUILTIN)} (or use `builder`)")
    unknown(model, ["name", *models.BUILTIN[name]], "model")
    return {"name": name, **_options(model, models.BUILTIN[name], "model")}


def check_train(train):
    train = table(train, "train", required=False)
    unknown(train, TRAIN_DEFAULTS, "train")
    out = {**copy.deepcopy(TRAIN_DEFAULTS), **copy.deepcopy(train)}
    caps = {"epochs": MAX_EPOCHS, "batch_size": MAX_BATCH_SIZE, "validate_every": None}
    for key, cap in caps.items():
        out[key] = integer(f"train.{key}", out[key], 1, cap)
    out["learning_rate"] = checked("train.learning_rate", lambda n, v: check_number(
        n, v, low=0.0, low_open=True), "learning_rate", out["learning_rate"])
    options = table(out["optimizer_options"], "train.optimizer_options")
    problem = _optimizer_problem(out["optimizer"], options)
    if problem:
        fail("train.optimizer", f"not a usable Keras optimizer with these options "
             f"({problem}). Received: optimizer={out['optimizer']!r}, options={options}")
    keras = _keras()
    if out["loss"] != "auto":
        try:
            keras.losses.get(out["loss"])
        except (ValueError, TypeError):
            fail("train.loss", f"must be 'auto' or a Keras loss name. Received: {out['loss']!r}")
    metrics = out["metrics"]
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        fail("train.metrics", f"must be a list of Keras metric names. Received: {metrics!r}")
    for i, m in enumerate(metrics):
        try:
            keras.metrics.get(m)
        except (ValueError, TypeError):
            fail(f"train.metrics[{i}]", f"unknown Keras metric {m!r}")
    return out


def _keras():
    import keras  # here, not at the top: `noisewise schema` and --help never load Keras

    return keras


def _optimizer_problem(name, options):
    """Why ``name`` with ``options`` is no Keras optimizer, or None; builds no optimizer.

    The class is looked up by the names ``keras.optimizers.get`` accepts (the
    class name or its lower case) and the options are matched against its
    constructor's signature; their values are checked when the pre-flight
    builds the optimizer.
    """
    keras = _keras()
    base = keras.optimizers.Optimizer
    classes = {}
    for cls in vars(keras.optimizers).values():
        if isinstance(cls, type) and issubclass(cls, base) and cls is not base:
            classes.setdefault(cls.__name__, cls)
            classes.setdefault(cls.__name__.lower(), cls)
    if not isinstance(name, str) or name not in classes:
        shown = ", ".join(sorted(n for n in classes if n.islower()))
        return f"unknown optimizer {name!r}; Keras optimizers: {shown}"
    parameters = inspect.signature(classes[name].__init__).parameters
    allowed = [p for p in parameters if p != "self" and parameters[p].kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    extra = sorted(set(options) - set(allowed) - {"learning_rate"})
    if extra:
        return f"unknown option {extra[0]!r}; allowed: {', '.join(allowed)}"
    return None


def check_robustness(entries):
    """The optional ``[robustness]`` table: evaluations run on every trained model."""
    if entries is None:
        return None
    entries = copy.deepcopy(table(entries, "robustness"))
    try:
        check_config(entries)
    except ConfigError as e:
        fail(e.path, str(e))
    return entries
