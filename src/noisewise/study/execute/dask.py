"""Dask executor: a study's units of work as independent tasks on a Dask cluster.

The driver (this process) cuts the plans into units (chunks of replicas under
``jax.vmap`` where the study can be vectorised, else one ``fit`` per run),
sends the dataset to each worker once (``client.scatter(..., broadcast=True)``),
submits the units as tasks, at most two per worker thread at a time, and
yields each unit's results as its task finishes; the runner stores them. The
same code runs on a ``LocalCluster``, over SSH or under SLURM (dask-jobqueue):
noisewise starts no daemon of its own. The workers' code is
:mod:`noisewise.study.execute.dask_worker`.

Faults: a worker lost in the middle of a task is Dask's business (it runs
the task elsewhere); a task that every one of its
``distributed.scheduler.allowed-failures`` + 1 workers died running returns
its runs as failed (``KilledWorker``) and the study goes on; a dataset lost
with every worker holding it is sent again; a lost scheduler stops the study
with a ``RuntimeError`` saying that a rerun resumes it (finished runs are
stored as they come).

Needs ``pip install "noisewise[distributed]"``; ``distributed`` is imported
only when an executor is made, so this module loads without it.

Example::

    from noisewise.study import Study
    from noisewise.study.execute import DaskExecutor

    with DaskExecutor("local:4") as executor:   # or "tcp://host:8786", "scheduler.json"
        Study("study.toml").run(executor=executor)
"""

import dataclasses
import itertools
import logging
import os
import queue
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import keras

from noisewise._core.validation import check_int
from noisewise.study.execute import dask_worker
from noisewise.study.execute.base import NO_HOOKS, RunHooks, failed_result
from noisewise.study.execute.types import RunPlan, RunResult
from noisewise.study.execute.vmap import DEFAULT_CHUNK, chunks, unsupported_reason

EXTRA = 'pip install "noisewise[distributed]"'
CLUSTER_FORMS = ('"local:N" (a LocalCluster of N worker processes)', '"tcp://HOST:PORT"',
                 'the path of a scheduler file ("scheduler.json")')
IN_FLIGHT_PER_THREAD = 2  # one training, one queued behind it: a thread never waits on the driver
RESCATTERS = 3  # times a dataset lost with every worker holding it is sent again


def require_distributed():
    """The ``distributed`` module, or an ImportError naming the extra that installs it."""
    try:
        import distributed  # optional dependency (see the module docstring)
    except ImportError as e:
        raise ImportError(f"DaskExecutor needs Dask distributed: {EXTRA}") from e
    return distributed


def parse_cluster(cluster) -> tuple[str, object]:
    """``("local", n)``, ``("address", "tcp://...")`` or ``("file", path)`` of a ``cluster`` value."""
    text = os.fspath(cluster) if isinstance(cluster, (str, os.PathLike)) else None
    local = re.fullmatch(r"local:(\d+)", text or "")
    if local and int(local.group(1)) >= 1:
        return "local", int(local.group(1))
    if text and re.fullmatch(r"tcp://[^\s:/]+:\d+", text):
        return "address", text
    if text and not text.startswith(("local:", "tcp://")) and (text.endswith(".json")
                                                              or os.path.isfile(text)):
        return "file", text
    raise ValueError(f"`cluster` must be {', '.join(CLUSTER_FORMS[:-1])} or {CLUSTER_FORMS[-1]}. "
                     f"Received: cluster={cluster!r}")


@dataclasses.dataclass
class _Unit:
    kind: str  # "vmap" or "fit"
    plans: list
    size: int
    claimed: bool = False
    future: object = None
    data: object = None  # the future of the dataset it was submitted with
    submitted: tuple = (0.0, 0.0)  # time.time(), time.perf_counter()


