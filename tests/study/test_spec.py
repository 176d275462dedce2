"""Study specs: TOML and dict agree, grids expand, malformed specs fail early with a key path."""

import copy
import re
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


# -- hardening: hashes kept, numbers finite, names visible, sizes bounded, files text ----
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The spec hashes before finiteness, names and caps were checked: a stored study
# must resume, so the checks may refuse more but must not change a valid hash.
GOLDEN = {
    "circles.toml": "cade91f4a87cd1ab2ebe99e74ce9030ca7d94b0315826d163485250f4d44b3c6",
    "digits_augment.toml": "8af555f62a17514d7685ac743c93da944168364e1c850ecb6f054b00f64e757e",
    "digits_smoothing.toml": "7670683861223fa08b2a691d030fcfbb9067ead39c17ebf59538db9cd20fcfab",
}
USER_DATA = {"study": {"name": "x", "seeds": 3}, "model": {"name": "mlp", "hidden": [8]},
             "arms": [{"name": "b"}, {"name": "w", "noise": [{"type": "weight", "stddev": 0.1}]},
                      {"name": "g", "noise": [{"type": "gradient", "eta": 0.01}]}]}
GOLDEN_USER = {
    "csv": ({"path": "d.csv"}, "84b98298b0d84a3177ca7ac8a8f1731f6530a5a3e87ce918ed0ab4c2690b7d25"),
    "npz": ({"path": "d.npz"}, "0deb4a35660a8162cfea824eaf547c781e6b77a76cdd986f7246eb30c18aa2d9"),
    "loader": ({"loader": "m:f", "k": 1},
               "f6fb37748d4585929744eac86def0665043ff620e4c00f5ee491fca7f12cd7be"),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_example_spec_hashes_are_unchanged(name):
    assert load_spec(EXAMPLES / name).spec_hash == GOLDEN[name]


def test_override_and_user_data_hashes_are_unchanged():
    quick = load_spec(EXAMPLES / "circles.toml", seeds=2, epochs=50)
    assert quick.spec_hash == "460c6fcd525c4c67a56f199bf08ded37694e52cf25e9429ac592b47f5983cfef"
    for data, expected in GOLDEN_USER.values():
        assert load_spec({**USER_DATA, "data": data}).spec_hash == expected
        # Spelling out the default `nonfinite` keeps the hash; "drop" is another study.
        spelled = load_spec({**USER_DATA, "data": {**data, "nonfinite": "refuse"}})
        assert spelled.spec_hash == expected and "nonfinite" not in spelled.data
        dropped = load_spec({**USER_DATA, "data": {**data, "nonfinite": "drop"}})
        assert dropped.data["nonfinite"] == "drop" and dropped.spec_hash != expected


def test_nonfinite_option_is_for_user_data_and_checked():
    with pytest.raises(SpecError, match=r"^data\.nonfinite: must be one of 'refuse', 'drop'"):
        load_spec({**USER_DATA, "data": {"path": "d.csv", "nonfinite": "ignore"}})
    with pytest.raises(SpecError, match=r"^data\.nonfinite: unknown key"):
        load_spec(spec_with(**{"data.nonfinite": "drop"}))


@pytest.mark.parametrize("text, path, name", [
    ('[train]\nlearning_rate = inf', "train.learning_rate", "learning_rate"),
    ('[train]\nlearning_rate = nan', "train.learning_rate", "learning_rate"),
    ('[train]\noptimizer_options = { beta_1 = nan }', "train.optimizer_options.beta_1", "beta_1"),
    ('[data]\nname = "circles"\nnoise = -inf', "data.noise", "noise"),
    ('[[arms]]\nname = "n"\nnoise = [{ type = "gaussian", where = "input", stddev = inf }]',
     "arms[1].noise[0].stddev", "stddev"),
    ('[[arms]]\nname = "n"\nnoise = [{ type = "gaussian", where = "input", stddev = 0.1,'
     ' clip = [0.0, inf] }]', "arms[1].noise[0].clip[1]", "clip[1]"),
    ('[[arms]]\nname = "n"\nnoise = [{ type = "gaussian", where = "input", stddev = 0.1 }]\n'
     'grid = { "noise[0].stddev" = [0.1, nan] }', "arms[1].grid.noise[0].stddev[1]",
     "noise[0].stddev[1]"),
    ('[[arms]]\nname = "g"\nnoise = [{ type = "gradient", eta = inf }]',
     "arms[1].noise[0].eta", "eta"),
    ('[robustness]\nsmoothing = { sigma = inf }', "robustness.smoothing.sigma", "sigma"),
])
def test_nan_and_infinity_in_a_toml_spec_are_refused_with_the_key_path(tmp_path, text, path,
                                                                        name):
    data = "" if text.startswith("[data]") else '[data]\nname = "circles"\n'
    spec = tmp_path / "s.toml"  # tables may follow [[arms]]; a second [[arms]] adds arms[1]
    spec.write_text(f'[study]\nname = "demo"\n{data}[model]\nname = "mlp"\n'
                    f'[[arms]]\nname = "b"\n{text}\n')
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    message = str(info.value)
    assert message.startswith(f"{path}: `{name}` must be a finite number. Received: "), message


def test_learning_rate_inf_in_a_dict_spec_names_value_and_path():
    with pytest.raises(SpecError, match=r"^train\.learning_rate: `learning_rate` must be a "
                                        r"finite number\. Received: learning_rate=inf$"):
        load_spec(spec_with(**{"train.learning_rate": float("inf")}))
    with pytest.raises(SpecError, match=r"^study\.seed: `seed` must be a 64-bit integer"):
        load_spec(spec_with(**{"study.seed": 2**64}))


@pytest.mark.parametrize("bad, what", [
    ("esc\x1b[2Jcleared", "control"), ("two\nlines", "control"), ("tab\tbed", "control"),
    ("zero\u200bwidth", "format"), ("bidi\u202eevil", "format"), ("para\u2029graph", "paragraph"),
])
def test_names_with_control_or_invisible_characters_are_refused_and_shown_escaped(bad, what):
    for path, changes in (("study.name", {"study.name": bad}), ("arms[1].name",
                                                                  {"arms.1.name": bad})):
        with pytest.raises(SpecError) as info:
            load_spec(spec_with(**changes))
        message = str(info.value)
        assert message.startswith(f"{path}: `name` must not contain control"), message
        assert what in message and message.isprintable(), message
        assert repr(bad)[1:-1] in message  # the escape shown as text, never executed


def test_names_are_trimmed_and_bounded():
    for bad in (" lead", "trail "):
        with pytest.raises(SpecError, match=r"^study\.name: `name` must not start or end"):
            load_spec(spec_with(**{"study.name": bad}))
    assert load_spec(spec_with(**{"study.name": "n" * 100})).name == "n" * 100
    with pytest.raises(SpecError, match=r"^study\.name: must be at most 100 characters"):
        load_spec(spec_with(**{"study.name": "n" * 101}))
    with pytest.raises(SpecError, match=r"^arms\[1\]\.name: `name` must be at most 100"):
        load_spec(spec_with(**{"arms.1.name": "a" * 101}))
    # The longest override suffix still fits a name of the longest allowed length.
    spec = load_spec(spec_with(**{"study.name": "n" * 100}), seeds=10_000, epochs=1_000_000)
    assert spec.name == "n" * 100 + ":seeds=10000,epochs=1000000"
    assert load_spec(spec).name == spec.name  # and it validates again as it is stored


def test_grid_names_get_more_room_but_not_unbounded():
    values = [float(i) + 0.123456789 for i in range(3)]
    long_arm = "a" * 100
    raw = spec_with(**{"arms.1.name": long_arm, "arms.1.grid": {"noise[0].stddev": values}})
    assert len(load_spec(raw).arms) == 4
    noise = [{"type": "gaussian", "where": w, "stddev": 0.1, "clip": [-1e9, 1e9]}
             for w in ("input", "pre_activation", "post_activation")]
    keys = {f"noise[{i}].clip": [[-123456789.123, 123456789.123]] for i in range(3)}
    keys.update({f"noise[{i}].stddev": [0.123456789] for i in range(3)})
    raw = spec_with(**{"arms.1.name": long_arm, "arms.1.noise": noise, "arms.1.grid": keys})
    with pytest.raises(SpecError, match=r"^arms\[1\]\.grid: `name` must be at most 300"):
        load_spec(raw)


@pytest.mark.parametrize("changes, path, cap", [
    ({"study.seeds": 10_001}, "study.seeds", "10,000"),
    ({"train.epochs": 1_000_001}, "train.epochs", "1,000,000"),
    ({"train.batch_size": 10**9}, "train.batch_size", "1,000,000"),
    ({"model.hidden": [16, 10**6]}, "model.hidden", "100,000"),
    ({"data.n_samples": 10**9}, "data.n_samples", "10,000,000"),
])
def test_sizes_have_hard_caps(changes, path, cap):
    with pytest.raises(SpecError) as info:
        load_spec(spec_with(**changes))
    assert str(info.value).startswith(f"{path}: ") and f"<= {cap}" in str(info.value)


def test_overrides_go_through_the_same_caps():
    with pytest.raises(SpecError, match=r"^study\.seeds: `seeds` must be <= 10,000\. "
                                        r"Received: seeds=1000000000$"):
        load_spec(BASE, seeds=10**9)
    with pytest.raises(SpecError, match=r"^train\.epochs: `epochs` must be <= 1,000,000"):
        load_spec(BASE, epochs=10**9)


def test_arm_count_is_capped_before_a_grid_is_expanded():
    huge = {f"noise[0].{k}": [0.1 * i for i in range(1, 101)] for k in ("stddev",)}
    huge["noise[1].stddev"] = [0.1 * i for i in range(1, 101)]
    noise = [{"type": "gaussian", "where": "input", "stddev": 0.1},
             {"type": "gaussian", "where": "pre_activation", "stddev": 0.1}]
    with pytest.raises(SpecError, match=r"^arms\[1\]\.grid: expands to 10,000 arms, and a "
                                        r"study has at most 1,000"):
        load_spec(spec_with(**{"arms.1.noise": noise, "arms.1.grid": huge}))
    many = [{"name": f"arm{i}"} for i in range(1001)]
    with pytest.raises(SpecError, match=r"^arms: a study has at most 1,000 arms"):
        load_spec(spec_with(arms=many))


def test_spec_files_that_are_not_text_are_spec_errors(tmp_path):
    binary = tmp_path / "x.toml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(SpecError, match=r"x\.toml: not a text file \(it holds NUL bytes\)"):
        load_spec(binary)
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[study]\nname = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(SpecError, match=r"latin\.toml: not a text file \(byte 19 is not UTF-8\)"):
        load_spec(latin)
    with pytest.raises(SpecError, match=r": is a folder, not a spec file$"):
        load_spec(tmp_path)
    bom = tmp_path / "bom.toml"
    bom.write_text("\ufeff" + TOML, encoding="utf-8")
    assert load_spec(bom).spec_hash == load_spec(BASE).spec_hash


def test_a_binary_or_folder_spec_exits_2_on_the_command_line(tmp_path, capsys):
    from noisewise.cli import main

    binary = tmp_path / "x.toml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    for spec, text in ((binary, "not a text file"), (tmp_path, "is a folder")):
        code = main(["run", str(spec), "--store", str(tmp_path / "s.db"), "--quiet",
                     "--no-report"])
        err = capsys.readouterr().err
        assert code == 2 and text in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.toml"]


# -- through the command line: refused with exit 2, an existing store and the spec untouched ----
TINY = """[study]
name = "{name}"
seeds = {seeds}

[data]
name = "circles"

[model]
name = "mlp"
hidden = [4]

[train]
epochs = 1
learning_rate = {lr}

[[arms]]
name = "baseline"

[[arms]]
name = "{arm}"
noise = [{{ type = "gaussian", where = "input", stddev = {stddev} }}]
"""


def _tiny(**changes):
    values = {"name": "tiny", "seeds": 1, "lr": 0.01, "arm": "noisy", "stddev": 0.1, **changes}
    return TINY.format(**values)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A folder with a store that holds one finished tiny study."""
    from noisewise.cli import main

    folder = tmp_path_factory.mktemp("stored")
    (folder / "tiny.toml").write_text(_tiny())
    code = main(["run", str(folder / "tiny.toml"), "--store", str(folder / "s.db"), "--quiet",
                 "--no-report"])
    assert code == 0
    return folder


def _sha(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"


@pytest.mark.parametrize("spec_text, extra, expected", [
    (_tiny(stddev="inf"), [], r"arms\[1\]\.noise\[0\]\.stddev: `stddev` must be a finite "
                              r"number\. Received: stddev=inf$"),
    (_tiny(lr="inf"), [], r"train\.learning_rate: `learning_rate` must be a finite number"),
    (_tiny(seeds=1_000_000_000), [], r"study\.seeds: `seeds` must be <= 10,000\."),
    (_tiny(), ["--seeds", "1000000000"], r"study\.seeds: `seeds` must be <= 10,000\."),
    (_tiny(), ["--epochs", "1000000000"], r"train\.epochs: `epochs` must be <= 1,000,000\."),
    (_tiny(name="n" * 300), [], r"study\.name: must be at most 100 characters"),
    (_tiny(name="\\u001b[31mred\\u001b[0m"), [], r"study\.name: `name` must not contain control"),
    (_tiny(arm="x\\u001b]0;title\\u0007"), [], r"arms\[1\]\.name: `name` must not contain"),
    (b"\x00\x01binary\xff", [], r"spec\.toml: not a text file"),
    (None, [], r"spec\.toml: is a folder, not a spec file$"),
])
def test_hostile_specs_exit_2_and_leave_every_file_as_it_was(stored, tmp_path, capsys,
                                                             spec_text, extra, expected):
    from noisewise.cli import main

    spec = tmp_path / "spec.toml"
    if spec_text is None:
        spec.mkdir()
    elif isinstance(spec_text, bytes):
        spec.write_bytes(spec_text)
    else:
        spec.write_text(spec_text)
    store = stored / "s.db"
    before = {p: _sha(p) for p in (store, spec)}
    listing = sorted(p.name for p in stored.iterdir())
    code = main(["run", str(spec), "--store", str(store), "--quiet", "--no-report", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.isprintable(), err
    assert re.search(r"^noisewise: invalid spec: .*" + expected, err), err
    assert {p: _sha(p) for p in (store, spec)} == before
    assert sorted(p.name for p in stored.iterdir()) == listing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]
