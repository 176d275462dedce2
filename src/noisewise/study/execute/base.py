"""The executor contract: ``run(plans) -> iterator of RunResult``, and what every executor shares.

An executor trains run plans and yields one :class:`RunResult` per plan, in
any order, as each finishes; the runner stores each at once. Whatever an
executor computes with (one ``fit`` per run, replicas under ``jax.vmap``, a
cluster), it turns a run's epoch logs into a result with the same two
functions, so every executor records the same layout:

- :func:`history_from_epochs`: per-epoch logs -> the history layout
  (Keras-named curves, ``epoch`` and ``val_epoch``);
- :func:`result_from_history`: a history -> a :class:`RunResult` (divergence
  classified, the history cut at the diverged epoch, final and best metrics,
  the ``[robustness]`` evaluations of a healthy run and the terms behind them).

Example:
    >>> from noisewise.study.execute import history_from_epochs
    >>> history_from_epochs([{"loss": 0.7}, {"loss": 0.5, "val_loss": 0.6}])
    {'loss': [0.7, 0.5], 'val_loss': [0.6], 'epoch': [1, 2], 'val_epoch': [2]}
"""

import dataclasses
import math
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

import keras
import numpy as np

from noisewise.random import derive_seed
from noisewise.robust import evaluate_config
from noisewise.study.execute.types import RunPlan, RunResult, versions
from noisewise.study.execute.uncertainty_eval import uncertainty_evaluation
from noisewise.study.stats import is_higher_better


@dataclasses.dataclass(frozen=True)
class RunHooks:
    """Optional callbacks an executor calls while it trains, e.g. to drive a progress bar.

    An executor calls them where it can: the fit executor before each run and
    after each of its epochs; the vectorised executor trains a chunk's runs
    together and calls ``on_chunk`` as each block of their epochs finishes.
    The runner counts finished runs from the results themselves.

    Attributes:
        on_start: ``callable(plan)`` before a run starts training.
        on_epoch: ``callable(epoch)`` after each epoch (1-based) of that run.
        on_chunk: ``callable(plans, epoch)``: every run in ``plans``, training
            together, has finished ``epoch`` epochs.
        claim: ``callable(plans) -> plans``, called just before the executor
            starts training ``plans``: it returns those this process may train
            (it claimed them in the store); the others are being trained by
            another process sharing the store, and the executor leaves them
            out. An executor whose ``claims_before_training`` is true calls it
            (through :func:`claimed`); for any other, the runner claims its
            plans before handing them over.
    """

    on_start: Callable[[RunPlan], None] | None = None
    on_epoch: Callable[[int], None] | None = None
    on_chunk: Callable[[Sequence[RunPlan], int], None] | None = None
    claim: Callable[[Sequence[RunPlan]], Sequence[RunPlan]] | None = None


NO_HOOKS = RunHooks()


def claimed(hooks: RunHooks | None, plans: Sequence[RunPlan]) -> list[RunPlan]:
    """The plans of ``plans`` this process may train now (all of them without a claim hook)."""
    claim = getattr(hooks, "claim", None)
    return list(plans) if claim is None else list(claim(plans))


@runtime_checkable
class Executor(Protocol):
    """Trains run plans: ``run(plans, hooks) -> iterator of RunResult``.

    Implement ``run`` to train with something new (a cluster, another
    accelerator) and pass the object to ``Study.run(executor=...)``. It must
    yield exactly one result per plan (in any order, each as soon as it is
    final: the runner stores it at once, so a stopped study keeps it), and
    return a failed run as a result with ``status="failed"`` rather than raise.
    Build results with :func:`result_from_history` and :func:`failed_result`
    so they have the layout the store and the report read.

    Example:
        >>> from noisewise.study.execute import Executor, FitExecutor
        >>> class OneByOne:
        ...     def __init__(self):
        ...         self.fit = FitExecutor()
        ...     def run(self, plans, hooks=None):
        ...         for plan in plans:
        ...             yield self.fit.run_one(plan)
        >>> isinstance(OneByOne(), Executor)
        True
    """

    def run(self, plans: Sequence[RunPlan], hooks: RunHooks | None = None) -> Iterator[RunResult]:
        ...


def validated_epochs(epochs: int, every: int) -> list[int]:
    """1-based epochs with validation: every ``every``-th, and always the last."""
    out = list(range(every, epochs + 1, every))
    if not out or out[-1] != epochs:
        out.append(epochs)
    return out


def validation_batch_size(batch_size: int, n_val: int) -> int:
    """Batch size of validation: metrics are sample averages (equal up to float
    rounding for any batch size), and fewer, larger batches cost less."""
    return max(batch_size, min(n_val, 1024))


