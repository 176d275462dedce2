"""Store schema 3: run identities, migration of real version-1 and version-2 stores, growth."""

import json
import shutil
import types
from pathlib import Path

import pytest

from conftest import raw

from noisewise.study import Study
from noisewise.study.store import SCHEMA_VERSION, Store, StoreError
from noisewise.study.store.identity import (arm_config, arm_hash, changed_keys, run_identity,
                                            shared_hash)

FIXTURES = Path(__file__).parent / "fixtures"
# The spec that wrote fixtures/store_v2.sqlite3 with the schema-2 store (the store.py of
# commit 4d260da, loaded by path): Study(V2_SPEC) opened with its fingerprint, its plans
# trained by FitExecutor except input[stddev=0.3] #1, written as diverged at epoch 2;
# then journal_mode=DELETE. Runs 1-5 done, 6 diverged.
V2_SPEC = {"study": {"name": "golden2", "seed": 0, "seeds": 2}, "data": {"name": "circles"},
           "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 3},
           "arms": [{"name": "baseline"},
                    {"name": "input",
                     "noise": [{"type": "gaussian", "where": "input", "stddev": 0.1}],
                     "grid": {"noise[0].stddev": [0.1, 0.3]}}]}
V2_ARMS = ["baseline", "input[stddev=0.1]", "input[stddev=0.3]"]
# fixtures/store_v1.sqlite3: see test_store_v2.py
V1_SPEC = {"study": {"name": "golden", "seed": 0, "seeds": 2}, "data": {"name": "circles"},
           "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 3},
           "arms": [{"name": "baseline"},
                    {"name": "input_noise",
                     "noise": [{"type": "gaussian", "where": "input", "stddev": 0.1}]}]}


@pytest.fixture
def v2(tmp_path):
    path = tmp_path / "v2.db"
    shutil.copyfile(FIXTURES / "store_v2.sqlite3", path)
    return path


def live_identities(raw_spec, fingerprint):
    """``{(arm, replica): identity}`` a run of this spec gets now, computed from the live spec."""
    study = Study(raw_spec)
    normalised = json.loads(json.dumps(study.spec.to_dict()))
    tables = {t["name"]: t for t in normalised["arms"]}
    shared = shared_hash(normalised, fingerprint)
    out = {}
    for plan in study.plans():
        arm = plan.arm
        digest = arm_hash(arm.name, arm_config(tables[arm.parent or arm.name], arm.params))
        out[(arm.name, plan.replica)] = run_identity(digest, plan.replica, plan.seed, shared)
    return out


def test_fixture_is_a_version_2_store():
    path = FIXTURES / "store_v2.sqlite3"
    assert raw(path, "PRAGMA user_version") == [(2,)]
    assert raw(path, "PRAGMA journal_mode") == [("delete",)]
    columns = [r[1] for r in raw(path, "PRAGMA table_info(runs)")]
    assert "diverged_epoch" in columns and "identity" not in columns


def test_v2_store_is_read_as_it_is_when_read_only(v2):
    with Store(v2, readonly=True) as store:
        assert store.schema_version == 2
        info = store.study("golden2")
        assert [a["name"] for a in info["arms"]] == V2_ARMS
        runs = store.runs(info["id"], status=None)
        assert [r["status"] for r in runs if r["arm"] == V2_ARMS[2]] == ["done", "diverged"]
        assert all(r["identity"] is None and r["current"] for r in runs)
        assert len(store.done_keys(info["id"])) == 6


def test_migrated_identities_are_those_a_new_run_of_the_spec_gets(v2):
    with Store(v2) as store:
        assert store.schema_version == SCHEMA_VERSION
        info = store.study("golden2")
        runs = store.runs(info["id"], status=None)
        assert [a["config"] for a in info["arms"]][1] == {
            "noise": [{"type": "gaussian", "where": "input", "stddev": 0.1}]}
    expected = live_identities(V2_SPEC, info["fingerprint"])
    assert {(r["arm"], r["replica"]): r["identity"] for r in runs} == expected
    assert len(set(expected.values())) == 6


@pytest.mark.parametrize("fixture, raw_spec, ran", [
    ("store_v1.sqlite3", V1_SPEC, 3),  # the failed input_noise #1 and replica 2 of both arms
    ("store_v2.sqlite3", V2_SPEC, 3),  # replica 2 of the three arms; the diverged run is final
])
def test_old_stores_migrate_and_grow_training_only_the_new_runs(tmp_path, fixture, raw_spec, ran):
    path = tmp_path / fixture
    shutil.copyfile(FIXTURES / fixture, path)
    ids = raw(path, "SELECT id, arm, replica FROM runs WHERE status != 'failed' ORDER BY id")
    grown = {**raw_spec, "study": {**raw_spec["study"], "seeds": 3}}
    outcome = Study(grown).run(store=path, quiet=True, executor="fit")
    assert (outcome.ran, outcome.skipped, outcome.kept) == (ran, outcome.total - ran, 0)
    kept = raw(path, f"SELECT id, arm, replica FROM runs WHERE id IN "
                     f"({', '.join(str(i) for i, *_ in ids)}) ORDER BY id")
    assert kept == ids  # the stored runs are reused as they were, ids and all
    with Store(path, readonly=True) as store:
        assert store.study(raw_spec["study"]["name"])["spec"]["study"]["seeds"] == 3


