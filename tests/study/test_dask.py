"""The Dask executor on a real LocalCluster: streamed results, a worker killed mid-study,
a unit that kills every worker it runs on, claims, checks of the workers, a lost scheduler."""

import os
import signal
import subprocess
import sys
import time

import keras
import pytest

pytest.importorskip("distributed", reason="the Dask executor needs the distributed extra")

import dask  # noqa: E402
import distributed  # noqa: E402

from conftest import raw  # noqa: E402

from noisewise.study import Study  # noqa: E402
from noisewise.study.execute import DaskExecutor, FitExecutor, RunHooks, VmapExecutor  # noqa: E402
from noisewise.study.execute.dask import parse_cluster  # noqa: E402

JAX = keras.backend.backend() == "jax"
EPOCHS = 300
SPEC = {"study": {"name": "dask", "seed": 3, "seeds": 4}, "data": {"name": "circles"},
        "model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": EPOCHS, "validate_every": 50},
        "arms": [{"name": "baseline"},
                 {"name": "input", "noise": [{"type": "gaussian", "where": "input", "stddev": 0.1}]},
                 {"name": "input2", "noise": [{"type": "gaussian", "where": "input", "stddev": 0.3}]}]}


def on_main(function):
    """``function`` as if defined in a notebook or script: cloudpickle sends it by value."""
    function.__module__ = "__main__"
    return function


@on_main
def killer(input_shape, num_classes):
    """A small MLP here; on a Dask worker, the end of that worker's process."""
    try:
        distributed.get_worker()
    except ValueError:  # not on a worker: the driver's own checks build it
        inputs = keras.Input(shape=input_shape)
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))
    os._exit(1)


@pytest.fixture(scope="module")
def client():
    # One retry: a task survives one worker dying under it, and dies with the second.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with DaskExecutor("local:2") as owner:
            owner.client.wait_for_workers(2, timeout=60)
            yield owner.client


def keyed(results):
    out = {}
    for result in results:
        assert result.key not in out, f"{result.key} yielded twice"
        out[result.key] = result
    return out


class KillAfterFirst:
    """The executor, SIGKILLing one worker process once the first result is in."""

    claims_before_training = True

    def __init__(self, executor, client):
        self.executor, self.client, self.killed, self.results = executor, client, None, []

    def run(self, plans, hooks=None):
        for result in self.executor.run(plans, hooks):
            if self.killed is None:
                self.killed = sorted(self.client.run(os.getpid).values())[0]
                os.kill(self.killed, signal.SIGKILL)
            self.results.append(result)
            yield result


@pytest.mark.slow
def test_a_study_survives_a_killed_worker_each_run_stored_once(client, tmp_path):
    study = Study(SPEC)
    executor = KillAfterFirst(DaskExecutor(client=client, chunk_size=2), client)
    outcome = study.run(store=tmp_path / "s.db", quiet=True, executor=executor)
    assert executor.killed is not None and outcome.ran == 12 and outcome.failed == 0
    assert executor.killed not in client.run(os.getpid).values()  # its nanny started another
    events = client.cluster.scheduler.get_events("all")  # its scheduler runs in this process
    removed = [msg for _, msg in events if msg.get("action") == "remove-worker"]
    assert any(msg["processing-tasks"] for msg in removed)  # it died training, Dask ran that again
    rows = raw(tmp_path / "s.db", "SELECT arm, replica, status, attempts FROM runs")
    assert sorted(rows) == sorted((arm["name"], i, "done", 1) for arm in SPEC["arms"] for i in range(4))
    # Metrics equal to the local executor's, chunk for chunk (the vectorised one on JAX).
    plans = study.plans()
    local = VmapExecutor(chunk_size=2) if JAX else FitExecutor()
    expected = keyed(local.run(plans))
    streamed = keyed(executor.results)
    assert set(streamed) == set(expected)
    for key, result in streamed.items():
        assert result.status == "done"
        for metric, value in expected[key].final.items():
            assert result.final[metric] == pytest.approx(value, rel=1e-6, abs=1e-7), (key, metric)


def test_a_client_is_an_executor_and_stays_open(client, tmp_path):
    spec = {**SPEC, "arms": SPEC["arms"][:1], "train": {"epochs": 20}}
    lines = []
    outcome = Study(spec).run(store=tmp_path / "c.db", quiet=True, executor=client,
                              log=lines.append)
    assert (outcome.ran, outcome.failed) == (4, 0)
    assert any(line.startswith("Dask executor") for line in lines)
    assert client.status == "running"  # the caller's client is left open


@pytest.mark.slow
@pytest.mark.skipif(not JAX, reason="a task killing workers is handled alike on every backend; the JAX run checks it")
def test_a_unit_that_kills_every_worker_fails_alone_with_the_reason(client):
    good = Study({**SPEC, "arms": SPEC["arms"][:1], "train": {"epochs": 50}}).plans()
    # One run: one unit on every backend, dying on both workers (each death costs a restart).
    bad = Study({**SPEC, "study": {**SPEC["study"], "seeds": 1}, "model": {"builder": killer},
                 "arms": [{"name": "dies"}], "train": {"epochs": 50}}).plans()
    results = keyed(DaskExecutor(client=client, chunk_size=4).run(good + bad))
    assert set(results) == {p.key for p in good + bad}
    for plan in bad:
        result = results[plan.key]
        assert result.status == "failed"
        assert "KilledWorker" in result.error and "distributed.scheduler.allowed-failures=1" in result.error
    assert all(results[p.key].status == "done" for p in good)


