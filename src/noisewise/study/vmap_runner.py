"""Vectorised executor (JAX only): train many replicas of one model in one program.

Each replica is a separately built and compiled Keras model (so its initial
weights, noise levels and seed-generator states are exactly those the per-run
``fit`` path would use). Their states are stacked along a new leading axis and
Keras' own stateless ``train_step`` / ``test_step`` run under ``jax.vmap``
(replicas) and ``jax.lax.scan`` (epochs), so the arithmetic is the one ``fit``
performs, with no Python between epochs.
"""

import collections
import json
import math
import time
import warnings

import numpy as np

from noisewise.study import fit_runner, models
from noisewise.study.data_order import epoch_permutation


def _require_jax():
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError(
            "The vectorised executor needs the JAX backend; "
            f"the active Keras backend is {keras.backend.backend()!r}."
        )


def model_state(model):
    """A model's (trainable, non-trainable, optimizer, metrics) variable values."""
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
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
    import jax
    import jax.numpy as jnp

    permutations = np.asarray(permutations, dtype=np.int32)
    validate = np.asarray(validate, dtype=bool)
    train = trainer or make_trainer(template, len(x), len(x_val), batch_size, val_batch_size)
    arrays = [jnp.asarray(a) for a in (x, y, x_val, y_val)]
    final, logs = train(stack_states(states), jnp.asarray(permutations), jnp.asarray(validate),
                        *arrays)
    logs = jax.device_get(logs)
    replicas = len(states)
    histories = [{k: np.asarray(v[i], dtype=np.float64) for k, v in logs.items()}
                 for i in range(replicas)]
    return final, histories


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
    where = str(plan.base_dir) if "builder" in plan.model else None
    return json.dumps([plan.model, plan.train, noise, plan.data.input_shape,
                       plan.data.num_classes, where], sort_keys=True, default=str)


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
        import keras

        data, metrics = chunk[0].data, chunk[0].train["metrics"]
        started = time.time()
        t0 = time.perf_counter()
        states = [_initial_state(plan, self.reset) for plan in chunk]
        n = len(data.x_train)
        perms = [np.stack([epoch_permutation(p.seed, e, n) for e in range(self.epochs)])
                 for p in chunk]
        # Pad to the chunk size so every chunk reuses one compiled program.
        states += [states[0]] * (size - len(states))
        perms += [perms[0]] * (size - len(perms))
        final_states, raw = train_states(
            self.template, states, data.x_train, data.y_train, data.x_test, data.y_test,
            batch_size=self.batch_size, permutations=np.stack(perms), validate=self.validate,
            val_batch_size=self.val_batch_size, trainer=self.trainer,
        )
        robust = [self._robustness(plan, final_states, i) for i, plan in enumerate(chunk)]
        wall = (time.perf_counter() - t0) / len(chunk)
        for plan, hist, extra in zip(chunk, raw, robust):
            history = _history(hist, self.validate)
            final = fit_runner.summarize_history(history, metrics)
            final.update(extra)
            error = None
            if not math.isfinite(final.get("loss", math.nan)):
                error = "training loss is not finite (diverged); metrics kept as recorded"
            yield fit_runner.RunResult(
                arm=plan.arm, replica=plan.replica, seed=plan.seed, status="done",
                history=history, final=final, wall_s=wall, backend=keras.backend.backend(),
                versions=fit_runner.versions(), error=error, started_at=started,
            )


    def _robustness(self, plan, states, i):
        """Robustness metrics of replica ``i``: its trained state loaded into the template."""
        if not plan.robustness:
            return {}
        model = self.template
        variables = (model.trainable_variables, model.non_trainable_variables,
                     model.optimizer.variables)
        for group, values in zip(variables, states):
            for variable, value in zip(group, values):
                variable.assign(value[i])
        return fit_runner.robustness_metrics(plan, model)


def run_many(plans, chunk_size=None):
    """Train ``plans`` with one compiled program per structure, chunk by chunk.

    Plans whose models differ only in noise levels (a grid) share a program.
    Replicas are split into chunks of ``chunk_size`` (default
    :data:`DEFAULT_CHUNK`), so memory stays bounded and time grows linearly
    with the number of runs. A chunk whose program fails falls back to the
    per-run ``fit`` path, so a study never stops for the fast path's sake.
    """
    _require_jax()
    size = chunk_size or DEFAULT_CHUNK
    groups = collections.OrderedDict()
    for plan in plans:
        groups.setdefault(structure_key(plan), []).append(plan)
    for group in groups.values():
        size_here = min(size, len(group))
        program = None
        for start in range(0, len(group), size_here):
            chunk = group[start:start + size_here]
            try:
                program = program or _Program(group[0])
                results = list(program.run(chunk, size_here))
            except Exception as e:  # noqa: BLE001 -- the per-run path is always correct
                warnings.warn(f"vectorised training failed ({type(e).__name__}: {e}); "
                              f"running these {len(chunk)} runs one fit each", stacklevel=2)
                results = (fit_runner.run_one(plan) for plan in chunk)
            yield from results
