"""Store schemas 2 and 3: migration of a real version-1 store, divergence as a status,
fingerprints, read-only opening (also on read-only folders and file systems)."""

import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import pytest

from conftest import raw

from noisewise.study.store import (SCHEMA_VERSION, FingerprintError, Store, StoreError,
                                   _MIGRATIONS)

# .sqlite3, not .db: *.db is ignored by git, and the fixture must be committed.
FIXTURE = Path(__file__).parent / "fixtures" / "store_v1.sqlite3"

# The spec that wrote fixtures/store_v1.sqlite3 with the schema-1 store of commit 928a89c:
# Study(GOLDEN_SPEC).run(store=..., executor="fit"), then input_noise #1 replaced
# by a failed run written with Store.write_run, WAL checkpointed, journal_mode=DELETE.
# Runs: 1 baseline#0, 2 input_noise#0, 3 baseline#1 done; 4 input_noise#1 failed.
GOLDEN_SPEC = {"study": {"name": "golden", "seed": 0, "seeds": 2},
               "data": {"name": "circles"},
               "model": {"name": "mlp", "hidden": [4]},
               "train": {"epochs": 3},
               "arms": [{"name": "baseline"},
                        {"name": "input_noise",
                         "noise": [{"type": "gaussian", "where": "input", "stddev": 0.1}]}]}
GOLDEN_DONE = {("baseline", 0), ("input_noise", 0), ("baseline", 1)}


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(arm, replica, status="done", **kw):
    """A run result as the executors give it to the store."""
    return types.SimpleNamespace(**{
        "arm": arm, "replica": replica, "seed": 7, "status": status,
        "history": {"loss": [0.5, 0.4, float("nan")]}, "final": {"loss": float("nan")},
        "wall_s": 0.1, "backend": "jax", "versions": {}, **kw})


@pytest.fixture
def v1(tmp_path):
    path = tmp_path / "v1.db"
    shutil.copyfile(FIXTURE, path)
    return path


def columns(path):
    """{table: [(name, type, notnull, default, pk)]}: the schema as SQLite sees it."""
    tables = [r[0] for r in raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [r[1:] for r in raw(path, f"PRAGMA table_info({t})")] for t in sorted(tables)}


# -- the golden version-1 store -----------------------------------------------
def test_fixture_is_a_version_1_store():
    assert raw(FIXTURE, "PRAGMA user_version") == [(1,)]
    assert raw(FIXTURE, "PRAGMA journal_mode") == [("delete",)]
    assert "diverged_epoch" not in [c[0] for c in columns(FIXTURE)["runs"]]


def test_v1_store_is_read_as_it_is_when_read_only(v1):
    before, listing = sha256(v1), sorted(os.listdir(v1.parent))
    with Store(v1, readonly=True) as store:
        assert store.readonly and store.schema_version == 1
        (s,) = store.studies()
        assert (s["name"], s["n_done"], s["n_failed"], s["n_diverged"]) == ("golden", 3, 1, 0)
        info = store.study("golden")
        assert info["fingerprint"] is None and [a["name"] for a in info["arms"]] == [
            "baseline", "input_noise"]
        runs = store.runs(s["id"], status=None)
        assert [(r["id"], r["arm"], r["replica"], r["status"]) for r in runs] == [
            (1, "baseline", 0, "done"), (3, "baseline", 1, "done"),
            (2, "input_noise", 0, "done"), (4, "input_noise", 1, "failed")]
        assert all(r["diverged_epoch"] is None for r in runs)
        assert store.done_keys(s["id"]) == GOLDEN_DONE
        assert len(store.history(s["id"])) == 3
        with pytest.raises(StoreError, match="opened read-only; cannot write run"):
            store.write_run(s["id"], run("baseline", 5))
        with pytest.raises(StoreError, match="opened read-only; cannot open a study"):
            store.open_study(GOLDEN_SPEC)
    assert sha256(v1) == before and sorted(os.listdir(v1.parent)) == listing


