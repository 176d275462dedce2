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
from noisewise.study import datasets, models, sources
from noisewise.study.config.errors import SpecError, checked, fail, named, table, unknown
from noisewise.study.data.label_noise import ASYMMETRIC_DATA, check_label_noise
from noisewise.study.data.labeled import check_spec as check_labeled

TRAIN_DEFAULTS = {
    "epochs": 100, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.001,
    "optimizer_options": {}, "loss": "auto", "metrics": ["accuracy"], "validate_every": 1,
}
SECTIONS = ("study", "data", "model", "train", "arms", "robustness", "audit")
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
# The keys that say where a study's data comes from, one per [data] table.
DATA_SOURCES = ("name", "path", "loader", "arrays", "x", "train")


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
    """A ``'package.module:function'`` string as is, or a callable's description
    (``"<callable module.qualname sha256:...>"``, see :mod:`~noisewise.study.sources`)."""
    if callable(value) and not isinstance(value, str):
        return _python(sources.describe_callable, value, path=path)
    if not isinstance(value, str) or not re.fullmatch(r"[\w.]+:[\w.]+", value):
        fail(path, f"must be 'package.module:function' or a callable. Received: {value!r}")
    return value


def _python(check, *args, path=None):
    """``check(*args)``; its ValueError becomes a SpecError (prefixed with ``path``
    if given; else the message starts with its key path)."""
    try:
        return check(*args)
    except ValueError as e:
        if path:
            fail(path, str(e))
        raise SpecError(str(e)) from None


def _plain_options(entries, section, skip):
    """Refuse Python objects among options: the stored spec must describe each value."""
    for key, value in entries.items():
        if key not in skip and not sources.is_plain(value):
            fail(f"{section}.{key}", "must be a TOML value (string, number, boolean, list or "
                 f"table); a Python object goes only in {', '.join(skip)}. "
                 f"Received: {type(value).__name__}")


def _task_keys(check):
    """``task`` and ``standardize`` apply to every data source: taken out of the
    table before the source's own checks and put back into its normalised form,
    each only when it is not the default (so existing specs keep their hash)."""
    def wrapper(data):
        data = dict(table(data, "data"))
        builtin = datasets.BUILTIN_TASKS.get(data.get("name"), "classification")
        task = data.pop("task", builtin)
        if task not in datasets.TASKS:
            fail("data.task", f"must be one of {', '.join(map(repr, datasets.TASKS))}. "
                 f"Received: {task!r}")
        if "name" in data and task != builtin:
            fail("data.task", f"the built-in dataset {data['name']!r} is a {builtin} task. "
                 f"Received: task={task!r}")
        standardize = data.pop("standardize", False)
        if not isinstance(standardize, bool):
            fail("data.standardize", "must be true (rescale features with the training "
                 f"split's mean and std) or false. Received: {standardize!r}")
        label_noise = _label_noise(data.pop("label_noise", None), data, task)
        labeled = data.pop("labeled", None)
        if labeled is not None:  # absent: the normalised table (and its hash) as before
            labeled = checked("data.labeled", lambda n, v: check_labeled(v, data, task),
                              "labeled", labeled)
        out = check(data)
        return {**out, **({"task": task} if task != "classification" else {}),
                **({"standardize": True} if standardize else {}),
                **({"label_noise": label_noise} if label_noise else {}),
                **({"labeled": labeled} if labeled is not None else {})}

    wrapper.__doc__ = check.__doc__
    return wrapper


