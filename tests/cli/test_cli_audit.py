"""``noisewise audit SPEC``: exit codes, the table, --json, refused --fail-on, and
``noisewise run`` stopped by a failing [audit] table before anything trains."""

import json

import numpy as np
import pytest

from conftest import run_cli

SPEC = """
[study]
name = "cli-audit"
seeds = 1

[data]
path = "data.npz"

[model]
name = "mlp"
hidden = [8]

[train]
epochs = 1

{audit}
[[arms]]
name = "base"
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A spec over an .npz whose test split holds 3 training rows (leaked)."""
    path = tmp_path_factory.mktemp("audit")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype("float32")
    x_test = rng.normal(size=(20, 3)).astype("float32")
    x_test[[2, 5, 7]] = x[[0, 1, 2]]
    np.savez(path / "data.npz", x_train=x, y_train=np.arange(60) % 2, x_test=x_test,
             y_test=np.arange(20) % 2)
    (path / "spec.toml").write_text(SPEC.format(audit=""))
    (path / "gated.toml").write_text(SPEC.format(
        audit='[audit]\nchecks = ["leakage", "duplicate"]\nfail_on = { leakage = 0 }\n'))
    return path


def test_exit_0_without_thresholds_and_the_table_has_one_row_per_check(folder, capsys):
    code, out, err = run_cli(capsys, "audit", folder / "spec.toml", "--checks",
                             "leakage,duplicate,label_type")
    assert code == 0, err
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in out.splitlines() if line.count("│") >= 4}
    assert rows["leakage"] == "found 3" and rows["duplicate"] == "ok"
    assert rows["label"] == "skipped: not in checks"


def test_json_is_parseable_and_an_exceeded_threshold_exits_4(folder, capsys):
    code, out, err = run_cli(capsys, "audit", folder / "spec.toml", "--checks", "leakage",
                             "--fail-on", "leakage=2", "--json")
    assert code == 4
    result = json.loads(out)
    assert result["checks"]["leakage"]["indices"] == {"test": [2, 5, 7]}
    assert result["exceeded"] == ["leakage"] and result["passed"] is False
    code, out, err = run_cli(capsys, "audit", folder / "spec.toml", "--checks", "leakage",
                             "--fail-on", "leakage=0.2")  # 3 of 20 is not above 20%
    assert code == 0, err


@pytest.mark.parametrize("value,words", [("nope=0", ["nope", "allowed", "leakage"]),
                                         ("leakage=-3", ["leakage=-3", "names"]),
                                         ("leakage:0", ["'leakage:0'"])])
def test_a_bad_fail_on_is_refused_with_exit_2_naming_it(folder, capsys, value, words):
    code, out, err = run_cli(capsys, "audit", folder / "spec.toml", "--fail-on", value)
    assert code == 2 and "--fail-on" in err
    assert all(w in err for w in words), err


def test_run_stops_before_training_when_the_audit_fails(folder, capsys):
    store = folder / "gated.db"
    code, out, err = run_cli(capsys, "run", folder / "gated.toml", "--store", store, "--quiet")
    assert code == 4
    assert "leakage: 3 found > threshold 0" in err and "nothing trained" in err
    if store.exists():  # refused before the store was opened: no runs, whatever it holds
        from noisewise.study import Store

        with Store(store, readonly=True) as s:
            assert all(not s.runs(st["id"], status=None) for st in s.studies())
