"""A seeded generator throws malformed specs at `noisewise run`: each is refused before work.

Every spec is a valid small study with one to three mutations a careless or
hostile user might make (wrong types, unknown keys, missing sections, NaN,
infinity, negative and huge numbers, names with terminal escapes, bad grid
keys, unknown noise types, ...). It is written as TOML and run through the
real command line: exit code 2, stderr lines each starting with a key path (one
per error found: a spec with two mutations may report both), no store and no
report written, nothing trained. A mutation that happens to leave
the spec valid is not emitted (it is checked in-process first), so every case
really is malformed.
"""

import copy
import json
import math
import random
import re

import pytest

from noisewise.cli import main
from noisewise.study.config import SpecError, validate
from noisewise.study.report import spec_to_toml

N_SPECS = 1200
SEED = 20240521
KEY_PATH = re.compile(r"^noisewise: invalid spec: (spec|study|data|model|train|arms|robustness)\b")
MORE = re.compile(r"^\s*(spec|study|data|model|train|arms|robustness)\b")  # further errors

BASE = {
    "study": {"name": "fuzz", "seeds": 2, "seed": 0, "reference": "baseline"},
    "data": {"name": "circles", "n_train": 30},
    "model": {"name": "mlp", "hidden": [4], "activation": "relu"},
    "train": {"epochs": 1, "batch_size": 8, "learning_rate": 0.01, "metrics": ["accuracy"]},
    "arms": [
        {"name": "baseline"},
        {"name": "pre", "noise": [{"type": "gaussian", "where": "pre_activation", "stddev": 0.1}],
         "grid": {"noise[0].stddev": [0.1, 0.3]}},
        {"name": "weights", "noise": [{"type": "weight", "stddev": 0.05},
                                      {"type": "gradient", "eta": 0.01}]},
        {"name": "rotated", "augment": [{"type": "rotate", "factor": 10, "unit": "degrees"}],
         "augment_value_range": [0.0, 1.0]},
    ],
}

NAN, INF = math.nan, math.inf
NUMBERS = [NAN, INF, -INF, -1, -0.5, 2**63, -(2**63) - 1, 10**30, "1", True, [], {}]
BAD_NAMES = ["", " lead", "trail ", "esc\x1b[31mred", "line\nbreak", "tab\there", "bell\x07",
             "zero\u200bwidth", "bidi\u202eevil", "sep\u2028line", "x" * 101, 5, 1.5, [], {}]
DELETE = object()