def history_from_epochs(epochs: Iterable[Mapping[str, float]]) -> dict[str, list]:
    """The history layout from per-epoch logs, one mapping per trained epoch.

    A log holds the training metrics of its epoch and, on validated epochs
    only, the ``val_*`` ones. The history has each metric's values in epoch
    order, ``epoch`` (1-based, one per log) and ``val_epoch`` (the epochs
    whose log has ``val_loss``); a curve appears once it has a value.
    """
    history, val_epoch, n = {}, [], 0
    for n, entry in enumerate(epochs, start=1):
        for key, value in entry.items():
            history.setdefault(key, []).append(float(value))
        if "val_loss" in entry:
            val_epoch.append(n)
    history["epoch"] = list(range(1, n + 1))
    history["val_epoch"] = val_epoch
    return history


def _curves(history):
    """``(name, epochs, values)`` of every recorded curve, training curves first."""
    names = [k for k in history if k not in ("epoch", "val_epoch")]
    names.sort(key=lambda k: (k.startswith("val_"), k != "loss", k != "val_loss"))
    for name in names:
        epochs = history.get("val_epoch" if name.startswith("val_") else "epoch")
        values = history[name]
        if epochs is None or len(epochs) != len(values):  # hand-made: number them 1..n
            epochs = range(1, len(values) + 1)
        yield name, epochs, values


def classify(history: Mapping[str, list]) -> tuple[str, int | None, str | None]:
    """A finished fit's ``(status, diverged_epoch, error)``.

    A run whose loss or any recorded metric (training or validation) is NaN
    or infinite at some epoch has diverged: its numbers after that epoch
    describe a broken model, not the arm, so it is ``"diverged"`` at the first
    such 1-based epoch (from ``history["epoch"]`` / ``history["val_epoch"]``),
    with a one-line reason. Otherwise ``("done", None, None)``.

    Example:
        >>> classify({"loss": [0.7, 0.5, float("nan")], "epoch": [1, 2, 3]})
        ('diverged', 3, 'diverged at epoch 3: loss is nan (metrics from then on are meaningless)')
    """
    first = None  # (epoch, name, value); ties go to the curve listed first (the loss)
    for name, epochs, values in _curves(history):
        for epoch, value in zip(epochs, values):
            if first is not None and epoch >= first[0]:
                break
            if not math.isfinite(value):
                first = (int(epoch), name, value)
                break
    if first is None:
        return "done", None, None
    epoch, name, value = first
    return ("diverged", epoch,
            f"diverged at epoch {epoch}: {name} is {value} "
            f"(metrics from then on are meaningless)")


def until(history: Mapping[str, list], last: int) -> dict[str, list]:
    """``history`` up to and including epoch ``last``, as a fit stopped there
    records it (no ``val_*`` curve when nothing was validated yet)."""
    keep = sum(e <= last for e in history["epoch"])
    keep_val = sum(e <= last for e in history["val_epoch"])
    return {k: v[:keep_val if k.startswith("val_") else keep] for k, v in history.items()
            if keep_val or not k.startswith("val_") or k == "val_epoch"}


def summarize_history(history: Mapping[str, list], metrics: Sequence[str]) -> dict:
    """``final`` dict: last value of every curve, plus the best validation epoch."""
    final = {k: v[-1] for k, v in history.items() if k not in ("epoch", "val_epoch") and v}
    primary = f"val_{metrics[0]}" if metrics and f"val_{metrics[0]}" in history else "val_loss"
    values = np.asarray(history.get(primary, []), dtype=float)
    if values.size and np.isfinite(values).any():
        higher = is_higher_better(primary)  # val_mse, val_mae: lower is better
        i = int(np.nanargmax(values) if higher else np.nanargmin(values))
        final[f"best_{primary}"] = float(values[i])
        final["best_epoch"] = int(history["val_epoch"][i])
    return final


def robustness_evaluation(plan: RunPlan, model: keras.Model):
    """The ``[robustness]`` evaluation of a trained model (:class:`noisewise.robust.Evaluation`), or None.

    The evaluation seed depends on the replica only, so every arm's replica i
    is attacked, smoothed and corrupted with the same draws (paired). Attacks
    and noise clip to the dataset's known value range (digits: [0, 1]) unless
    the table's ``clip`` says otherwise; without a known range, to the
    observed range of the test split, and the evaluation's terms say which.
    """
    if not plan.robustness:
        return None
    data = plan.data
    return evaluate_config(model, data.x_test, data.y_test, plan.robustness,
                           derive_seed(plan.seed, "robustness"),
                           value_range=getattr(data, "value_range", None),
                           range_source=getattr(data, "range_source", None))


