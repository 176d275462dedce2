"""Vectorised executor (JAX only): train many replicas of one model in one program.

Each replica is a separately built and compiled Keras model (so its initial
weights, noise levels and seed-generator states are exactly those the per-run
``fit`` path would use). Their states are stacked along a new leading axis and
Keras' own stateless ``train_step`` / ``test_step`` run under ``jax.vmap``
(replicas) and ``jax.lax.scan`` (epochs), so the arithmetic is the one ``fit``
performs, with no Python between epochs.
"""

import collections
import os
import time
import warnings

import numpy as np

from noisewise._validation import check_int
from noisewise.study import fit_runner, models
from noisewise.study.data_order import epoch_orders


def _require_jax():
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError(
            "The vectorised executor needs the JAX backend; "
            f"the active Keras backend is {keras.backend.backend()!r}."
        )


def prepare(model, x, y):
    """Build a compiled model's optimizer and metrics without training it."""
    model._symbolic_build(data_batch=(x[:1], y[:1]))
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return model


def _batches(n, batch_size):
    full, rem = divmod(n, batch_size)
    return full, rem


def make_trainer(template, n_train, n_val, batch_size, val_batch_size=None):
    """Compile a function training stacked replica states.

    Returns ``train(states, permutations, validate, x, y, x_val, y_val) ->
    (final_states, logs)`` where ``permutations`` has shape (replicas, epochs,
    n_train), ``validate`` is a boolean array (epochs,) saying after which
    epochs to validate (as ``fit``'s ``validation_freq``), and logs maps Keras
    metric names (``loss``, ``accuracy``, ``val_loss``, ...) to arrays of
    shape (replicas, epochs), NaN where nothing was validated.
    """
    import jax
    import jax.numpy as jnp

    template.reset_metrics()
    reset_metrics = [jnp.asarray(v.value) for v in template.metrics_variables]
    full, rem = _batches(n_train, batch_size)
    vbs = val_batch_size or batch_size
    vfull, vrem = _batches(n_val, vbs)

    def run_batches(step, state, xs, ys, nfull, nrem, batch_size=batch_size):
        logs = None
        if nfull:
            xb = xs[: nfull * batch_size].reshape((nfull, batch_size) + xs.shape[1:])
            yb = ys[: nfull * batch_size].reshape((nfull, batch_size) + ys.shape[1:])

            def body(st, batch):
                lg, st = step(st, batch)
                return st, lg

            state, logs = jax.lax.scan(body, state, (xb, yb))
            logs = jax.tree.map(lambda a: a[-1], logs)
        if nrem:
            logs, state = step(state, (xs[nfull * batch_size :], ys[nfull * batch_size :]))
        return state, logs

    def one_replica(state, perms, validate, x, y, x_val, y_val):
        tv, ntv, ov, _ = state

        def epoch_fn(carry, inputs):
            check, perm = inputs
            tv, ntv, ov = carry
            st = (tv, ntv, ov, reset_metrics)
            st, logs = run_batches(template.train_step, st, x[perm], y[perm], full, rem)
            tv, ntv, ov, _ = st

            def validate(_):
                vst = (tv, ntv, reset_metrics)
                _, vlogs = run_batches(template.test_step, vst, x_val, y_val, vfull, vrem, vbs)
                return vlogs

            def skip(_):
                shapes = jax.eval_shape(validate, None)
                return jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)

            vlogs = jax.lax.cond(check, validate, skip, None)
            out = dict(logs)
            out.update({"val_" + k: v for k, v in vlogs.items()})
            return (tv, ntv, ov), out

        (tv, ntv, ov), logs = jax.lax.scan(epoch_fn, (tv, ntv, ov), (validate, perms))
        return (tv, ntv, ov), logs

    vmapped = jax.vmap(one_replica, in_axes=(0, 0, None, None, None, None, None))
    return jax.jit(vmapped)


