"""Vectorised executor (JAX only): train many replicas of one model in one program.

Each replica is a separately built and compiled Keras model (so its initial
weights, noise levels and seed-generator states are exactly those the per-run
``fit`` path would use). Their states are stacked along a new leading axis and
Keras' own stateless ``train_step`` / ``test_step`` run under ``jax.vmap``
(replicas) and ``jax.lax.scan`` (epochs), so the arithmetic is the one ``fit``
performs, with no Python between epochs. Adaptive levels are updated inside
the program after each validated epoch, per replica, by the rule ``fit``'s
:class:`~noisewise.NoiseScheduler` applies (:func:`make_trainer`).

JAX is imported inside the functions that compile: this module loads on every
backend (the runner asks it whether it can run a study), and JAX is only
needed, and only installed for sure, where it runs.
"""

import collections
import dataclasses
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence

import keras
import numpy as np

from noisewise._core import keras_compat
from noisewise._core.validation import check_int
from noisewise.layers import NOISE_LAYERS
from noisewise.study import models
from noisewise.study.data_order import epoch_orders
from noisewise.study.execute.base import (
    NO_HOOKS,
    RunHooks,
    claimed,
    history_from_epochs,
    result_from_history,
    validated_epochs,
    validation_batch_size,
)
from noisewise.study.execute.fit import FitExecutor
from noisewise.study.execute.prepare import (
    adaptive_rules,
    class_weights,
    make_optimizer,
    prepare_model,
    program_key,
    state_variables,
    train_of,
)
from noisewise.study.execute.types import RunPlan, RunResult

DEFAULT_CHUNK = 32
# A chunk's epochs train in this many compiled blocks, queued at once from a
# thread; each block's end moves the progress bar. One circles chunk (30
# replicas x 4000 epochs, 2 cores, medians of 7 interleaved runs, compiling
# excluded): 50 blocks 1.04x and 1.12x the time of one block in two runs (best
# times 3.42 s against 3.78 s, 3.67 s against 3.59 s), 200 blocks 0.97x and
# 1.09x: within the machine's run-to-run spread (benchmarks/bench_progress.py).
PROGRESS_BLOCKS = 50


def _require_jax():
    if keras.backend.backend() != "jax":
        raise RuntimeError(
            "The vectorised executor needs the JAX backend; "
            f"the active Keras backend is {keras.backend.backend()!r}."
        )


def prepare(model, x, y):
    """Build a compiled model's optimizer and metrics without training it."""
    keras_compat.symbolic_build(model, x[:1], y[:1])
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return model