def _label_noise(entry, data, task):
    """The checked ``[data] label_noise`` table, or None when absent (rate 0 included:
    no label changes, so the spec keeps the hash of one without it)."""
    if entry is None:
        return None
    entry = table(entry, "data.label_noise")
    unknown(entry, ["kind", "rate"], "data.label_noise")
    for key in ("kind", "rate"):
        if key not in entry:
            fail(f"data.label_noise.{key}", "missing; label_noise needs `kind` "
                 "('symmetric', 'asymmetric' or 'pairflip') and `rate`")
    try:
        entry = check_label_noise(entry)
    except ValueError as e:
        key = re.match(r"`(\w+)`", str(e)).group(1)
        fail(f"data.label_noise.{key}", str(e))
    if task != "classification":
        fail("data.label_noise", f"corrupts class labels; the data's task is {task}")
    if "train" in data:
        fail("data.label_noise", "a streaming source is not read whole, so its labels "
             "cannot be corrupted once for the study; corrupt them in the source")
    if entry["kind"] == "asymmetric" and data.get("name") not in ASYMMETRIC_DATA:
        fail("data.label_noise.kind", "'asymmetric' is the digit map of Patrini et al. "
             f"(2->7, 3->8, 5<->6, 7->1), defined for the built-in "
             f"{', '.join(ASYMMETRIC_DATA)} data; use 'pairflip' or 'symmetric'. "
             f"Received: kind='asymmetric' with data {data.get('name') or 'of your own'}")
    return entry if entry["rate"] > 0 else None


@_task_keys
def check_data(data):
    data = dict(table(data, "data"))
    given = [k for k in DATA_SOURCES if k in data]
    if len(given) != 1:
        fail("data", "give exactly one of `name` (built-in: "
             f"{', '.join(datasets.BUILTIN)}), `path` (.npz or .csv), `loader` "
             "('module:function' or a callable), `arrays` ((x_train, y_train, x_test, y_test)), "
             "`x` and `y` (split by test_size) or `train` and `test` (streaming sources). "
             f"Received keys: {sorted(data)}")
    source = given[0]
    # `nonfinite` (user data only) is written into the normalised spec only when
    # it is not the default, so existing specs keep their hash. A stream's
    # batches are checked as they come: a non-finite one fails its run.
    nonfinite = data.pop("nonfinite", "refuse") if source not in ("name", "train") else "refuse"
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
    if source in ("arrays", "x", "train"):
        return {**_python(sources.check_python_data, data, source), **extra}
    _plain_options(data, "data", ["loader"])
    return {**data, "loader": _callable_ref(data["loader"], "data.loader"), **extra}


def check_model(model):
    model = dict(table(model, "model"))
    if sum(k in model for k in ("name", "builder", "path")) != 1:
        fail("model", "give exactly one of `name` (built-in: "
             f"{', '.join(models.BUILTIN)}), `builder` ('module:function' or a callable) "
             f"or `path` (a .keras file). Received keys: {sorted(model)}")
    if "builder" in model:
        _plain_options(model, "model", ["builder"])
        return {**model, "builder": _callable_ref(model["builder"], "model.builder")}
    if "path" in model:
        return _check_pretrained(model)
    name = model["name"]
    if name not in models.BUILTIN:
        fail("model.name", f"unknown model {name!r}; built-in models: "
             f"{', '.join(models.BUILTIN)} (or use `builder`)")
    unknown(model, ["name", *models.BUILTIN[name]], "model")
    return {"name": name, **_options(model, models.BUILTIN[name], "model")}


PRETRAINED = {"weights": "keep", "trainable": "all", "reinit": []}


def _names(value, path, what):
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or \
            len(set(value)) != len(value):
        fail(path, f"must be a list of distinct layer names{what}. Received: {value!r}")
    return value


def _check_pretrained(model):
    """``[model] path = "model.keras"``: a saved model, its weights kept or re-initialised,
    all or some of its layers trained (see :mod:`~noisewise.study.models`)."""
    unknown(model, ["path", *PRETRAINED], "model")
    out = {**copy.deepcopy(PRETRAINED), **model}
    if not isinstance(out["path"], str) or Path(out["path"]).suffix.lower() != ".keras":
        fail("model.path", f"must be a .keras file (saved with model.save). "
             f"Received: {out['path']!r}")
    if out["weights"] not in ("keep", "reinit"):
        fail("model.weights", "must be 'keep' (the file's weights) or 'reinit' (initialised "
             f"anew from each replica's seed). Received: {out['weights']!r}")
    if out["trainable"] != "all":
        _names(out["trainable"], "model.trainable", " (the others are frozen), or 'all'")
    _names(out["reinit"], "model.reinit", " re-initialised from each replica's seed")
    if out["reinit"] and out["weights"] == "reinit":
        fail("model.reinit", "every layer is re-initialised already (weights = 'reinit')")
    return out


