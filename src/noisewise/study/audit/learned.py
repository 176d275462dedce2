"""The learned checks of an audit: wrong labels, outliers and near duplicates, found
by cleanlab's Datalab from out-of-fold predictions of the study's own model.

The training rows are cut into K stratified folds (seeded); for each fold the
study's model, as the spec builds it for its first arm with that arm's noise
and augmentation removed (the plain model: the audit asks what the data says,
not what noise does to it), is trained through Keras ``fit`` with the spec's
``[train]`` settings (optimizer, learning rate, schedule, batch size, loss; no
early stopping or class weights; ``epochs`` if given) on the other folds, in
the data order of :mod:`noisewise.study.data_order`, and predicts the held-out
fold: predicted probabilities, and the input of the model's last layer as the
features. So every row's prediction comes from a model that never saw it, on
any Keras backend. Datalab then runs its ``label``, ``outlier`` and
``near_duplicate`` issue types on them (cleanlab's Keras wrapper supports
TensorFlow <= 2.15 only; this needs none).

Rows with non-finite features are left out of the folds (the ``nonfinite``
check reports them); indices refer to the training split as given.

Cost: K fits of ``epochs`` epochs on (K-1)/K of the training rows, plus
Datalab's k-nearest-neighbour graph (O(n log n) with its default search).
"""

import dataclasses
import importlib.util

import numpy as np

from noisewise.random import derive_seed
from noisewise.study.audit.result import LEARNED_CHECKS, CheckResult

INSTALL = "pip install 'noisewise[audit]'"


def unavailable():
    """Why the learned checks cannot run here, or None."""
    try:
        import cleanlab  # noqa: F401  -- the optional extra
        from cleanlab import Datalab  # noqa: F401
    except ImportError:
        return f"cleanlab is not installed ({INSTALL})"
    if importlib.util.find_spec("sklearn") is None:
        return f"scikit-learn is not installed ({INSTALL})"
    return None


def skipped(reason, checks=None):
    """Every learned check skipped with ``reason`` (or "not in checks")."""
    return {n: CheckResult(n, "skipped", detail=reason if checks is None or n in checks
                           else "not in checks") for n in LEARNED_CHECKS}


def _plain_arm(spec):
    arm = spec.arms[0]
    return dataclasses.replace(arm, noise=(), augment=(), params={})


def _probabilities(outputs, train):
    import keras

    p = np.asarray(outputs, dtype="float64").reshape(len(outputs), -1)
    if train.get("from_logits"):
        p = np.asarray(keras.ops.convert_to_numpy(
            keras.ops.sigmoid(p) if p.shape[1] == 1 else keras.ops.softmax(p, axis=-1)),
            dtype="float64")
    if p.shape[1] == 1:  # one sigmoid unit: P(class 1)
        p = np.concatenate([1 - p, p], axis=1)
    p = np.clip(p, 0.0, 1.0)
    return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)


def _feature_model(model):
    """A model from the same inputs to the input of the last layer (None if it has none)."""
    import keras

    try:
        return keras.Model(model.inputs, model.layers[-1].input)
    except (AttributeError, ValueError, TypeError, IndexError):
        return None


def out_of_fold(spec, data, x, y, folds, epochs, seed):
    """``(pred_probs, features or None)`` of every row of ``(x, y)``, out of fold.

    Args:
        spec: The :class:`~noisewise.study.config.StudySpec` (model, train, first arm).
        data: The study's :class:`~noisewise.study.datasets.Dataset` (task, classes).
        x, y: The training rows audited (finite features, class codes).
        folds, epochs, seed: K, epochs per fold (None: ``train.epochs``), the seed
            of the folds, the data order and the models.
    """
    from sklearn.model_selection import StratifiedKFold

    from noisewise.study.data_order import batches, steps_per_epoch
    from noisewise.study.execute import RunPlan
    from noisewise.study.execute.prepare import prepare_model

    train = {**spec.train, **_plain_arm(spec).train, "epochs": int(epochs or spec.train["epochs"])}
    arm = _plain_arm(spec)
    k = data.num_classes
    probs = np.zeros((len(x), max(k, 2)))
    features = None
    splitter = StratifiedKFold(n_splits=folds, shuffle=True,
                               random_state=derive_seed(seed, "audit", "folds") % 2**32)
    for fold, (fit_rows, held) in enumerate(splitter.split(np.zeros(len(y)), y)):
        fold_seed = derive_seed(seed, "audit", fold)
        fold_data = dataclasses.replace(data, x_train=x[fit_rows], y_train=y[fit_rows],
                                        x_test=x[held], y_test=y[held], x_val=None, y_val=None)
        plan = RunPlan(spec.name, arm, 0, fold_seed, fold_data, spec.model, train, spec.base_dir)
        model = prepare_model(plan)
        batch = train["batch_size"]
        model.fit(batches(x[fit_rows], y[fit_rows], fold_seed, train["epochs"], batch),
                  steps_per_epoch=steps_per_epoch(len(fit_rows), batch), epochs=train["epochs"],
                  shuffle=False, verbose=0)  # the generator orders the batches
        probs[held] = _probabilities(model.predict(x[held], batch_size=256, verbose=0), train)
        extractor = _feature_model(model)
        if extractor is not None:
            f = np.asarray(extractor.predict(x[held], batch_size=256, verbose=0), dtype="float64")
            f = f.reshape(len(held), -1)
            if features is None:
                features = np.zeros((len(x), f.shape[1]))
            features[held] = f
    return probs, features