class DaskExecutor:
    """Trains a study's units of work as tasks on a Dask cluster.

    Results stream back as tasks finish, each run exactly once. Progress:
    ``hooks.on_chunk(plans, epoch)`` is called in this process as each block
    of a unit's epochs finishes on its worker (an event per block through the
    scheduler); ``on_start`` / ``on_epoch`` are not called. ``hooks.claim``,
    where set, is called on each unit just before it is submitted, and only
    what it returns is trained (``claims_before_training``).

    Cost over training in this process, a LocalCluster of one worker on a
    shared 2-core CPU, 24 units of one circles replica x 50 epochs: about
    10 ms per task; the progress events (``blocks``, 50 by default) about
    0.3 ms each more. The metrics are those of ``VmapExecutor`` (or
    ``FitExecutor`` off JAX) with the same ``chunk_size``: equal bit for bit
    in the runs measured on JAX, PyTorch and TensorFlow (the tests allow
    1e-6 relative, as thread settings may reorder float sums).

    Args:
        cluster: ``"local:N"`` (start a LocalCluster of N worker processes,
            one thread each, dashboard off), ``"tcp://HOST:PORT"`` (a running
            scheduler) or the path of a scheduler file. Exactly one of
            ``cluster`` and ``client``.
        client: A ``distributed.Client``, used as is and left open.
        chunk_size: Replicas per vectorised unit (default
            :data:`~noisewise.study.execute.DEFAULT_CHUNK`).
        blocks: Progress points per unit (see ``VmapExecutor``).
        log: ``callable(str)`` told which path trains the study and why.
        timeout: Seconds to wait for a first worker.

    What this object starts (a cluster, a client) it closes in :meth:`close`
    (``with`` closes it too), or at the end of :meth:`run` when ``run``
    started it. A LocalCluster's workers are spawned processes, so a script
    using one needs the ``if __name__ == "__main__":`` guard.
    """

    claims_before_training = True

    def __init__(self, cluster=None, *, client=None, chunk_size: int | None = None,
                 blocks: int | None = None, log: Callable[[str], None] | None = None,
                 timeout: float = 60.0):
        distributed = require_distributed()
        if (cluster is None) == (client is None):
            raise ValueError("Pass exactly one of `cluster` (" + ", ".join(CLUSTER_FORMS) + ") and "
                             f"`client` (a distributed.Client). Received: cluster={cluster!r}, "
                             f"client={client!r}")
        if client is not None and not isinstance(client, distributed.Client):
            raise ValueError(f"`client` must be a distributed.Client. Received: client={client!r}")
        self.target = None if cluster is None else parse_cluster(cluster)
        self.chunk_size = None if chunk_size is None else check_int("chunk_size", chunk_size, low=1)
        self.blocks = None if blocks is None else check_int("blocks", blocks, low=1)
        self.log = log or (lambda line: None)
        self.timeout = timeout
        self.client = client
        self._started = []  # what close() closes: our client, then our cluster

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        """The client, connecting (and starting a LocalCluster) on first use."""
        if self.client is not None:
            return self.client
        from distributed import Client, LocalCluster  # optional dependency

        kind, value = self.target
        if kind == "local":
            flags = " ".join(f for f in (os.environ.get("XLA_FLAGS"),
                                         "--xla_cpu_multi_thread_eigen=false") if f)
            # One core each, as the vectorised executor's worker processes.
            env = {"KERAS_BACKEND": keras.backend.backend(), "OMP_NUM_THREADS": "1",
                   "XLA_FLAGS": flags, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
            # No dashboard; the scheduler's HTTP server on a free port, not on 8787.
            cluster = LocalCluster(n_workers=value, threads_per_worker=1, processes=True,
                                   dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                                   silence_logs=logging.ERROR, env=env)
            self._started.append(cluster)
            self.client = Client(cluster, set_as_default=False)
        elif kind == "address":
            self.client = Client(value, set_as_default=False, timeout=self.timeout)
        else:
            self.client = Client(scheduler_file=value, set_as_default=False, timeout=self.timeout)
        self._started.insert(0, self.client)
        return self.client

    def close(self) -> None:
        """Close the client and cluster this object started (a client passed in stays open)."""
        while self._started:
            thing = self._started.pop(0)
            if thing is self.client:
                self.client = None
            thing.close()

    def replicas_at_once(self, seeds: int) -> int:
        """Replicas held at once on this machine: a chunk per worker of a
        LocalCluster this object starts, else one chunk (the driver's share)."""
        chunk = min(self.chunk_size or DEFAULT_CHUNK, seeds)
        return chunk * (self.target[1] if self.target and self.target[0] == "local" else 1)

    def run(self, plans: Sequence[RunPlan], hooks: RunHooks | None = None) -> Iterator[RunResult]:
        """Train ``plans`` on the cluster; each run's result as its task finishes."""
        plans = list(plans)
        if not plans:
            return
        owned = self.client is None
        try:
            yield from _Session(self, self.start(), hooks or NO_HOOKS).run(plans)
        finally:
            if owned:
                self.close()


class _Session:
    """One ``run``: the driver's loop over units, futures and progress events."""

    def __init__(self, executor, client, hooks):
        self.executor, self.client, self.hooks = executor, client, hooks
        self.address = getattr(client.scheduler, "address", None) or "unknown address"
        self.inbox = queue.Queue()  # ("done", unit) and ("block", [unit_id, epoch]), from Dask's threads
        self.inflight, self.data = {}, {}  # unit_id -> unit; id(data) -> [data, future, rescattered]
        self.expected = None  # the driver's environment, once the workers are checked
        self.topic = f"noisewise-progress-{uuid.uuid4().hex}"
        self.ids = itertools.count()

    def lost(self, detail):
        return RuntimeError(f"lost the Dask scheduler at {self.address} ({detail}): every finished "
                            "run is stored; rerun the same command to resume")

    def run(self, plans):
        units = self.units(plans)
        try:
            self.check_workers()
            self.client.subscribe_topic(self.topic, lambda event: self.inbox.put(("block", event[1])))
            pending = deque(units)
            self.submit(pending)
            while self.inflight:
                try:
                    kind, value = self.inbox.get(timeout=1.0)
                except queue.Empty:
                    if self.client.status != "running":
                        raise self.lost(f"client {self.client.status}") from None
                    continue
                if kind == "block":
                    unit = self.inflight.get(value[0])
                    if unit is not None and self.hooks.on_chunk is not None:
                        self.hooks.on_chunk(unit.plans, value[1])  # events trailing a result are dropped
                    continue
                yield from self.finished(value, self.inflight.pop(value), pending)
                self.submit(pending)
        except (OSError, TimeoutError) as e:  # CommClosedError is an OSError
            if self.client.status == "running" and not _comm_error(e):
                raise
            raise self.lost(f"{type(e).__name__}: {e}") from e
        finally:
            self.cleanup()

    def units(self, plans):
        ex = self.executor
        reason = unsupported_reason(plans)
        if reason is None:
            ex.log(f"Dask executor: replicas of an arm train together in one compiled program, "
                   f"one task per chunk of {ex.chunk_size or DEFAULT_CHUNK}")
            units = [_Unit("vmap", chunk, size) for chunk, size in chunks(plans, ex.chunk_size)]
        else:
            ex.log(f"Dask executor: one fit per run, one task each: {reason}")
            units = [_Unit("fit", [plan], 1) for plan in plans]
        return units

    def check_workers(self):
        """Every worker runs the driver's backend and versions, before anything is submitted."""
        try:
            self.client.wait_for_workers(1, timeout=self.executor.timeout)
        except TimeoutError as e:
            if self.client.status != "running":
                raise
            raise RuntimeError(f"no Dask worker joined the scheduler at {self.address} within "
                               f"{self.executor.timeout:g} s; start workers (dask worker "
                               f"{self.address}) or pass a cluster that has them") from e
        self.expected = dask_worker.environment()
        for worker, found in sorted(self.client.run(dask_worker.environment).items()):
            diff = dask_worker.mismatch(self.expected, found)
            if diff is not None:
                raise RuntimeError(f"Dask worker {worker} differs from the driver: {diff}; every "
                                   "worker needs the driver's Keras backend (KERAS_BACKEND) and "
                                   "versions, or its runs would not be comparable")

    def data_future(self, data, again=False):
        entry = self.data.get(id(data))
        if entry is None or again:
            if entry is not None:
                if entry[2] >= RESCATTERS:
                    return None
                entry[2] += 1
            # A list of one: scatter would split a dataset that is a sequence or mapping.
            future = self.client.scatter([data], broadcast=True, hash=False)[0]
            entry = self.data[id(data)] = [data, future, entry[2] if entry else 0]
        return entry[1]

    def submit(self, pending):
        limit = IN_FLIGHT_PER_THREAD * max(1, sum(self.client.nthreads().values()))
        while pending and len(self.inflight) < limit:
            unit = pending.popleft()
            claim = getattr(self.hooks, "claim", None)
            if not unit.claimed and claim is not None:
                unit.plans, unit.claimed = list(claim(unit.plans)), True
                if not unit.plans:  # another process sharing the store trains them
                    continue
            data = unit.plans[0].data
            assert all(p.data is data for p in unit.plans), "a unit's plans share one dataset"
            unit.data = self.data_future(data)
            unit_id = f"{unit.plans[0].arm.name} #{unit.plans[0].replica} ({next(self.ids)})"
            stripped = [dataclasses.replace(p, data=None) for p in unit.plans]
            unit.submitted = (time.time(), time.perf_counter())
            unit.future = self.client.submit(
                dask_worker.train_unit, unit.kind, stripped, unit.size, unit.data, self.expected,
                self.topic, unit_id, self.executor.blocks, key=f"noisewise-{uuid.uuid4().hex}",
                pure=False)
            self.watch(unit_id, unit)

    def watch(self, unit_id, unit):
        self.inflight[unit_id] = unit
        unit.future.add_done_callback(lambda f: self.inbox.put(("done", unit_id)))

    def finished(self, unit_id, unit, pending):
        """The results of a unit whose future is done (resubmitting it if its dataset was lost)."""
        from distributed import KilledWorker  # optional dependency
        from distributed.client import FutureCancelledError

        future, status = unit.future, unit.future.status
        if status == "finished":
            try:
                results = future.result()
            except FutureCancelledError:  # lost with its worker, and its dataset too: not rerun
                status = "cancelled"
            else:
                yield from self.results(unit, results)
                return
        if status in ("pending", "lost"):  # its result was lost with a worker: Dask reruns it
            self.watch(unit_id, unit)
            return
        if status == "cancelled":
            if self.client.status != "running":
                raise self.lost("the client's connection was closed")
            if unit.data.status != "finished":  # every worker holding the dataset died
                current = self.data[id(unit.plans[0].data)][1]
                if current is not unit.data or self.data_future(unit.plans[0].data, again=True) is not None:
                    pending.appendleft(unit)  # with the dataset sent again
                    return
            error = RuntimeError(f"the task of this run was cancelled: {_cancel_reason(future)}")
        else:
            error = future.exception()
        if isinstance(error, dask_worker.WorkerMismatch):
            raise RuntimeError(f"{error}; every worker needs the driver's Keras backend and versions")
        if isinstance(error, KilledWorker):
            allowed = getattr(error, "allowed_failures", "?")
            text = (f"KilledWorker: every Dask worker that ran this unit of {len(unit.plans)} run(s) "
                    f"died while training it (distributed.scheduler.allowed-failures={allowed}: "
                    "Dask gives up on a task after that many workers died running it; out of "
                    f"memory, a crash or an exit in native or user code). {error}")
        else:
            text = f"{type(error).__name__}: {error}"
        yield from (self.failed(plan, unit, text) for plan in unit.plans)

    def results(self, unit, results):
        by_key = {}
        for result in results:
            by_key.setdefault(result.key, result)
        for plan in unit.plans:  # exactly one result per plan, whatever came back
            result = by_key.get(plan.key)
            yield result if result is not None else self.failed(
                plan, unit, "the worker returned no result for this run")

    def failed(self, plan, unit, text):
        started, t0 = unit.submitted
        result = failed_result(plan, RuntimeError(text), t0=t0, started_at=started)
        return dataclasses.replace(result, error=text)

    def cleanup(self):
        """Cancel what is still running and forget the scattered data (the client may be gone)."""
        futures = [u.future for u in self.inflight.values() if u.future is not None]
        futures += [entry[1] for entry in self.data.values()]
        self.inflight.clear()
        self.data.clear()
        if self.client.status != "running":
            return
        try:
            self.client.unsubscribe_topic(self.topic)
        except ValueError:  # never subscribed
            pass
        if futures:
            try:
                self.client.cancel(futures, force=True)
            except (OSError, TimeoutError):
                pass


def _comm_error(error) -> bool:
    return type(error).__name__ in ("CommClosedError", "StreamClosedError")


def _cancel_reason(future) -> str:
    try:
        future.result(timeout=0)
    except Exception as e:  # noqa: BLE001 -- FutureCancelledError names the reason
        return str(e).splitlines()[0]
    return "unknown"