def check_train(train, task=None):
    """The normalised ``[train]`` table.

    ``task`` is the data's task when known (``"regression"``: the metrics
    default to ``["mae"]``). The options of :data:`TRAIN_OPTIONS` are written
    into the normalised table only when given and not their default, so
    specs without them keep their hash.
    """
    train = table(train, "train", required=False)
    unknown(train, [*TRAIN_DEFAULTS, *TRAIN_OPTIONS], "train")
    defaults = copy.deepcopy(TRAIN_DEFAULTS)
    if task == "regression":
        defaults["metrics"] = list(REGRESSION_METRICS)
    out = {**defaults, **copy.deepcopy(train)}
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
    out["loss"] = loss_name("train.loss", out["loss"])
    if out["loss"] in NOISEWISE_LOSSES:  # its options in full, so defaults hash alike
        out.setdefault("loss_options", {})
    metrics = out["metrics"]
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        fail("train.metrics", f"must be a list of Keras metric names. Received: {metrics!r}")
    for i, m in enumerate(metrics):
        try:
            keras.metrics.get(m)
        except (ValueError, TypeError):
            fail(f"train.metrics[{i}]", f"unknown Keras metric {m!r}")
    for key in TRAIN_OPTIONS:
        if key in out:
            value = TRAIN_OPTIONS[key](f"train.{key}", out.pop(key), out)
            if value is not None:
                out[key] = value
    _check_option_pairs(out)
    return out


# -- the training options studies need, written into the spec only when set ------
REGRESSION_METRICS = ("mae",)
EARLY_STOPPING = {"monitor": "val_loss", "patience": 10, "min_delta": 0.0,
                  "restore_best_weights": True}
# The keys an arm may override (arms[i].train): those that change how one
# model trains, not what the study measures or how the data is split.
ARM_TRAIN_KEYS = ("learning_rate", "weight_decay", "label_smoothing", "loss", "loss_options")
# noisewise.losses by the names a spec uses for them (the short ones are aliases).
NOISEWISE_LOSSES = {"generalized_cross_entropy": ("q",),
                    "symmetric_cross_entropy": ("alpha", "beta", "A")}
LOSS_ALIASES = {"gce": "generalized_cross_entropy", "sce": "symmetric_cross_entropy"}


def loss_name(path, value):
    """``'auto'``, a Keras loss name, or a noisewise loss by its full name (aliases resolved)."""
    value = LOSS_ALIASES.get(value, value) if isinstance(value, str) else value
    if value == "auto" or value in NOISEWISE_LOSSES:
        return value
    try:
        _keras().losses.get(value)
    except (ValueError, TypeError):
        fail(path, "must be 'auto', a Keras loss name or one of "
             f"{', '.join(NOISEWISE_LOSSES)} (aliases {', '.join(LOSS_ALIASES)}). "
             f"Received: {value!r}")
    return value


def _loss_options(path, value, loss):
    """The constructor arguments of a noisewise loss, defaults filled, checked by
    building the loss (its own checks); ``from_logits`` is ``train.from_logits``."""
    value = table(value, path)
    if loss not in NOISEWISE_LOSSES:
        fail(path, f"applies to the losses {', '.join(NOISEWISE_LOSSES)}. Received: "
             f"loss={loss!r}")
    unknown(value, NOISEWISE_LOSSES[loss], path)
    from noisewise import losses  # here, not at the top: it loads Keras

    try:
        built = losses.LOSSES[loss](**value)
    except ValueError as e:
        key = re.search(r"`(\w+)`", str(e))
        fail(f"{path}.{key.group(1)}" if key and key.group(1) in value else path, str(e))
    return {k: getattr(built, k) for k in NOISEWISE_LOSSES[loss]}


def _validation_split(path, value, train):
    return checked(path, lambda n, v: check_number(n, v, low=0.0, high=1.0, low_open=True,
                                                   high_open=True), "validation_split", value)


def _weight_decay(path, value, train=None):
    value = checked(path, lambda n, v: check_number(n, v, low=0.0), "weight_decay", value)
    return float(value) if value else None  # 0 decays nothing: the default