@pytest.mark.slow
@pytest.mark.skipif(not JAX, reason="resending the dataset is the same for every backend; the JAX run checks it")
def test_the_dataset_is_sent_again_when_every_worker_holding_it_died(client):
    plans = Study({**SPEC, "arms": SPEC["arms"][:1], "train": {"epochs": 100}}).plans()
    scheduler = client.cluster.scheduler  # in this process; a task moved from one dying worker
    scheduler.allowed_failures = 3  # to the other dies twice: allowed here
    try:
        results = DaskExecutor(client=client, chunk_size=1).run(plans)
        first = next(results)
        for pid in client.run(os.getpid).values():  # the scattered dataset dies with them
            os.kill(pid, signal.SIGKILL)
        rest = keyed([first, *results])
    finally:
        scheduler.allowed_failures = 1
    assert set(rest) == {p.key for p in plans}
    assert all(r.status == "done" for r in rest.values()), [r.error for r in rest.values() if r.error]


def test_claims_progress_and_the_path_said(client):
    plans = Study({**SPEC, "train": {"epochs": 20}}).plans()
    keep = {("baseline", 0), ("input", 1), ("input", 3)}
    asked, blocks, lines = [], [], []

    def claim(unit):  # as a store shared with another process would: some runs are taken
        asked.append([p.key for p in unit])
        return [p for p in unit if p.key in keep]

    hooks = RunHooks(on_chunk=lambda p, epoch: blocks.append((tuple(x.key for x in p), epoch)),
                     claim=claim)
    results = keyed(DaskExecutor(client=client, chunk_size=2, blocks=4, log=lines.append).run(plans, hooks))
    assert set(results) == keep and all(r.status == "done" for r in results.values())
    assert sorted(k for unit in asked for k in unit) == sorted(p.key for p in plans)  # each asked once
    assert len(lines) == 1 and ("compiled program" in lines[0] if JAX else "one fit per run" in lines[0])
    # Progress as blocks finish on the workers: every unit trained reports its last epoch.
    assert {epoch for _, epoch in blocks} >= {5, 10, 20} and all(
        set(unit) <= keep for unit, _ in blocks)


def test_a_worker_unlike_the_driver_is_refused_before_anything_trains(client, monkeypatch):
    monkeypatch.setattr(keras, "__version__", "0.0.0")  # the driver's; the workers' stays
    plans = Study({**SPEC, "train": {"epochs": 2}}).plans()
    hooks = RunHooks(claim=lambda p: pytest.fail("claimed before the workers were checked"))
    with pytest.raises(RuntimeError, match=r"Dask worker tcp://\S+ differs from the driver: "
                                           r"keras='3[^']*' \(driver: '0.0.0'\)"):
        list(DaskExecutor(client=client).run(plans, hooks))


@pytest.mark.parametrize("cluster", ["local:0", "local", "local:x", "tcp://host", "http://h:1", "nowhere",
                                     5, ""])
def test_bad_cluster_values_name_the_parameter(cluster):
    with pytest.raises(ValueError, match=r"`cluster` must be .*Received: cluster="):
        DaskExecutor(cluster)


def test_cluster_forms_and_exactly_one_of_cluster_and_client(tmp_path, client):
    assert parse_cluster("local:3") == ("local", 3)
    assert parse_cluster("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    assert parse_cluster(tmp_path / "scheduler.json") == ("file", str(tmp_path / "scheduler.json"))
    for args in ({}, {"cluster": "local:2", "client": client}):
        with pytest.raises(ValueError, match="exactly one of `cluster`"):
            DaskExecutor(**args)
    assert DaskExecutor("local:3", chunk_size=4).replicas_at_once(10) == 12
    assert DaskExecutor(client=client, chunk_size=4).replicas_at_once(3) == 3


@pytest.mark.skipif(not JAX, reason="the missing extra is named alike on every backend")
def test_without_distributed_the_error_names_the_extra():
    code = ("import sys; sys.modules['distributed'] = None\n"
            "from noisewise.study.execute import DaskExecutor\n"
            "try:\n    DaskExecutor('local:1')\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "KERAS_BACKEND": keras.backend.backend()})
    assert 'pip install "noisewise[distributed]"' in out.stdout, out.stderr


@pytest.mark.slow
@pytest.mark.skipif(not JAX, reason="one backend is enough for the driver's side of a lost scheduler")
def test_a_lost_scheduler_stops_the_study_with_the_resume_message():
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                       dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                                       silence_logs=50)
    client = distributed.Client(cluster.scheduler_address, set_as_default=False, timeout=5)
    try:
        plans = Study({**SPEC, "train": {"epochs": 50}}).plans()
        results = DaskExecutor(client=client, chunk_size=1).run(plans)
        next(results)
        t0 = time.perf_counter()
        cluster.close()
        with pytest.raises(RuntimeError, match=r"lost the Dask scheduler at tcp://\S+ \(.*\): every "
                                               r"finished run is stored; rerun the same command"):
            list(results)
        assert time.perf_counter() - t0 < 30
    finally:
        client.close(timeout=5)
        cluster.close()
