"""Run claims in the store (schema 5): processes sharing a store split the runs, and a claim
whose process died or stopped renewing it is taken over."""

import json
import math
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from conftest import raw

from noisewise.study.store import SCHEMA_VERSION, Store, StoreError
from noisewise.study.store.claims import DEFAULT_TTL, Claim, new_owner

FIXTURES = Path(__file__).parent / "fixtures"
# fixtures/store_v4.sqlite3: written by the schema-4 store of commit dfa0456:
# Study(V4_SPEC).run(store, quiet=True, executor="fit") on JAX, then journal_mode=DELETE and
# VACUUM. Runs 1 baseline#0, 2 input#0, 3 baseline#1, 4 input#1, all done, 4 curves each.
V4_SPEC = {"study": {"name": "golden4", "seed": 0, "seeds": 2}, "data": {"name": "circles"},
           "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 3},
           "arms": [{"name": "baseline"},
                    {"name": "input", "noise": [{"type": "gaussian", "where": "input", "stddev": 0.1}]}]}
SPEC = {"study": {"name": "s", "seed": 0, "seeds": 2}, "train": {"epochs": 2},
        "arms": [{"name": "a"}, {"name": "b"}]}
KEYS = [(arm, i) for arm in "ab" for i in range(2)]


def result(arm, replica, status="done"):
    return types.SimpleNamespace(arm=arm, replica=replica, seed=replica, status=status,
                                 history={"loss": [1.0, 0.5]}, final={}, wall_s=0.1,
                                 backend="jax", versions={})


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s.db") as s:
        s.sid = s.open_study(SPEC)
        yield s


def holders(store):
    return {(c.arm, c.replica): c.owner for c in store.claims(store.sid)}


def backdate(store, seconds, **where):
    """Move heartbeats ``seconds`` into the past (as if their owner stopped renewing them)."""
    cond = "".join(f" AND {k} = ?" for k in where)
    store._con.execute(f"UPDATE claims SET heartbeat_at = heartbeat_at - ? WHERE study_id = ?{cond}",
                       (seconds, store.sid, *where.values()))


def test_owners_are_unique_and_name_this_process():
    owners = {new_owner() for _ in range(100)}
    assert len(owners) == 100
    host, pid, token = next(iter(owners)).rsplit(":", 2)
    assert (host, int(pid), len(token)) == (socket.gethostname(), os.getpid(), 16)


def test_a_run_goes_to_one_owner_and_the_same_owner_claims_it_again(store):
    me, other = new_owner(), new_owner()
    before = time.time()
    assert store.claim(store.sid, [("a", 0), ("a", 1)], me) == {("a", 0), ("a", 1)}
    assert store.claim(store.sid, [("a", 1), ("b", 0)], other) == {("b", 0)}
    assert holders(store) == {("a", 0): me, ("a", 1): me, ("b", 0): other}
    (first,) = [c for c in store.claims(store.sid) if (c.arm, c.replica) == ("a", 0)]
    assert first.live and first.ttl_s == DEFAULT_TTL and before <= first.claimed_at <= time.time()
    assert (first.host, first.pid) == (socket.gethostname(), os.getpid())
    backdate(store, 30, owner=me)
    assert store.claim(store.sid, [("a", 0)], me, ttl=5) == {("a", 0)}
    (again,) = [c for c in store.claims(store.sid) if (c.arm, c.replica) == ("a", 0)]
    assert again.claimed_at == first.claimed_at  # the same claim, renewed
    assert again.heartbeat_at >= first.heartbeat_at and again.ttl_s == 5.0
    assert isinstance(again, Claim) and again.owner == me


