"""Checks of loaded arrays, before any training: labels (none missing, none
continuous, one kind), regression targets, finite float32 features; and
:func:`_finish`, which makes the checked :class:`~noisewise.study.data.dataset.Dataset`.
"""

import numpy as np

from noisewise.study.data.dataset import Dataset


_SHOWN = 3  # positions quoted in a message
_DROP_HELP = 'fix the data or set [data] nonfinite = "drop" to drop those rows'


def _listed(items, limit=5):
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _rows(items):
    return f"row {items[0]}" if len(items) == 1 else f"rows {_listed(items)}"


def _plural(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


_CONTINUOUS_HELP = 'set the task to regression ([data] task = "regression")'
# Numeric labels with more distinct values than this, most of them seen once,
# are a measured quantity, not classes: a class seen once cannot be both
# trained and tested (a stratified split fails on it deep inside scikit-learn).
_MANY_CLASSES = 20


def _check_discrete(where, values):
    """Refuse numeric labels that look like a regression target: float labels
    with non-integer values, or integer values that are mostly unique."""
    fractional = np.unique(values[values != np.round(values)])
    if len(fractional):
        examples = ", ".join(f"{v:g}" for v in fractional[:2])
        raise ValueError(
            f"{where}: labels look continuous ({len(fractional)} distinct non-integer values, "
            f"e.g. {examples}): {_CONTINUOUS_HELP}"
        )
    distinct, counts = np.unique(values, return_counts=True)
    once = int((counts == 1).sum())
    if len(distinct) > _MANY_CLASSES and once > len(distinct) / 2:
        raise ValueError(
            f"{where}: labels look continuous ({len(distinct)} distinct numbers in "
            f"{len(values)} rows, {once} of them seen once): {_CONTINUOUS_HELP}; "
            "if they are classes, give them as text"
        )


def _targets(name, key, y):
    """Regression targets of one split: finite numbers, float32, ``(n,)`` or ``(n, k)``."""
    try:
        y = np.asarray(y.tolist() if y.dtype.kind == "O" else y, dtype="float64")
    except (ValueError, TypeError):
        raise ValueError(f"{name}: {key}: regression targets must be numbers. "
                         f"Received dtype: {y.dtype}") from None
    bad = np.flatnonzero(~np.isfinite(y).reshape(len(y), -1).all(axis=1)).tolist()
    if bad:
        raise ValueError(f"{name}: {key}: {_plural(len(bad), 'missing or non-finite target')} "
                         f"(nan or inf) at {_rows(bad)} (counting from 0)")
    with np.errstate(over="ignore"):
        y32 = y.astype("float32")
    if not np.isfinite(y32).all():
        raise ValueError(f"{name}: {key}: targets beyond float32's range")
    return y32


def _is_missing(v):
    if isinstance(v, (str, bytes)):
        return not v.strip()
    return v is None or (isinstance(v, float) and v != v)


def _kind(v):
    if isinstance(v, (str, bytes)):
        return "text"
    return "number" if isinstance(v, (int, float, np.number)) else type(v).__name__


def _labels(name, key, y, task="classification"):
    """Class labels of one split, checked: none missing, none continuous, one kind
    (regression: finite float32 targets)."""
    if task == "regression":
        return _targets(name, key, y)
    if y.dtype.kind == "O":  # a loader's lists: None, NaN and "" are missing labels
        missing = [i for i, v in enumerate(y.tolist()) if _is_missing(v)]
        if missing:
            raise ValueError(f"{name}: {key}: {_plural(len(missing), 'empty label')} at "
                             f"{_rows(missing)} (counting from 0)")
        kinds = {_kind(v) for v in y.tolist()}
        if kinds not in ({"text"}, {"number"}):
            raise ValueError(f"{name}: {key}: labels must all be numbers or all be text. "
                             f"Received kinds: {sorted(kinds)}")
        y = np.array(y.tolist())
    if y.dtype.kind in "US":
        empty = np.flatnonzero(np.char.strip(y) == y.dtype.type()).tolist()
        if empty:
            raise ValueError(f"{name}: {key}: {_plural(len(empty), 'empty label')} at "
                             f"{_rows(empty)} (counting from 0)")
    elif y.dtype.kind == "f":
        missing = np.flatnonzero(~np.isfinite(y)).tolist()
        if missing:
            count = _plural(len(missing), "missing or non-finite label")
            raise ValueError(f"{name}: {key}: {count} (nan or inf) at {_rows(missing)} "
                             "(counting from 0)")
        _check_discrete(f"{name}: {key}", y)
    elif y.dtype.kind not in "biu":
        raise ValueError(f"{name}: {key}: labels must be class ids or names (integers or "
                         f"text). Received dtype: {y.dtype}")
    return y


def _position(index):
    row, rest = index[0], tuple(int(i) for i in index[1:])
    if not rest:
        return f"row {row}"
    return f"row {row} col {rest[0]}" if len(rest) == 1 else f"row {row}, position {rest}"


def _features(name, key, x, nonfinite, notes):
    """float32 features; NaN, +-inf and values beyond float32 refused (or their rows dropped).

    Returns the features and the mask of the rows kept (None when all are).
    """
    if x.dtype.kind == "c":
        raise ValueError(f"{name}: {key} holds complex numbers; features must be real")
    if x.dtype.kind not in "biuf":  # a loader's lists or text
        try:
            x = np.asarray(x, dtype="float64")
        except (ValueError, TypeError) as e:
            raise ValueError(f"{name}: {key}: features must be numbers ({e})") from None
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 becomes inf: refused
        x32 = np.ascontiguousarray(x, dtype="float32")
    bad = ~np.isfinite(x32)
    if not bad.any():
        return x32, None
    rows = bad.reshape(len(x32), -1).any(axis=1)
    if nonfinite == "drop":
        notes.append(f"{name}: dropped {int(rows.sum())} of {_plural(len(x32), 'row')} of "
                     f"{key} with non-finite values")
        return x32[~rows], ~rows
    where = []
    for flat in np.flatnonzero(bad.ravel())[:_SHOWN]:
        index = np.unravel_index(flat, x32.shape)
        original = x[index]
        shown = f"{original}" if not np.isfinite(original) else f"{original:g} (beyond float32)"
        where.append(f"{shown} at {_position(index)}")
    more = ", ..." if bad.sum() > _SHOWN else ""
    raise ValueError(f"{name}: {key} has {_plural(int(bad.sum()), 'non-finite value')} "
                     f"({', '.join(where)}{more}); {_DROP_HELP}")


def _finish(name, arrays, nonfinite="refuse", notes=(), task="classification"):
    """The checked :class:`Dataset` of four arrays: labels mapped to class codes
    (classification) or float32 targets (regression), features float32."""
    notes = list(notes)
    regression = task == "regression"
    # Lists as objects: np.asarray would turn [0, "a"] into the strings "0" and "a".
    x_train, y_train, x_test, y_test = (
        np.asarray(a, dtype=object) if isinstance(a, (list, tuple)) else np.asarray(a)
        for a in arrays)
    checked = {}
    for label, y, x in (("train", y_train, x_train), ("test", y_test, x_test)):
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if (y.ndim not in ((1, 2) if regression else (1,)) or x.ndim == 0 or len(y) != len(x)
                or len(x) == 0):
            what = "targets (shape (n,) or (n, k))" if regression else "label (class ids)"
            raise ValueError(
                f"{name}: y_{label} must be one {what} per row of x_{label}. "
                f"Received: x_{label}.shape={x.shape}, y_{label}.shape={y.shape}"
            )
        y = _labels(name, f"y_{label}", y, task)
        x, kept = _features(name, f"x_{label}", x, nonfinite, notes)
        y = y if kept is None else y[kept]
        if len(x) == 0:
            raise ValueError(f"{name}: every row of x_{label} has a non-finite value")
        checked[label] = x, y
    (x_train, y_train), (x_test, y_test) = checked["train"], checked["test"]
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{name}: x_train and x_test must have the same feature shape. "
            f"Received: {x_train.shape[1:]} and {x_test.shape[1:]}"
        )
    if regression:
        if y_train.shape[1:] != y_test.shape[1:]:
            raise ValueError(f"{name}: y_train and y_test must have the same number of targets. "
                             f"Received shapes: {y_train.shape} and {y_test.shape}")
        return Dataset(name, x_train, y_train, x_test, y_test,
                       1 if y_train.ndim == 1 else y_train.shape[1], tuple(notes), task=task)
    if (y_train.dtype.kind in "US") != (y_test.dtype.kind in "US"):
        raise ValueError(f"{name}: y_train and y_test must both hold numbers or both text. "
                         f"Received dtypes: {y_train.dtype} and {y_test.dtype}")
    classes, codes = np.unique(np.concatenate([y_train, y_test]), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"{name}: labels need at least 2 classes. Received: {classes.tolist()}")
    codes = codes.astype("int32").reshape(-1)
    return Dataset(name, x_train, codes[: len(y_train)], x_test, codes[len(y_train):],
                   len(classes), tuple(notes), classes=tuple(classes.tolist()))
