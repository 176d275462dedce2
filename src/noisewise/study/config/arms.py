"""Checks of one ``[[arms]]`` table: its noise entries, augmentation and grid."""

import copy
import dataclasses
import itertools
import math
import re

from noisewise._core.validation import check_number, check_range
from noisewise.augment.image import TRANSFORMS, build_transform
from noisewise.layers.schedules import Adaptive
from noisewise.study.config import grid, vocabulary
from noisewise.study.config.errors import (
    SpecError,
    checked,
    fail,
    named,
    table,
    unknown,
)
from noisewise.study.config.sections import MAX_ARMS, MAX_GRID_NAME, MAX_NAME, check_arm_train
from noisewise.study.config.sections import check_arm_predict


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
        train: The arm's ``[train]`` overrides (``arms[i].train``: keys of
            :data:`~noisewise.study.config.sections.ARM_TRAIN_KEYS`), empty if
            none; executors train the arm with ``{**spec.train, **arm.train}``.
        predict: The arm's ``predict`` table (``samples``, ``mode``), or None:
            the test split is also predicted by Monte Carlo after training.
    """

    name: str
    noise: tuple = ()
    parent: str = None
    params: dict = dataclasses.field(default_factory=dict)
    position: int = 0
    augment: tuple = ()
    train: dict = dataclasses.field(default_factory=dict)
    predict: dict | None = None


def _plain_numbers(entry):
    """Ints to floats in noise arguments, so ``stddev = 1`` and ``1.0`` hash alike."""
    out = {}
    for key, value in entry.items():
        if key in vocabulary.INTEGER_ARGUMENTS:
            out[key] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, list):
            out[key] = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                        for v in value]
        else:
            out[key] = value
    return out


def _check_adapt(adapt, path, level, level_bounds):
    """A normalised ``adapt`` table (defaults filled), its bounds within the level's range."""
    adapt = table(adapt, path)
    unknown(adapt, vocabulary.ADAPT_KEYS, path)
    out = {**vocabulary.ADAPT_DEFAULTS, **adapt}
    try:
        # The schedule's own checks, so the spec refuses what the callback would.
        schedule = Adaptive(**out)
        vocabulary.check_adapt_bounds(schedule.bounds, level, level_bounds)
    except ValueError as e:
        key = re.search(r"`(\w+)`", str(e))
        fail(f"{path}.{key.group(1)}" if key and key.group(1) in out else path, str(e))
    return {"signal": schedule.signal, "target": schedule.target, "gain": schedule.gain,
            "bounds": list(schedule.bounds)}


def _check_noise(entry, path):
    entry = table(entry, path)
    kind = entry.get("type")
    if kind not in vocabulary.NOISE_TYPES:
        fail(f"{path}.type", f"unknown noise type {kind!r}; allowed: "
             f"{', '.join(vocabulary.NOISE_TYPES)}")
    required, allowed = vocabulary.noise_arguments(kind)
    has_where = kind not in vocabulary.UNPLACED
    adaptable = kind in vocabulary.ADAPTABLE
    if "adapt" in entry and not adaptable:
        fail(f"{path}.adapt", f"a {kind!r} entry holds no level variable to adapt; `adapt` "
             f"applies to {', '.join(vocabulary.ADAPTABLE)} noise")
    unknown(entry, ["type", *(["where"] if has_where else []), *allowed,
                    *(["adapt"] if adaptable else [])], path)
    if has_where and entry.get("where") not in vocabulary.WHERE:
        fail(f"{path}.where", f"must be one of {', '.join(vocabulary.WHERE)}. "
             f"Received: {entry.get('where')!r}")
    for key in required:
        if key not in entry:
            fail(f"{path}.{key}", f"missing; a {kind!r} noise entry needs `{key}`")
    entry = _plain_numbers(entry)
    if "adapt" in entry:
        entry["adapt"] = _check_adapt(entry["adapt"], f"{path}.adapt", *vocabulary.ADAPTABLE[kind])
    try:
        vocabulary.check_noise(entry)
    except vocabulary.ArgumentError as e:
        fail(f"{path}.{e.key}" if e.key in entry else path, str(e))
    return entry


def _check_grid_value(entry, path):
    try:
        vocabulary.check_noise(entry)
    except vocabulary.ArgumentError as e:
        fail(path, str(e))


# -- augmentation at the model input: arms[i].augment (noisewise.augment) --------
# An arm's ``augment`` list uses the transform spec of noisewise.augment.from_spec;
# the optional ``augment_value_range = [low, high]`` is the data's range for the
# transforms that need one, by default the training data's minimum and maximum.
# Numbers are kept as written (a Keras kernel size must stay an int).
def augment_arguments(kind):
    return list(TRANSFORMS[kind][1]) if kind in TRANSFORMS else []


