"""Study specs: TOML and dict agree, grids expand, malformed specs fail early with a key path."""

import copy
from pathlib import Path

import pytest

from noisewise.study import Arm, SpecError, StudySpec, load_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "circles.toml"

BASE = {
    "study": {"name": "demo", "seeds": 3, "seed": 7},
    "data": {"name": "circles"},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 5},
    "arms": [
        {"name": "baseline"},
        {"name": "pre", "noise": [{"type": "gaussian", "where": "pre_activation", "stddev": 0.1}]},
    ],
}

TOML = """
[study]
name = "demo"
seeds = 3
seed = 7

[data]
name = "circles"

[model]
name = "mlp"
hidden = [16]

[train]
epochs = 5

[[arms]]
name = "baseline"

[[arms]]
name = "pre"
noise = [{ type = "gaussian", where = "pre_activation", stddev = 0.1 }]
"""


def spec_with(**changes):
    """BASE with dotted-path changes, e.g. spec_with(**{"study.seeds": 0})."""
    raw = copy.deepcopy(BASE)
    for path, value in changes.items():
        *keys, last = path.split(".")
        target = raw
        for key in keys:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return raw


_DELETE = object()


def test_toml_and_dict_give_the_same_spec(tmp_path):
    path = tmp_path / "demo.toml"
    path.write_text(TOML)
    from_toml, from_dict = load_spec(path), load_spec(BASE)
    assert isinstance(from_toml, StudySpec)
    assert from_toml.to_dict() == from_dict.to_dict()
    assert from_toml.spec_hash == from_dict.spec_hash
    assert from_toml.base_dir == str(tmp_path.resolve())


def test_defaults_are_filled_and_spelling_them_out_keeps_the_hash():
    spec = load_spec(BASE)
    assert spec.train["batch_size"] == 32 and spec.train["loss"] == "auto"
    assert spec.train["validate_every"] == 1 and spec.reference == "baseline"
    assert spec.data == {"name": "circles", "n_samples": 100, "noise": 0.1,
                         "random_state": 1, "n_train": 30}
    explicit = spec_with(**{"train.batch_size": 32, "model.activation": "relu",
                            "study.reference": "baseline"})
    assert load_spec(explicit).spec_hash == spec.spec_hash
    # An int level hashes like the same float.
    as_int = spec_with(**{"arms.1.noise": [{"type": "gaussian", "where": "pre_activation",
                                            "stddev": 1}]})
    as_float = spec_with(**{"arms.1.noise": [{"type": "gaussian", "where": "pre_activation",
                                              "stddev": 1.0}]})
    assert load_spec(as_int).spec_hash == load_spec(as_float).spec_hash


def test_hash_ignores_the_store_but_not_the_experiment():
    base = load_spec(BASE).spec_hash
    assert load_spec(spec_with(**{"study.store": "elsewhere.db"})).spec_hash == base
    assert load_spec(spec_with(**{"train.epochs": 6})).spec_hash != base
    assert load_spec(spec_with(**{"study.seed": 8})).spec_hash != base


def test_grid_expands_into_named_arms_with_their_parameters():
    raw = spec_with(**{"arms.1.grid": {"noise[0].stddev": [0.01, 0.1, 1.0]}})
    spec = load_spec(raw)
    names = [a.name for a in spec.arms]
    assert names == ["baseline", "pre[stddev=0.01]", "pre[stddev=0.1]", "pre[stddev=1.0]"]
    level = spec.arm("pre[stddev=1.0]")
    assert isinstance(level, Arm) and level.parent == "pre"
    assert level.params == {"noise[0].stddev": 1.0}
    assert level.noise[0]["stddev"] == 1.0 and level.position == 3
    assert spec.arm("baseline").parent is None
    # The normalised spec keeps the grid, not the expansion.
    assert spec.to_dict()["arms"][1]["grid"] == {"noise[0].stddev": [0.01, 0.1, 1.0]}


def test_two_grid_keys_expand_to_their_product_with_full_paths_on_clashes():
    noise = [{"type": "gaussian", "where": "input", "stddev": 0.1},
             {"type": "gaussian", "where": "pre_activation", "stddev": 0.1}]
    raw = spec_with(**{"arms.1.noise": noise,
                       "arms.1.grid": {"noise[0].stddev": [0.1, 0.2],
                                       "noise[1].stddev": [1.0, 2.0, 3.0]}})
    arms = load_spec(raw).arms[1:]
    assert len(arms) == 6
    assert arms[0].name == "pre[noise[0].stddev=0.1,noise[1].stddev=1.0]"
    assert {(a.noise[0]["stddev"], a.noise[1]["stddev"]) for a in arms} == {
        (a, b) for a in (0.1, 0.2) for b in (1.0, 2.0, 3.0)}


def test_overrides_change_the_spec_and_the_study_name():
    spec = load_spec(BASE, seeds=2, epochs=50)
    assert (spec.seeds, spec.train["epochs"]) == (2, 50)
    assert spec.name == "demo:seeds=2,epochs=50"
    assert spec.spec_hash != load_spec(BASE).spec_hash
    # An override equal to the spec's value changes nothing.
    assert load_spec(BASE, seeds=3).name == "demo"