# key path -> values that path must refuse (DELETE: the key removed)
BAD = {
    "study": [DELETE, 5, "x", []],
    "study.name": BAD_NAMES + [DELETE],
    "study.seeds": [0, -1, 10_001, 10**9, 1.5, NAN, INF, 2**63, "3", True],
    "study.seed": [-1, 1.5, NAN, INF, -INF, 2**64, "0"],
    "study.reference": ["nobody", 3, "pre"],
    "study.store": [5, [], {}],
    "data": [DELETE, 5, {}, {"name": "circles", "path": "d.csv"}],
    "data.name": ["mnist", 5, ""],
    "data.n_samples": [0, -5, 1.5, 10**8, NAN, INF, "100"],
    "data.noise": [-0.1, NAN, INF, -INF, "x"],
    "data.n_train": [0, 1.5, NAN],
    "data.nonfinite": ["drop", "refuse"],  # user data only: unknown for a built-in dataset
    "model": [DELETE, 5, {}, {"name": "mlp", "builder": "m:f"}, {"builder": "not a ref"}],
    "model.name": ["transformer", 3],
    "model.hidden": [[], [0], [-1], [1.5], "16", [10**6], [NAN], 16],
    "model.activation": ["relux", 3, NAN],
    "train": [5, "fast"],
    "train.epochs": [0, -1, 10**7, 1.5, NAN, INF, "5"],
    "train.batch_size": [0, 10**7, 2.5, INF],
    "train.validate_every": [0, 1.5, -INF],
    "train.learning_rate": [0, -0.1, NAN, INF, -INF, "0.1"],
    "train.optimizer": ["nope", 5],
    "train.optimizer_options": [{"beta_1": NAN}, {"beta_1": INF}, 5, {"no_such_option": 1}],
    "train.loss": ["nope", 5],
    "train.metrics": ["accuracy", 5, ["nope"], [5]],
    "arms": [DELETE, [], 5, "x", [5], [{}]],
    "arms[0].name": BAD_NAMES + ["a[b]", "pre", DELETE],
    "arms[1].noise": [5, [5], [{"type": "pink"}], [{"where": "input"}]],
    "arms[1].noise[0].type": ["pink", 5, DELETE],
    "arms[1].noise[0].where": ["output", 5, DELETE],
    "arms[1].noise[0].stddev": NUMBERS + [DELETE],
    "arms[1].noise[0].clip": [[0.0, INF], [NAN, 1.0], [1.0, 0.0], [1.0], 5],
    "arms[1].grid": [5, {"noise[5].stddev": [0.1]}, {"noise[0].rate": [0.1]},
                     {"train.epochs": [1]}, {"noise[0].stddev": []},
                     {"noise[0].stddev": [0.1, -1.0]}, {"noise[0].stddev": [NAN]},
                     {"noise[0].stddev": [0.1, INF]}, {"noise[0].stddev": 0.1},
                     {"noise[0].stddev": [0.01 * i for i in range(1001)]}],
    "arms[2].noise[0].stddev": [-1.0, NAN, INF],
    "arms[2].noise[0].where": ["input"],
    "arms[2].noise[1].eta": [-1.0, NAN, INF, "x"],
    "arms[2].noise[1].gamma": [-1.0, INF],
    "arms[2].noise": [[{"type": "gradient", "eta": 0.1}, {"type": "gradient", "eta": 0.2}]],
    "arms[3].augment": [5, [5], [{"type": "spin"}], [{"type": "mixup", "alpha": 0.2}],
                        [{"type": "rotate", "factor": INF, "unit": "degrees"}],
                        [{"type": "rotate", "factor": 10}]],
    "arms[3].augment[0].factor": [NAN, INF, "x"],
    "arms[3].augment_value_range": [[0.0, INF], [1.0, 0.0], 5, [NAN, 1.0]],
    "robustness": [5, {"nonsense": 1}, {"smoothing": {"sigma": INF}},
                   {"smoothing": {"sigma": 0.25, "alpha": NAN}},
                   {"attacks": [{"type": "fgsm", "eps": NAN}]},
                   {"attacks": [{"type": "cw", "eps": 0.1}]},
                   {"noise": [{"type": "gaussian", "levels": [INF]}]}],
}
UNKNOWN_PARENTS = ["spec", "study", "data", "model", "train", "arms[0]", "arms[1].noise[0]"]


def _steps(path):
    """'arms[1].noise[0].stddev' -> ['arms', 1, 'noise', 0, 'stddev']."""
    out = []
    for part in path.split("."):
        name, *indices = re.split(r"\[(\d+)\]", part)
        out += ([name] if name else []) + [int(i) for i in indices if i]
    return out


def _set(spec, path, value):
    """Apply one mutation; False when its parent no longer exists (an earlier one removed it)."""
    *parents, last = _steps(path)
    target = spec
    for step in parents:
        ok = isinstance(target, dict) and step in target if isinstance(step, str) else \
            isinstance(target, list) and step < len(target)
        if not ok:
            return False
        target = target[step]
    if isinstance(last, int):
        if not isinstance(target, list) or last >= len(target):
            return False
    elif not isinstance(target, dict):
        return False
    if value is DELETE:
        if isinstance(last, str) and last not in target:
            return False
        del target[last]
    else:
        target[last] = copy.deepcopy(value)
    return True