def stack_states(states):
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def train_states(template, states, x, y, x_val, y_val, *, batch_size, permutations,
                 validate, val_batch_size=None, trainer=None):
    """Train stacked replica ``states`` of ``template``'s architecture in one program.

    Returns ``(final_states, histories)``: the trained (trainable,
    non-trainable, optimizer) values stacked per replica, and one history
    ``{metric: np.ndarray(epochs)}`` per replica (NaN on epochs not validated).
    """
    _require_jax()
    train = trainer or make_trainer(template, len(x), len(x_val), batch_size, val_batch_size)
    final, logs = _dispatch(train, states, permutations, validate, (x, y, x_val, y_val))
    return final, _replica_logs(logs, len(states))


def _dispatch(train, states, permutations, validate, arrays):
    """Start training: JAX returns at once and computes in the background, so
    the caller can prepare the next chunk meanwhile."""
    import jax.numpy as jnp

    permutations = jnp.asarray(np.asarray(permutations, dtype=np.int32))
    validate = jnp.asarray(np.asarray(validate, dtype=bool))
    return train(stack_states(states), permutations, validate,
                 *[jnp.asarray(a) for a in arrays])


def _replica_logs(logs, replicas):
    """Wait for the logs of a dispatched chunk; one ``{metric: array}`` per replica."""
    import jax

    logs = jax.device_get(logs)
    return [{k: np.asarray(v[i], dtype=np.float64) for k, v in logs.items()}
            for i in range(replicas)]


# -- the executor interface: run_many(plans) -> iterator of RunResult ----------

DEFAULT_CHUNK = 32


def structure_key(plan):
    """Plans with equal keys share one compiled program: only noise levels differ.

    Levels of noisewise noise layers are variables (state), so a grid over a
    level stacks into one program; every other setting shapes the program.
    """
    from noisewise.layers import NOISE_LAYERS

    noise = []
    for entry in plan.arm.noise:
        entry = dict(entry)
        if entry["type"] in NOISE_LAYERS:
            entry.pop(NOISE_LAYERS[entry["type"]].level_name, None)
        noise.append(entry)
    return fit_runner.program_key(plan, noise)


def unsupported_reason(plans=()):
    """Why the vectorised executor cannot run ``plans``, or None if it can.

    It needs the JAX backend, and every layer of every arm's model must be
    jit-compilable (some Keras preprocessing layers set ``supports_jit=False``).
    """
    import keras

    if keras.backend.backend() != "jax":
        return f"the vectorised executor needs the JAX backend (active: {keras.backend.backend()!r})"
    seen = set()
    for plan in plans:
        key = structure_key(plan)
        if key in seen:
            continue
        seen.add(key)
        model = models.build_model(plan.model, plan.arm.noise, plan.data, plan.seed,
                                   plan.arm.name, base_dir=plan.base_dir)
        for layer in model._flatten_layers(include_self=True):
            if getattr(layer, "supports_jit", True) is False:
                return (f"arm {plan.arm.name!r}: layer {layer.name!r} "
                        f"({type(layer).__name__}) cannot be jit-compiled")
    return None


def _initial_state(plan, reset_metrics):
    """A run's exact initial state, as the per-run path would build it (no compile)."""
    model = models.build_model(plan.model, plan.arm.noise, plan.data, plan.seed, plan.arm.name,
                               base_dir=plan.base_dir)
    optimizer = fit_runner.make_optimizer(plan.train, plan.arm.noise, plan.seed, plan.arm.name)
    optimizer.build(model.trainable_variables)
    return ([v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in optimizer.variables],
            reset_metrics)


def _history(raw, validated):
    """Per-run history in the fit path's layout (validation curves only where validated)."""
    history = {}
    for key, values in raw.items():
        if key.startswith("val_"):
            history[key] = [float(v) for v in values[validated]]
        else:
            history[key] = [float(v) for v in values]
    n = len(next(iter(raw.values())))
    history["epoch"] = list(range(1, n + 1))
    history["val_epoch"] = [int(e) + 1 for e in np.flatnonzero(validated)]
    return history


def _until(history, last):
    """``history`` up to and including epoch ``last``, as a ``fit`` stopped
    there records it (no ``val_*`` curve when nothing was validated yet)."""
    keep = sum(e <= last for e in history["epoch"])
    keep_val = sum(e <= last for e in history["val_epoch"])
    return {k: v[:keep_val if k.startswith("val_") else keep] for k, v in history.items()
            if keep_val or not k.startswith("val_") or k == "val_epoch"}