def test_final_runs_are_never_granted_and_writing_a_run_removes_its_claim(store):
    me, other = new_owner(), new_owner()
    store.write_run(store.sid, result("a", 0))
    store.write_run(store.sid, result("a", 1, "diverged"))
    store.write_run(store.sid, result("b", 0, "failed"))
    assert store.claim(store.sid, KEYS, me) == {("b", 0), ("b", 1)}  # a failed run is retried
    assert store.write_run(store.sid, result("b", 1, "failed"))
    assert holders(store) == {("b", 0): me}
    assert store.claim(store.sid, [("b", 1)], other) == {("b", 1)}
    # a run written by anyone removes the claim of whoever holds it
    assert store.write_run(store.sid, result("b", 1))
    assert store.write_run(store.sid, result("b", 0))
    assert holders(store) == {}
    assert store.claim(store.sid, KEYS, other) == set()
    insert(store, ("a", 0), "late", socket.gethostname(), os.getpid(), age=0)
    assert store.write_run(store.sid, result("a", 0)) is False  # final already: the claim goes too
    assert holders(store) == {}
    assert store.run_attempts(store.sid) == {("a", 0): ("done", 1), ("a", 1): ("diverged", 1),
                                             ("b", 0): ("done", 2), ("b", 1): ("done", 2)}


def test_run_attempts_and_claims_follow_the_current_spec(store):
    store.write_run(store.sid, result("a", 5))  # beyond the spec's 2 seeds
    assert store.run_attempts(store.sid) == {}
    assert store.claim(store.sid, [("a", 5)], new_owner()) == {("a", 5)}  # not final in this spec
    store.open_study({**SPEC, "arms": [{"name": "a", "noise": [
        {"type": "gaussian", "where": "input", "stddev": 0.1}]}, {"name": "b"}]})
    store.write_run(store.sid, result("b", 0))
    store.write_run(store.sid, result("a", 0))
    store.open_study(SPEC)  # a's first configuration again: its a#0 run is not the current one
    assert store.run_attempts(store.sid) == {("b", 0): ("done", 1)}
    assert store.claim(store.sid, [("a", 0), ("b", 0)], new_owner()) == {("a", 0)}


def test_release(store):
    me, other = new_owner(), new_owner()
    store.claim(store.sid, KEYS[:3], me)
    assert store.release(store.sid, other) == 0
    assert store.release(store.sid, me, [("a", 0), ("b", 1)]) == 1
    assert store.claim(store.sid, KEYS, other) == {("a", 0), ("b", 1)}
    assert store.release(store.sid, me) == 2
    assert holders(store) == {("a", 0): other, ("b", 1): other}


def test_an_expired_claim_is_taken_over_and_its_owner_can_no_longer_renew_it(store):
    me, other = new_owner(), new_owner()
    store.claim(store.sid, [("a", 0), ("a", 1)], me, ttl=60)
    backdate(store, 61, arm="a", replica=0)
    assert {(c.arm, c.replica): c.live for c in store.claims(store.sid)} == {
        ("a", 0): False, ("a", 1): True}
    assert store.claim(store.sid, [("a", 0), ("a", 1)], other) == {("a", 0)}
    assert holders(store) == {("a", 0): other, ("a", 1): me}
    assert store.heartbeat(store.sid, me) == 1  # only a#1 is still its own
    assert store.release(store.sid, me, [("a", 0)]) == 0


def test_a_heartbeat_keeps_a_claim_alive_past_its_ttl(store):
    me, quiet, other = new_owner(), new_owner(), new_owner()
    store.claim(store.sid, [("a", 0)], me, ttl=0.8)
    store.claim(store.sid, [("a", 1)], quiet, ttl=0.8)  # never renewed
    time.sleep(0.45)
    assert store.heartbeat(store.sid, me) == 1
    time.sleep(0.45)  # 0.9 s since both claims: past their ttl
    assert store.claim(store.sid, [("a", 0), ("a", 1)], other) == {("a", 1)}
    assert holders(store) == {("a", 0): me, ("a", 1): other}