def _check_augment_entry(entry, path, value_range):
    entry = table(entry, path)
    kind = entry.get("type")
    if kind not in TRANSFORMS:
        fail(f"{path}.type",
             f"unknown transform {kind!r}; allowed: {', '.join(sorted(TRANSFORMS))}")
    if TRANSFORMS[kind][3]:
        fail(f"{path}.type", f"{kind!r} mixes labels, which a layer at the model's input never "
             "sees; use it in a data pipeline (noisewise.augment.image_pipeline)")
    unknown(entry, ["type", *TRANSFORMS[kind][1]], path)
    try:
        # Most transforms are Keras' own layers, whose argument checks live in
        # their constructors: building the transform is the only way to run them.
        build_transform(entry, seed=0, value_range=value_range or (0.0, 1.0), where=path)
    except ValueError as e:
        text, prefix = str(e), f"{path} ({kind}): "
        if not text.startswith(prefix):
            raise SpecError(text) from None  # already names its key path
        detail = text[len(prefix):]
        # Keras' messages carry no key path: the first `name` quoted in it is the key.
        quoted = re.search(r"`(\w+)`", detail)
        key = quoted.group(1) if quoted else None
        if key == "stddev" and "noise_std" in entry:
            key = "noise_std"  # the alias the entry used
        fail(f"{path}.{key}" if key in entry else path, detail)
    return copy.deepcopy(entry)


def _check_augment_grid_value(entry, path, value_range):
    try:
        _check_augment_entry(entry, "augment", value_range)
    except SpecError as e:
        fail(path, str(e).split(": ", 1)[-1])


def _check_augment_level(arm, path, augment):
    """``{"probability": p, "adapt": {...}}`` of the arm's augmentation, the keys given only."""
    out = {}
    for key in ("augment_probability", "augment_adapt"):
        if key in arm and not augment:
            fail(f"{path}.{key}", "given without an `augment` list")
    if "augment_probability" in arm:
        out["probability"] = checked(
            f"{path}.augment_probability",
            lambda n, v: check_number(n, v, low=0.0, high=1.0), "augment_probability",
            arm["augment_probability"])
    if "augment_adapt" in arm:
        level, bounds = vocabulary.AUGMENT_LEVEL
        out["adapt"] = _check_adapt(arm["augment_adapt"], f"{path}.augment_adapt", level, bounds)
        start = out.get("probability", 1.0)
        try:
            vocabulary.check_adapt_start(level, start, out["adapt"])
        except vocabulary.ArgumentError as e:
            fail(f"{path}.augment_probability" if "probability" in out else
                 f"{path}.augment_adapt.bounds",
                 f"{e} (the starting probability; 1 unless augment_probability says otherwise)")
    return out


def _check_augment(arm, path):
    """The arm's validated transforms and its ``augment_value_range`` (or None)."""
    value_range = arm.get("augment_value_range")
    if value_range is not None:
        value_range = checked(f"{path}.augment_value_range",
                              lambda n, v: check_range(n, v, allow_none=False),
                              "augment_value_range", value_range)
    augment = arm.get("augment", [])
    if not isinstance(augment, list):
        fail(f"{path}.augment", f"must be a list of transform tables. Received: {augment!r}")
    if value_range is not None and not augment:
        fail(f"{path}.augment_value_range", "given without an `augment` list")
    clean = [_check_augment_entry(e, f"{path}.augment[{i}]", value_range)
             for i, e in enumerate(augment)]
    return clean, value_range


def _arm(name, noise, augment, value_range, level=None, **kwargs):
    if augment:
        entry = {"type": "augment", "transforms": copy.deepcopy(list(augment)),
                 "value_range": None if value_range is None else list(value_range),
                 **copy.deepcopy(level or {})}
        noise = [*noise, entry]
    return Arm(name, tuple(noise), augment=tuple(augment), **kwargs)