def test_opening_for_writing_migrates_keeping_ids_and_curves(tmp_path, v1):
    runs_v1 = raw(v1, "SELECT * FROM runs ORDER BY id")
    curves_v1 = raw(v1, "SELECT * FROM curves ORDER BY run_id, metric")
    arms_v1 = raw(v1, "SELECT * FROM arms ORDER BY position")
    studies_v1 = raw(v1, "SELECT * FROM studies")
    with Store(v1) as store:
        assert store.schema_version == SCHEMA_VERSION == 6 and not store.readonly
    assert raw(v1, "PRAGMA user_version") == [(6,)]
    assert raw(v1, "SELECT value FROM noisewise_meta WHERE key = 'schema_version'") == [("6",)]
    assert raw(v1, "PRAGMA integrity_check") == [("ok",)]
    assert raw(v1, "PRAGMA foreign_key_check") == []
    # every old column kept as it was; the new ones after them (v2: diverged_epoch
    # NULL; v3: the run's arm hash and identity; v4: robustness_json; v6: calibration_json)
    assert [r[:-5] for r in raw(v1, "SELECT * FROM runs ORDER BY id")] == runs_v1
    assert raw(v1, "SELECT DISTINCT diverged_epoch FROM runs") == [(None,)]
    assert raw(v1, "SELECT * FROM curves ORDER BY run_id, metric") == curves_v1
    assert [r[:5] for r in raw(v1, "SELECT * FROM arms ORDER BY position")] == arms_v1
    assert [r[:-2] for r in raw(v1, "SELECT * FROM studies")] == studies_v1
    # a migrated store has exactly the tables and columns of a new one
    Store(tmp_path / "fresh.db").close()
    assert columns(v1) == columns(tmp_path / "fresh.db")
    # the new status can be written, and cascades still reach the curves
    with Store(v1) as store:
        (failed_curves,) = raw(v1, "SELECT COUNT(*) FROM curves WHERE run_id = 4")[0]
        (curves,) = raw(v1, "SELECT COUNT(*) FROM curves")[0]
        # replaces the failed run 4: its curve goes with it (the new run has two)
        assert store.write_run(1, run("input_noise", 1, "diverged", diverged_epoch=3,
                                      history={"loss": [0.5, 0.4, 9.0], "accuracy": [0.5] * 3}))
        assert raw(v1, "SELECT COUNT(*) FROM curves") == [(curves - failed_curves + 2,)]
        (d,) = store.runs(1, status="diverged")
        assert (d["replica"], d["diverged_epoch"]) == (1, 3)
        assert store.done_keys(1) == GOLDEN_DONE | {("input_noise", 1)}
        # replica 2 is beyond the spec's 2 seeds: stored, not part of the study
        assert store.write_run(1, run("baseline", 2))
        assert store.done_keys(1) == GOLDEN_DONE | {("input_noise", 1)}
        assert [(r["replica"], r["current"]) for r in store.runs(1, current=False)
                if r["arm"] == "baseline"] == [(0, True), (1, True), (2, False)]


def test_user_version_0_with_meta_version_1_is_version_1(v1):
    con = sqlite3.connect(v1)
    con.execute("PRAGMA user_version = 0")
    con.commit()
    con.close()
    with Store(v1, readonly=True) as store:
        assert store.schema_version == 1
    with Store(v1) as store:
        assert store.schema_version == 6 and len(store.runs(1, status=None)) == 4
    assert raw(v1, "PRAGMA user_version") == [(6,)]


def test_failed_migration_leaves_the_store_as_it_was(v1, monkeypatch):
    before, real_step = sha256(v1), _MIGRATIONS[2]

    def broken(con):
        real_step(con)  # every real change, then a failure before the commit
        con.execute("SELECT no_such_column FROM runs")

    monkeypatch.setitem(_MIGRATIONS, 2, broken)
    with pytest.raises(StoreError, match=f"{v1}: cannot open the store for writing"):
        Store(v1)
    assert sha256(v1) == before
    assert raw(v1, "PRAGMA user_version") == [(1,)]


def test_v1_store_resumes_training_only_the_missing_run_and_reports(tmp_path, v1):
    from noisewise.study import Study
    from noisewise.study.report import write_report

    outcome = Study(GOLDEN_SPEC).run(store=v1, quiet=True)
    assert (outcome.total, outcome.skipped, outcome.ran) == (4, 3, 1), (
        "the spec no longer hashes as it did when the fixture was written: resuming "
        "would be refused for every existing store")
    with Store(v1, readonly=True) as store:
        runs = store.runs(outcome.study_id, status=None)
        assert [r["id"] for r in runs if (r["arm"], r["replica"]) in GOLDEN_DONE] == [1, 3, 2]
        (retried,) = [r for r in runs if r["replica"] == 1 and r["arm"] == "input_noise"]
        assert retried["attempts"] == 2 and retried["status"] in ("done", "diverged")
        # the old study had no fingerprint: the resume records the data's
        assert set(store.study("golden")["fingerprint"]) >= {"data"}
    out = write_report(v1, "golden", tmp_path / "report.html")
    assert "golden" in Path(out).read_text()


