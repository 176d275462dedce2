"""Many `noisewise run` processes on one store: each run is claimed and trained once,
and the claims of a killed or stopped process are taken over (a killed study
resumed alone: test_runner.py's killed-study test)."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import keras
import pytest

from noisewise.study import Study
from noisewise.study.store import Store
from test_runner import KILL_SPEC

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

# test_runner.py's killed study: four structures (four chunks of the vectorised
# executor, claimed one by one), here x 4 seeds.
SPEC = (KILL_SPEC.replace('name = "killed"', 'name = "shared"').replace("seeds = 6", "seeds = 4")
        .replace("epochs = 20", "epochs = 60").replace("validate_every = 5", "validate_every = 20"))
assert 'name = "shared"' in SPEC and "seeds = 4" in SPEC and "epochs = 60" in SPEC
KEYS = {(arm, r) for arm in ("baseline", "input", "pre", "post") for r in range(4)}
EIGHT_MORE = """
[[arms]]
name = "in_uniform"
noise = [{ type = "uniform", where = "input", amplitude = 0.2 }]

[[arms]]
name = "pre_uniform"
noise = [{ type = "uniform", where = "pre_activation", amplitude = 0.2 }]

[[arms]]
name = "in_mult"
noise = [{ type = "multiplicative", where = "input", stddev = 0.2 }]

[[arms]]
name = "post_drop"
noise = [{ type = "dropout", where = "post_activation", rate = 0.2 }]
"""


def _command(spec, store, *extra):
    return [sys.executable, "-m", "noisewise.cli", "run", str(spec), "--store", str(store),
            "--no-report", *extra]


def _env():
    return {**os.environ, "KERAS_BACKEND": keras.backend.backend(), "OMP_NUM_THREADS": "1"}


def _runs(path):
    """``{(arm, replica): (status, attempts, final)}`` of every stored run, and the row count."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT arm, replica, status, attempts, final_json FROM runs").fetchall()
    finally:
        con.close()
    return {(a, r): (s, n, f) for a, r, s, n, f in rows}, len(rows)


def _stored(path):
    try:
        return _runs(path)[1]
    except sqlite3.Error:  # not created yet
        return 0


def _trained(stderr):
    found = re.search(r"(\d+) run\(s\) trained", stderr)
    assert found, stderr
    return int(found.group(1))


@pytest.mark.slow
def test_two_processes_on_one_store_train_each_run_once(tmp_path):
    spec = tmp_path / "shared.toml"
    spec.write_text(SPEC)
    store = tmp_path / "shared.db"
    Store(store).close()  # both processes open an existing store
    procs = [subprocess.Popen(_command(spec, store), env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    runs, count = _runs(store)
    assert set(runs) == KEYS and count == len(KEYS)
    assert all(status == "done" and attempts == 1 for status, attempts, _ in runs.values())
    trained = [_trained(e) for e in errs]
    assert sum(trained) == len(KEYS)  # split between them, nothing trained twice
    # The one that finished last waited for the other's runs and says so.
    assert any("by other processes sharing the store" in e for e in errs), errs

    # The same numbers as one process alone (same seeds, same backend).
    alone = Study(str(spec)).run(store=tmp_path / "alone.db", quiet=True)
    alone_runs, _ = _runs(alone.store)
    assert {k: v[2] for k, v in alone_runs.items()} == {k: v[2] for k, v in runs.items()}


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="claims expire alike on every backend; the JAX run checks it")
def test_a_stopped_process_claims_expire_and_the_other_finishes_the_study(tmp_path):
    # SIGSTOP keeps the process alive (its pid runs) but stops its heartbeat: only
    # the time to live frees its claims. The other process takes them over.
    spec = tmp_path / "shared.toml"
    spec.write_text(SPEC)
    store = tmp_path / "shared.db"
    first = subprocess.Popen(_command(spec, store, "--claim-ttl", "3", "--quiet"), env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Stop it between two chunks, not inside a write: a chunk's four runs are
        # written back to back, then the next chunk (claimed) trains for seconds.
        deadline = time.monotonic() + 300
        while True:
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "no chunk stored in time"
            n = _stored(store)
            if n and n % 4 == 0 and n < len(KEYS):
                time.sleep(0.2)
                if _stored(store) == n:
                    break
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run(_command(spec, store, "--claim-ttl", "3"), env=_env(),
                                capture_output=True, text=True, timeout=600)
        assert second.returncode == 0, second.stderr
        runs, count = _runs(store)
        assert set(runs) == KEYS and count == len(KEYS)
        assert all(status == "done" and attempts == 1 for status, attempts, _ in runs.values())
        assert _trained(second.stderr) == len(KEYS) - n  # the stopped one's claims included
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stderr.close()
    # Resumed or not, the stopped process wrote nothing twice.
    assert _runs(store)[1] == len(KEYS)


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="claims are taken over alike on every backend; the JAX run checks it")
def test_killing_one_of_two_processes_leaves_the_other_to_finish_the_study(tmp_path):
    # Eight structures (a process holds claims on two chunks at a time: the one
    # training and the next, prepared meanwhile), a few seconds each.
    spec = tmp_path / "shared.toml"
    spec.write_text(SPEC.replace("epochs = 60", "epochs = 3000") + EIGHT_MORE)
    keys = KEYS | {(arm, r) for arm in ("in_uniform", "pre_uniform", "in_mult", "post_drop")
                   for r in range(4)}
    store = tmp_path / "shared.db"
    # Claims live 600 s: the survivor takes over the killed one's claims because its
    # process is gone, not because they expired.
    def start(*extra):
        return subprocess.Popen(_command(spec, store, "--claim-ttl", "600", *extra), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_for(condition, what):
        deadline = time.monotonic() + 300
        while not condition():
            assert first.poll() is None, f"the first process ended before {what}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    first = start("--quiet")
    second = None
    try:
        wait_for(lambda: _stored(store) >= 2, "its first runs")
        before = _stored(store)  # all the first process's
        second = start()
        wait_for(lambda: any(c.pid == second.pid and c.live for c in _claims(store)),
                 "the second process to claim runs")
        first.send_signal(signal.SIGKILL)  # mid-study: it holds claims on what it trains
        first.wait()
        at_kill = _stored(store)
        _, err = second.communicate(timeout=600)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        first.stderr.close()
    assert second.returncode == 0, err
    runs, count = _runs(store)
    assert set(runs) == keys and count == len(keys)
    assert all(status == "done" and attempts == 1 for status, attempts, _ in runs.values())
    # It trained every run not stored when the first died (the first's claimed runs
    # included), and none of those the first had stored before it started.
    assert len(keys) - at_kill <= _trained(err) <= len(keys) - before


def _claims(path):
    try:
        with Store(path, readonly=True) as db:
            return db.claims(db.study("shared")["id"])
    except Exception:  # noqa: BLE001 -- not created yet
        return []