def expand_arm(arm, path, position):
    """``(normalised arm table, expanded arms)``; ``position`` arms come before it."""
    name = arm.get("name")
    if isinstance(name, str) and name:
        named(f"{path}.name", name, MAX_NAME)  # first: an escape sequence holds a bracket
    if not isinstance(name, str) or not name or any(c in name for c in "[]"):
        fail(f"{path}.name", f"must be a non-empty string without brackets. Received: {name!r}")
    unknown(arm, ["name", "noise", "grid", "augment", "augment_value_range",
                  "augment_probability", "augment_adapt", "train", "predict"], path)
    noise = arm.get("noise", [])
    if not isinstance(noise, list):
        fail(f"{path}.noise", f"must be a list of noise tables. Received: {noise!r}")
    clean = [_check_noise(e, f"{path}.noise[{i}]") for i, e in enumerate(noise)]
    for kind in vocabulary.UNPLACED:
        if sum(e["type"] == kind for e in clean) > 1:
            fail(f"{path}.noise", f"at most one {kind!r} entry per arm")
    wrappers = [e["type"] for e in clean if e["type"] in vocabulary.WRAPPERS]
    if len(wrappers) > 1:  # each wraps the model in its own training step
        fail(f"{path}.noise", "an arm trains adversarially, with a consistency loss or with "
                              f"mixup, one of them. Received: {', '.join(wrappers)}")
    augment, value_range = _check_augment(arm, path)
    level = _check_augment_level(arm, path, augment)
    train = check_arm_train(arm.get("train", {}), f"{path}.train")
    predict = check_arm_predict(arm.get("predict"), f"{path}.predict", bool(augment))
    keys = grid.points({**arm, "noise": clean, "augment": augment}, path, augment_arguments)
    normalised = {"name": name, "noise": clean}
    if augment:  # absent or empty: the normalised arm (and its hash) as before
        normalised["augment"] = augment
    if value_range is not None:
        normalised["augment_value_range"] = list(value_range)
    if "probability" in level:  # absent: the normalised arm (and its hash) as before
        normalised["augment_probability"] = level["probability"]
    if "adapt" in level:
        normalised["augment_adapt"] = level["adapt"]
    if train:  # absent or empty: the normalised arm (and its hash) as before
        normalised["train"] = train
    if predict is not None:  # absent: the normalised arm (and its hash) as before
        normalised["predict"] = predict
    if not keys:
        return normalised, [_arm(name, clean, augment, value_range, level, position=position,
                                 train=train, predict=predict)]
    size = math.prod(len(k.values) for k in keys)
    if position + size > MAX_ARMS:  # before expanding: a large grid is a large product
        fail(f"{path}.grid", f"expands to {size:,} arms, and a study has at most "
             f"{MAX_ARMS:,} arms ({position} before this one)")
    values = {k.key: [_plain_numbers({k.leaf: v})[k.leaf] if k.section == "noise" else v
                      for v in k.values] for k in keys}
    normalised["grid"] = values
    for k in keys:  # each value alone, so the error names it
        for j, value in enumerate(values[k.key]):
            where = f"{path}.grid.{k.key}[{j}]"
            if k.section == "noise":
                _check_grid_value({**clean[k.index], k.leaf: value}, where)
            else:
                _check_augment_grid_value({**augment[k.index], k.leaf: value}, where, value_range)
    expanded = []
    for combo in itertools.product(*values.values()):
        entries = {"noise": copy.deepcopy(clean), "augment": copy.deepcopy(augment)}
        for k, value in zip(keys, combo):
            entries[k.section][k.index][k.leaf] = value
        label = f"{name}[{grid.label(keys, combo)}]"
        named(f"{path}.grid", label, MAX_GRID_NAME)
        for i, entry in enumerate(entries["noise"]):
            _check_grid_value(entry, f"{path}.grid ({label}).noise[{i}]")
        for i, entry in enumerate(entries["augment"]):
            _check_augment_grid_value(entry, f"{path}.grid ({label}).augment[{i}]", value_range)
        expanded.append(_arm(label, entries["noise"], entries["augment"], value_range, level,
                             parent=name, params=dict(zip(values, combo)),
                             position=position + len(expanded), train=copy.deepcopy(train),
                             predict=copy.deepcopy(predict)))
    return normalised, expanded


def check_adapt_signals(arms, train):
    """Each adaptive entry's signal against the study's ``[train]`` (the normalised arm
    tables, in spec order): ``loss`` or one of ``train.metrics``, and an epoch
    validated before the last, so the level adapts during training."""
    errors = []
    allowed = ["loss", *train["metrics"]]
    for i, arm in enumerate(arms):
        tables = [(f"arms[{i}].noise[{j}].adapt", e["adapt"]) for j, e in enumerate(arm["noise"])
                  if "adapt" in e]
        if "augment_adapt" in arm:
            tables.append((f"arms[{i}].augment_adapt", arm["augment_adapt"]))
        for path, adapt in tables:
            if adapt["signal"] not in allowed:
                errors.append(f"{path}.signal: the study records {', '.join(allowed)} (train."
                              f"metrics and the loss). Received: signal={adapt['signal']!r}")
            if train["validate_every"] >= train["epochs"]:
                errors.append(f"{path}: the level adapts after validated epochs, and "
                              f"train.validate_every = {train['validate_every']} validates only "
                              f"the last of the {train['epochs']} epochs: set validate_every "
                              "below epochs")
    if errors:
        raise SpecError(errors=errors)