# -- divergence ------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s.db") as s:
        s.sid = s.open_study({"study": {"name": "d", "seed": 0}, "arms": ["a", "b"]})
        yield s


def test_diverged_run_is_final_and_not_retried(store):
    assert store.write_run(store.sid, run("a", 0, "diverged", diverged_epoch=3))
    assert store.write_run(store.sid, run("a", 0)) is False  # the same seed diverges again
    assert store.write_run(store.sid, run("a", 1, "failed", error="boom"))
    assert store.write_run(store.sid, run("b", 0))
    assert store.done_keys(store.sid) == {("a", 0), ("b", 0)}
    (d,) = store.runs(store.sid, status="diverged")
    assert (d["status"], d["diverged_epoch"], d["attempts"]) == ("diverged", 3, 1)
    (s,) = store.studies()
    assert (s["n_done"], s["n_failed"], s["n_diverged"]) == (1, 1, 1)
    (h,) = store.history(store.sid, status="diverged")
    assert h["history"]["loss"][:2].tolist() == [0.5, 0.4]


def test_status_filters(store):
    for i, status in enumerate(("done", "failed", "diverged")):
        store.write_run(store.sid, run("a", i, status, diverged_epoch=2 if i == 2 else None))
    keys = {s: [r["replica"] for r in store.runs(store.sid, status=s)]
            for s in ("done", "failed", "diverged")}
    assert keys == {"done": [0], "failed": [1], "diverged": [2]}
    assert [r["replica"] for r in store.runs(store.sid, status=("done", "diverged"))] == [0, 2]
    assert [r["replica"] for r in store.runs(store.sid, status=["failed"])] == [1]
    assert len(store.runs(store.sid, status=None)) == 3
    assert len(store.history(store.sid, status=["done", "diverged"])) == 2
    for bad in ("running", ["done", "ok"], 3):
        with pytest.raises(ValueError, match=r"`status` must be one of .*Received: status="):
            store.runs(store.sid, status=bad)


@pytest.mark.parametrize("status, epoch, why", [
    ("diverged", 0, "int >= 1"), ("diverged", "3", "int >= 1"), ("diverged", True, "int >= 1"),
    ("done", 3, "only for status 'diverged'")])
def test_bad_diverged_epoch_is_refused(store, status, epoch, why):
    with pytest.raises(ValueError, match=f"diverged_epoch.*{why}.*Received"):
        store.write_run(store.sid, run("a", 0, status, diverged_epoch=epoch))
    assert store.runs(store.sid, status=None) == []


# -- fingerprints ----------------------------------------------------------
SPEC = {"study": {"name": "fp", "seed": 0}, "arms": ["a"]}
DATA1, DATA2 = "1a2b3c4d5e6f" + "0" * 52, "9f8e7d6c5b4a" + "1" * 52


def test_fingerprint_is_recorded_and_a_changed_one_refused(store):
    sid = store.open_study(SPEC, fingerprint={"data": DATA1, "code": "c1"})
    store.write_run(sid, run("a", 0))
    assert store.study("fp")["fingerprint"] == {"data": DATA1, "code": "c1"}
    assert store.open_study(SPEC, fingerprint={"data": DATA1, "code": "c1"}) == sid
    assert store.open_study(SPEC) == sid  # nothing to compare
    with pytest.raises(FingerprintError) as e:
        store.open_study(SPEC, fingerprint={"data": DATA2, "code": "c1"})
    assert str(e.value) == (
        f"study 'fp' in {store.path} was trained on other data: data fingerprint stored "
        "1a2b3c4d5e6f, now 9f8e7d6c5b4a; use --new (new=True) to start a new study and keep "
        "the old one as 'fp'@<time>")
    assert isinstance(e.value, StoreError)
    with pytest.raises(FingerprintError, match="other code and data: code fingerprint"):
        store.open_study(SPEC, fingerprint={"data": DATA2, "code": "c2"})
    assert [s["name"] for s in store.studies()] == ["d", "fp"]  # nothing changed
    assert store.study("fp")["fingerprint"] == {"data": DATA1, "code": "c1"}


def test_fingerprint_keys_not_stored_yet_are_recorded(store):
    sid = store.open_study(SPEC)
    assert store.study(sid)["fingerprint"] is None
    assert store.open_study(SPEC, fingerprint={"data": DATA1}) == sid
    assert store.open_study(SPEC, fingerprint={"data": DATA1, "code": "c1"}) == sid
    assert store.study(sid)["fingerprint"] == {"data": DATA1, "code": "c1"}
    with pytest.raises(FingerprintError, match="other code"):
        store.open_study(SPEC, fingerprint={"code": "c2"})


