"""Executors: what trains a study's runs.

One contract (:class:`Executor`: ``run(plans, hooks) -> iterator of
RunResult``) and three implementations: :class:`FitExecutor` (one Keras
``fit`` per run, any backend), :class:`VmapExecutor` (replicas of a
structure under ``jax.vmap``, JAX only) and :class:`DaskExecutor` (either
of them, unit by unit, as tasks on a Dask cluster). All turn a run's epoch
logs into a :class:`RunResult` with :func:`result_from_history`, so the
store and the report read one layout whatever trained the run.

Example:
    >>> from noisewise.study import Study
    >>> from noisewise.study.execute import FitExecutor
    >>> study = Study({"study": {"name": "demo", "seeds": 2},
    ...                "data": {"name": "circles"},
    ...                "model": {"name": "mlp", "hidden": [8]},
    ...                "train": {"epochs": 2},
    ...                "arms": [{"name": "baseline"}]})
    >>> [r.status for r in FitExecutor().run(study.plans())]
    ['done', 'done']
"""

from noisewise.study.execute.base import (
    Executor,
    RunHooks,
    classify,
    failed_result,
    history_from_epochs,
    result_from_history,
    summarize_history,
    validated_epochs,
)
from noisewise.study.execute.dask import DaskExecutor  # imports distributed only when made
from noisewise.study.execute.fit import FitExecutor
from noisewise.study.execute.prepare import make_optimizer, prepare_model
from noisewise.study.execute.types import RunPlan, RunResult, versions
from noisewise.study.execute.vmap import DEFAULT_CHUNK, VmapExecutor, unsupported_reason

__all__ = [
    "DEFAULT_CHUNK",
    "DaskExecutor",
    "Executor",
    "FitExecutor",
    "RunHooks",
    "RunPlan",
    "RunResult",
    "VmapExecutor",
    "classify",
    "failed_result",
    "history_from_epochs",
    "make_optimizer",
    "prepare_model",
    "result_from_history",
    "summarize_history",
    "unsupported_reason",
    "validated_epochs",
    "versions",
]
