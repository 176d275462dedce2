"""The exact checks of an audit, in NumPy: non-finite values, constant features,
duplicates within a split, duplicates across splits (leakage), class balance and
label type against the task.

Rows are compared byte for byte after conversion to the array's dtype (float32
for a study's data), through their hashes: each row's bytes are viewed as one
``np.void`` scalar and ``np.unique`` groups equal ones, so duplicates and
leakage cost one sort of n hashes, not n^2 row comparisons. ``-0.0`` and
``0.0`` differ in bytes and count as different; NaN rows are left to
``nonfinite`` and out of the duplicate checks.

Example:
    >>> import numpy as np
    >>> x = np.array([[0., 1.], [0., 1.], [2., 3.]], "float32")
    >>> splits = {"train": (x, np.array([0, 0, 1])), "test": (x[:1], np.array([0]))}
    >>> r = exact_checks(splits, "classification", 2)
    >>> r["duplicate"].groups, r["leakage"].indices
    ({'train': [[0, 1]]}, {'test': [0]})
"""

import warnings

import numpy as np

from noisewise.study.audit.result import CheckResult

# A regression target with this few distinct values looks like class labels.
FEW_TARGET_VALUES = 10
# A class whose share of the training rows is under this fraction of the uniform
# share 1/k counts as a minority class of the imbalance check.
MINORITY_SHARE = 0.5


def _rows(x):
    """A C-contiguous 2-D view of ``x`` (one row per example)."""
    x = np.ascontiguousarray(x)
    return x.reshape(len(x), -1)


def row_keys(x):
    """One ``np.void`` per row holding the row's bytes: equal keys are equal rows."""
    flat = _rows(x)
    return flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()


def _finite_rows(x):
    flat = _rows(x)
    if flat.dtype.kind not in "fc":
        return np.ones(len(flat), bool)
    return np.isfinite(flat).all(axis=1)


def nonfinite(splits):
    """Rows holding NaN or +-inf, per split, and how many per feature."""
    indices, per_feature, total = {}, {}, 0
    for split, (x, _) in splits.items():
        total += len(x)
        flat = _rows(x)
        if flat.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(flat)
        rows = np.flatnonzero(bad.any(axis=1))
        if len(rows):
            indices[split] = rows.tolist()
            columns = np.flatnonzero(bad.any(axis=0))
            per_feature[split] = {int(c): int(bad[:, c].sum()) for c in columns}
    count = sum(len(v) for v in indices.values())
    detail = "; ".join(f"{s}: {len(v)} row(s), feature(s) {_listed(list(per_feature[s]))}"
                       for s, v in indices.items()) or "every value is finite"
    return CheckResult("nonfinite", "found" if count else "ok", count, total, detail, indices,
                       extra={"per_feature": per_feature})


def constant(splits):
    """Features with one value over the training split (NaN ignored)."""
    x = _rows(splits["train"][0]).astype("float64", copy=False)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        low, high = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
    same = np.flatnonzero(~(high > low))  # NaN-only columns too
    detail = (f"{len(same)} of {x.shape[1]} feature(s) constant in train: {_listed(same.tolist())}"
              if len(same) else f"none of {x.shape[1]} features is constant in train")
    return CheckResult("constant", "found" if len(same) else "ok", len(same), x.shape[1], detail,
                       {"train": same.tolist()} if len(same) else {})


def _groups(keys, positions):
    """Groups (lists of ``positions``) of equal keys, each of two or more rows."""
    if len(keys) == 0:
        return []
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    repeated = np.flatnonzero(counts > 1)
    if not len(repeated):
        return []
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    return sorted(positions[order[starts[g]:starts[g + 1]]].tolist() for g in repeated)


def duplicates(splits):
    """Rows equal byte for byte to another row of the same split (finite rows only).

    ``count`` is the rows beyond the first of each group (what removing the
    duplicates would drop)."""
    groups, indices, total = {}, {}, 0
    for split, (x, _) in splits.items():
        total += len(x)
        keep = np.flatnonzero(_finite_rows(x))
        found = _groups(row_keys(x)[keep], keep)
        if found:
            groups[split] = found
            indices[split] = sorted(i for g in found for i in g[1:])
    count = sum(len(v) for v in indices.values())
    detail = "; ".join(f"{s}: {len(indices[s])} extra row(s) in {len(g)} group(s)"
                       for s, g in groups.items()) or "no split holds a row twice"
    return CheckResult("duplicate", "found" if count else "ok", count, total, detail, indices,
                       groups)