def test_new_keeps_the_study_of_the_old_data(store):
    old = store.open_study(SPEC, fingerprint={"data": DATA1})
    store.write_run(old, run("a", 0))
    new = store.open_study(SPEC, new=True, fingerprint={"data": DATA2})
    assert new != old
    names = {s["name"]: s for s in store.studies()}
    (archived,) = [n for n in names if n.startswith("fp@")]
    assert names[archived]["id"] == old and names[archived]["n_done"] == 1
    assert store.study(archived)["fingerprint"] == {"data": DATA1}
    assert store.study("fp")["fingerprint"] == {"data": DATA2}
    assert store.open_study(SPEC, fingerprint={"data": DATA2}) == new


@pytest.mark.parametrize("bad", [{"data": 1}, ["data"], "abc", {1: "x"}])
def test_bad_fingerprint_is_refused(store, bad):
    with pytest.raises(ValueError, match=r"`fingerprint` must be a dict of str to str"):
        store.open_study(SPEC, fingerprint=bad)
    assert "fp" not in [s["name"] for s in store.studies()]


# -- read-only opening -----------------------------------------------------
def _unchanged_after(path, call):
    """Run ``call``; the file (if any) and its folder's listing must be as before."""
    before = sha256(path) if path.exists() else None
    listing = sorted(os.listdir(path.parent))
    call()
    assert (sha256(path) if path.exists() else None) == before
    assert sorted(os.listdir(path.parent)) == listing


def test_read_only_refuses_missing_empty_and_foreign_files(tmp_path):
    def refused(path, match):
        def call():
            with pytest.raises(StoreError, match=match):
                Store(path, readonly=True)
        _unchanged_after(path, call)

    refused(tmp_path / "missing.db", r"missing.db: no such store \(run a study first")
    (tmp_path / "empty.db").write_bytes(b"")
    refused(tmp_path / "empty.db", r"empty.db: not a noisewise store \(empty file\)")
    (tmp_path / "spec.toml").write_text('[study]\nname = "x"\n')
    refused(tmp_path / "spec.toml", "not a noisewise store .not a SQLite database")
    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("CREATE TABLE users(name TEXT)")
    con.commit()
    con.close()
    refused(tmp_path / "other.db", "application_id 0x0")
    with pytest.raises(StoreError, match="is a folder"):
        Store(tmp_path, readonly=True)


