"""The spec as pydantic v2 models: its JSON Schema, and a typed view of a normalised spec.

The models are generated from the same vocabulary the validator checks against
(noise arguments, transforms, dataset and model options), so the schema an
editor completes with and the validator cannot disagree about which keys
exist. Every table forbids unknown keys; noise, augmentation and attack entries
are unions discriminated on ``type``. The messages users see come from
:func:`~noisewise.study.config.validate`, which also checks what a schema
cannot say (grid keys, names, caps, cross-references).
"""

import functools
import operator
from typing import Annotated, Any, Literal, Union

import pydantic
from pydantic import ConfigDict, Field

from noisewise.augment.image import TRANSFORMS
from noisewise.robust import config as robust_config
from noisewise.study.audit.result import CHECKS as AUDIT_CHECKS
from noisewise.study import datasets, models
from noisewise.study.config import vocabulary
from noisewise.study.data.label_noise import KINDS as LABEL_NOISE_KINDS
from noisewise.study.config.sections import MAX_PREDICT_SAMPLES, PREDICT_DEFAULTS, PREDICT_MODES
from noisewise.study.config.sections import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_SEEDS,
    ARM_TRAIN_KEYS,
    NONFINITE,
    TRAIN_DEFAULTS,
)

_STRICT = ConfigDict(extra="forbid")
_Finite = Annotated[float, Field(allow_inf_nan=False)]


class AdaptTable(pydantic.BaseModel):
    """An adaptive level (``noise[i].adapt``, ``augment_adapt``): see noisewise.schedules.adaptive."""

    model_config = _STRICT
    signal: Annotated[str, Field(min_length=1)] = vocabulary.ADAPT_DEFAULTS["signal"]
    target: _Finite = vocabulary.ADAPT_DEFAULTS["target"]
    gain: Annotated[float, Field(gt=0, allow_inf_nan=False)] = vocabulary.ADAPT_DEFAULTS["gain"]
    bounds: tuple[_Finite, _Finite] = tuple(vocabulary.ADAPT_DEFAULTS["bounds"])


def _entry(name, kind, required, allowed, extra=None):
    fields = {"type": (Literal[kind], ...), **(extra or {})}
    for key in allowed:
        fields[key] = ((_Finite, ...) if key in required else (Any, None))
    return pydantic.create_model(name, __config__=_STRICT, **fields)


def _union(members):
    return Annotated[functools.reduce(operator.or_, members), Field(discriminator="type")]


def _noise_entry():
    where = {"where": (Literal[vocabulary.WHERE], ...)}
    members = []
    for kind in vocabulary.NOISE_TYPES:
        required, allowed = vocabulary.noise_arguments(kind)
        placed = where if kind not in vocabulary.UNPLACED else {}
        if kind in vocabulary.ADAPTABLE:
            placed = {**placed, "adapt": (AdaptTable | None, None)}
        members.append(_entry(f"Noise_{kind}", kind, required, allowed, placed))
    return _union(members)


def _augment_entry():
    members = [_entry(f"Augment_{kind}", kind, (), TRANSFORMS[kind][1])
               for kind in sorted(TRANSFORMS) if not TRANSFORMS[kind][3]]
    return _union(members)


class LabelNoiseTable(pydantic.BaseModel):
    """``[data] label_noise``: training labels corrupted (see noisewise.study.data.label_noise)."""

    model_config = _STRICT
    kind: Literal[LABEL_NOISE_KINDS]
    rate: Annotated[float, Field(ge=0, lt=1)]


def _options_model(name, catalog, /, **fixed):
    fields = {**fixed, **{key: (Any, default) for key, (default, _) in catalog.items()},
              "task": (Literal[datasets.TASKS], "classification"), "standardize": (bool, False),
              "label_noise": (LabelNoiseTable | None, None),
              "labeled": (Annotated[int, Field(ge=1)] | None, None)}
    return pydantic.create_model(name, __config__=_STRICT, **fields)


class StudySection(pydantic.BaseModel):
    model_config = _STRICT
    name: Annotated[str, Field(min_length=1)]
    seeds: Annotated[int, Field(ge=1, le=MAX_SEEDS)] = 30
    seed: Annotated[int, Field(ge=0)] = 0
    store: str | None = None
    reference: str | None = None


_Data = Union[tuple(  # noqa: UP007 -- a union of generated models
    [_options_model(f"Data_{n}", c, name=(Literal[n], ...)) for n, c in datasets.BUILTIN.items()]
    + [_options_model(f"Data_{s[1:]}", c, path=(str, ...),
                      nonfinite=(Literal[NONFINITE], "refuse"))
       for s, c in datasets.FILE_OPTIONS.items()]
    + [pydantic.create_model("Data_loader", __config__=ConfigDict(extra="allow"),
                             loader=(str, ...), nonfinite=(Literal[NONFINITE], "refuse"))])]
