"""The audit of a study's data (:func:`audit`), or of arrays given directly (:func:`audit_arrays`).

A study's audit reads the data as the study loads it (its splits: train, the
validation split of ``[train] validation_split`` when there is one, test),
so every index refers to the rows a run trains and is tested on. Loading
refuses non-finite features (naming where they are) unless ``[data]
nonfinite = "drop"`` drops their rows, which the ``nonfinite`` row then
reports; :func:`audit_arrays` checks arrays as given, NaN rows included.

Settings come from the arguments, else the spec's ``[audit]`` table, else the
defaults (5 folds, ``train.epochs``, every check, the study seed, no thresholds).
"""

import time

import numpy as np

from noisewise.study.audit import checks as exact
from noisewise.study.audit import learned
from noisewise.study.audit.result import CHECKS, AuditResult, check_thresholds

DEFAULT_FOLDS = 5


def _study(spec_or_study):
    from noisewise.study.runner import Study  # the runner imports this module lazily too

    return spec_or_study if isinstance(spec_or_study, Study) else Study(spec_or_study)


def _settings(spec, folds, epochs, checks, seed, fail_on):
    table = getattr(spec, "audit", None) or {}
    folds = table.get("folds", DEFAULT_FOLDS) if folds is None else folds
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"`folds` must be an integer >= 2. Received: folds={folds!r}")
    epochs = table.get("epochs") if epochs is None else epochs
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                               or epochs < 1):
        raise ValueError(f"`epochs` must be an integer >= 1 or None. Received: epochs={epochs!r}")
    checks = table.get("checks") if checks is None else list(checks)
    if checks is not None:
        bad = [c for c in checks if c not in CHECKS]
        if bad:
            raise ValueError(f"`checks` must name checks among {', '.join(CHECKS)}. "
                             f"Received: checks={checks!r}")
    seed = (spec.seed if spec is not None else 0) if seed is None else seed
    thresholds = check_thresholds(table.get("fail_on") if fail_on is None else fail_on,
                                  "fail_on")
    return folds, epochs, checks, int(seed), thresholds


def _run(splits, task, num_classes, spec, data, folds, epochs, checks, seed, thresholds,
         notes=()):
    t0 = time.perf_counter()
    results = exact.exact_checks(splits, task, num_classes, checks)
    dropped = [n for n in notes if "non-finite" in n]
    if dropped and results["nonfinite"].status == "ok":
        results["nonfinite"].detail = "dropped at load: " + "; ".join(dropped)
    x, y = splits["train"]
    results.update(learned.learned_checks(spec, data, x, y, folds=folds, epochs=epochs,
                                          seed=seed, checks=checks))
    model = None if spec is None else spec.model.get("name") or spec.model.get(
        "builder") or spec.model.get("path")
    settings = {"folds": folds, "epochs": epochs if epochs is not None or spec is None
                else spec.train["epochs"], "seed": seed, "model": str(model) if model else None,
                "arm": spec.arms[0].name if spec is not None else None,
                "checks": list(checks) if checks is not None else list(CHECKS)}
    return AuditResult({n: results[n] for n in CHECKS}, thresholds,
                       {s: len(v[0]) for s, v in splits.items()}, settings,
                       time.perf_counter() - t0)


