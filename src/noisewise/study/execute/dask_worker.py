"""What runs on a Dask worker for :class:`~noisewise.study.execute.dask.DaskExecutor`.

A task trains one unit of work, a chunk of replicas under ``jax.vmap`` or one
run with ``fit``, and returns its :class:`RunResult` list. The plans arrive
without their dataset, which reaches each worker once, scattered by the
driver, and is attached again here. The functions below are pickled by
reference, so every worker imports this noisewise; :func:`environment` is
what the driver compares between itself and each worker before it submits
anything, and each task checks it again against a worker that joined later.

A worker process keeps its compiled programs between tasks (the fit
executor's compiled models, and here the vectorised programs, per dataset
and structure): compiling is the larger part of a small chunk's time. One
circles chunk (2 replicas x 200 epochs, MLP of 16 units, 2 cores): 1.2 to
1.3 s with a fresh program, 0.05 to 0.07 s with the compiled one.
"""

import dataclasses

import keras

from noisewise import __version__
from noisewise.study.execute.fit import FitExecutor
from noisewise.study.execute.types import versions
from noisewise.study.execute.vmap import VmapExecutor, block_size

# Per worker process: the compiled models and programs outlive a task.
_FIT = FitExecutor()
_VMAP: dict = {}  # blocks -> its executor, which keeps the programs
MAX_PROGRAMS = 8  # each holds a template model and its dataset


class WorkerMismatch(RuntimeError):
    """A worker's Keras backend or versions differ from the driver's."""


def environment() -> dict[str, str]:
    """What must be equal on the driver and every worker: runs trained with
    another backend or version would be stored as if comparable."""
    backend = keras.backend.backend()
    return {"backend": backend, "keras": keras.__version__, "noisewise": __version__,
            backend: versions().get(backend, "unknown")}


def mismatch(expected: dict, found: dict) -> str | None:
    """``"backend='torch' (driver: 'jax')"``-style differences, or None."""
    diffs = [f"{k}={found.get(k)!r} (driver: {v!r})" for k, v in expected.items()
             if found.get(k) != v]
    return ", ".join(diffs) or None


def _progress(topic, unit_id):
    """``on_block(plans, epoch)`` sending ``[unit_id, epoch]`` to the driver (an
    event on ``topic`` through the scheduler), or None without a topic."""
    if topic is None:
        return None
    from distributed import get_worker  # only ever called on a Dask worker

    worker = get_worker()
    return lambda plans, epoch: worker.log_event(topic, [unit_id, int(epoch)])


def _executor(blocks):
    found = _VMAP.get(blocks)
    if found is None:
        found = _VMAP[blocks] = VmapExecutor(blocks=blocks, fallback=_FIT,
                                             max_programs=MAX_PROGRAMS)
    return found


def _vectorised(chunk, size, blocks, on_block):
    """``chunk``'s results from its compiled program (kept per dataset and
    structure by this worker's executor), or one fit per run if it fails."""
    return list(_executor(blocks).run_units([(chunk, size)], on_block))


def _fitted(plan, blocks, on_block):
    """One run with ``fit``; progress at about ``blocks`` points of its epochs."""
    on_epoch = None
    if on_block is not None:
        epochs = plan.train["epochs"]
        every = block_size(epochs, blocks)

        def on_epoch(epoch):
            if epoch % every == 0 or epoch == epochs:
                on_block([plan], epoch)
    return [_FIT.run_one(plan, on_epoch=on_epoch)]


def train_unit(kind, plans, size, data, expected, topic=None, unit_id=None, blocks=None):
    """Train one unit on this worker; its :class:`RunResult` list.

    Args:
        kind: ``"vmap"`` (a chunk padded to ``size`` replicas) or ``"fit"``
            (one plan).
        plans: The unit's plans, their ``data`` None.
        size: Replicas of the chunk's compiled program.
        data: The dataset (the driver's scattered copy).
        expected: The driver's :func:`environment`; a worker that differs
            raises :class:`WorkerMismatch` before training.
        topic, unit_id: Progress events go to ``topic`` as ``[unit_id, epoch]``.
        blocks: Progress points per run (see ``VmapExecutor``).
    """
    found = mismatch(expected, environment())
    if found is not None:
        from distributed import get_worker  # only ever called on a Dask worker

        raise WorkerMismatch(f"Dask worker {get_worker().address} differs from the driver: {found}")
    plans = [dataclasses.replace(plan, data=data) for plan in plans]
    on_block = _progress(topic, unit_id)
    if kind == "vmap":
        return _vectorised(plans, size, blocks, on_block)
    return _fitted(plans[0], blocks, on_block)
