"""Per-run executor: one Keras ``fit`` per (arm, replica), on any backend.

Each run is built from the replica seed (see :mod:`~noisewise.study.models`),
fed mini-batches in the order of :func:`~noisewise.study.data_order.epoch_permutation`
through one plain Python generator for the whole fit (``steps_per_epoch``
set, so Keras keeps one iterator across epochs; no per-epoch callback of ours
unless a progress bar asks for one), validated every ``validate_every``
epochs and always after the last epoch (``fit``'s ``validation_freq``): on
the test split by default, or on the validation split held out of the
training rows (``[train] validation_split``), the test split then evaluated
once at the end (``test_*`` final metrics). An adaptive level (a noise
entry's ``adapt``, an arm's ``augment_adapt``) is a
:class:`~noisewise.NoiseScheduler` with its adaptive schedule, recorded per
epoch as the curve ``level_{key}`` (``level_noise0``, ``level_augment``).
``[train] early_stopping`` is
Keras' ``EarlyStopping`` on a validation curve (patience counted in validated
epochs), ``class_weight`` becomes per-sample weights of the training batches.
A streaming source (:mod:`~noisewise.study.sources`) feeds its own batches in
its own order, each checked as it comes, and validates on its test source:
the replicas of a study are then paired by model initialisation and noise
only, and by data order too when the source orders its batches by the
``seed`` it is given.

Feeding cost, circles MLP (500 ReLU units, 30 points, batch 32), warm model,
200 epochs, best of 7 on a shared 2-core CPU: JAX 2.4 ms/epoch with plain
arrays vs 2.1 ms/epoch with this generator (4.6 vs 4.1 ms validating every
epoch); on TensorFlow the generator is far cheaper than arrays (7 vs 129
ms/epoch), because ``fit`` rebuilds a ``tf.data`` pipeline from arrays each
epoch. A run of the same arm after the first reuses its compiled model (see
:class:`FitExecutor`), so compilation is paid once per arm, not once per run.

Example:
    >>> from noisewise.study import load_spec, Study
    >>> spec = load_spec({"study": {"name": "demo", "seeds": 1},
    ...                   "data": {"name": "circles"},
    ...                   "model": {"name": "mlp", "hidden": [8]},
    ...                   "train": {"epochs": 3},
    ...                   "arms": [{"name": "baseline"}]})
    >>> result = FitExecutor().run_one(Study(spec).plans()[0])
    >>> result.status, len(result.history["loss"])
    ('done', 3)
"""

import collections
import math
import time
from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np

from noisewise.layers.scheduler import NoiseScheduler
from noisewise.study import models, sources
from noisewise.study.data_order import batches, steps_per_epoch
from noisewise.study.execute.base import (
    NO_HOOKS,
    RunHooks,
    claimed,
    failed_result,
    history_from_epochs,
    result_from_history,
    validated_epochs,
    validation_batch_size,
)
from noisewise.study.execute.prepare import (
    adaptive_rules,
    class_weights,
    prepare_model,
    program_key,
    state_variables,
    train_of,
)
from noisewise.study.execute.types import RunPlan, RunResult
from noisewise.study.stats import is_higher_better


class _Watch(keras.callbacks.Callback):
    """Records each epoch's logs, and stops ``fit`` after the first epoch whose
    logs hold a NaN or infinity.

    Checked once per epoch, not per batch as ``keras.callbacks.TerminateOnNaN``
    does (which also prints to stdout): a batch-end hook makes Keras wait for
    every step, while epoch-end logs are already read; a diverged run still
    stops at the epoch :func:`~noisewise.study.execute.classify` reports.
    """

    def __init__(self):
        super().__init__()
        self.logs, self.epoch = [], 0  # epoch: the 1-based epoch under way

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.logs.append(logs)
        if not all(math.isfinite(v) for v in logs.values()):
            self.model.stop_training = True


