"""Noise studies: many seeds per arm, paired comparisons, results in a store.

A study spec (TOML or dict) names a dataset, a model, training settings and
arms (noise configurations, grids expanded). :class:`Study` trains every
(arm, replica) run with Keras ``fit``, writes each to the SQLite
:class:`Store` as it finishes (a rerun resumes), and :func:`summarize` /
:func:`compare` compute per-arm estimates and paired comparisons from the store;
:func:`load` reads a stored study as tables (records, pandas, Jupyter HTML).

The names load on first use, so a light module of this package (the
defaults the command line reads while it starts) imports no Keras.

Example:
    >>> import os, tempfile
    >>> from noisewise.study import Study, Store, load_spec, compare
    >>> spec = load_spec({"study": {"name": "demo", "seeds": 2},
    ...                   "data": {"name": "circles"},
    ...                   "model": {"name": "mlp", "hidden": [8]},
    ...                   "train": {"epochs": 2},
    ...                   "arms": [{"name": "baseline"},
    ...                            {"name": "input", "noise": [
    ...                                {"type": "gaussian", "where": "input", "stddev": 0.1}]}]})
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> outcome = Study(spec).run(store=path, quiet=True)
    >>> with Store(path) as store:
    ...     runs = store.runs(outcome.study_id)
    >>> sorted(compare(runs, "baseline"))
    ['input']
"""

import importlib

# name -> module that defines it; imported on first access.
_LAZY = {
    "Study": "noisewise.study.runner",
    "StudyRun": "noisewise.study.runner",
    "run_study": "noisewise.study.runner",
    "Arm": "noisewise.study.config",
    "SpecError": "noisewise.study.config",
    "StudySpec": "noisewise.study.config",
    "load_spec": "noisewise.study.config",
    "compare": "noisewise.study.stats",
    "grid_best": "noisewise.study.stats",
    "summarize": "noisewise.study.stats",
    "Executor": "noisewise.study.execute",
    "FitExecutor": "noisewise.study.execute",
    "RunHooks": "noisewise.study.execute",
    "RunPlan": "noisewise.study.execute",
    "RunResult": "noisewise.study.execute",
    "VmapExecutor": "noisewise.study.execute",
    "FingerprintError": "noisewise.study.store",
    "Store": "noisewise.study.store",
    "StoreError": "noisewise.study.store",
    "StudyResults": "noisewise.study.results",
    "load": "noisewise.study.results",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'noisewise.study' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Arm",
    "Executor",
    "FitExecutor",
    "RunHooks",
    "RunPlan",
    "RunResult",
    "VmapExecutor",
    "FingerprintError",
    "SpecError",
    "Store",
    "StoreError",
    "Study",
    "StudyResults",
    "StudyRun",
    "StudySpec",
    "compare",
    "grid_best",
    "load",
    "load_spec",
    "run_study",
    "summarize",
]
