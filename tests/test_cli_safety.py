"""The command line never destroys an input, never writes half a file, and keeps one error contract.

Every test states the exit code, the message, and the state of every file in
the folder afterwards (sha256 of each, so the store and the spec are checked
byte for byte and a stray temporary or side file is seen).
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from noisewise.cli import main
from noisewise.study import Store, load_spec
from noisewise.study.execute import RunResult
from noisewise.study.report import default_report_path

SPEC = """
[study]
name = "{name}"
seeds = 2
seed = 1

[data]
name = "circles"

[model]
name = "mlp"
hidden = [4]

[train]
epochs = 2
batch_size = 16

[[arms]]
name = "baseline"

[[arms]]
name = "input"
noise = [{{ type = "gaussian", where = "input", stddev = 0.1 }}]
"""
ROOT = Path(__file__).resolve().parents[1]


def snapshot(folder):
    """``{relative path: sha256}`` of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A store with three tiny finished studies ('tiny', 'a/b', 'a_b') and the tiny spec."""
    folder = tmp_path_factory.mktemp("safety")
    store = folder / "s.db"
    for name in ("tiny", "a/b", "a_b"):
        spec = folder / ("tiny.toml" if name == "tiny" else f"{name.replace('/', '-')}.toml")
        spec.write_text(SPEC.format(name=name))
        assert main(["run", str(spec), "--store", str(store), "--quiet"]) == 0
    return folder, store, folder / "tiny.toml"


@pytest.fixture
def copy(made, tmp_path):
    """The made folder copied, for tests that write into it."""
    folder = tmp_path / "copy"
    shutil.copytree(made[0], folder)
    return folder, folder / "s.db", folder / "tiny.toml"


def test_export_onto_the_store_is_refused_even_with_force(made, capsys):
    folder, store, _ = made
    link = folder / "link.db"
    link.symlink_to(store)
    before = snapshot(folder)
    try:
        for target in (store, link, f"{store}-wal", f"{store}-shm"):
            for force in ([], ["--force"]):
                code, out, err = cli(capsys, "export", "tiny", "--format", "csv", "--store",
                                     store, "-o", target, *force)
                assert code == 2 and out == "", (target, force, err)
                # the store "is the store ...", its -wal "is a side file of the store ..."
                assert "the store this command reads" in err and "even with --force" in err
                assert err.count("\n") == 1  # one line
                assert snapshot(folder) == before
    finally:
        link.unlink()


def test_report_onto_the_store_is_refused_even_with_force(made, capsys):
    folder, store, _ = made
    before = snapshot(folder)
    for force in ([], ["--force"]):
        code, out, err = cli(capsys, "report", "tiny", "--store", store, "-o", store, *force)
        assert code == 2 and out == "" and "is the store this command reads" in err
        assert snapshot(folder) == before


def test_outputs_onto_the_spec_are_refused_even_with_force(made, capsys):
    folder, store, spec = made
    before = snapshot(folder)
    for command in (["export", "tiny", "--format", "json"], ["report", "tiny"]):
        for force in ([], ["--force"]):
            code, out, err = cli(capsys, *command, "--store", store, "-o", spec, *force)
            assert code == 2 and out == "", (command, force)
            assert f"{spec}: is a noisewise study spec" in err
            assert snapshot(folder) == before


def test_output_onto_an_unrelated_file_needs_force(copy, capsys):
    folder, store, _ = copy
    for name, command, head in (("notes.csv", ["export", "tiny", "--format", "csv"], "study,"),
                                ("notes.html", ["report", "tiny"], "<!DOCTYPE html>")):
        notes = folder / name
        notes.write_bytes(b"my precious notes\n")
        before = snapshot(folder)
        code, out, err = cli(capsys, *command, "--store", store, "-o", notes)
        assert code == 2 and out == ""
        assert "exists and was not written by noisewise" in err and "pass --force" in err
        assert snapshot(folder) == before
        code, out, err = cli(capsys, *command, "--store", store, "-o", notes, "--force")
        assert code == 0, err
        assert notes.read_text().startswith(head)
        after = snapshot(folder)
        assert set(after) == set(before) and after[name] != before[name]  # no temporary left
        assert all(after[k] == v for k, v in before.items() if k != name)


def test_a_rerun_replaces_its_own_report_and_leaves_a_foreign_one(copy, capsys):
    folder, store, spec = copy
    report = default_report_path(store, "tiny")
    assert report.is_file()  # written by the first run
    report.write_text(report.read_text() + "<!-- stale -->")
    code, _, err = cli(capsys, "run", spec, "--store", store)
    assert code == 0 and f"report: {report}" in err and "0 run(s) trained" in err
    assert "stale" not in report.read_text()
    report.write_text("my own page, not a noisewise report")
    before = snapshot(folder)
    code, out, err = cli(capsys, "run", spec, "--store", store, "--quiet")
    assert code == 0 and "tiny: val_accuracy over 4 of 4 runs" in out
    assert "report not written" in err and "not written by noisewise" in err
    assert "noisewise report" in err and "-o FILE" in err
    assert snapshot(folder) == before


def test_a_300_character_study_name(tmp_path, capsys):
    spec = tmp_path / "long.toml"
    spec.write_text(SPEC.format(name="n" * 300))
    code, out, err = cli(capsys, "run", spec, "--store", tmp_path / "long.db")
    assert code == 2 and out == "" and "study.name" in err
    assert snapshot(tmp_path) == {"long.toml": hashlib.sha256(spec.read_bytes()).hexdigest()}
    # A store from before the cap may hold such a name: its report still works.
    old = load_spec(tomllib.loads(SPEC.format(name="short"))).to_dict()
    old["study"]["name"] = "n" * 300
    with Store(tmp_path / "old.db") as store:
        store.open_study(old)
    code, out, err = cli(capsys, "report", "--store", tmp_path / "old.db")
    path = Path(out.strip())
    assert code == 0, err
    assert path.is_file() and path.parent == tmp_path and len(path.name) <= 100


def test_slash_and_underscore_names_get_different_reports(made, capsys):
    folder, store, _ = made
    paths = {default_report_path(store, name) for name in ("a/b", "a_b")}
    assert len(paths) == 2 and all(p.is_file() and p.parent == folder for p in paths)
    for name in ("a/b", "a_b"):
        assert f"<code>{name}</code>" in default_report_path(store, name).read_text()
    assert not (folder / "s-a").exists()


def test_no_such_study_exits_2_everywhere(made, capsys):
    folder, store, _ = made
    before = snapshot(folder)
    for command in (["show", "nope"], ["export", "nope", "--format", "csv"],
                    ["report", "nope", "-o", folder / "nope.html"]):
        code, out, err = cli(capsys, *command, "--store", store)
        assert code == 2 and out == "", command
        assert err.startswith("noisewise: no study 'nope' in") and "'tiny'" in err
        assert snapshot(folder) == before


def test_debug_shows_the_traceback(made, capsys):
    _, store, _ = made
    code, _, err = cli(capsys, "show", "nope", "--store", store)
    assert code == 2 and "Traceback" not in err
    code, _, err = cli(capsys, "--debug", "show", "nope", "--store", store)
    assert code == 2 and "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("noisewise: no study 'nope'")
    code, _, err = cli(capsys, "show", "nope", "--store", store, "--debug")  # after it too
    assert code == 2 and "Traceback (most recent call last)" in err


def test_a_closed_pipe_exits_quietly(tmp_path):
    """``noisewise export ... | head -1`` with far more output than a pipe holds."""
    spec = load_spec({"study": {"name": "long", "seeds": 1}, "data": {"name": "circles"},
                      "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 3000},
                      "arms": [{"name": "baseline"}]})
    curve = [0.5 + 1e-5 * i for i in range(3000)]
    with Store(tmp_path / "big.db") as store:
        store.write_run(store.open_study(spec), RunResult(
            spec.arms[0], 0, 7, "done", {"loss": curve, "val_loss": curve, "accuracy": curve},
            {"loss": 0.5, "val_loss": 0.5, "accuracy": 0.5}, 1.0, "jax", {}))
    command = (f"{sys.executable} -m noisewise.cli export long --format json --store "
               f"{tmp_path / 'big.db'} | head -1")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[\n"
    for noise in ("Traceback", "BrokenPipe", "Exception ignored", "noisewise:"):
        assert noise not in done.stderr  # (a backend's start-up chatter may be there)


def test_fit_with_workers_is_refused(made, tmp_path, capsys):
    _, _, spec = made
    code, out, err = cli(capsys, "run", spec, "--store", tmp_path / "w.db", "--executor", "fit",
                         "--workers", "2")
    assert code == 2 and out == ""
    assert "--workers applies to the vectorised executor" in err
    assert snapshot(tmp_path) == {}


def test_read_only_commands_never_write_into_an_empty_file(tmp_path, capsys):
    empty = tmp_path / "empty.db"
    empty.touch()
    for command in (["show"], ["list"], ["export", "tiny", "--format", "csv"],
                    ["report", "-o", tmp_path / "r.html"]):
        code, out, err = cli(capsys, *command, "--store", empty)
        assert code == 3 and out == "", command
        assert "not a noisewise store" in err and err.count("\n") == 1
        assert snapshot(tmp_path) == {"empty.db": hashlib.sha256(b"").hexdigest()}


@pytest.fixture
def read_only_copy(made, tmp_path):
    """The store in a real read-only folder (a read-only bind mount)."""
    source, mount = tmp_path / "source", tmp_path / "ro"
    source.mkdir()
    mount.mkdir()
    shutil.copy(made[1], source / "s.db")
    if subprocess.run(["mount", "--bind", str(source), str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("a read-only folder needs a bind mount, which this system refuses")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)],
                          capture_output=True).returncode != 0:
            pytest.skip("remounting read-only is refused on this system")
        yield mount / "s.db"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_read_only_commands_read_a_store_in_a_read_only_folder(read_only_copy, tmp_path,
                                                                capsys):
    store = read_only_copy
    before = snapshot(store.parent)
    code, out, err = cli(capsys, "show", "tiny", "--store", store)
    assert code == 0 and "tiny: val_accuracy over 4 of 4 runs" in out, err
    code, out, err = cli(capsys, "list", "--store", store)
    assert code == 0 and "a_b" in out, err
    code, out, err = cli(capsys, "export", "tiny", "--format", "csv", "--store", store)
    assert code == 0 and out.count("\n") == 5, err
    code, out, err = cli(capsys, "report", "tiny", "--store", store, "-o", tmp_path / "r.html")
    assert code == 0 and (tmp_path / "r.html").is_file(), err
    code, out, err = cli(capsys, "report", "tiny", "--store", store)  # beside it: cannot
    assert code == 2 and out == "" and "Read-only file system" in err
    assert "write it elsewhere with -o FILE" in err and str(store.parent) in err
    assert snapshot(store.parent) == before


def test_control_characters_never_reach_the_terminal(tmp_path, capsys):
    """The spec refuses such names; an older store may still hold one."""
    evil = "red\x1b[31mALERT\x1b[0m\u202e"
    spec = load_spec({"study": {"name": "plain", "seeds": 1}, "data": {"name": "circles"},
                      "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 2},
                      "arms": [{"name": "baseline"}]}).to_dict()
    spec["study"]["name"] = evil
    spec["arms"] = [{"name": evil}]
    with Store(tmp_path / "evil.db") as store:
        sid = store.open_study(spec)
        store.write_run(sid, RunResult(evil, 0, 7, "done", {"loss": [0.5, 0.4]},
                                       {"loss": 0.4, "val_loss": 0.4}, 1.0, "jax", {}))
    for command in (["list"], ["show"], ["show", "nope"]):
        code, out, err = cli(capsys, *command, "--store", tmp_path / "evil.db")
        assert "\x1b" not in out + err and "\u202e" not in out + err, command
        assert "\\x1b[31mALERT" in out + err


def test_spec_files_that_are_not_text_exit_2(tmp_path, capsys):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    for spec in (binary, tmp_path):
        code, out, err = cli(capsys, "run", spec, "--store", tmp_path / "x.db")
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert "Traceback" not in err and not (tmp_path / "x.db").exists()


def test_robustness_json_never_replaces_the_model_or_a_file(tmp_path, capsys):
    model = tmp_path / "m.keras"
    model.write_bytes(b"not really a model")
    notes = tmp_path / "notes.json"
    notes.write_text("{}")
    before = snapshot(tmp_path)
    for target in (model, notes):
        code, out, err = cli(capsys, "robustness", model, "--data", "circles", "--json", target)
        assert code == 2 and out == ""
        assert ("is the input" if target == model else "pass --force") in err
        assert snapshot(tmp_path) == before


def test_augment_preview_replaces_its_own_image_only(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    spec = tmp_path / "aug.json"
    spec.write_text('[{"type": "flip", "mode": "horizontal"}]')
    out_png = tmp_path / "p.png"
    args = ["augment", "preview", spec, "--dataset", "digits", "--count", "1",
            "--samples", "1"]
    code, _, err = cli(capsys, *args, "-o", spec)
    assert code == 2 and "is the input this command reads" in err
    code, _, err = cli(capsys, *args, "-o", out_png)
    assert code == 0 and out_png.read_bytes().startswith(b"\x89PNG"), err
    first = out_png.stat().st_ino
    code, _, err = cli(capsys, *args, "-o", out_png)  # its own image: replaced
    assert code == 0 and out_png.stat().st_ino != first, err
    out_png.write_bytes(b"\x89PNG\r\n\x1a\nsomeone else's picture")
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, *args, "-o", out_png)
    assert code == 2 and "pass --force" in err and snapshot(tmp_path) == before