class _FitDiverged(Exception):
    """``fit`` raised on a model that computes NaN or infinity (PyTorch's binary
    cross-entropy refuses NaN probabilities instead of returning a NaN loss)."""

    def __init__(self, history, epoch, cause):
        super().__init__(f"diverged at epoch {epoch}: the model's weights or outputs are "
                         f"not finite, and fit stopped with {type(cause).__name__}: "
                         f"{str(cause).strip().splitlines()[0] if str(cause).strip() else ''}")
        self.history, self.epoch = history, epoch


def _computes_non_finite(model, x):
    """Whether ``model``'s weights, or its outputs on ``x`` (in training mode,
    noise on, and in inference mode), hold a NaN or infinity."""
    def finite(value):
        return bool(np.isfinite(keras.ops.convert_to_numpy(value)).all())

    if not all(finite(v.value) for v in model.trainable_variables):
        return True
    try:
        return not all(finite(model(x, training=mode)) for mode in (True, False))
    except Exception:  # noqa: BLE001 -- cannot tell: the original error stands
        return False


class _EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping, skipping the epochs that were not validated
    (``validate_every > 1``) instead of warning that the curve is missing."""

    def on_epoch_end(self, epoch, logs=None):
        if logs and self.monitor in logs:
            super().on_epoch_end(epoch, logs)


def early_stopping(train: dict) -> keras.callbacks.Callback | None:
    """The callback of ``train.early_stopping``, or None. The direction follows
    the metric's name (loss, mse, mae... lower is better), as the statistics read it."""
    entry = train.get("early_stopping")
    if entry is None:
        return None
    mode = "max" if is_higher_better(entry["monitor"]) else "min"
    return _EarlyStopping(monitor=entry["monitor"], patience=entry["patience"],
                          min_delta=entry["min_delta"], mode=mode,
                          restore_best_weights=entry["restore_best_weights"])


def adaptive_schedulers(plan: RunPlan, model: keras.Model) -> list[keras.callbacks.Callback]:
    """A :class:`~noisewise.NoiseScheduler` per adaptive entry of the run's arm,
    driving the layers that hold its level and logging it as ``level_{key}``."""
    sites = models.level_layers(model)
    return [NoiseScheduler(rule, layers=sites[key], log_name=f"level_{key}")
            for key, rule in adaptive_rules(plan)]


def _weighted(stream, weights):
    """Training batches with per-sample weights from their class codes."""
    for x, y in stream:
        yield x, y, weights[y]


class _EpochCallback(keras.callbacks.Callback):
    def __init__(self, on_epoch):
        super().__init__()
        self.on_epoch = on_epoch

    def on_epoch_end(self, epoch, logs=None):
        self.on_epoch(epoch + 1)