def test_the_example_is_the_full_tutorial_study():
    spec = load_spec(EXAMPLE)
    assert (spec.name, spec.seeds, spec.train["epochs"], spec.train["batch_size"]) == (
        "circles", 30, 4000, 32)
    assert spec.model == {"name": "mlp", "hidden": [500], "activation": "relu"}
    assert spec.train["optimizer"] == "adam" and spec.train["validate_every"] == 1
    names = [a.name for a in spec.arms]
    assert names[:5] == ["baseline", "input", "hidden_pre", "hidden_post", "input_and_hidden"]
    grid = [a for a in spec.arms if a.parent == "hidden_grid"]
    assert [a.noise[0]["stddev"] for a in grid] == [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
    assert all(a.noise[0]["where"] == "pre_activation" for a in grid)
    both = spec.arm("input_and_hidden").noise
    assert [(e["where"], e["stddev"]) for e in both] == [("input", 0.01), ("pre_activation", 0.1)]


@pytest.mark.parametrize("changes, path", [
    ({"data": _DELETE}, "data"),
    ({"study.name": _DELETE}, "study.name"),
    ({"study.seeds": 0}, "study.seeds"),
    ({"study.seed": -1}, "study.seed"),
    ({"study.colour": "red"}, "study.colour"),
    ({"data.name": "mnist"}, "data.name"),
    ({"data.n_train": 0}, "data.n_train"),
    ({"data.path": "x.txt"}, "data"),
    ({"model.name": "transformer"}, "model.name"),
    ({"model.hidden": [16, 0]}, "model.hidden"),
    ({"model.activation": "relux"}, "model.activation"),
    ({"train.epochs": 0}, "train.epochs"),
    ({"train.learning_rate": -0.1}, "train.learning_rate"),
    ({"train.optimizer": "nope"}, "train.optimizer"),
    ({"train.metrics": ["nope"]}, "train.metrics[0]"),
    ({"arms": []}, "arms"),
    ({"arms.1.name": "baseline"}, "arms"),
    ({"arms.1.noise.0.type": "pink"}, "arms[1].noise[0].type"),
    ({"arms.1.noise.0.stddev": -0.1}, "arms[1].noise[0].stddev"),
    ({"arms.1.noise.0.where": "output"}, "arms[1].noise[0].where"),
    ({"arms.1.noise.0.colour": 1}, "arms[1].noise[0].colour"),
    ({"arms.1.noise.0.stddev": _DELETE}, "arms[1].noise[0].stddev"),
    ({"arms.1.grid": {"noise[3].stddev": [0.1]}}, "arms[1].grid.noise[3].stddev"),
    ({"arms.1.grid": {"noise[0].rate": [0.1]}}, "arms[1].grid.noise[0].rate"),
    ({"arms.1.grid": {"train.epochs": [1]}}, "arms[1].grid.train.epochs"),
    ({"arms.1.grid": {"noise[0].stddev": [0.1, -2.0]}}, "arms[1].grid.noise[0].stddev[1]"),
    ({"arms.1.grid": {"noise[0].stddev": []}}, "arms[1].grid.noise[0].stddev"),
    ({"study.reference": "nobody"}, "study.reference"),
])
def test_malformed_specs_fail_with_the_key_path(changes, path):
    with pytest.raises(SpecError) as info:
        load_spec(spec_with(**changes))
    assert str(info.value).startswith(f"{path}:"), str(info.value)


def test_negative_stddev_message_names_value_and_range():
    with pytest.raises(SpecError, match=r"arms\[1\]\.noise\[0\]\.stddev: .*Received: stddev=-0\.1"):
        load_spec(spec_with(**{"arms.1.noise.0.stddev": -0.1}))


def test_each_noise_type_validates_its_own_arguments():
    ok = [
        {"type": "uniform", "where": "input", "amplitude": 0.1},
        {"type": "multiplicative", "where": "post_activation", "stddev": 0.2},
        {"type": "salt_and_pepper", "where": "input", "rate": 0.1},
        {"type": "poisson", "where": "input", "peak": 10.0},
        {"type": "dropout", "where": "post_activation", "rate": 0.5},
        {"type": "gaussian_dropout", "where": "post_activation", "rate": 0.5},
        {"type": "alpha_dropout", "where": "post_activation", "rate": 0.5},
        {"type": "weight", "stddev": 0.01},
        {"type": "gradient", "eta": 0.3, "gamma": 0.55},
    ]
    spec = load_spec(spec_with(**{"arms.1.noise": ok}))
    assert len(spec.arm("pre").noise) == len(ok)
    bad = [
        ({"type": "dropout", "where": "input", "rate": 1.0}, "rate"),
        ({"type": "salt_and_pepper", "where": "input", "rate": 1.5}, "rate"),
        ({"type": "poisson", "where": "input", "peak": 0.0}, "peak"),
        ({"type": "gradient", "eta": -1.0}, "eta"),
        ({"type": "weight", "where": "input", "stddev": 0.1}, "where"),
    ]
    for entry, key in bad:
        with pytest.raises(SpecError, match=rf"^arms\[1\]\.noise\[0\]\.{key}: "):
            load_spec(spec_with(**{"arms.1.noise": [entry]}))


def test_file_problems_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[study\nname = 1")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(broken)