def insert(store, key, owner, host, pid, age, ttl=60.0):
    now = time.time()
    store._con.execute("INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (store.sid, *key, owner, host, pid, now - age, now - age, ttl))


def ended_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_claims_of_another_host_expire_by_their_heartbeat_alone(store):
    pid = ended_pid()  # ended here, but on another machine that says nothing
    insert(store, ("a", 0), "elsewhere:1:old", "elsewhere", pid, age=120)
    insert(store, ("a", 1), "elsewhere:1:new", "elsewhere", pid, age=1)
    assert {(c.arm, c.replica): c.live for c in store.claims(store.sid)} == {
        ("a", 0): False, ("a", 1): True}
    me = new_owner()
    assert store.claim(store.sid, [("a", 0), ("a", 1)], me) == {("a", 0)}
    assert holders(store) == {("a", 0): me, ("a", 1): "elsewhere:1:new"}


def test_a_claim_of_an_ended_process_on_this_host_is_taken_over_at_once(store):
    host = socket.gethostname()
    alive = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        insert(store, ("a", 0), "dead", host, ended_pid(), age=0)
        insert(store, ("a", 1), "alive", host, alive.pid, age=0)
        insert(store, ("b", 0), "this process", host, os.getpid(), age=0)
        assert {(c.owner, c.live) for c in store.claims(store.sid)} == {
            ("dead", False), ("alive", True), ("this process", True)}
        me = new_owner()
        assert store.claim(store.sid, KEYS[:3], me) == {("a", 0)}
    finally:
        alive.communicate(b"")
    assert [c.live for c in store.claims(store.sid) if c.owner == "alive"] == [False]


@pytest.mark.parametrize("ttl", [0, -1.0, math.nan, math.inf, "60", True, None])
def test_ttl_must_be_a_positive_finite_number(store, ttl):
    with pytest.raises(ValueError, match=rf"`ttl` must be a positive finite number.*Received: "
                                         rf"ttl={ttl!r}"):
        store.claim(store.sid, KEYS, new_owner(), ttl=ttl)
    assert holders(store) == {}


def test_bad_keys_owners_and_studies_are_refused(store):
    with pytest.raises(ValueError, match=r"Received: key=\('a', '0'\) in keys"):
        store.claim(store.sid, [("a", 0), ("a", "0")], new_owner())
    with pytest.raises(ValueError, match=r"Received: keys='a0'"):
        store.claim(store.sid, "a0", new_owner())
    with pytest.raises(ValueError, match=r"`owner` must be a non-empty string.*Received: owner=''"):
        store.heartbeat(store.sid, "")
    with pytest.raises(StoreError, match=rf"no study with id 99 in {store.path}"):
        store.claim(99, KEYS, new_owner())
    assert holders(store) == {}


def test_read_only_stores_refuse_claims_but_read_them(store):
    me = new_owner()
    store.claim(store.sid, [("a", 0)], me)
    with Store(store.path, readonly=True) as reader:
        assert [(c.arm, c.replica, c.owner, c.live) for c in reader.claims(store.sid)] == [
            ("a", 0, me, True)]
        for call in (lambda: reader.claim(store.sid, KEYS, me), lambda: reader.heartbeat(
                store.sid, me), lambda: reader.release(store.sid, me)):
            with pytest.raises(StoreError, match=f"{store.path}: opened read-only; cannot"):
                call()


def test_a_locked_store_gives_a_store_error_naming_the_file(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as s:
        sid = s.open_study(SPEC)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with Store(path, timeout=0.1) as store:
            with pytest.raises(StoreError, match=f"{path}: cannot claim runs of study {sid}: "
                                                 "database is locked"):
                store.claim(sid, KEYS, new_owner())
    finally:
        other.execute("ROLLBACK")
        other.close()


CLAIMING_CHILD = """
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from noisewise.study.store import Store, new_owner
path, go, direction = sys.argv[2], sys.argv[3], int(sys.argv[4])
keys = [("a", i) for i in range(300)][::direction]
owner, granted = new_owner(), []


def meet(step):  # both processes reach `step` before either goes on
    open(f"{go}.{step}{direction}", "w").close()
    while not all(os.path.exists(f"{go}.{step}{d}") for d in (1, -1)):
        time.sleep(0.001)


with Store(path) as store:
    sid = store.study("s")["id"]
    meet("ready")
    for start in range(0, len(keys), 3):
        granted += store.claim(sid, keys[start:start + 3], owner)
        time.sleep(0.002)  # training them; else SQLite's busy wait lets one process take all
    again = store.claim(sid, keys, owner)  # every key once more: only its own come back
    meet("done")  # alive until both are done: an ended process's claims are taken over
print(json.dumps({"owner": owner, "granted": granted, "again": sorted(again)}))
"""


def test_processes_claiming_at_once_never_share_a_run(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as s:
        s.open_study(SPEC)
    script = tmp_path / "child.py"
    script.write_text(CLAIMING_CHILD)
    src = Path(__file__).resolve().parents[2] / "src"
    procs = [subprocess.Popen([sys.executable, str(script), str(src), str(path),
                               str(tmp_path / "meet"), d],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for d in ("1", "-1")]  # one from each end: every key is asked for by both
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    results = [json.loads(out) for out, _ in outs]
    sets = [{tuple(k) for k in r["granted"]} for r in results]
    assert all(len(s) == len(r["granted"]) for s, r in zip(sets, results))  # none granted twice
    assert not sets[0] & sets[1] and sets[0] | sets[1] == {("a", i) for i in range(300)}
    assert all(sets)  # both took part
    assert [{tuple(k) for k in r["again"]} for r in results] == sets
    with Store(path, readonly=True) as store:
        owners = {(c.arm, c.replica): c.owner for c in store.claims(1)}
    assert owners == {k: r["owner"] for s, r in zip(sets, results) for k in s}


# -- schema 5 from a real version-4 store ------------------------------------
@pytest.fixture
def v4(tmp_path):
    path = tmp_path / "v4.db"
    shutil.copyfile(FIXTURES / "store_v4.sqlite3", path)
    return path


def test_a_v4_store_is_read_as_it_is_and_migrates_to_the_current_version(tmp_path, v4):
    assert raw(v4, "PRAGMA user_version") == [(4,)]
    with Store(v4, readonly=True) as store:
        assert store.schema_version == 4 and store.claims(1) == []
        assert len(store.done_keys(1)) == 4
    tables = {t: raw(v4, f"SELECT * FROM {t}") for t in ("studies", "arms", "runs", "curves")}
    with Store(v4) as store:
        assert store.schema_version == SCHEMA_VERSION == 6
        assert store.run_attempts(1) == {(arm, i): ("done", 1) for arm in ("baseline", "input")
                                         for i in range(2)}
        me = new_owner()
        assert store.claim(1, [("baseline", 0), ("baseline", 2)], me) == {("baseline", 2)}
    assert raw(v4, "PRAGMA user_version") == [(6,)]
    assert raw(v4, "PRAGMA integrity_check") == [("ok",)]
    assert raw(v4, "PRAGMA foreign_key_check") == []
    after = {t: raw(v4, f"SELECT * FROM {t}") for t in tables}
    # every row as it was; the runs gain v6's calibration_json, NULL
    assert [r[:-1] for r in after.pop("runs")] == tables.pop("runs")
    assert raw(v4, "SELECT DISTINCT calibration_json FROM runs") == [(None,)]
    assert after == tables
    Store(tmp_path / "fresh.db").close()  # a migrated store has the tables of a new one
    sql = "SELECT type, name, sql FROM sqlite_master WHERE name != 'runs' ORDER BY name"
    assert raw(v4, sql) == raw(tmp_path / "fresh.db", sql)
    # ALTER TABLE words the runs table's SQL its own way: compare its columns
    info = "PRAGMA table_info(runs)"
    assert raw(v4, info) == raw(tmp_path / "fresh.db", info)
    assert raw(v4, "SELECT arm, replica, owner FROM claims") == [("baseline", 2, me)]
    with Store(v4, readonly=True) as store:
        assert [a["name"] for a in store.study("golden4")["arms"]] == [
            a["name"] for a in V4_SPEC["arms"]]