# Epoch orders per (seed, epochs, n): replica i of every arm sees the same
# batches (paired runs), so each arm after the first reuses them. Kept up to
# PERMUTATION_CACHE_BYTES.
_PERMUTATIONS = collections.OrderedDict()
PERMUTATION_CACHE_BYTES = 256 * 2**20


def permutations(seed, epochs, n):
    """``(epochs, n)`` int32 array of :func:`~noisewise.study.data_order.epoch_orders` (cached)."""
    key = (seed, epochs, n)
    found = _PERMUTATIONS.get(key)
    if found is not None:
        _PERMUTATIONS.move_to_end(key)
        return found
    found = epoch_orders(seed, epochs, n).astype(np.int32)
    found.setflags(write=False)
    _PERMUTATIONS[key] = found
    while sum(a.nbytes for a in _PERMUTATIONS.values()) > PERMUTATION_CACHE_BYTES:
        _PERMUTATIONS.popitem(last=False)
    return found


class _Program:
    """One compiled training program: a template model and its vmapped trainer."""

    def __init__(self, plan):
        data, train = plan.data, plan.train
        self.template = prepare(fit_runner.prepare_model(plan), data.x_train, data.y_train)
        self.epochs, self.batch_size = train["epochs"], train["batch_size"]
        self.val_batch_size = fit_runner.validation_batch_size(self.batch_size, len(data.x_test))
        checked = fit_runner.validated_epochs(self.epochs, train["validate_every"])
        self.validate = np.zeros(self.epochs, dtype=bool)
        self.validate[np.asarray(checked) - 1] = True
        self.template.reset_metrics()
        self.reset = [v.value for v in self.template.metrics_variables]
        self.trainer = make_trainer(self.template, len(data.x_train), len(data.x_test),
                                    self.batch_size, self.val_batch_size)

    def run(self, chunk, size):
        """Train ``chunk`` (padded to ``size`` replicas); yield one RunResult per plan."""
        return self.finish(self.launch(chunk, size))

    def launch(self, chunk, size):
        """Build the chunk's initial states and start training it (compiling on
        first use); returns at once, with the work under way."""
        started, t0 = time.time(), time.perf_counter()
        data = chunk[0].data
        states = [_initial_state(plan, self.reset) for plan in chunk]
        n = len(data.x_train)
        perms = [permutations(p.seed, self.epochs, n) for p in chunk]
        # Pad to the chunk size so every chunk reuses one compiled program.
        states += [states[0]] * (size - len(states))
        perms += [perms[0]] * (size - len(perms))
        final_states, logs = _dispatch(
            self.trainer, states, np.stack(perms), self.validate,
            (data.x_train, data.y_train, data.x_test, data.y_test))
        return chunk, final_states, logs, started, t0

    def finish(self, launched):
        """Wait for a launched chunk and yield its RunResults."""
        import keras

        chunk, final_states, logs, started, t0 = launched
        histories = [_history(hist, self.validate) for hist in _replica_logs(logs, len(chunk))]
        # One replica cannot stop alone: a diverged one trained every epoch, and
        # is classified, cut at its diverged epoch and left without robustness
        # metrics, as the fit path (which stops there) records it.
        verdicts = [fit_runner.classify(history) for history in histories]
        histories = [h if epoch is None else _until(h, epoch)
                     for h, (_, epoch, _) in zip(histories, verdicts)]
        robust = [self._robustness(plan, final_states, i) if verdict[0] == "done" else {}
                  for i, (plan, verdict) in enumerate(zip(chunk, verdicts))]
        wall = (time.perf_counter() - t0) / len(chunk)
        metrics = chunk[0].train["metrics"]
        for plan, history, (status, diverged_epoch, error), extra in zip(
                chunk, histories, verdicts, robust):
            final = fit_runner.summarize_history(history, metrics)
            final.update(extra)
            yield fit_runner.RunResult(
                arm=plan.arm, replica=plan.replica, seed=plan.seed, status=status,
                history=history, final=final, wall_s=wall, backend=keras.backend.backend(),
                versions=fit_runner.versions(), error=error, started_at=started,
                diverged_epoch=diverged_epoch,
            )

    def _robustness(self, plan, states, i):
        """Robustness metrics of replica ``i``: its trained state loaded into the template."""
        if not plan.robustness:
            return {}
        values = [value for group in states for value in group]  # (trainable, non-, optimizer)
        for variable, value in zip(fit_runner.state_variables(self.template), values):
            variable.assign(value[i])
        return fit_runner.robustness_metrics(plan, self.template)


