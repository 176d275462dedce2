"""The study store: refusal of foreign files, spec changes, run round-trips, crash safety."""

import hashlib
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from noisewise.study.store import APPLICATION_ID, SCHEMA_VERSION, Store, StoreError

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class Result:
    """The attributes of noisewise.study.execute.RunResult that the store reads."""

    arm: object
    replica: int
    seed: int = 7
    status: str = "done"
    history: dict = field(default_factory=lambda: {"loss": [0.9, 0.5, 0.3, 0.2],
                                                   "accuracy": [0.5, 0.7, 0.8, 0.9],
                                                   "val_loss": [0.6, 0.4],
                                                   "val_accuracy": [0.65, 0.85]})
    final: dict = field(default_factory=lambda: {"loss": 0.2, "accuracy": 0.9,
                                                 "val_loss": 0.4, "val_accuracy": 0.85,
                                                 "best_val_accuracy": 0.85, "best_epoch": 4})
    wall_s: float = 1.25
    backend: str = "jax"
    versions: dict = field(default_factory=lambda: {"python": "3.11", "keras": "3.15.1"})
    error: str | None = None


SPEC = {"study": {"name": "circles", "seed": 0, "store": "a.db"},
        "arms": [{"name": "baseline"}, {"name": "hidden_pre", "noise": [{"type": "gaussian"}]},
                 {"name": "grid", "grid": {"noise[0].stddev": [0.1, 1.0]}}]}


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s.db") as s:
        yield s


def test_missing_file_is_created_as_a_wal_store(tmp_path):
    path = tmp_path / "new" / "dir" / "noisewise.db"
    Store(path).close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    meta = dict(con.execute("SELECT key, value FROM noisewise_meta"))
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert meta["created_with"].startswith("noisewise")
    con.close()
    with Store(path) as again:  # a store reopens
        assert again.studies() == []


def _refused_unchanged(path):
    before, names = sha256(path), sorted(os.listdir(path.parent))
    with pytest.raises(StoreError, match=str(path)):
        Store(path)
    assert sha256(path) == before
    assert sorted(os.listdir(path.parent)) == names  # no -wal/-shm left behind


def test_random_bytes_are_refused_untouched(tmp_path):
    path = tmp_path / "random.db"
    path.write_bytes(np.random.default_rng(0).bytes(8192))
    _refused_unchanged(path)