_Model = Union[tuple(  # noqa: UP007 -- a union of generated models
    [_options_model(f"Model_{n}", c, name=(Literal[n], ...)) for n, c in models.BUILTIN.items()]
    + [pydantic.create_model("Model_builder", __config__=ConfigDict(extra="allow"),
                             builder=(str, ...)),
       pydantic.create_model("Model_path", __config__=_STRICT, path=(str, ...),
                             weights=(Literal["keep", "reinit"], "keep"),
                             trainable=(Literal["all"] | list[str], "all"),
                             reinit=(list[str], []))])]


class TrainSection(pydantic.BaseModel):
    model_config = _STRICT
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = TRAIN_DEFAULTS["epochs"]
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)] = TRAIN_DEFAULTS["batch_size"]
    optimizer: str = TRAIN_DEFAULTS["optimizer"]
    learning_rate: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 0.001
    optimizer_options: dict[str, Any] = {}
    loss: str = TRAIN_DEFAULTS["loss"]
    metrics: list[str] = TRAIN_DEFAULTS["metrics"]
    validate_every: Annotated[int, Field(ge=1)] = TRAIN_DEFAULTS["validate_every"]
    validation_split: Annotated[float, Field(gt=0, lt=1)] | None = None
    early_stopping: dict[str, Any] | None = None
    lr_schedule: dict[str, Any] | None = None
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    class_weight: Literal["balanced"] | dict[str, Annotated[float, Field(gt=0)]] | None = None
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] | None = None
    from_logits: bool | None = None
    loss_options: dict[str, _Finite] | None = None


class ArmSection(pydantic.BaseModel):
    model_config = _STRICT
    name: Annotated[str, Field(min_length=1)]
    noise: list[_noise_entry()] = []
    augment: list[_augment_entry()] = []
    augment_value_range: tuple[_Finite, _Finite] | None = None
    augment_probability: Annotated[float, Field(ge=0, le=1)] | None = None
    augment_adapt: AdaptTable | None = None
    train: dict[Literal[ARM_TRAIN_KEYS], float | str | dict[str, _Finite]] = {}
    grid: dict[Annotated[str, Field(pattern=r"^(noise|augment)\[\d+\]\.[A-Za-z_]\w*$")],
               list[Any]] = {}
    predict: pydantic.create_model(  # from the constants check_arm_predict uses
        "PredictTable", __config__=_STRICT,
        samples=(Annotated[int, Field(ge=1, le=MAX_PREDICT_SAMPLES)], PREDICT_DEFAULTS["samples"]),
        mode=(Literal[tuple(PREDICT_MODES)], PREDICT_DEFAULTS["mode"])) | None = None


def _keys_model(name, keys, /, **fixed):
    return pydantic.create_model(name, __config__=_STRICT,
                                 **{**{k: (Any, None) for k in keys}, **fixed})


_Attack = _union([_keys_model(f"Attack_{kind}", robust_config.ATTACK_KEYS,
                              type=(Literal[kind], ...)) for kind in ("fgsm", "pgd")])
_RobustNoise = _keys_model("RobustnessNoise", (), type=(Literal[tuple(vocabulary.LEVELS)], ...),
                           levels=(Any, ...), draws=(int, 5))
_RobustnessSection = pydantic.create_model(
    "RobustnessSection", __config__=_STRICT,
    **{k: (Any, None) for k in ("clip", "from_logits", "max_examples")},
    noise=(list[_RobustNoise], []), attacks=(list[_Attack], []),
    smoothing=(_keys_model("Smoothing", robust_config.SMOOTHING_KEYS,
                           sigma=(_Finite, ...)) | None, None),
    corruptions=(_keys_model("Corruptions", robust_config.CORRUPTION_KEYS) | None, None))


_Threshold = Annotated[int, Field(ge=0)] | Annotated[float, Field(ge=0, lt=1)]
_AuditSection = pydantic.create_model(
    "AuditSection", __config__=_STRICT,
    folds=(Annotated[int, Field(ge=2, le=100)] | None, None),
    epochs=(Annotated[int, Field(ge=1, le=MAX_EPOCHS)] | None, None),
    fail_on=(dict[Literal[AUDIT_CHECKS], _Threshold], {}),
    checks=(list[Literal[AUDIT_CHECKS]] | None, None))


class StudySchema(pydantic.BaseModel):
    """A study spec file: ``[study]``, ``[data]``, ``[model]``, ``[train]``, ``[[arms]]``."""

    model_config = _STRICT
    study: StudySection
    data: _Data
    model: _Model
    train: TrainSection = TrainSection()
    arms: Annotated[list[ArmSection], Field(min_length=1)]
    robustness: _RobustnessSection | None = None
    audit: _AuditSection | None = None


def json_schema():
    """The JSON Schema of a study spec (for editors that complete and check spec files)."""
    return StudySchema.model_json_schema()


def typed(normalised):
    """A normalised spec dict as a :class:`StudySchema` (raises pydantic's ValidationError)."""
    return StudySchema.model_validate(normalised)