def _mutate(rng, spec):
    if rng.random() < 0.12:  # an unknown key somewhere
        parent = rng.choice(UNKNOWN_PARENTS)
        key = rng.choice(["colour", "stdev", "seed s", "learningrate", "x\x1b", "nosie"])
        if parent == "spec":
            spec[key] = rng.choice([1, "x", INF, {"a": 1}])
            return True
        return _set(spec, f"{parent}.{key}", rng.choice([1, "x", NAN, [1]]))
    path = rng.choice(sorted(BAD))
    return _set(spec, path, rng.choice(BAD[path]))


def _invalid(spec):
    """True unless the in-process validator accepts the spec (then it is not emitted)."""
    try:
        validate(spec)
    except SpecError:
        return True
    except Exception:  # noqa: BLE001 -- a crash is for the command line test to report
        return True
    return False


def malformed_specs(n=N_SPECS, seed=SEED):
    rng = random.Random(seed)
    out, skipped = [], 0
    while len(out) < n:
        spec = copy.deepcopy(BASE)
        applied = sum(_mutate(rng, spec) for _ in range(rng.choice([1, 1, 1, 2, 3])))
        if applied and _invalid(spec):
            out.append(spec)
        else:
            skipped += 1
    return out, skipped


# The spec dicts hold NaN, infinity and control characters: the report's TOML
# writer (the one a user copies a study from) must write them all readably.
to_toml = spec_to_toml


def test_the_generator_is_seeded_and_emits_only_invalid_specs():
    first, skipped = malformed_specs(50)
    again, _ = malformed_specs(50)
    assert json.dumps(first, default=str) == json.dumps(again, default=str)
    assert all(_invalid(spec) for spec in first)
    assert not _invalid(copy.deepcopy(BASE))  # the base spec itself is valid
    assert len({json.dumps(s, default=str, sort_keys=True) for s in first}) > 40


def test_every_malformed_spec_exits_2_with_a_key_path_and_writes_nothing(tmp_path, capsys):
    specs, _ = malformed_specs()
    assert len(specs) >= 1000
    failures = []
    for i, spec in enumerate(specs):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        path = folder / "spec.toml"
        path.write_text(to_toml(spec))
        store = folder / "study.db"
        code = main(["run", str(path), "--store", str(store), "--quiet", "--no-report"])
        err = capsys.readouterr().err.strip().splitlines()
        left = sorted(p.name for p in folder.iterdir())
        if (code != 2 or not err or not KEY_PATH.match(err[0])
                or not all(MORE.match(line) for line in err[1:])
                or not all(line.isprintable() for line in err) or left != ["spec.toml"]):
            failures.append((code, err, left, path.read_text()))
    shown = "\n".join(str(f[:2]) for f in failures[:10])
    assert not failures, f"{len(failures)} of {len(specs)} specs failed:\n{shown}\n{failures[0][3]}"


@pytest.mark.parametrize("text, start", [
    ('[study]\nname = "e\\u001b[2J"\n', "study.name"),
    ("[study]\nname = \"ok\"\nseeds = inf\n", "study.seeds"),
    ("[train]\nlearning_rate = nan\n", "train.learning_rate"),
])
def test_hand_written_toml_reaches_the_validator(tmp_path, capsys, text, start):
    path = tmp_path / "spec.toml"
    path.write_text(text + '[data]\nname = "circles"\n[model]\nname = "mlp"\n[[arms]]\nname = "b"\n'
                    if "[study]" in text else
                    '[study]\nname = "x"\n' + text + '[data]\nname = "circles"\n'
                    '[model]\nname = "mlp"\n[[arms]]\nname = "b"\n')
    code = main(["run", str(path), "--store", str(tmp_path / "s.db"), "--quiet", "--no-report"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"noisewise: invalid spec: {start}: "), err
    assert "\x1b" not in err  # the escape is shown as \x1b, never executed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]
