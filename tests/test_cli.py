"""The noisewise command line: run, show, list, export and their exit codes."""

import csv
import io
import json
import subprocess
import sys

import pytest

from noisewise.cli import main

SPEC = """
[study]
name = "cli"
seeds = 2
seed = 1

[data]
name = "circles"

[model]
name = "mlp"
hidden = [16]

[train]
epochs = 4
batch_size = 8
learning_rate = 0.01

[[arms]]
name = "baseline"

[[arms]]
name = "input"
noise = [{ type = "gaussian", where = "input", stddev = 0.2 }]
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished two-arm study: (spec path, store path, output of `noisewise run`)."""
    folder = tmp_path_factory.mktemp("cli")
    spec, store = folder / "cli.toml", folder / "cli.db"
    spec.write_text(SPEC)
    out, err = io.StringIO(), io.StringIO()
    sys_out, sys_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(["run", str(spec), "--store", str(store)])
    finally:
        sys.stdout, sys.stderr = sys_out, sys_err
    assert code == 0, err.getvalue()
    return spec, store, out.getvalue(), err.getvalue()


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_prints_every_arm_with_mean_ci_and_paired_comparison(study):
    _, _, out, err = study
    assert "cli: val_accuracy over 4 of 4 runs" in out
    lines = out.splitlines()
    assert lines[1].split() == ["arm", "n", "mean", "diff", "[95%", "CI]", "p", "(Holm)",
                                "better", "verdict"]
    rows = {line.split()[0]: line for line in lines[3:5]}
    assert "reference" in rows["baseline"]
    assert rows["input"].split()[1] == "2"  # n
    assert all(len(line) <= 80 for line in lines)
    assert "4 run(s) trained" in err


def test_rerun_resumes_and_show_reads_the_store(study, capsys):
    spec, store, first, _ = study
    code, out, err = run_cli(capsys, "run", spec, "--store", store, "--quiet")
    assert code == 0 and "4 of 4 runs" in out
    assert out == first  # the table comes from the store, unchanged
    code, shown, _ = run_cli(capsys, "show", "cli", "--store", store)
    assert code == 0 and shown == first
    code, latest, _ = run_cli(capsys, "show", "--store", store)
    assert code == 0 and latest == first
    # Every seed is paired: the small-sample warning is said once, not again for the pairs.
    assert "only 2 seeds: intervals are wide" in shown
    assert "paired seeds: intervals are wide" not in shown


def test_list_and_export(study, capsys):
    _, store, _, _ = study
    code, out, _ = run_cli(capsys, "list", "--store", store)
    assert code == 0 and "cli" in out and " 4 " in out
    code, out, _ = run_cli(capsys, "export", "cli", "--format", "json", "--store", store)
    records = json.loads(out)
    assert code == 0 and len(records) == 4
    first = records[0]
    expected = {"study", "arm", "replica", "seed", "status", "backend", "final", "history"}
    assert expected <= set(first)
    assert first["history"]["loss"]["epoch"] == [1, 2, 3, 4]
    assert first["final"]["loss"] == first["history"]["loss"]["value"][-1]
    code, out, _ = run_cli(capsys, "export", "cli", "--format", "csv", "--store", store)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 4
    assert {r["arm"] for r in rows} == {"baseline", "input"}
    assert float(rows[0]["val_accuracy"]) == first["final"]["val_accuracy"]
    assert {r["status"] for r in rows} == {"done"} and rows[0]["diverged_epoch"] == ""
    assert rows[0]["error"] == "" and first["diverged_epoch"] is None
    target = store.parent / "curves.csv"
    code, _, _ = run_cli(capsys, "export", "cli", "--format", "csv", "--history",
                         "--store", store, "-o", target)
    curves = list(csv.DictReader(target.open()))
    assert code == 0 and len(curves) == 4 * 4 * 4  # runs x metrics x epochs
    assert set(curves[0]) == {"study", "arm", "replica", "status", "metric", "epoch", "value"}
    assert {c["status"] for c in curves} == {"done"}