def robustness_metrics(plan: RunPlan, model: keras.Model) -> dict[str, float]:
    """The ``[robustness]`` evaluations of a trained model, as flat final metrics
    (:func:`robustness_evaluation`'s ``metrics``; ``{}`` without a table)."""
    evaluation = robustness_evaluation(plan, model)
    return {} if evaluation is None else evaluation.metrics


def robustness_terms(evaluation) -> dict | None:
    """What a run stores of an evaluation beside its metrics: the data summary and the records."""
    if evaluation is None:
        return None
    out = evaluation.to_dict()
    return {"data": out["data"], "records": out["records"]}


def evaluate_test_split(plan: RunPlan, model: keras.Model) -> dict[str, float]:
    """``test_<metric>`` figures of a trained model on the test split, or ``{}``.

    Only a run that validated on a validation split (``[train]
    validation_split``) gets them: its ``val_*`` curves, early stopping and
    best epoch never saw the test split, which is evaluated once, here, with
    the weights training ended with (the best epoch's under early stopping's
    ``restore_best_weights``). Without a validation split the ``val_*``
    curves already are the test figures.
    """
    data = plan.data
    if getattr(data, "x_val", None) is None:
        return {}
    logs = model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True,
                          batch_size=validation_batch_size(plan.train["batch_size"],
                                                           len(data.x_test)))
    return {f"test_{k}": float(v) for k, v in logs.items()}


def result_from_history(plan: RunPlan, history: Mapping[str, list], *, t0: float,
                        started_at: float, trained: Callable[[], keras.Model] | None = None,
                        diverged: tuple[int, str] | None = None) -> RunResult:
    """The :class:`RunResult` of a run that trained, from its history.

    The history is classified (:func:`classify`); a diverged one is cut at
    its diverged epoch (a vectorised executor trains every epoch; ``fit``
    stops there), and only a healthy run is evaluated for ``[robustness]``
    and, with a validation split, on the test split (:func:`evaluate_test_split`):
    a diverged model's figures say nothing of the arm.

    Args:
        plan: The run's plan.
        history: Its history (:func:`history_from_epochs`).
        t0: ``time.perf_counter()`` when the run started; ``wall_s`` is
            measured up to now, robustness evaluation included.
        started_at: ``time.time()`` when the run started.
        trained: ``callable()`` returning the trained model, called (once) only
            when the run did not diverge and has a ``[robustness]`` table, a
            validation split or an arm ``predict`` table.
        diverged: ``(epoch, reason)`` when the executor already knows the run
            diverged (``fit`` raised on a model computing NaN); its history
            then stands as given.
    """
    if diverged is not None:
        (diverged_epoch, error), status = diverged, "diverged"
    else:
        status, diverged_epoch, error = classify(history)
        if status == "diverged":
            history = until(history, diverged_epoch)
    final = summarize_history(history, plan.train["metrics"])
    validated_apart = getattr(plan.data, "x_val", None) is not None
    evaluation = calibration = None
    predicts = getattr(plan.arm, "predict", None) is not None
    if status == "done" and trained is not None and (plan.robustness or validated_apart
                                                     or predicts):
        model = trained()
        final.update(evaluate_test_split(plan, model))
        uncertainty = uncertainty_evaluation(plan, model) if predicts else None
        if uncertainty is not None:
            final.update(uncertainty.metrics)
            calibration = uncertainty.terms
        evaluation = robustness_evaluation(plan, model)
        final.update({} if evaluation is None else evaluation.metrics)
    return RunResult(
        arm=plan.arm, replica=plan.replica, seed=plan.seed, status=status, history=dict(history),
        final=final, wall_s=time.perf_counter() - t0, backend=keras.backend.backend(),
        versions=versions(), error=error, started_at=started_at, diverged_epoch=diverged_epoch,
        robustness=robustness_terms(evaluation), calibration=calibration,
    )


def failed_result(plan: RunPlan, error: BaseException, *, t0: float,
                  started_at: float) -> RunResult:
    """The :class:`RunResult` of a run whose build or training raised ``error``
    (call it in the ``except`` block: the traceback's last frames are kept)."""
    text = f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=-3)}"
    return RunResult(
        arm=plan.arm, replica=plan.replica, seed=plan.seed, status="failed", history={},
        final={}, wall_s=time.perf_counter() - t0, backend=keras.backend.backend(),
        versions=versions(), error=text, started_at=started_at, diverged_epoch=None,
    )
