"""The typed spec: every error in one pass, no Keras object built, a JSON Schema that agrees."""

import copy
import inspect
import tomllib
from pathlib import Path

import keras
import pydantic
import pytest

from noisewise.layers import NOISE_LAYERS, WeightNoise
from noisewise.robust import AdversarialModel
from noisewise.study.config import (
    SpecError,
    json_schema,
    load_spec,
    validate,
    vocabulary,
)
from noisewise.study.config.schema import typed
from noisewise.study.models import DROPOUT_LAYERS

ROOT = Path(__file__).resolve().parents[2]
BASE = {
    "study": {"name": "demo", "seeds": 3},
    "data": {"name": "circles"},
    "model": {"name": "mlp", "hidden": [8]},
    "arms": [{"name": "baseline"},
             {"name": "pre", "noise": [{"type": "gaussian", "where": "input", "stddev": 0.1}]}],
}
EVERY_NOISE = [
    {"type": "gaussian", "where": "input", "stddev": 0.1, "relative": "std"},
    {"type": "uniform", "where": "pre_activation", "amplitude": 0.2, "clip": [0, 1]},
    {"type": "multiplicative", "where": "post_activation", "stddev": 0.1},
    {"type": "salt_and_pepper", "where": "input", "rate": 0.1},
    {"type": "poisson", "where": "input", "peak": 10},
    {"type": "dropout", "where": "post_activation", "rate": 0.1},
    {"type": "gaussian_dropout", "where": "post_activation", "rate": 0.1},
    {"type": "alpha_dropout", "where": "input", "rate": 0.1},
    {"type": "weight", "stddev": 0.01},
    {"type": "gradient", "eta": 0.01},
    {"type": "adversarial", "attack": "pgd", "eps": 0.1, "steps": 3},
]


def test_three_mistakes_in_three_sections_are_all_reported_first_one_first():
    raw = copy.deepcopy(BASE)
    raw["study"]["seeds"] = 0
    raw["model"]["hidden"] = [-4]
    raw["arms"][1]["noise"][0]["stddev"] = -0.5
    with pytest.raises(SpecError) as info:
        validate(raw)
    lines = str(info.value).splitlines()
    assert lines == list(info.value.errors) and len(lines) == 3, lines
    assert lines[0].startswith("study.seeds: ") and "Received: seeds=0" in lines[0]
    assert lines[1].startswith("model.hidden: ") and "-4" in lines[1]
    assert lines[2].startswith("arms[1].noise[0].stddev: ") and "stddev=-0.5" in lines[2]


def test_a_non_finite_number_is_reported_once_beside_other_errors():
    raw = copy.deepcopy(BASE)
    raw["arms"][1]["noise"][0]["stddev"] = float("nan")
    raw["data"]["name"] = "mnist"
    with pytest.raises(SpecError) as info:
        validate(raw)
    assert [e.split(":")[0] for e in info.value.errors] == [
        "arms[1].noise[0].stddev", "data.name"]


def test_an_error_line_never_holds_a_raw_control_character():
    raw = copy.deepcopy(BASE)
    raw["study"]["name"] = "x\x1b[2J"
    raw["arms"][0]["name"] = "a\nb"
    with pytest.raises(SpecError) as info:
        validate(raw)
    assert len(str(info.value).splitlines()) == 2
    assert all(line.isprintable() for line in info.value.errors)


@pytest.fixture
def constructions(monkeypatch):
    """Counts every Keras layer, model and optimizer constructed while the test runs."""
    counts = {"layer": 0, "model": 0, "optimizer": 0}
    for key, cls in (("layer", keras.layers.Layer), ("model", keras.Model),
                     ("optimizer", keras.optimizers.Optimizer)):
        original = cls.__init__

        def counted(self, *args, _key=key, _original=original, **kwargs):
            counts[_key] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counted)
    return counts


def test_validation_builds_no_keras_layer_model_or_optimizer(constructions):
    keras.layers.Dense(1)  # the counter counts
    assert constructions["layer"] == 1
    constructions["layer"] = 0
    raw = copy.deepcopy(BASE)
    raw["arms"] = [{"name": f"n{i}", "noise": [entry]} for i, entry in enumerate(EVERY_NOISE)]
    raw["arms"].append({"name": "grid", "noise": [EVERY_NOISE[0]],
                        "grid": {"noise[0].stddev": [0.1, 0.2]}})
    raw["train"] = {"optimizer": "sgd", "optimizer_options": {"momentum": 0.9}}
    validate(raw)
    examples = sorted((ROOT / "examples").glob("*.toml"))
    for path in examples:
        if not any("augment" in arm for arm in tomllib.loads(path.read_text())["arms"]):
            load_spec(path)  # with transforms: counted below (Keras layers, checked by building)
    assert constructions == {"layer": 0, "model": 0, "optimizer": 0}