def datalab(y, probs, features, checks):
    """``{name: CheckResult}`` of Datalab's label, outlier and near_duplicate issues."""
    from cleanlab import Datalab

    wanted = [n for n in LEARNED_CHECKS if checks is None or n in checks]
    out = skipped("not in checks")
    if features is None and "near_duplicate" in wanted:
        wanted.remove("near_duplicate")
        out["near_duplicate"] = CheckResult("near_duplicate", "skipped",
                                            detail="the model has no last layer to read "
                                                   "features from")
    if not wanted:
        return out
    lab = Datalab(data={"label": np.asarray(y)}, label_name="label", verbosity=0)
    issue_types = {n: {} for n in wanted}
    if "label" in issue_types:  # no forked workers: JAX and torch hold threads that forks deadlock on
        issue_types["label"] = {"clean_learning_kwargs": {"find_label_issues_kwargs": {"n_jobs": 1}}}
    kwargs = {"pred_probs": probs, "issue_types": issue_types}
    if features is not None:
        kwargs["features"] = features
    lab.find_issues(**kwargs)
    summary = lab.get_issue_summary()
    scores = dict(zip(summary["issue_type"], summary["score"]))
    for name in wanted:
        issues = lab.get_issues(name)
        flag = issues[f"is_{name}_issue"].to_numpy()
        rows = np.flatnonzero(flag)
        out[name] = CheckResult(name, "found" if len(rows) else "ok", int(len(rows)),
                                len(flag), "", {"train": rows.tolist()},
                                score=float(scores[name]) if name in scores else None)
    return out


def learned_checks(spec, data, x, y, *, folds, epochs, seed, checks=None):
    """The learned checks of the training rows ``(x, y)`` (skipped with a reason
    when they cannot run), as ``{name: CheckResult}``."""
    if checks is not None and not set(checks) & set(LEARNED_CHECKS):
        return skipped("not in checks")
    reason = unavailable()
    if reason is None and getattr(data, "task", "classification") != "classification":
        reason = "classification only"
    if reason is None and spec is None:
        reason = "no model given to learn from"
    y = np.asarray(y).ravel()
    if reason is None and (y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= data.num_classes):
        reason = "labels are not class ids 0..k-1 (see label_type)"
    finite = np.isfinite(np.asarray(x, dtype="float64").reshape(len(x), -1)).all(axis=1)
    rows = np.flatnonzero(finite)
    if reason is None:
        smallest = np.bincount(y[rows], minlength=data.num_classes).min()
        if smallest < folds:
            reason = (f"a class has {smallest} finite training row(s), fewer than folds={folds} "
                      "(a stratified fold needs each class in every fold)")
    if reason is not None:
        return skipped(reason, checks)
    probs, features = out_of_fold(spec, data, np.asarray(x, dtype="float32")[rows], y[rows], folds, epochs, seed)
    out = datalab(y[rows], probs, features, checks)
    for c in out.values():  # back to the rows of the training split as given
        if c.status != "skipped":
            c.indices = {"train": rows[c.indices["train"]].tolist()} if c.count else {}
            c.detail = (f"{c.count} of {c.total} training rows" + (
                f", e.g. {_listed(c.indices['train'])}" if c.count else "")
                + (f"; Datalab score {c.score:.3f}" if c.score is not None else ""))
    return out


def _listed(items, limit=8):
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
