"""Noise studies: many seeds per arm, paired comparisons, results in a store.

A study spec (TOML or dict) names a dataset, a model, training settings and
arms (noise configurations, grids expanded). :class:`Study` trains every
(arm, replica) run with Keras ``fit``, writes each to the SQLite
:class:`Store` as it finishes (a rerun resumes), and :func:`summarize` /
:func:`compare` compute per-arm estimates and paired comparisons from the store.

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

from noisewise.study.runner import Study, StudyRun, run_study
from noisewise.study.spec import Arm, SpecError, StudySpec, load_spec
from noisewise.study.stats import compare, grid_best, summarize
from noisewise.study.store import FingerprintError, Store, StoreError

__all__ = [
    "Arm",
    "FingerprintError",
    "SpecError",
    "Store",
    "StoreError",
    "Study",
    "StudyRun",
    "StudySpec",
    "compare",
    "grid_best",
    "load_spec",
    "run_study",
    "summarize",
]