def _label_smoothing(path, value, train=None):
    value = checked(path, lambda n, v: check_number(n, v, low=0.0, high=1.0, high_open=True),
                    "label_smoothing", value)
    return float(value) if value else None


def _from_logits(path, value, train):
    if not isinstance(value, bool):
        fail(path, f"must be true (the model outputs logits) or false (probabilities). "
             f"Received: from_logits={value!r}")
    return value or None


def _class_weight(path, value, train):
    if value == "balanced":
        return value
    if not isinstance(value, dict) or not value:
        fail(path, '"balanced" (weights inversely proportional to the class counts of the '
             "training split) or a table class label -> weight, e.g. { \"0\" = 1.0, "
             f"\"1\" = 5.0 }}. Received: {value!r}")
    out = {}
    for label, weight in value.items():
        out[label] = float(checked(f"{path}.{label}", lambda n, v: check_number(
            n, v, low=0.0, low_open=True), label, weight))
    return out


def _early_stopping(path, value, train):
    value = table(value, path)
    unknown(value, EARLY_STOPPING, path)
    out = {**EARLY_STOPPING, **value}
    allowed = ["val_loss", *(f"val_{m}" for m in train["metrics"])]
    if out["monitor"] not in allowed:
        fail(f"{path}.monitor", f"must be one of {', '.join(allowed)} (a validation curve). "
             f"Received: {out['monitor']!r}")
    out["patience"] = integer(f"{path}.patience", out["patience"], 0)
    out["min_delta"] = float(checked(f"{path}.min_delta", lambda n, v: check_number(
        n, v, low=0.0), "min_delta", out["min_delta"]))
    if not isinstance(out["restore_best_weights"], bool):
        fail(f"{path}.restore_best_weights", "must be true or false. "
             f"Received: {out['restore_best_weights']!r}")
    return out


def schedule_classes():
    schedules = _keras().optimizers.schedules
    base = schedules.LearningRateSchedule
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower(): cls
            for name, cls in vars(schedules).items()
            if isinstance(cls, type) and issubclass(cls, base) and cls is not base}


def _lr_schedule(path, value, train):
    """A Keras LearningRateSchedule by its snake_case name and constructor arguments;
    its ``initial_learning_rate`` is ``train.learning_rate``. Builds nothing."""
    value = copy.deepcopy(table(value, path))
    classes = schedule_classes()
    kind = value.get("type")
    if kind not in classes:
        fail(f"{path}.type", f"unknown learning-rate schedule {kind!r}; Keras schedules: "
             f"{', '.join(sorted(classes))}")
    parameters = inspect.signature(classes[kind].__init__).parameters
    if "initial_learning_rate" in value:
        fail(f"{path}.initial_learning_rate", "the schedule starts from train.learning_rate; "
             "set that instead")
    allowed = [p for p in parameters if p not in ("self", "name", "initial_learning_rate")]
    unknown(value, ["type", *allowed], path)
    for name in allowed:
        if parameters[name].default is inspect.Parameter.empty and name not in value:
            fail(f"{path}.{name}", f"missing; a {kind!r} schedule needs `{name}`")
        if name.endswith("_steps") and name in value:
            value[name] = integer(f"{path}.{name}", value[name], 0 if "warmup" in name else 1)
    return value


TRAIN_OPTIONS = {
    "validation_split": _validation_split, "early_stopping": _early_stopping,
    "lr_schedule": _lr_schedule, "weight_decay": _weight_decay, "class_weight": _class_weight,
    "label_smoothing": _label_smoothing, "from_logits": _from_logits,
    "loss_options": lambda path, value, train: _loss_options(path, value, train["loss"]),
}


def _check_option_pairs(out):
    if "early_stopping" in out and "validation_split" not in out:
        fail("train.early_stopping", "needs train.validation_split: without it the "
             "validation curves are on the test split, and early stopping on the test split "
             "chooses the epoch on the test data")
    if "weight_decay" in out and "weight_decay" in out["optimizer_options"]:
        fail("train.weight_decay", "given twice: also in train.optimizer_options; keep one")