def make_trainer(template, n_train, n_val, batch_size, val_batch_size=None, *, validation=None,
                 class_weights=None, adaptive=()):
    """Compile a function training stacked replica states for a block of epochs.

    Returns ``train(states, permutations, validate, active, x, y, x_val, y_val)
    -> (final_states, logs)`` where ``permutations`` has shape (replicas,
    block, n_train), ``validate`` is a boolean array (block,) saying after
    which epochs to validate (as ``fit``'s ``validation_freq``), ``active`` a
    boolean array (block,) saying which epochs to train (False pads the last
    block, so one compiled program serves every block), ``final_states`` is
    ``(trainable, non_trainable, optimizer)`` values and logs maps Keras metric
    names (``loss``, ``accuracy``, ``val_loss``, ...) to arrays of shape
    (replicas, block), NaN where nothing was trained or validated.

    ``validation``: ``(x_val, y_val)`` of a validation split held out of the
    training rows; the function then validates on them instead of its last two
    arguments (the test split, evaluated once after training, see
    :func:`~noisewise.study.execute.base.evaluate_test_split`).
    ``class_weights``: one weight per class code, applied as per-sample
    weights of the training batches (as the fit executor does).
    ``adaptive``: ``(key, indices, schedule)`` per adaptive level: after each
    validated epoch the non-trainable variables at ``indices`` (one level) are
    set by the :class:`~noisewise.schedules.Adaptive` rule, in float32, as
    :class:`~noisewise.NoiseScheduler` sets them in ``fit``; the logs hold
    each epoch's level as ``level_{key}``.
    """
    import jax  # JAX-only (see the module docstring)
    import jax.numpy as jnp

    template.reset_metrics()
    reset_metrics = [jnp.asarray(v.value) for v in template.metrics_variables]
    full, rem = divmod(n_train, batch_size)
    vbs = val_batch_size or batch_size
    vfull, vrem = divmod(n_val, vbs)

    def run_batches(step, state, arrays, nfull, nrem, batch_size=batch_size):
        """``arrays``: ``(x, y)`` or ``(x, y, sample_weight)``, cut into batches alike."""
        logs = None
        if nfull:
            batches = tuple(a[: nfull * batch_size].reshape((nfull, batch_size) + a.shape[1:])
                            for a in arrays)

            def body(st, batch):
                lg, st = step(st, batch)
                return st, lg

            state, logs = jax.lax.scan(body, state, batches)
            logs = jax.tree.map(lambda a: a[-1], logs)
        if nrem:
            logs, state = step(state, tuple(a[nfull * batch_size :] for a in arrays))
        return state, logs

    weights = None if class_weights is None else jnp.asarray(class_weights, dtype="float32")

    def training_arrays(x, y, perm):
        xs, ys = x[perm], y[perm]
        return (xs, ys) if weights is None else (xs, ys, weights[ys])

    def one_replica(state, perms, validate, active, x, y, x_val, y_val):
        tv, ntv, ov, _ = state

        def train_epoch(carry, perm, check):
            tv, ntv, ov = carry
            st = (tv, ntv, ov, reset_metrics)
            st, logs = run_batches(template.train_step, st, training_arrays(x, y, perm), full,
                                   rem)
            tv, ntv, ov, _ = st

            def validate(_):
                vst = (tv, ntv, reset_metrics)
                _, vlogs = run_batches(template.test_step, vst, (x_val, y_val), vfull, vrem, vbs)
                return vlogs

            vlogs = jax.lax.cond(check, validate, lambda _: _nans(jax.eval_shape(validate, None)), None)
            out = dict(logs)
            out.update({"val_" + k: v for k, v in vlogs.items()})
            ntv = adapt(ntv, logs, vlogs, check, out)
            return (tv, ntv, ov), out

        def epoch_fn(carry, inputs):
            check, train, perm = inputs
            return jax.lax.cond(
                train, lambda c: train_epoch(c, perm, check),
                lambda c: (c, _nans(jax.eval_shape(lambda: train_epoch(c, perm, check)[1]))), carry)

        (tv, ntv, ov), logs = jax.lax.scan(epoch_fn, (tv, ntv, ov), (validate, active, perms))
        return (tv, ntv, ov), logs

    def adapt(ntv, logs, vlogs, check, out):
        """The levels of the next epoch (the Adaptive rule in float32), and this one's in ``out``."""
        ntv, f32 = list(ntv), jnp.float32
        for key, indices, rule in adaptive:
            level = ntv[indices[0]]
            out[f"level_{key}"] = level
            train_m, val_m = logs[rule.signal], vlogs[rule.signal]
            gap = train_m - val_m if rule.higher_is_better else val_m - train_m
            low, high = rule.bounds
            new = jnp.clip(level + f32(rule.gain) * (gap - f32(rule.target)), f32(low), f32(high))
            new = jnp.where(check & jnp.isfinite(gap), new, level)
            for j in indices:
                ntv[j] = new.astype(ntv[j].dtype)
        return ntv

    def _nans(shapes):
        return jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)

    vmapped = jax.jit(jax.vmap(one_replica, in_axes=(0, 0, None, None, None, None, None, None)))
    if validation is None:
        return vmapped
    held_out = tuple(jnp.asarray(a) for a in validation)

    def train(states, permutations, validate, active, x, y, x_test, y_test):
        return vmapped(states, permutations, validate, active, x, y, *held_out)

    return train


def stack_states(states):
    import jax  # JAX-only (see the module docstring)
    import jax.numpy as jnp

    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def _dispatch(train, states, permutations, validate, active, arrays):
    """Start training a block: JAX returns at once and computes in the
    background, so the caller can queue the next block (or prepare the next
    chunk) meanwhile. ``states`` is already stacked."""
    import jax.numpy as jnp  # JAX-only (see the module docstring)

    permutations = jnp.asarray(np.asarray(permutations, dtype=np.int32))
    return train(states, permutations, jnp.asarray(np.asarray(validate, dtype=bool)),
                 jnp.asarray(np.asarray(active, dtype=bool)), *arrays)