def test_overrides_store_a_separate_quick_study(study, capsys):
    spec, store, _, _ = study
    code, out, _ = run_cli(capsys, "run", spec, "--store", store, "--seeds", "1", "--epochs",
                           "4", "--quiet")
    # epochs=4 is the spec's own value: only seeds changed.
    assert code == 0 and "cli:seeds=1: val_accuracy over 2 of 2 runs" in out
    code, out, _ = run_cli(capsys, "list", "--store", store)
    assert "cli:seeds=1" in out


def test_usage_and_spec_errors_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(SPEC.replace("stddev = 0.2", "stddev = -0.2"))
    code, out, err = run_cli(capsys, "run", bad, "--store", tmp_path / "x.db")
    assert code == 2 and out == ""
    assert "arms[1].noise[0].stddev" in err and "Received: stddev=-0.2" in err
    assert not (tmp_path / "x.db").exists()
    assert run_cli(capsys, "run", tmp_path / "missing.toml")[0] == 2
    assert run_cli(capsys, "run")[0] == 2
    code, _, err = run_cli(capsys, "run", bad, "--seeds", "0")
    assert code == 2 and "--seeds" in err
    assert run_cli(capsys, "export", "cli", "--format", "xml")[0] == 2


def test_store_errors_exit_3_and_leave_the_file_alone(study, tmp_path, capsys):
    spec, store, _, _ = study
    alien = tmp_path / "notes.db"
    alien.write_bytes(b"my precious notes\n" * 10)
    code, _, err = run_cli(capsys, "run", spec, "--store", alien)
    assert code == 3 and "not a noisewise store" in err
    assert alien.read_bytes() == b"my precious notes\n" * 10
    assert run_cli(capsys, "show", "--store", tmp_path / "nothing.db")[0] == 3
    # Same study name, different spec: refused, unless --new.
    changed = tmp_path / "changed.toml"
    changed.write_text(SPEC.replace("seed = 1", "seed = 2"))
    code, _, err = run_cli(capsys, "run", changed, "--store", store, "--quiet")
    assert code == 3 and "different spec" in err and "--new" in err


def test_new_starts_a_fresh_study_and_keeps_the_old(study, tmp_path, capsys):
    spec, store, _, _ = study
    copy = tmp_path / "copy.db"
    copy.write_bytes(store.read_bytes())
    changed = tmp_path / "changed.toml"
    changed.write_text(SPEC.replace("seed = 1", "seed = 2"))
    code, out, _ = run_cli(capsys, "run", changed, "--store", copy, "--quiet", "--new")
    assert code == 0 and "4 of 4 runs" in out
    _, listing, _ = run_cli(capsys, "list", "--store", copy)
    assert "cli@" in listing  # the old study, kept under an archive name
    assert run_cli(capsys, "show", "nope", "--store", copy)[0] == 2


FLAKY = """
import keras

class Flaky(keras.layers.Layer):
    def call(self, x, training=None):
        if training:
            raise RuntimeError("flaky layer says no")
        return x

def build(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(Flaky()(inputs)))
"""


def test_failed_runs_exit_1(tmp_path, capsys):
    (tmp_path / "flaky_cli.py").write_text(FLAKY)
    spec = tmp_path / "flaky.toml"
    spec.write_text(SPEC.replace('name = "mlp"\nhidden = [16]', 'builder = "flaky_cli:build"')
                    .replace("seeds = 2", "seeds = 1"))
    code, out, err = run_cli(capsys, "run", spec, "--store", tmp_path / "f.db", "--quiet")
    assert code == 1
    assert "2 run(s) failed" in err and "no finished runs" in out


@pytest.mark.slow
def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "noisewise.cli", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert all(cmd in result.stdout for cmd in ("run", "show", "list", "export"))