def audit(spec_or_study, *, folds=None, epochs=None, checks=None, seed=None, fail_on=None):
    """Audit a study's data before training.

    Args:
        spec_or_study: A :class:`~noisewise.study.Study`, a spec, a TOML path or a dict.
        folds: K of the K-fold training of the learned checks (default the
            spec's ``[audit] folds``, else 5).
        epochs: Epochs per fold (default ``[audit] epochs``, else ``train.epochs``).
        checks: Names of the checks to run (default all of
            :data:`~noisewise.study.audit.CHECKS`); the others are skipped.
        seed: Seed of the folds, data order and models (default the study seed).
        fail_on: ``{check: count or fraction}`` thresholds (default ``[audit] fail_on``).

    Returns:
        An :class:`~noisewise.study.audit.AuditResult`; ``passed`` is False when
        a threshold is exceeded (this function does not raise for that).

    Example:
        >>> r = audit({"study": {"name": "d"}, "data": {"name": "circles"},
        ...            "model": {"name": "mlp"}, "arms": [{"name": "a"}]},
        ...           checks=["imbalance"], fail_on={"imbalance": 0})
        >>> r["imbalance"].status, r.passed, r["label"].shown_status
        ('ok', True, 'skipped: not in checks')
    """
    study = _study(spec_or_study)
    spec = study.spec
    folds, epochs, checks, seed, thresholds = _settings(spec, folds, epochs, checks, seed,
                                                        fail_on)
    data = study.data
    if data.streaming:
        raise ValueError("the audit reads the data as arrays; a streaming source is not "
                         "loaded whole. Received: [data] with `train`/`test` sources")
    x, y, notes = data.x_train, np.asarray(data.y_train), data.notes
    if data.task == "classification" and y.ndim == 1 and (y < 0).any():
        # [data] labeled: the unlabeled rows (-1) have no label to check or learn.
        keep = y >= 0
        notes = (*notes, f"audit: the {int((~keep).sum())} unlabeled training rows "
                         "([data] labeled) are left out; the labeled ones are audited")
        x, y = x[keep], y[keep]
    splits = {"train": (x, y)}
    if data.x_val is not None:
        splits["validation"] = (data.x_val, data.y_val)
    splits["test"] = (data.x_test, data.y_test)
    return _run(splits, data.task, data.num_classes if data.task == "classification" else None,
                spec, data, folds, epochs, checks, seed, thresholds, notes)


def audit_arrays(x_train, y_train, x_test, y_test, *, x_val=None, y_val=None,
                 task="classification", num_classes=None, model=None, folds=None, epochs=None,
                 checks=None, seed=None, fail_on=None):
    """Audit arrays as given (non-finite rows included).

    Args:
        x_train, y_train, x_test, y_test, x_val, y_val: The splits (validation optional).
        task: ``"classification"`` or ``"regression"``.
        num_classes: k (default: the largest integer label + 1).
        model: A spec, TOML path, dict or Study whose ``[model]``, ``[train]``
            and first arm the learned checks train (None: they are skipped).
        folds, epochs, checks, seed, fail_on: As :func:`audit`.

    Example:
        >>> import numpy as np
        >>> x = np.array([[0., 1.], [np.nan, 1.], [0., 1.]], "float32")
        >>> r = audit_arrays(x, np.array([0, 1, 0]), x[:1], np.array([0]))
        >>> r["nonfinite"].indices, r["duplicate"].groups, r["leakage"].count
        ({'train': [1]}, {'train': [[0, 2]]}, 1)
    """
    study = None if model is None else _study(model)
    spec = None if study is None else study.spec
    folds, epochs, checks, seed, thresholds = _settings(spec, folds, epochs, checks, seed,
                                                        fail_on)
    splits = {"train": (np.asarray(x_train), np.asarray(y_train))}
    if x_val is not None:
        splits["validation"] = (np.asarray(x_val), np.asarray(y_val))
    splits["test"] = (np.asarray(x_test), np.asarray(y_test))
    data = None
    if task == "classification":
        labels = np.concatenate([np.asarray(v[1]).ravel() for v in splits.values()])
        if num_classes is None and labels.dtype.kind in "iu" and len(labels):
            num_classes = int(labels.max()) + 1
    if spec is not None or task != "classification":
        from noisewise.study.datasets import Dataset  # Keras-free, but only when needed

        x = np.asarray(x_train, dtype="float32")
        data = Dataset("arrays", x, np.asarray(y_train), np.asarray(x_test, dtype="float32"),
                       np.asarray(y_test), num_classes or 1, task=task)
    return _run(splits, task, num_classes, spec, data, folds, epochs, checks, seed, thresholds)