def test_read_only_leaves_a_wal_store_and_its_folder_as_they_were(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as s:
        s.write_run(s.open_study(SPEC), run("a", 0))

    def read():
        with Store(path, readonly=True) as store:
            assert [r["replica"] for r in store.runs(1)] == [0]
    _unchanged_after(path, read)


def test_read_only_beside_a_writer_sees_its_commits(tmp_path):
    writer = Store(tmp_path / "s.db")
    sid = writer.open_study(SPEC)
    writer.write_run(sid, run("a", 0))
    with Store(tmp_path / "s.db", readonly=True) as reader:
        assert len(reader.runs(sid)) == 1
        writer.write_run(sid, run("a", 1))
        assert len(reader.runs(sid)) == 2
    writer.write_run(sid, run("a", 2))  # the reader's closing left the writer's log alone
    writer.close()
    with Store(tmp_path / "s.db", readonly=True) as reader:
        assert [r["replica"] for r in reader.runs(sid)] == [0, 1, 2]


# -- read-only folders and file systems (real mounts) ------------------------
def _sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


@contextlib.contextmanager
def _mounted(*steps):
    """Run mount commands; skip (with mount's reason) when this machine refuses them."""
    done = []
    try:
        for cmd, target in steps:
            r = _sh(*cmd)
            if r.returncode:
                pytest.skip(f"cannot mount here ({' '.join(cmd)}): {r.stderr.strip()}")
            if target is not None:
                done.append(target)
        yield
    finally:
        for target in reversed(done):
            _sh("umount", str(target))


def _filled(folder, journal):
    """A store with one done run in ``folder``, closed (no -wal/-shm), in WAL or DELETE mode."""
    path = folder / "s.db"
    with Store(path) as s:
        s.write_run(s.open_study(SPEC), run("a", 0))
    if journal == "delete":
        con = sqlite3.connect(path)
        con.execute("PRAGMA journal_mode = DELETE")
        con.close()
    assert sorted(os.listdir(folder)) == ["s.db"]
    return path


def _check_read_only_place(path):
    folder = path.parent
    before = sha256(path)
    with Store(path, readonly=True) as store:  # what show, list, export and report read
        (s,) = store.studies()
        assert s["n_done"] == 1 and store.study("fp")["arms"][0]["name"] == "a"
        assert len(store.history(s["id"])) == 1
    for target, match in ((path, "cannot write the store: its folder .* is not writable"),
                          (folder / "new.db", "cannot create the store: folder .* not writable"),
                          (folder / "sub" / "new.db", "cannot create the store: folder")):
        with pytest.raises(StoreError, match=f"{target}: {match}"):
            Store(target)
    assert sha256(path) == before and sorted(os.listdir(folder)) == ["s.db"]


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_store_in_a_read_only_folder_is_read(tmp_path, journal):
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir(), ro.mkdir()
    _filled(src, journal)
    with _mounted((["mount", "--bind", str(src), str(ro)], ro),
                  (["mount", "-o", "remount,bind,ro", str(ro)], None)):
        assert not os.access(ro, os.W_OK)
        _check_read_only_place(ro / "s.db")


def test_store_on_a_read_only_file_system_is_read(tmp_path):
    fs = tmp_path / "fs"
    fs.mkdir()
    with _mounted((["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(fs)], fs)):
        path = _filled(fs, "wal")
        r = _sh("mount", "-o", "remount,ro", str(fs))
        if r.returncode:
            pytest.skip(f"cannot remount read-only here: {r.stderr.strip()}")
        _check_read_only_place(path)


def test_unmerged_log_in_a_read_only_folder_is_refused_not_ignored(tmp_path):
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir(), ro.mkdir()
    path = _filled(src, "wal")
    # A writer killed before its log was merged: the -wal holds committed runs.
    shutil.copyfile(path, tmp_path / "copy.db")
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO noisewise_meta VALUES ('note', 'x')")
    writer.commit()
    shutil.copyfile(f"{path}-wal", tmp_path / "wal")
    writer.close()
    shutil.copyfile(tmp_path / "copy.db", path)
    shutil.copyfile(tmp_path / "wal", f"{path}-wal")
    with _mounted((["mount", "--bind", str(src), str(ro)], ro),
                  (["mount", "-o", "remount,bind,ro", str(ro)], None)):
        with pytest.raises(StoreError, match="write-ahead log s.db-wal holds commits"):
            Store(ro / "s.db", readonly=True)


def test_unwritable_places_give_store_errors_before_touching_anything(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreError, match=r"cannot create the store: .*file is a file, not a"):
        Store(tmp_path / "file" / "s.db")
    assert (tmp_path / "file").read_text() == "not a folder"


# The children load store.py by path (stdlib + numpy): they start in a blink.
MIGRATING_CHILD = """
import sys, types
sys.path.insert(0, sys.argv[1])
import noisewise.study.store as m
assert "keras" not in sys.modules
with m.Store(sys.argv[2]) as store:
    store.write_run(1, types.SimpleNamespace(
        arm="baseline", replica=int(sys.argv[3]), seed=0, status="done", final={},
        wall_s=0.0, backend="x", versions={}, history={"loss": [0.0]}))
"""


def test_processes_opening_a_v1_store_at_once_migrate_it_once(tmp_path, v1):
    src = Path(__file__).resolve().parents[2] / "src"
    script = tmp_path / "child.py"
    script.write_text(MIGRATING_CHILD)
    procs = [subprocess.Popen([sys.executable, str(script), str(src), str(v1), str(10 + i)],
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert raw(v1, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert raw(v1, "PRAGMA integrity_check") == [("ok",)]
    assert [r[0] for r in raw(v1, "SELECT id FROM runs WHERE replica < 10 ORDER BY id")] == [
        1, 2, 3, 4]
    assert sorted(r[0] for r in raw(v1, "SELECT replica FROM runs WHERE replica >= 10")) == [
        10, 11, 12, 13]
    assert raw(v1, "SELECT COUNT(*) FROM curves") == [(4 * 3 + 1 + 4,)]


def test_a_locked_store_gives_a_store_error_and_keeps_nothing_half_written(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as s:
        sid = s.open_study(SPEC)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    try:
        with Store(path, timeout=0.1) as store:
            with pytest.raises(StoreError, match=f"{path}: cannot write run a/0 of study "
                                                 f"{sid}: database is locked"):
                store.write_run(sid, run("a", 0))
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Store(path, readonly=True) as store:
        assert store.runs(sid, status=None) == []