def block_size(epochs: int, blocks: int | None = None) -> int:
    """Epochs per compiled block: ``epochs`` split into about ``blocks`` (default
    :data:`PROGRESS_BLOCKS`) equal blocks, so progress is reported that often."""
    return -(-epochs // min(epochs, blocks or PROGRESS_BLOCKS))


def _replica_logs(logs, replicas):
    """Wait for the logs of a dispatched chunk; one ``{metric: array}`` per replica."""
    import jax  # JAX-only (see the module docstring)

    logs = jax.device_get(logs)
    return [{k: np.asarray(v[i], dtype=np.float64) for k, v in logs.items()}
            for i in range(replicas)]


def structure_key(plan: RunPlan) -> str:
    """Plans with equal keys share one compiled program: only noise levels differ.

    Levels of noisewise noise layers are variables (state), so a grid over a
    level stacks into one program; every other setting shapes the program.
    """
    noise = []
    for entry in plan.arm.noise:
        entry = dict(entry)
        if entry["type"] in NOISE_LAYERS:
            entry.pop(NOISE_LAYERS[entry["type"]].level_name, None)
        if entry["type"] == "augment":
            entry.pop("probability", None)
        noise.append(entry)
    return program_key(plan, noise)


def unsupported_reason(plans: Sequence[RunPlan] = ()) -> str | None:
    """Why the vectorised executor cannot run ``plans``, or None if it can.

    It needs the JAX backend, and every layer of every arm's model must be
    jit-compilable (some Keras preprocessing layers set ``supports_jit=False``);
    early stopping ends each run at its own epoch, which replicas training
    together in one program cannot.
    """
    if any(getattr(plan.data, "streaming", False) for plan in plans[:1]):
        return ("the vectorised executor trains on arrays, and this study's data is a "
                "streaming source (each run trains with its own fit)")
    if keras.backend.backend() != "jax":
        return f"the vectorised executor needs the JAX backend (active: {keras.backend.backend()!r})"
    if any("early_stopping" in train_of(plan) for plan in plans):
        return ("train.early_stopping stops each run at its own epoch, and the vectorised "
                "executor trains a chunk's replicas through every epoch together")
    for plan in plans:
        if any(entry["type"] == "consistency" for entry in plan.arm.noise):
            return (f"arm {plan.arm.name!r} ramps its consistency weight up each epoch, a "
                    "callback of fit that a compiled block of epochs does not run")
    seen = set()
    for plan in plans:
        key = structure_key(plan)
        if key in seen:
            continue
        seen.add(key)
        model = models.build_model(plan.model, plan.arm.noise, plan.data, plan.seed,
                                   plan.arm.name, base_dir=plan.base_dir)
        for layer in keras_compat.flatten_layers(model, include_self=True):
            if getattr(layer, "supports_jit", True) is False:
                return (f"arm {plan.arm.name!r}: layer {layer.name!r} "
                        f"({type(layer).__name__}) cannot be jit-compiled")
    return None


def adaptive_levels(plan, template):
    """``(key, indices, schedule)`` per adaptive entry: where its level variables sit
    among ``template``'s non-trainable variables (as stacked in the state)."""
    variables = template.non_trainable_variables
    sites = models.level_layers(template)
    out = []
    for key, rule in adaptive_rules(plan):
        indices = [j for layer in sites[key] for j, v in enumerate(variables) if v is layer.level]
        out.append((key, indices, rule))
    return out


def _initial_state(plan, reset_metrics):
    """A run's exact initial state, as the per-run path would build it (no compile)."""
    model = models.build_model(plan.model, plan.arm.noise, plan.data, plan.seed, plan.arm.name,
                               base_dir=plan.base_dir)
    optimizer = make_optimizer(train_of(plan), plan.arm.noise, plan.seed, plan.arm.name)
    optimizer.build(model.trainable_variables)
    return ([v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in optimizer.variables],
            reset_metrics)


def _epoch_logs(raw, validated):
    """One replica's ``{metric: array(epochs)}`` as per-epoch logs, the ``val_*``
    values only on validated epochs (what ``fit`` reports)."""
    return [{k: v[e] for k, v in raw.items() if check or not k.startswith("val_")}
            for e, check in enumerate(validated)]


def _orders(seed, epochs, n):
    return epoch_orders(seed, epochs, n).astype(np.int32)


class _Program:
    """One compiled training program: a template model and its vmapped trainer.

    Args:
        plan: A plan of the structure the program trains.
        orders: ``callable(seed, epochs, n)`` -> the run's ``(epochs, n)`` int32
            epoch orders (default: computed each time).
    """

    def __init__(self, plan, orders=None, blocks=None):
        data, train = plan.data, plan.train
        self.orders = orders or _orders
        self.template = prepare(prepare_model(plan), data.x_train, data.y_train)
        self.epochs, self.batch_size = train["epochs"], train["batch_size"]
        validation = None if data.x_val is None else (data.x_val, data.y_val)
        n_val = len(data.x_test if validation is None else validation[0])
        self.val_batch_size = validation_batch_size(self.batch_size, n_val)
        checked = validated_epochs(self.epochs, train["validate_every"])
        self.validate = np.zeros(self.epochs, dtype=bool)
        self.validate[np.asarray(checked) - 1] = True
        self.block = block_size(self.epochs, blocks)
        self.template.reset_metrics()
        self.reset = [v.value for v in self.template.metrics_variables]
        self.trainer = make_trainer(self.template, len(data.x_train), n_val, self.batch_size,
                                    self.val_batch_size, validation=validation,
                                    class_weights=class_weights(train_of(plan), data),
                                    adaptive=adaptive_levels(plan, self.template))

    def run(self, chunk, size, on_block=None):
        """Train ``chunk`` (padded to ``size`` replicas); yield one RunResult per plan."""
        return self.finish(self.launch(chunk, size), on_block)

    def launch(self, chunk, size):
        """Build the chunk's initial states and queue every block of its training
        (compiling on first use); returns at once, with the work under way."""
        import jax.numpy as jnp  # JAX-only (see the module docstring)

        started, t0 = time.time(), time.perf_counter()
        data = chunk[0].data
        states = [_initial_state(plan, self.reset) for plan in chunk]
        n = len(data.x_train)
        perms = [self.orders(p.seed, self.epochs, n) for p in chunk]
        # Pad to the chunk size so every chunk reuses one compiled program.
        states += [states[0]] * (size - len(states))
        perms = np.stack(perms + [perms[0]] * (size - len(perms)))
        arrays = [jnp.asarray(a) for a in (data.x_train, data.y_train, data.x_test, data.y_test)]
        state = stack_states(states)
        # The blocks are queued from a thread: dispatching a block whose inputs
        # are still being computed waits on the CPU backend, and the caller
        # must stay free to prepare the next chunk meanwhile.
        blocks = queue.Queue()
        thread = threading.Thread(target=self._dispatch_blocks, args=(state, perms, arrays, blocks),
                                  name="noisewise-blocks", daemon=True)
        thread.start()
        return chunk, blocks, started, t0

    def _dispatch_blocks(self, state, perms, arrays, blocks):
        """Queue every block of a chunk; put ``(epoch, logs)`` per block, then
        ``(None, final state)``, or ``(None, exception)`` if one failed."""
        try:
            b = self.block
            for start in range(0, self.epochs, b):
                stop = min(start + b, self.epochs)
                pad = b - (stop - start)  # the last block: padded, its extra epochs inactive
                block_perms = perms[:, start:stop]
                validate = self.validate[start:stop]
                if pad:
                    block_perms = np.concatenate([block_perms, perms[:, :pad]], axis=1)
                    validate = np.concatenate([validate, np.zeros(pad, bool)])
                active = np.arange(b) < stop - start
                trained, logs = _dispatch(self.trainer, state, block_perms, validate, active, arrays)
                state = (*trained, state[3])  # the reset metric values go into every block
                blocks.put((stop, logs))
            blocks.put((None, state))
        except BaseException as e:  # noqa: BLE001 -- re-raised by finish, in the caller's thread
            blocks.put((None, e))

    def finish(self, launched, on_block=None):
        """Wait for a launched chunk block by block, then yield its RunResults.

        ``on_block(plans, epoch)`` is called as each block finishes: every run
        of the chunk has trained ``epoch`` epochs.

        One replica cannot stop alone: a diverged one trained every epoch, and
        :func:`~noisewise.study.execute.result_from_history` cuts it at its
        diverged epoch and leaves it without robustness metrics, as the fit
        path (which stops there) records it.
        """
        chunk, blocks, started, t0 = launched
        parts = []
        while True:
            stop, logs = blocks.get()
            if stop is None:
                if isinstance(logs, BaseException):
                    raise logs
                final_states = logs
                break
            parts.append(_replica_logs(logs, len(chunk)))  # waits for this block only
            if on_block is not None:
                on_block(chunk, stop)
        raws = [{k: np.concatenate([part[i][k] for part in parts])[:self.epochs] for k in parts[0][i]}
                for i in range(len(chunk))]
        results = [
            result_from_history(plan, history_from_epochs(_epoch_logs(raw, self.validate)),
                                t0=t0, started_at=started,
                                trained=lambda i=i: self._load(final_states, i))
            for i, (plan, raw) in enumerate(zip(chunk, raws))]
        # The chunk trained together: each run is charged an equal share of it.
        wall = (time.perf_counter() - t0) / len(chunk)
        yield from (dataclasses.replace(result, wall_s=wall) for result in results)

    def _load(self, states, i):
        """The template with replica ``i``'s trained state loaded (for robustness)."""
        values = [value for group in states[:3] for value in group]  # (trainable, non-, optimizer)
        for variable, value in zip(state_variables(self.template), values):
            variable.assign(value[i])
        return self.template


def chunks(plans: Sequence[RunPlan], chunk_size: int | None = None) -> list:
    """The units of work: ``(plans, padded_size)`` per chunk, grouped by structure.

    Plans whose models differ only in noise levels (a grid) share a structure
    and so a program; each structure's plans are cut into chunks of
    ``chunk_size`` replicas (default :data:`DEFAULT_CHUNK`), the last one
    padded to the same size so it reuses the compiled program.
    """
    size = chunk_size or DEFAULT_CHUNK
    groups = collections.OrderedDict()
    for plan in plans:
        groups.setdefault(structure_key(plan), []).append(plan)
    units = []
    for group in groups.values():
        size_here = min(size, len(group))
        units.extend((group[start:start + size_here], size_here)
                     for start in range(0, len(group), size_here))
    return units


class VmapExecutor:
    """Trains replicas of a structure together: one compiled program per structure, chunk by chunk.

    Plans whose models differ only in noise levels (a grid) share a program.
    Replicas are split into chunks of ``chunk_size`` (default
    :data:`DEFAULT_CHUNK`), so memory stays bounded and time grows linearly
    with the number of runs. A chunk whose program fails falls back to the
    per-run ``fit`` path (``fallback``), so a study never stops for the fast
    path's sake.

    Epoch orders are kept per ``(seed, epochs, n)``: replica i of every arm
    sees the same batches (paired runs), so each arm after the first reuses
    them, up to ``permutation_cache_bytes``, for as long as this object lives.

    Args:
        chunk_size: Replicas per program.
        workers: Processes to train in (default 1: this one). More start
            fresh interpreters that train contiguous slices of the chunks, one
            core each, for machines with many cores; results are yielded as
            they finish, from whichever worker.
        fallback: The :class:`FitExecutor` a failed chunk is trained with
            (default: a new one).
        blocks: Compiled blocks per chunk (default :data:`PROGRESS_BLOCKS`).
        max_programs: Compiled programs kept between chunks (default 1: the
            structure training now).
    """

    permutation_cache_bytes = 256 * 2**20
    # Each chunk is claimed (RunHooks.claim) just before it is launched; with
    # worker processes, every chunk before the workers start.
    claims_before_training = True

    def __init__(self, chunk_size: int | None = None, workers: int | None = None,
                 fallback: FitExecutor | None = None, blocks: int | None = None,
                 max_programs: int = 1):
        self.chunk_size = None if chunk_size is None else check_int("chunk_size", chunk_size,
                                                                     low=1)
        self.blocks = None if blocks is None else check_int("blocks", blocks, low=1)
        self.workers = check_int("workers", 1 if workers is None else workers, low=1)
        self.fallback = fallback if fallback is not None else FitExecutor()
        self.max_programs = check_int("max_programs", max_programs, low=1)
        self._permutations = collections.OrderedDict()
        self._programs = collections.OrderedDict()  # (id(data), structure) -> (data, _Program)

    def replicas_at_once(self, seeds: int) -> int:
        """Replicas this executor holds in memory at once for a study of ``seeds`` seeds."""
        return min(self.chunk_size or DEFAULT_CHUNK, seeds) * self.workers

    def run(self, plans: Sequence[RunPlan], hooks: RunHooks | None = None) -> Iterator[RunResult]:
        """Train ``plans``; results come chunk by chunk. In this process,
        ``hooks.on_chunk(plans, epoch)`` is called as each block of a chunk's
        epochs finishes (``on_start``/``on_epoch`` are not: a chunk's runs train
        together); worker processes report finished runs only."""
        _require_jax()
        units = chunks(plans, self.chunk_size)
        if not units:
            return
        workers = min(self.workers, len(units))
        if workers > 1 and self.chunk_size is None:
            # Measured on 2 cores: two workers with 16 replicas each beat two with
            # 32 (which contend for the shared cache) and one with 32.
            units = chunks(plans, max(8, DEFAULT_CHUNK // workers))
        if workers == 1:
            yield from self.run_units(units, (hooks or NO_HOOKS).on_chunk,
                                      claim=getattr(hooks, "claim", None))
        else:
            units = [(mine, size) for chunk, size in units if (mine := claimed(hooks, chunk))]
            if units:
                yield from _run_parallel(units, min(workers, len(units)))

    def permutations(self, seed: int, epochs: int, n: int) -> np.ndarray:
        """``(epochs, n)`` int32 array of :func:`~noisewise.study.data_order.epoch_orders` (cached)."""
        key = (seed, epochs, n)
        found = self._permutations.get(key)
        if found is not None:
            self._permutations.move_to_end(key)
            return found
        found = _orders(seed, epochs, n)
        found.setflags(write=False)
        self._permutations[key] = found
        while sum(a.nbytes for a in self._permutations.values()) > self.permutation_cache_bytes:
            self._permutations.popitem(last=False)
        return found

    def run_units(self, units: list, on_block=None, claim=None) -> Iterator[RunResult]:
        """Train ``units`` (:func:`chunks`) in order, one ahead: while a chunk trains
        (JAX computes asynchronously), the next one's initial states are built and
        its program compiled, and the finished one's results are stored.

        ``claim``: :attr:`RunHooks.claim`, called on each chunk just before it is
        launched; only the runs it returns train (padded to the chunk's size as
        ever, so the compiled program is reused).
        """
        pending = None
        for chunk, size in units:
            if claim is not None:
                chunk = list(claim(chunk))
                if not chunk:
                    continue
            key = (id(chunk[0].data), structure_key(chunk[0]))
            try:
                program = self._program(key, chunk[0])
                launched = (chunk, key, program, program.launch(chunk, size))
            except Exception as e:  # noqa: BLE001 -- the per-run path is always correct
                launched = (chunk, key, None, e)
            if pending is not None:
                yield from self._finish(*pending, on_block)
            pending = launched
        if pending is not None:
            yield from self._finish(*pending, on_block)

    def _program(self, key, plan):
        """The compiled program of ``key`` (dataset, structure), built on first use.

        The last ``max_programs`` are kept (an entry keeps its dataset alive, so
        its id stays its own). Units come grouped by structure, so one is enough
        for a study in this process; a Dask worker, which trains the units it is
        sent in any order, keeps several.
        """
        entry = self._programs.get(key)
        if entry is None:
            entry = self._programs[key] = (plan.data, _Program(plan, self.permutations, self.blocks))
            while len(self._programs) > self.max_programs:
                self._programs.popitem(last=False)
        self._programs.move_to_end(key)
        return entry[1]

    def _finish(self, chunk, key, program, launched, on_block=None):
        try:
            if program is None:
                raise launched
            results = list(program.finish(launched, on_block))
        except Exception as e:  # noqa: BLE001 -- the per-run path is always correct
            self._programs.pop(key, None)  # a program that failed is not reused
            warnings.warn(f"vectorised training failed ({type(e).__name__}: {e}); "
                          f"running these {len(chunk)} runs one fit each", stacklevel=3)
            results = (self.fallback.run_one(plan) for plan in chunk)
        yield from results


# -- worker processes -----------------------------------------------------------
#
# XLA on a CPU spreads only some of these small programs' loops over the
# cores, and two programs in one process do not overlap (threads, several CPU
# devices and pmap were tried), so `workers=n` runs the chunks in n worker
# processes, each held to one core. Starting one costs seconds (importing JAX
# and Keras, compiling). On 2-core machines two workers have measured from no
# faster (34.1 s against 33.6 s for 180 circles runs) to 20% faster (46.8 s
# against 57.7 s, benchmarks/bench_study.py), so the default stays one process
# and more are for machines with more cores.

def _split(units, n):
    """``n`` contiguous slices of ``units`` with about equal numbers of runs, so a
    worker compiles few structures."""
    total = sum(len(chunk) for chunk, _ in units)
    parts, done = [[] for _ in range(n)], 0
    for unit in units:  # by the position of the unit's middle run
        parts[min(n - 1, int((done + len(unit[0]) / 2) * n / total))].append(unit)
        done += len(unit[0])
    return [part for part in parts if part]


def _feed_and_read(process, name, payload, inbox):
    """Send a worker its units, then forward its frames into ``inbox``; a closed
    stream ends with the worker's exit code."""
    try:
        process.stdin.write(payload)
        process.stdin.close()
        while True:
            inbox.put(pickle.load(process.stdout))
    except (EOFError, OSError, pickle.UnpicklingError):
        process.wait()
        inbox.put(("exit", (name, process.returncode)))


WORKER_MODULE = "noisewise.study.execute.worker"
LIFELINE_THREAD = "noisewise-lifeline"

# Run with `python -c`: watch the lifeline (stdlib only), then import the
# package and run the worker module as `-m` would.
_BOOTSTRAP = f"""\
import os, sys, threading
def _watch(fd):
    try:
        while os.read(fd, 1024):
            pass
    except OSError:
        pass
    os._exit(0)
if len(sys.argv) > 2:
    threading.Thread(target=_watch, args=(int(sys.argv[2]),), name={LIFELINE_THREAD!r},
                     daemon=True).start()
import runpy
runpy.run_module({WORKER_MODULE!r}, run_name="__main__", alter_sys=True)
"""


def worker_command(parent, lifeline=None):
    """The command line of a worker (:mod:`noisewise.study.execute.worker`) for
    study process ``parent``, watching the pipe descriptor ``lifeline`` (None:
    only its parent between runs)."""
    return [sys.executable, "-c", _BOOTSTRAP, str(parent),
            *([] if lifeline is None else [str(lifeline)])]


# The folder holding the noisewise package (src/ of a source tree), which
# workers put on their path: they import the same noisewise as this process.
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def _run_parallel(units, n):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    # One core each: n workers share the machine instead of each spreading
    # its matrix products over every core.
    env["XLA_FLAGS"] = " ".join(f for f in (env.get("XLA_FLAGS"),
                                            "--xla_cpu_multi_thread_eigen=false") if f)
    inbox = queue.Queue()
    workers = []
    # The workers' lifeline (see noisewise.study.execute.worker): they hold its
    # read end, only this process the write end (not inheritable, so no other
    # child keeps it open), and the kernel closes that when this process dies.
    # Passing a descriptor is POSIX only; elsewhere workers check their parent
    # between runs.
    lifeline = os.pipe() if os.name == "posix" else ()
    try:
        for i, part in enumerate(_split(units, n)):
            process = subprocess.Popen(
                worker_command(os.getpid(), lifeline[0] if lifeline else None),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                pass_fds=lifeline[:1])
            workers.append(process)
            payload = pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)
            threading.Thread(target=_feed_and_read, daemon=True,
                             args=(process, f"worker {i}", payload, inbox)).start()
        pending = len(workers)
        while pending:
            kind, value = inbox.get()
            if kind == "run":
                yield value
            elif kind == "done":
                pending -= 1
            elif kind == "error":
                raise RuntimeError(f"a training worker failed: {value}")
            elif kind == "exit":
                name, code = value
                if code != 0:
                    raise RuntimeError(f"training {name} died with exit code {code}; "
                                       f"rerun the study to resume")
    finally:
        for fd in lifeline:  # workers still running exit on their own now
            os.close(fd)
        for process in workers:
            if process.poll() is None:
                process.terminate()
        for process in workers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