def test_only_augmentation_transforms_are_built_while_validating(constructions):
    spec = load_spec(ROOT / "examples" / "digits_augment.toml")
    assert constructions["model"] == 0 and constructions["optimizer"] == 0
    transforms = sum(len(a["augment"]) for a in spec.to_dict()["arms"] if "augment" in a)
    assert 0 < constructions["layer"]
    assert transforms > 0


@pytest.mark.parametrize("entry, path", [
    ({"type": "weight", "stddev": 0.1, "targets": "kernel"}, "noise[0].targets"),
    ({"type": "adversarial", "norm": "l3"}, "noise[0].norm"),
    ({"type": "adversarial", "ratio": 2.0}, "noise[0].ratio"),
    ({"type": "adversarial", "attack": "cw"}, "noise[0].attack"),
    ({"type": "poisson", "where": "input", "peak": 0}, "noise[0].peak"),
    ({"type": "salt_and_pepper", "where": "input", "rate": 0.1, "salt_ratio": 2},
     "noise[0].salt_ratio"),
    ({"type": "gaussian", "where": "input", "stddev": 0.1, "sampler": "x"}, "noise[0].sampler"),
    ({"type": "dropout", "where": "input", "rate": 1}, "noise[0].rate"),
])
def test_declarative_noise_checks_name_the_argument(entry, path):
    raw = copy.deepcopy(BASE)
    raw["arms"][1]["noise"] = [entry]
    with pytest.raises(SpecError) as info:
        validate(raw)
    assert str(info.value).startswith(f"arms[1].{path}: "), str(info.value)


def test_adversarial_steps_stay_integers():
    raw = copy.deepcopy(BASE)
    raw["arms"][1]["noise"] = [{"type": "adversarial", "attack": "pgd", "steps": 3}]
    assert validate(raw).arms[1].noise[0]["steps"] == 3


def _signature(cls, stop):
    names = []
    for klass in cls.__mro__:
        if klass is stop:
            break
        if "__init__" in vars(klass):
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names:
                    names.append(p.name)
    return [n for n in names if n not in ("self", "level", "seed", "name", "layer", "model")]


def test_the_vocabulary_matches_the_constructors():
    assert tuple(vocabulary.LEVELS) == tuple(NOISE_LAYERS)
    for kind, cls in NOISE_LAYERS.items():
        assert vocabulary.noise_arguments(kind) == ((cls.level_name,),
                                                    _signature(cls, keras.layers.Layer))
        level, bounds = vocabulary.LEVELS[kind]
        assert (level, bounds) == (cls.level_name, cls.level_bounds)
    for kind, cls in DROPOUT_LAYERS.items():
        assert vocabulary.noise_arguments(kind)[1] == _signature(cls, keras.layers.Layer)
    assert vocabulary.noise_arguments("weight")[1] == _signature(WeightNoise, keras.layers.Wrapper)
    assert list(vocabulary.ADVERSARIAL_KEYS) == _signature(AdversarialModel, keras.Model)


def test_json_schema_describes_the_spec_and_accepts_every_normalised_example():
    schema = json_schema()
    assert set(schema["properties"]) == {"study", "data", "model", "train", "arms", "robustness",
                                         "audit"}
    assert schema["additionalProperties"] is False
    for path in sorted((ROOT / "examples").glob("*.toml")):
        typed(load_spec(path).to_dict())
    raw = copy.deepcopy(BASE)
    raw["arms"] = [{"name": f"n{i}", "noise": [e]} for i, e in enumerate(EVERY_NOISE)]
    typed(validate(raw).to_dict())


@pytest.mark.parametrize("change", [
    lambda r: r["study"].update(colour=1),
    lambda r: r["arms"][1]["noise"][0].update(type="pink"),
    lambda r: r["arms"][1]["noise"][0].update(nosie=1),
])
def test_the_schema_refuses_what_the_validator_refuses(change):
    raw = copy.deepcopy(BASE)
    change(raw)
    with pytest.raises(SpecError):
        validate(raw)
    with pytest.raises(pydantic.ValidationError):
        typed(raw)


def test_training_option_mistakes_in_three_places_are_all_reported():
    raw = copy.deepcopy(BASE)
    raw["data"]["task"] = "ranking"
    raw["train"] = {"early_stopping": {"patience": 3}}
    raw["arms"][1]["train"] = {"weight_decay": -1}
    with pytest.raises(SpecError) as info:
        validate(raw)
    lines = list(info.value.errors)
    assert [line.split(":")[0] for line in lines] == [
        "data.task", "train.early_stopping", "arms[1].train.weight_decay"], lines
    assert "Received: 'ranking'" in lines[0]
    assert "early stopping on the test split chooses the epoch on the test data" in lines[1]


def test_a_regression_task_defaults_its_metrics_and_keeps_them_when_written():
    raw = copy.deepcopy(BASE)
    raw["data"] = {"name": "sine"}
    assert validate(raw).train["metrics"] == ["mae"]
    raw["train"] = {"metrics": ["mse"]}
    assert validate(raw).train["metrics"] == ["mse"]
    assert validate(BASE).train["metrics"] == ["accuracy"]