# -- the store's side of growth, with made-up runs ----------------------------
def result(arm, replica, seed=None, status="done", value=0.5):
    return types.SimpleNamespace(arm=arm, replica=replica, seed=replica if seed is None else seed,
                                 status=status, history={"loss": [1.0, 0.5]}, wall_s=0.1,
                                 final={"val_accuracy": value}, backend="jax", versions={})


def dict_spec(arms, seeds=3, **study):
    return {"study": {"name": "s", "seed": 0, "seeds": seeds, **study},
            "train": {"epochs": 2}, "arms": arms}


A = {"name": "a"}
B = {"name": "b", "noise": [{"type": "gaussian", "where": "input", "stddev": 0.1}]}


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s.db") as s:
        sid = s.open_study(dict_spec([A, B]))
        for arm in ("a", "b"):
            for i in range(3):
                s.write_run(sid, result(arm, i))
        s.sid = sid
        yield s


def test_identity_ignores_position_but_not_name_or_configuration(store):
    ids = {(r["arm"], r["replica"]): r["identity"] for r in store.runs(store.sid)}
    assert store.open_study(dict_spec([B, A])) == store.sid
    assert {(r["arm"], r["replica"]): r["identity"] for r in store.runs(store.sid)} == ids
    assert [a["name"] for a in store.arms(store.sid)] == ["b", "a"]
    assert store.done_keys(store.sid) == set(ids)
    # a twin of b under another name is another arm: nothing of b's is reused for it
    store.open_study(dict_spec([A, B, {**B, "name": "b2"}]))
    assert store.done_keys(store.sid) == set(ids)
    assert arm_hash("b", arm_config(B)) != arm_hash("b2", arm_config(B))


def test_removed_and_changed_arms_keep_their_runs_out_of_the_current_study(store):
    store.open_study(dict_spec([A]))
    assert {r["arm"] for r in store.runs(store.sid)} == {"a"}
    assert store.kept_count(store.sid) == 3
    assert [(a["name"], a["current"]) for a in store.arms(store.sid, current=False)] == [
        ("a", True), ("b", False)]
    assert {s["name"]: s["n_done"] for s in store.studies()} == {"s": 3}
    louder = {**B, "noise": [{**B["noise"][0], "stddev": 0.5}]}
    store.open_study(dict_spec([A, louder]))
    assert store.done_keys(store.sid) == {("a", i) for i in range(3)}
    assert store.write_run(store.sid, result("b", 0, value=0.9))  # the new b
    everything = store.runs(store.sid, current=False)
    assert [(r["arm"], r["replica"], r["current"], r["final"]["val_accuracy"])
            for r in everything if r["arm"] == "b"] == [
        ("b", 0, True, 0.9), ("b", 0, False, 0.5), ("b", 1, False, 0.5), ("b", 2, False, 0.5)]
    assert [h["replica"] for h in store.history(store.sid, arms=["b"])] == [0]
    store.open_study(dict_spec([A, B], seeds=2))  # the old b again, with fewer seeds
    assert store.done_keys(store.sid) == {(a, i) for a in "ab" for i in range(2)}
    assert store.kept_count(store.sid) == 3  # a #2, b #2 and the louder b #0


def test_changes_outside_arms_seeds_and_reference_are_refused_naming_each(store):
    changed = dict_spec([A, B], reference="b")
    assert store.open_study(changed) == store.sid  # the reference may change
    assert store.study("s")["reference"] == "b"
    bad = {**dict_spec([A, B], seed=1), "train": {"epochs": 3}, "data": {"name": "moons"}}
    with pytest.raises(StoreError, match=r"different spec \(data null -> \{\"name\": \"moons\"\}; "
                                         r"train.epochs 2 -> 3; study.seed 0 -> 1\)"):
        store.open_study(bad)
    assert changed_keys(dict_spec([A]), dict_spec([B], seeds=9, store="x.db")) == []


def test_a_fingerprint_recorded_later_renews_the_identities(store):
    before = {r["id"]: r["identity"] for r in store.runs(store.sid)}
    store.open_study(dict_spec([A, B]), fingerprint={"data": "d" * 64})
    after = {r["id"]: r["identity"] for r in store.runs(store.sid)}
    assert set(after) == set(before) and all(after[i] != before[i] for i in after)
    assert store.write_run(store.sid, result("a", 0)) is False  # still the same run