def leakage(splits):
    """Rows of the test (and validation) split equal to a training row."""
    train_x = splits["train"][0]
    keep = _finite_rows(train_x)
    indices, total = {}, 0
    for split in ("validation", "test"):
        if split not in splits:
            continue
        x = splits[split][0]
        total += len(x)
        if _rows(x).shape[1] != _rows(train_x).shape[1]:
            continue
        dtype = np.result_type(x.dtype, train_x.dtype)  # bytes compared in one dtype
        train_keys = row_keys(train_x.astype(dtype, copy=False))[keep]
        hit = np.flatnonzero(np.isin(row_keys(x.astype(dtype, copy=False)), train_keys)
                             & _finite_rows(x))
        if len(hit):
            indices[split] = hit.tolist()
    count = sum(len(v) for v in indices.values())
    detail = "; ".join(f"{len(v)} {s} row(s) also in train" for s, v in indices.items()) \
        or "no test or validation row is a training row"
    return CheckResult("leakage", "found" if count else "ok", count, total, detail, indices)


def balance(splits, task, num_classes):
    """Counts per class, the smallest/largest ratio in train, classes missing from a split."""
    if task != "classification":
        return CheckResult("imbalance", "skipped", detail="classification only")
    counts, missing = {}, {}
    k = num_classes
    for split, (_, y) in splits.items():
        y = np.asarray(y).ravel()
        classes, n = np.unique(y, return_counts=True)
        counts[split] = {_label(c): int(m) for c, m in zip(classes, n)}
        if k is not None:
            absent = sorted(set(range(k)) - {int(c) for c in classes if _is_int(c)})
            if absent:
                missing[split] = absent
    train = counts["train"]
    k = k or len(train)
    smallest, largest = min(train.values()), max(train.values())
    n_train = sum(train.values())
    minority = sorted(c for c, m in train.items() if m < MINORITY_SHARE * n_train / k)
    flagged = sorted(set(minority) | {c for v in missing.values() for c in v}, key=str)
    ratio = smallest / largest if largest else 0.0
    detail = (f"train: smallest/largest class {smallest}/{largest} = {ratio:.2f}"
              + (f"; under {MINORITY_SHARE:g}/k of train: {_listed(minority)}" if minority else "")
              + "".join(f"; missing from {s}: {_listed(v)}" for s, v in missing.items()))
    return CheckResult("imbalance", "found" if flagged else "ok", len(flagged), k, detail,
                       {"train": minority, **missing} if flagged else {},
                       extra={"counts": counts, "ratio": ratio, "missing": missing})


def label_type(splits, task, num_classes):
    """Labels against the task: non-integer or out-of-range class labels; a regression
    target with very few distinct values."""
    problems, indices, total = [], {}, 0
    for split, (_, y) in splits.items():
        y = np.asarray(y)
        total += len(y)
        if task == "regression":
            continue
        if y.dtype.kind not in "biuf":
            problems.append(f"{split}: labels of dtype {y.dtype}, not class ids")
            indices[split] = list(range(len(y)))
            continue
        y = y.ravel()
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(y.astype("float64")) | (y != np.round(y))
        k = num_classes if num_classes is not None else int(np.nanmax(y)) + 1
        bad |= ~bad & ((y < 0) | (y > k - 1))
        if bad.any():
            rows = np.flatnonzero(bad)
            indices[split] = rows.tolist()
            problems.append(f"{split}: {len(rows)} label(s) not a class id 0..{k - 1}, e.g. "
                            f"{y[rows[0]]:g}")
    if task == "regression":
        y = np.asarray(splits["train"][1], dtype="float64")
        distinct = len(np.unique(y))
        if distinct <= FEW_TARGET_VALUES:
            problems.append(f"train: the regression target takes {distinct} distinct value(s): "
                            "classes?")
            indices["train"] = list(range(len(y)))
    count = sum(len(v) for v in indices.values())
    detail = "; ".join(problems) or f"labels fit the {task} task"
    return CheckResult("label_type", "found" if problems else "ok", count, total, detail, indices)


def exact_checks(splits, task, num_classes, checks=None):
    """Every exact check (or those named in ``checks``), as ``{name: CheckResult}``.

    Args:
        splits: ``{"train": (x, y), "validation": (x, y), "test": (x, y)}``
            (validation optional).
        task: ``"classification"`` or ``"regression"``.
        num_classes: k for classification (None: from the labels).
        checks: Names to run (default all); the others are skipped.
    """
    funcs = {"nonfinite": lambda: nonfinite(splits), "constant": lambda: constant(splits),
             "duplicate": lambda: duplicates(splits), "leakage": lambda: leakage(splits),
             "imbalance": lambda: balance(splits, task, num_classes),
             "label_type": lambda: label_type(splits, task, num_classes)}
    return {name: (f() if checks is None or name in checks else
                   CheckResult(name, "skipped", detail="not in checks"))
            for name, f in funcs.items()}


def _is_int(v):
    return isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating))
                                                 and float(v).is_integer())


def _label(v):
    return int(v) if _is_int(v) else (v.item() if hasattr(v, "item") else v)


def _listed(items, limit=8):
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
