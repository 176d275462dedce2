"""Running studies: each (arm, replica) once, resumable, reproducible, failures kept and retried."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import keras
import pytest

from noisewise.study import SpecError, Store, Study, load_spec, run_study
from noisewise.study.execute import FitExecutor

SPEC = {
    "study": {"name": "runner", "seeds": 2, "seed": 1},
    "data": {"name": "circles"},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 4, "batch_size": 8, "learning_rate": 0.01},
    "arms": [
        {"name": "baseline"},
        {"name": "input", "noise": [{"type": "gaussian", "where": "input", "stddev": 0.2}]},
    ],
}
KEYS = {(arm, r) for arm in ("baseline", "input") for r in range(2)}


def stored(path, study="runner"):
    """{(arm, replica): (final metrics, finished_at)} of the done runs, plus the run count."""
    with Store(path) as store:
        sid = store.study(study)["id"]
        runs = store.runs(sid, status=None)
        curves = {(h["arm"], h["replica"]): {k: v.tolist() for k, v in h["history"].items()}
                  for h in store.history(sid)}
    done = {(r["arm"], r["replica"]): (r["final"], r["finished_at"]) for r in runs
            if r["status"] == "done"}
    return done, curves, len(runs)


def test_every_arm_and_replica_runs_once_and_a_rerun_resumes(tmp_path):
    path = tmp_path / "s.db"
    first = Study(SPEC).run(store=path, quiet=True)
    assert (first.total, first.ran, first.skipped, first.failed) == (4, 4, 0, 0)
    done, curves, count = stored(path)
    assert set(done) == KEYS and count == 4
    assert all(len(c["loss"]) == 4 for c in curves.values())
    again = run_study(SPEC, store=path, quiet=True)
    assert (again.ran, again.skipped) == (0, 4)
    assert stored(path)[0] == done  # nothing rerun, nothing rewritten


def test_same_spec_and_seed_give_the_same_metrics_twice(tmp_path):
    # Both studies build every model afresh from the seeds (the second reuses the
    # compiled programs; test_fit_runner checks that this changes nothing, and
    # the slow kill test compares two processes).
    Study(SPEC).run(store=tmp_path / "a.db", quiet=True)
    Study(SPEC).run(store=tmp_path / "b.db", quiet=True)
    (done_a, curves_a, _), (done_b, curves_b, _) = stored(tmp_path / "a.db"), stored(
        tmp_path / "b.db")
    assert {k: v[0] for k, v in done_a.items()} == {k: v[0] for k, v in done_b.items()}
    assert curves_a == curves_b
    # ... while arms and replicas do differ from one another.
    finals = [json.dumps(v[0], sort_keys=True) for v in done_a.values()]
    assert len(set(finals)) == len(finals)


class Recording:
    """A user's executor (the Executor protocol) that trains with fit.

    With ``stop_after`` it is interrupted (like Ctrl-C) after that many runs.
    """

    def __init__(self, stop_after=None):
        self.keys, self.stop_after = [], stop_after
        self.fit = FitExecutor()

    def run(self, plans, hooks=None):
        for plan in plans:
            if len(self.keys) == self.stop_after:
                raise KeyboardInterrupt
            self.keys.append(plan.key)
            yield self.fit.run_one(plan)


def test_runs_go_replica_by_replica_and_an_interrupted_study_resumes(tmp_path):
    path = tmp_path / "s.db"
    first = Recording(stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        Study(SPEC).run(store=path, quiet=True, executor=first)
    assert first.keys == [("baseline", 0), ("input", 0), ("baseline", 1)]
    assert set(stored(path)[0]) == set(first.keys)  # each run stored as it finished
    second = Recording()
    out = Study(SPEC).run(store=path, quiet=True, executor=second)
    assert second.keys == [("input", 1)]
    assert (out.ran, out.skipped) == (1, 3)
    assert set(stored(path)[0]) == KEYS


def test_malformed_specs_and_data_fail_before_the_store_is_touched(tmp_path):
    path = tmp_path / "never.db"
    bad = {**SPEC, "arms": [{"name": "a", "noise": [{"type": "gaussian", "where": "input",
                                                    "stddev": -1.0}]}]}
    with pytest.raises(SpecError, match=r"arms\[0\]\.noise\[0\]\.stddev"):
        run_study(bad, store=path)
    missing = {**SPEC, "data": {"path": "nowhere.npz"}}
    with pytest.raises(SpecError, match="^data: cannot load"):
        Study(load_spec(missing, base_dir=tmp_path)).run(store=path, quiet=True)
    assert not path.exists()


FLAKY = """
import os
import keras

MARKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "FAIL")


class Flaky(keras.layers.Layer):
    def call(self, x, training=None):
        if training and os.path.exists(MARKER):
            raise RuntimeError("flaky layer says no")
        return x


def build(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(8, activation="relu")(Flaky()(inputs))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
"""


def test_failed_runs_are_stored_with_their_error_and_retried(tmp_path):
    (tmp_path / "flaky_model.py").write_text(FLAKY)
    (tmp_path / "FAIL").write_text("")
    raw = {**SPEC, "study": {**SPEC["study"], "seeds": 1},
           "model": {"builder": "flaky_model:build"}, "arms": [{"name": "baseline"}]}
    spec = load_spec(raw, base_dir=tmp_path)
    path = tmp_path / "s.db"
    out = Study(spec).run(store=path, quiet=True)
    assert (out.ran, out.failed) == (1, 1)
    with Store(path) as store:
        (run,) = store.runs(out.study_id, status="failed")
    assert "flaky layer says no" in run["error"]
    (tmp_path / "FAIL").unlink()
    again = Study(spec).run(store=path, quiet=True)
    assert (again.ran, again.failed, again.skipped) == (1, 0, 0)
    with Store(path) as store:
        (run,) = store.runs(again.study_id, status=None)
    assert run["status"] == "done" and run["attempts"] == 2


def test_progress_bars_go_to_stderr(tmp_path, capsys):
    Study(SPEC).run(store=tmp_path / "s.db", quiet=False)
    captured = capsys.readouterr()
    assert "runs" in captured.err and "4/4" in captured.err
    assert captured.out == ""


KILL_SPEC = """
[study]
name = "killed"
seeds = 6
seed = 5

[data]
name = "circles"

[model]
name = "mlp"
hidden = [16]

[train]
epochs = 20
batch_size = 8
validate_every = 5

[[arms]]
name = "baseline"

[[arms]]
name = "input"
noise = [{ type = "gaussian", where = "input", stddev = 0.2 }]

[[arms]]
name = "pre"
noise = [{ type = "gaussian", where = "pre_activation", stddev = 0.2 }]

[[arms]]
name = "post"
noise = [{ type = "gaussian", where = "post_activation", stddev = 0.2 }]
"""
# Four structures: the vectorised executor stores an arm's six runs together
# while the next arm trains, and compiles the arm after that before storing
# again, which leaves the kill a window after the first runs are stored.
ARMS_KILLED = ("baseline", "input", "pre", "post")


def _done_count(path):
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return con.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:  # not created yet
        return 0


@pytest.mark.slow
def test_killed_study_process_resumes_without_losing_or_duplicating_runs(tmp_path):
    spec_path = tmp_path / "killed.toml"
    spec_path.write_text(KILL_SPEC)
    path = tmp_path / "killed.db"
    # Claims live 600 s: the resumed study must take over the killed process's
    # claims because its process is gone, not because they expired.
    command = [sys.executable, "-m", "noisewise.cli", "run", str(spec_path),
               "--store", str(path), "--quiet", "--claim-ttl", "600"]
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _done_count(path) < 2:
        assert proc.poll() is None, f"study ended before it was killed: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no runs stored in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    before, _, count = stored(path, "killed")
    assert 2 <= len(before) < 24 and count == len(before)
    with Store(path, readonly=True) as store:
        left = store.claims(store.study("killed")["id"])
    assert not any(c.live for c in left)  # those left behind are known dead

    t0 = time.monotonic()
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert time.monotonic() - t0 < 400  # it never waited out the claims' 600 s
    with Store(path, readonly=True) as store:
        assert store.claims(store.study("killed")["id"]) == []  # released on the way out
    after, _, count = stored(path, "killed")
    keys = {(arm, r) for arm in ARMS_KILLED for r in range(6)}
    assert set(after) == keys and count == 24  # none lost, none twice
    assert {k: after[k] for k in before} == before  # finished runs were not redone

    reference = Study(load_spec(spec_path)).run(store=tmp_path / "reference.db", quiet=True)
    uninterrupted, _, _ = stored(reference.store, "killed")
    assert set(uninterrupted) == set(after)
    # Same backend, same seeds: the resumed study has the uninterrupted study's numbers.
    assert {k: v[0] for k, v in uninterrupted.items()} == {k: v[0] for k, v in after.items()}