def test_text_file_is_refused_untouched(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text('[study]\nname = "circles"\n')
    _refused_unchanged(path)


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_foreign_sqlite_database_is_refused_untouched(tmp_path, journal):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA journal_mode = {journal}")
    con.execute("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO users(name) VALUES ('ada')")
    con.commit()
    con.close()
    _refused_unchanged(path)


def test_truncated_store_is_refused_untouched(tmp_path, store):
    sid = store.open_study(SPEC)
    for i in range(20):
        store.write_run(sid, Result("baseline", i, history={"loss": list(range(2000))}))
    store.close()
    path = tmp_path / "cut.db"
    path.write_bytes((tmp_path / "s.db").read_bytes()[:4096])  # header intact, pages gone
    _refused_unchanged(path)


def test_store_from_newer_schema_is_refused(tmp_path, store):
    store.close()
    con = sqlite3.connect(tmp_path / "s.db")
    # user_version is the version marker; the meta row only mirrors it for people
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    before = sha256(tmp_path / "s.db")
    for readonly in (False, True):
        with pytest.raises(StoreError, match=f"newer noisewise.*schema {SCHEMA_VERSION + 1}"):
            Store(tmp_path / "s.db", readonly=readonly)
    assert sha256(tmp_path / "s.db") == before


def test_open_study_is_idempotent_and_registers_expanded_arms(store):
    sid = store.open_study(SPEC)
    assert store.open_study(SPEC) == sid
    # `store` is excluded from the hash: moving the file is not a spec change.
    moved = {**SPEC, "study": {**SPEC["study"], "store": "elsewhere.db"}}
    assert store.open_study(moved) == sid
    info = store.study("circles")
    assert info["spec"]["arms"][1]["name"] == "hidden_pre"
    assert info["study_seed"] == 0 and info["reference"] == "baseline"
    # The unexpanded grid parent is not an arm; its levels arrive with their runs.
    assert [a["name"] for a in info["arms"]] == ["baseline", "hidden_pre"]
    assert [a["is_reference"] for a in info["arms"]] == [True, False]


def test_changed_spec_is_refused_then_new_keeps_the_old_study(store):
    sid = store.open_study(SPEC)
    store.write_run(sid, Result("baseline", 0))
    changed = {**SPEC, "study": {**SPEC["study"], "seed": 1}}
    with pytest.raises(StoreError, match=r"'circles' exists .* different spec.*--new"):
        store.open_study(changed)
    new_id = store.open_study(changed, new=True)
    assert new_id != sid
    names = {s["name"]: s for s in store.studies()}
    archived = [n for n in names if n.startswith("circles@")]
    assert len(archived) == 1 and names[archived[0]]["n_done"] == 1
    assert names["circles"]["id"] == new_id and names["circles"]["n_done"] == 0
    assert len(store.runs(sid)) == 1  # the finished run is still there
    assert store.open_study(changed) == new_id
    # new=True with an unchanged spec also starts afresh, keeping the old study
    newer = store.open_study(changed, new=True)
    assert newer not in (sid, new_id)
    assert sorted(s["id"] for s in store.studies()) == sorted([sid, new_id, newer])


def test_study_object_with_own_hash_and_arms(store):
    class Arm:
        def __init__(self, name, parent=None, params=None):
            self.name, self.grid_parent, self.params = name, parent, params or {}

    class Spec:
        name, seed, hash, reference = "obj", 3, "abc123", "b"
        expanded_arms = [Arm("a"), Arm("b"), Arm("g[stddev=0.1]", "g", {"noise[0].stddev": 0.1})]

        def to_dict(self):
            return {"study": {"name": "obj"}}

    sid = store.open_study(Spec())
    info = store.study("obj")
    assert (info["spec_hash"], info["study_seed"], info["reference"]) == ("abc123", 3, "b")
    assert info["arms"][2] == {"name": "g[stddev=0.1]", "position": 2, "parent": "g",
                               "params": {"noise[0].stddev": 0.1}, "is_reference": False,
                               # not described by the spec: only the grid point is known
                               "config": {"params": {"noise[0].stddev": 0.1}}, "current": True}
    assert store.study(sid)["name"] == "obj"
    with pytest.raises(StoreError, match="no study 'nope'.*'obj'"):
        store.study("nope")


def test_run_round_trip(store):
    sid = store.open_study(SPEC)
    res = Result("baseline", 2, final={"val_accuracy": 0.85, "loss": float("nan")})
    assert store.write_run(sid, res) is True
    (run,) = store.runs(sid)
    assert (run["arm"], run["replica"], run["seed"], run["status"]) == ("baseline", 2, 7, "done")
    assert run["backend"] == "jax" and run["versions"] == res.versions
    assert run["wall_s"] == 1.25 and run["error"] is None and run["attempts"] == 1
    assert run["final"]["val_accuracy"] == 0.85 and math.isnan(run["final"]["loss"])
    assert run["finished_at"] > run["started_at"]
    assert run["is_reference"] and run["arm_position"] == 0
    (h,) = store.history(sid)
    np.testing.assert_array_equal(h["history"]["loss"], [0.9, 0.5, 0.3, 0.2])
    np.testing.assert_array_equal(h["epochs"]["loss"], [1, 2, 3, 4])
    # Two validation values over four epochs: validated every second epoch.
    np.testing.assert_array_equal(h["epochs"]["val_accuracy"], [2, 4])
    np.testing.assert_array_equal(h["history"]["val_accuracy"], [0.65, 0.85])


def test_explicit_and_irregular_epochs(store):
    sid = store.open_study(SPEC)
    history = {"loss": [1.0, 0.5, 0.25], "val_loss": [0.9, 0.4], "val_epoch": [1, 3],
               "lr": {1: 0.1, 2: 0.05, 5: 0.01}}
    store.write_run(sid, Result("baseline", 0, history=history))
    (h,) = store.history(sid)
    assert set(h["history"]) == {"loss", "val_loss", "lr"}
    np.testing.assert_array_equal(h["epochs"]["val_loss"], [1, 3])
    np.testing.assert_array_equal(h["epochs"]["lr"], [1, 2, 5])
    np.testing.assert_array_equal(h["history"]["lr"], [0.1, 0.05, 0.01])
    # validation_freq=3 over 10 epochs validates epochs 3, 6, 9: the only k that fits
    store.write_run(sid, Result("hidden_pre", 0, history={"loss": [0.0] * 10,
                                                          "val_loss": [3.0, 6.0, 9.0]}))
    (h,) = store.history(sid, arms=["hidden_pre"], metrics=["val_loss"])
    np.testing.assert_array_equal(h["epochs"]["val_loss"], [3, 6, 9])
    with pytest.raises(ValueError, match="val_epoch"):
        store.write_run(sid, Result("baseline", 1, history={"loss": [1, 2, 3],
                                                            "val_loss": [1, 2]}))
    # nothing half-written
    assert [r["replica"] for r in store.runs(sid) if r["arm"] == "baseline"] == [0]


def test_done_is_final_and_failed_is_retried(store):
    sid = store.open_study(SPEC)
    failed = Result("hidden_pre", 0, status="failed", error="Traceback: loss is NaN",
                    history={"loss": [1.0, float("nan")]}, final={})
    assert store.write_run(sid, failed)
    assert store.done_keys(sid) == set()
    assert store.runs(sid) == []
    (f,) = store.runs(sid, status="failed")
    assert f["error"] == "Traceback: loss is NaN"
    assert store.write_run(sid, Result("hidden_pre", 0, seed=7))
    (done,) = store.runs(sid, status=None)
    assert done["status"] == "done" and done["attempts"] == 2 and done["error"] is None
    assert store.done_keys(sid) == {("hidden_pre", 0)}
    again = Result("hidden_pre", 0, final={"val_accuracy": 0.1})
    assert store.write_run(sid, again) is False  # the first finished result wins
    assert store.runs(sid)[0]["final"]["val_accuracy"] == 0.85
    assert store._con.execute("SELECT COUNT(*) FROM curves").fetchone()[0] == 4


def test_bad_status_and_unknown_study_are_refused(store):
    sid = store.open_study(SPEC)
    with pytest.raises(ValueError, match="status"):
        store.write_run(sid, Result("baseline", 0, status="running"))
    with pytest.raises(StoreError, match="cannot write run"):
        store.write_run(sid + 99, Result("baseline", 0))


def test_history_filters_and_order(store):
    sid = store.open_study(SPEC)
    for arm in ("hidden_pre", "baseline"):
        for i in (1, 0):
            store.write_run(sid, Result(arm, i))
    recs = store.history(sid, metrics=["val_accuracy"], arms=["hidden_pre"])
    assert [(r["arm"], r["replica"]) for r in recs] == [("hidden_pre", 0), ("hidden_pre", 1)]
    assert all(set(r["history"]) == {"val_accuracy"} for r in recs)
    order = [(r["arm"], r["replica"]) for r in store.runs(sid)]
    assert order == [("baseline", 0), ("baseline", 1), ("hidden_pre", 0), ("hidden_pre", 1)]


# The child imports the store package alone: only stdlib + numpy, so it starts in
# a blink (the package's lazy namespaces load no Keras).
CHILD = textwrap.dedent("""
    import os, signal, sys, types
    sys.path.insert(0, sys.argv[1])
    import noisewise.study.store as m
    assert "keras" not in sys.modules
    EPOCHS = int(sys.argv[3])

    class Killed(m.Store):
        def _insert_curves(self, run_id, curves):
            if sys.argv[4] == "die-mid-run":  # half the curves in, then SIGKILL
                self._con.executemany("INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?, ?)",
                                      [(run_id, *c) for c in curves[:2]])
                os.kill(os.getpid(), signal.SIGKILL)
            super()._insert_curves(run_id, curves)

    store = m.Store(sys.argv[2])
    sid = store.open_study({"study": {"name": "kill", "seed": 0}})
    done = store.done_keys(sid)
    if sys.argv[4] == "die-mid-run":
        store.write_run(sid, types.SimpleNamespace(
            arm="a", replica=0, seed=0, status="done", final={}, wall_s=0.0,
            backend="x", versions={}, history={"loss": [0.0] * EPOCHS}))
        store.close()
        store = Killed(sys.argv[2])
    for i in range(10**6):
        if ("a", i) in done:
            continue
        hist = {k: [float(i)] * EPOCHS for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
        store.write_run(sid, types.SimpleNamespace(
            arm="a", replica=i, seed=i, status="done", final={"val_accuracy": float(i)},
            wall_s=0.0, backend="x", versions={}, history=hist))
""")


def _run_child(tmp_path, epochs, mode):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen([sys.executable, str(script), str(SRC),
                             str(tmp_path / "kill.db"), str(epochs), mode])


def _check_complete(path):
    """integrity ok, every stored run has all its curves, full length, no duplicates."""
    with Store(path) as store:
        assert store._con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (sid,) = [s["id"] for s in store.studies()]
        runs = store.runs(sid, status=None)
        keys = [(r["arm"], r["replica"]) for r in runs]
        assert len(keys) == len(set(keys))
        orphans = store._con.execute(
            "SELECT COUNT(*) FROM curves WHERE run_id NOT IN (SELECT id FROM runs)").fetchone()
        assert orphans[0] == 0
        return runs, store.history(sid, status=None)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_kill_inside_the_write_transaction_leaves_no_half_run(tmp_path):
    proc = _run_child(tmp_path, 50, "die-mid-run")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    runs, hist = _check_complete(tmp_path / "kill.db")
    # Only the run committed before the kill; the killed run left nothing.
    assert [(r["arm"], r["replica"]) for r in runs] == [("a", 0)]
    assert len(hist) == 1 and list(hist[0]["history"]) == ["loss"]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_at_random_moments_never_leaves_a_half_written_run(tmp_path):
    epochs, rng, counts = 20000, np.random.default_rng(0), []
    for _ in range(4):  # each child resumes the same store, skipping finished runs
        start = len(counts) and counts[-1]
        proc = _run_child(tmp_path, epochs, "loop")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until it is writing runs
            time.sleep(0.05)
            if (tmp_path / "kill.db").exists() and _count(tmp_path / "kill.db") > start + 1:
                break
        time.sleep(rng.uniform(0.0, 0.2))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        runs, hist = _check_complete(tmp_path / "kill.db")
        assert [r["replica"] for r in runs] == list(range(len(runs)))  # resumed, no gaps
        for rec in hist:
            assert sorted(rec["history"]) == ["accuracy", "loss", "val_accuracy", "val_loss"]
            for values in rec["history"].values():
                np.testing.assert_array_equal(values, np.full(epochs, float(rec["replica"])))
        counts.append(len(runs))
    assert counts == sorted(counts) and counts[-1] > counts[0]


def _count(path):
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError:  # not created yet
        return 0


def test_study_without_a_name_is_the_latest_and_an_empty_store_says_so(tmp_path):
    from noisewise.study.exports import records
    from noisewise.study.report import write_report

    path = tmp_path / "s.db"
    with Store(path) as store:
        with pytest.raises(StoreError, match=r"s\.db: holds no studies"):
            store.study()
    for read in (lambda: records(path), lambda: write_report(path, None, tmp_path / "r.html")):
        with pytest.raises(StoreError, match=r"s\.db: holds no studies"):
            read()
    with Store(path) as store:
        store.open_study({"study": {"name": "first", "seed": 0}})
        store.open_study({"study": {"name": "second", "seed": 0}})
        assert store.study()["name"] == "second"
        assert store.study("first")["name"] == "first"