def chunks(plans, chunk_size=None):
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


def _run_units(units):
    """Train ``units`` in order, one ahead: while a chunk trains (JAX computes
    asynchronously), the next one's initial states are built and its program
    compiled, and the finished one's results are stored."""
    program, key, pending = None, None, None
    for chunk, size in units:
        try:
            if structure_key(chunk[0]) != key:  # units come grouped by structure
                program, key = None, structure_key(chunk[0])
                program = _Program(chunk[0])
            launched = (chunk, program, program.launch(chunk, size))
        except Exception as e:  # noqa: BLE001 -- the per-run path is always correct
            launched = (chunk, None, e)
        if pending is not None:
            yield from _finish(*pending)
        pending = launched
    if pending is not None:
        yield from _finish(*pending)


def _finish(chunk, program, launched):
    try:
        if program is None:
            raise launched
        results = list(program.finish(launched))
    except Exception as e:  # noqa: BLE001 -- the per-run path is always correct
        warnings.warn(f"vectorised training failed ({type(e).__name__}: {e}); "
                      f"running these {len(chunk)} runs one fit each", stacklevel=3)
        results = (fit_runner.run_one(plan) for plan in chunk)
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
    import pickle

    try:
        process.stdin.write(payload)
        process.stdin.close()
        while True:
            inbox.put(pickle.load(process.stdout))
    except (EOFError, OSError, pickle.UnpicklingError):
        process.wait()
        inbox.put(("exit", (name, process.returncode)))


def _run_parallel(units, n):
    import pickle
    import queue
    import subprocess
    import threading

    import noisewise
    from noisewise.study import _worker

    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(noisewise.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    # One core each: n workers share the machine instead of each spreading
    # its matrix products over every core.
    env["XLA_FLAGS"] = " ".join(f for f in (env.get("XLA_FLAGS"),
                                            "--xla_cpu_multi_thread_eigen=false") if f)
    inbox = queue.Queue()
    workers = []
    # The workers' lifeline (see noisewise.study._worker): they hold its read
    # end, only this process the write end (not inheritable, so no other child
    # keeps it open), and the kernel closes that when this process dies.
    # Passing a descriptor is POSIX only; elsewhere workers check their parent
    # between runs.
    lifeline = os.pipe() if os.name == "posix" else ()
    try:
        for i, part in enumerate(_split(units, n)):
            process = subprocess.Popen(
                _worker.command(os.getpid(), lifeline[0] if lifeline else None),
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


def run_many(plans, chunk_size=None, workers=None):
    """Train ``plans`` with one compiled program per structure, chunk by chunk.

    Plans whose models differ only in noise levels (a grid) share a program.
    Replicas are split into chunks of ``chunk_size`` (default
    :data:`DEFAULT_CHUNK`), so memory stays bounded and time grows linearly
    with the number of runs. A chunk whose program fails falls back to the
    per-run ``fit`` path, so a study never stops for the fast path's sake.

    Args:
        plans: Run plans.
        chunk_size: Replicas per program.
        workers: Processes to train in (default 1: this one). More start
            fresh interpreters that train contiguous slices of the chunks, one
            core each, for machines with many cores; results are yielded as
            they finish, from whichever worker.
    """
    _require_jax()
    units = chunks(plans, chunk_size)
    if not units:
        return
    workers = min(check_int("workers", 1 if workers is None else workers, low=1), len(units))
    if workers > 1 and chunk_size is None:
        # Measured on 2 cores: two workers with 16 replicas each beat two with
        # 32 (which contend for the shared cache) and one with 32.
        units = chunks(plans, max(8, DEFAULT_CHUNK // workers))
    if workers == 1:
        yield from _run_units(units)
    else:
        yield from _run_parallel(units, workers)