class FitExecutor:
    """Trains each run with one Keras ``fit``, on any backend.

    Compiled models are kept per structure (model, train, noise entries, data
    shape): a later replica of the same arm reuses the compiled train/eval
    functions, its variables (weights, noise seed states, noise levels,
    optimizer slots and step) overwritten with those of a freshly built
    model, so it trains exactly as a fresh model would (checked bit for bit
    in tests/study/test_fit_runner.py) but without recompiling
    (XLA / ``tf.function`` compilation costs seconds per run). The cache lives
    as long as this object, at most ``max_compiled`` models;
    :meth:`clear_cache` frees them.

    Args:
        max_compiled: Compiled models kept, least recently used dropped first.
    """

    # Each run is claimed (RunHooks.claim) just before it trains.
    claims_before_training = True

    def __init__(self, max_compiled: int = 64):
        self.max_compiled = max_compiled
        self._compiled = collections.OrderedDict()

    def run(self, plans: Sequence[RunPlan], hooks: RunHooks | None = None) -> Iterator[RunResult]:
        """Train ``plans`` one after another, in order (see :meth:`run_one`)."""
        hooks = hooks or NO_HOOKS
        for plan in plans:
            if not claimed(hooks, [plan]):  # another process sharing the store trains it
                continue
            if hooks.on_start is not None:
                hooks.on_start(plan)
            yield self.run_one(plan, on_epoch=hooks.on_epoch)

    def clear_cache(self) -> None:
        """Drop the compiled models kept between runs (and Keras' global state)."""
        self._compiled.clear()
        keras.backend.clear_session()

    def run_one(self, plan: RunPlan, on_epoch: Callable[[int], None] | None = None) -> RunResult:
        """Train one run and return its :class:`RunResult` (never raises for a failed fit).

        Args:
            plan: A :class:`RunPlan`.
            on_epoch: Optional ``callable(epoch)`` called after each epoch (1-based),
                e.g. to drive a progress bar.

        Returns:
            A :class:`RunResult`; a run whose build or fit raised is returned with
            ``status="failed"`` and the error text, so one bad run does not stop a
            study (``KeyboardInterrupt`` still does). A run whose curves became
            NaN or infinite is ``"diverged"`` (see
            :func:`~noisewise.study.execute.classify`); its fit stops after that epoch.
        """
        started, t0 = time.time(), time.perf_counter()
        try:
            history, model = self._fit(plan, on_epoch)
            return result_from_history(plan, history, t0=t0, started_at=started,
                                       trained=lambda: model)
        except _FitDiverged as e:
            self._compiled.pop(program_key(plan), None)  # never reuse a model whose fit broke
            return result_from_history(plan, e.history, t0=t0, started_at=started,
                                       diverged=(e.epoch, str(e)))
        except Exception as e:  # noqa: BLE001 -- recorded in the store, the study goes on
            self._compiled.pop(program_key(plan), None)
            return failed_result(plan, e, t0=t0, started_at=started)

    def model_for(self, plan: RunPlan) -> keras.Model:
        """``plan``'s compiled model in its initial state, reusing a compiled one
        of the same structure when there is one."""
        fresh = prepare_model(plan)
        key = program_key(plan)
        cached = self._compiled.get(key)
        if cached is not None:
            old, new = state_variables(cached), state_variables(fresh)
            if len(old) == len(new) and all(a.shape == b.shape for a, b in zip(old, new)):
                for target, source in zip(old, new):
                    target.assign(source.value)
                self._compiled.move_to_end(key)
                return cached
        self._compiled[key] = fresh
        while len(self._compiled) > self.max_compiled:
            self._compiled.popitem(last=False)
        return fresh

    def _fit(self, plan, on_epoch):
        train, data = train_of(plan), plan.data
        model = self.model_for(plan)
        epochs, bs = train["epochs"], train["batch_size"]
        checked = validated_epochs(epochs, train["validate_every"])
        freq = train["validate_every"] if epochs % train["validate_every"] == 0 else checked
        # The test split validates only when no validation split was held out.
        x_val, y_val = (data.x_test, data.y_test) if data.x_val is None else (data.x_val,
                                                                               data.y_val)
        # A streaming source (data.streaming) feeds its own batches, in its order.
        feed = sources.fit_inputs(data, plan.seed, epochs) if data.streaming else {
            "x": batches(data.x_train, data.y_train, plan.seed, epochs, bs),
            "steps_per_epoch": steps_per_epoch(len(data.x_train), bs),
            "validation_data": (x_val, y_val),
            "validation_batch_size": validation_batch_size(bs, len(x_val))}
        stream = feed.pop("x")
        weights = class_weights(train, data)
        if weights is not None:
            stream = _weighted(stream, weights)
        watch = _Watch()
        # The schedulers first: they write the epoch's level into the logs _Watch reads.
        callbacks = [*adaptive_schedulers(plan, model), watch,
                     *([_EpochCallback(on_epoch)] if on_epoch else [])]
        stopping = early_stopping(train)
        if stopping is not None:
            callbacks.append(stopping)
        try:
            model.fit(
                stream,
                **feed,
                epochs=epochs,
                validation_freq=freq,
                shuffle=False,
                verbose=0,
                callbacks=callbacks,
            )
        except Exception as e:
            if watch.epoch and _computes_non_finite(model, data.x_train[:bs]):
                raise _FitDiverged(history_from_epochs(watch.logs), watch.epoch, e) from e
            raise
        return history_from_epochs(watch.logs), model