def check_arm_train(entries, path):
    """An arm's ``train`` overrides: only :data:`ARM_TRAIN_KEYS`; the normalised
    table holds the non-default ones (empty: no override)."""
    entries = table(entries, path)
    unknown(entries, ARM_TRAIN_KEYS, path)
    out = {}
    for key, value in entries.items():
        if key == "learning_rate":
            out[key] = checked(f"{path}.{key}", lambda n, v: check_number(
                n, v, low=0.0, low_open=True), key, value)
        elif key == "loss":
            out[key] = loss_name(f"{path}.loss", value)
        elif key == "loss_options":
            if "loss" not in entries:
                fail(f"{path}.loss_options", "give the arm's `loss` with its options")
            out[key] = _loss_options(f"{path}.{key}", value, loss_name(f"{path}.loss",
                                                                        entries["loss"]))
        else:  # 0 is kept: it undoes a study-wide value for this arm
            out[key] = TRAIN_OPTIONS[key](f"{path}.{key}", value, None) or 0.0
    if out.get("loss") in NOISEWISE_LOSSES and "loss_options" not in out:
        out["loss_options"] = _loss_options(f"{path}.loss_options", {}, out["loss"])
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
    if entries.get("noise") or entries.get("attacks"):
        # The clip is part of the spec's identity, default included: a store made when
        # unset meant unclipped hashes differently and is refused on resume, so clipped
        # and unclipped figures never mix under one study.
        clip = entries.setdefault("clip", "data")
        if clip is None or isinstance(clip, str):  # as check_clip reads it: None is "none"
            entries["clip"] = "none" if clip is None else clip.lower()
    return entries


AUDIT_KEYS = ("folds", "epochs", "fail_on", "checks")


def check_audit(entries):
    """The optional ``[audit]`` table: the data audit run before training
    (:mod:`noisewise.study.audit`); not part of any run's identity."""
    if entries is None:
        return None
    from noisewise.study.audit.result import CHECKS, check_thresholds  # no Keras

    entries = copy.deepcopy(table(entries, "audit"))
    unknown(entries, AUDIT_KEYS, "audit")
    out = {}
    if "folds" in entries:
        out["folds"] = integer("audit.folds", entries["folds"], 2, 100)
    if "epochs" in entries:
        out["epochs"] = integer("audit.epochs", entries["epochs"], 1, MAX_EPOCHS)
    if "fail_on" in entries:
        out["fail_on"] = _python(check_thresholds, table(entries["fail_on"], "audit.fail_on"),
                                 path="audit.fail_on")
    if "checks" in entries:
        checks = entries["checks"]
        if not isinstance(checks, list) or not all(c in CHECKS for c in checks):
            fail("audit.checks", f"must be a list of check names among {', '.join(CHECKS)}. "
                 f"Received: {checks!r}")
        out["checks"] = list(dict.fromkeys(checks))
    return out


# An arm's `predict` table: the test split also predicted by Monte Carlo
# (noisewise.study.execute.uncertainty_eval); absent, the arm as before.
# mode -> the kinds of layer that draw (noisewise.uncertainty.KINDS), one table for
# the spec's check and the evaluation after training.
PREDICT_MODES = {"mc": ("dropout", "noise"), "dropout": ("dropout",), "noise": ("noise",),
                 "tta": ("augment",)}
PREDICT_DEFAULTS = {"samples": 30, "mode": "mc"}
MAX_PREDICT_SAMPLES = 10_000


def check_arm_predict(entries, path, augmented):
    """An arm's ``predict`` table, defaults filled (so spelling one out keeps the hash),
    or None when absent; ``mode = "tta"`` needs the arm's ``augment`` list."""
    if entries is None:
        return None
    entries = table(entries, path)
    unknown(entries, PREDICT_DEFAULTS, path)
    out = {**PREDICT_DEFAULTS, **entries}
    out["samples"] = integer(f"{path}.samples", out["samples"], 1, MAX_PREDICT_SAMPLES)
    if out["mode"] not in PREDICT_MODES:
        fail(f"{path}.mode", f"must be one of {', '.join(PREDICT_MODES)}. "
             f"Received: mode={out['mode']!r}")
    if out["mode"] == "tta" and not augmented:
        fail(f"{path}.mode", "'tta' draws the arm's augmentation at test time, and the arm has "
             "no `augment` list")
    return out
