"""The data audit: what a careful practitioner checks before training.

Exact checks, in NumPy (:mod:`~noisewise.study.audit.checks`): non-finite
values, constant features, exact duplicates within a split, exact duplicates
across splits (leakage), class balance and label type against the task.
Learned checks, with the optional extra ``noisewise[audit]`` (cleanlab's
Datalab on out-of-fold predictions of the study's own Keras model, any
backend; :mod:`~noisewise.study.audit.learned`): wrong labels, outliers and
near duplicates. Thresholds (``fail_on``) turn findings into a failure:
:class:`AuditFailed`, which stops ``noisewise run`` before anything trains.

Example:
    >>> from noisewise.study.audit import audit
    >>> result = audit({"study": {"name": "demo", "seeds": 1}, "data": {"name": "circles"},
    ...                 "model": {"name": "mlp", "hidden": [8]}, "arms": [{"name": "base"}]},
    ...                checks=["duplicate", "leakage"])
    >>> result["leakage"].status
    'ok'
"""

import importlib

from noisewise.study.audit.result import (CHECKS, EXACT_CHECKS, LEARNED_CHECKS, AuditFailed,
                                          AuditResult, CheckResult, check_thresholds,
                                          parse_thresholds)

_LAZY = {"audit": "noisewise.study.audit.core", "audit_arrays": "noisewise.study.audit.core",
         "DEFAULT_FOLDS": "noisewise.study.audit.core"}


def __getattr__(name):  # the core loads Keras and the study runner: only when asked
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'noisewise.study.audit' has no attribute {name!r}")


__all__ = ["CHECKS", "DEFAULT_FOLDS", "EXACT_CHECKS", "LEARNED_CHECKS", "AuditFailed",
           "AuditResult", "CheckResult", "audit", "audit_arrays", "check_thresholds",
           "parse_thresholds"]
