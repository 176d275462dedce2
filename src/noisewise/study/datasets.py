"""Datasets of a study: built-in ones that need no network, and the user's own.

Built-in (``[data] name = ...``), all from scikit-learn and fixed across
replicas (the split is part of the dataset, not a random factor of a run):

- ``"circles"``: the classic two-circles tutorial split,
  ``make_circles(n_samples=100, noise=0.1, random_state=1)``; the first 30
  points train, the other 70 test. Options: ``n_samples``, ``noise``,
  ``random_state``, ``n_train``.
- ``"moons"``: ``make_moons(n_samples=200, noise=0.2, random_state=1)``, split
  in half (stratified). Options: ``n_samples``, ``noise``, ``random_state``,
  ``test_size``, ``split_seed``.
- ``"digits"``: ``load_digits`` (1,797 8x8 images), pixels scaled to [0, 1]
  (its ``value_range``, the default clip of a ``[robustness]`` attack),
  shape ``(n, 8, 8, 1)`` for the CNN (the MLP flattens its input itself),
  25% stratified test split. Options: ``test_size``, ``split_seed``.
- ``"breast_cancer"``: ``load_breast_cancer`` (569 x 30), standardised with
  the *training* mean and std, 25% stratified test split. Options as digits.

User data:

- ``path = "data.npz"``: arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``.
- ``path = "data.csv"``: a header row; the label column (option ``target``,
  default ``"label"``), an optional ``split`` column (option ``split_column``)
  holding ``train``/``test``, every other column a numeric feature. Without a
  split column the rows are split with ``test_size`` (default 0.25, stratified,
  ``split_seed`` 0).
- ``loader = "package.module:function"``: called with the remaining keys of
  ``[data]`` as keyword arguments; returns a dict with the four arrays above or
  the tuple ``(x_train, y_train, x_test, y_test)``. The spec's folder is on
  ``sys.path`` while the module is imported.

Labels are classes unless ``[data] task = "regression"``: they are mapped to
``0..k-1`` in sorted order; two classes make a binary task (one sigmoid
output), more a multiclass task (softmax). Regression targets stay numbers
(float32, one or several per row; ``num_classes`` is then the number of
targets). Features become float32. The built-in ``"sine"`` is a regression
task: Bishop's noisy sinusoid ``y = sin(2 pi x) + noise * N(0, 1)``, ``x ~
U(0, 1)``; options ``n_train`` (30), ``n_test`` (500), ``noise`` (0.2),
``random_state`` (0). A validation split (``[train] validation_split``) and
standardisation (``[data] standardize = true``) are applied after loading,
fitted on the training rows only (:mod:`~noisewise.study.splits`).

Nothing is guessed, and every check runs when the data is loaded, before any
training: empty or missing labels (an empty CSV cell, None or NaN) are refused
with their rows, and so are labels that look continuous (floats with
non-integer values; integer-valued floats such as 1.0 and strings are
classes). Features that are NaN, infinite or beyond float32's range are refused
with their count and first positions, unless ``[data] nonfinite = "drop"``
(files and loaders) drops the rows that hold them; the dataset's ``notes``
then say how many.

:func:`fingerprint` and :func:`code_fingerprint` identify the loaded arrays
and the user's loader and builder code, so a resumed study can tell that its
data or code changed.

Example:
    >>> from noisewise.study.datasets import load_dataset
    >>> data = load_dataset({"name": "circles"})
    >>> data.x_train.shape, data.x_test.shape, data.num_classes
    ((30, 2), (70, 2), 2)
"""

import csv
import dataclasses
import hashlib
import importlib
import json
import os
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from noisewise._core.validation import check_int, check_number
from noisewise.study import splits


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Train, test and (optionally) validation arrays of one dataset.

    Attributes:
        name: Where it came from (built-in name, file name or loader).
        x_train, y_train, x_test, y_test: float32 features; labels int32
            0..k-1 for classification, float32 targets ``(n,)`` or ``(n, k)``
            for regression.
        num_classes: k (2 for a binary task); for regression the number of
            targets, i.e. the model's output units.
        notes: What loading changed, one sentence each (rows dropped under
            ``nonfinite = "drop"``, a validation split held out, features
            standardised); empty when nothing was.
        task: ``"classification"`` or ``"regression"``.
        x_val, y_val: The validation split held out of the training rows
            (``[train] validation_split``), or None: validation is then on the
            test split.
        classes: The original class labels, in the order of their codes 0..k-1
            (empty for regression).
        train_source, test_source: Streaming sources (``sources.Stream``)
            when the data is not arrays, else None.
        value_range: The ``(low, high)`` range the features are known to lie
            in (a built-in dataset's, :data:`VALUE_RANGES`), the default clip
            of a ``[robustness]`` evaluation; None when only the observed
            range is known (generated or standardised features).
        range_source: Where ``value_range`` comes from, in words.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    notes: tuple = ()
    task: str = "classification"
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    classes: tuple = ()
    train_source: object | None = None
    test_source: object | None = None
    value_range: tuple | None = None
    range_source: str | None = None

    @property
    def streaming(self):
        """Whether the data comes from streaming sources (:mod:`~noisewise.study.sources`):
        the arrays are then a peek of their first batches, for checks only."""
        return self.train_source is not None

    @property
    def binary(self):
        return self.num_classes == 2

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])


def _fraction(name, value):
    return check_number(name, value, low=0.0, high=1.0, low_open=True, high_open=True)


def _count(name, value):
    return check_int(name, value, low=1, high=MAX_SAMPLES)


def _seed(name, value):
    return check_int(name, value, low=0)


def _noise(name, value):
    return check_number(name, value, low=0.0)


def _text(name, value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"`{name}` must be a non-empty string. Received: {name}={value!r}")
    return value


MAX_SAMPLES = 10_000_000  # generated points of circles and moons (160 MB as float64)
_SHOWN = 3  # positions quoted in a message
_SPLIT = {"test_size": (0.25, _fraction), "split_seed": (0, _seed)}

# name -> {option: (default, check)}; check(name, value) returns the clean value.
BUILTIN = {
    "circles": {"n_samples": (100, _count), "noise": (0.1, _noise),
                "random_state": (1, _seed), "n_train": (30, _count)},
    "moons": {"n_samples": (200, _count), "noise": (0.2, _noise),
              "random_state": (1, _seed), "test_size": (0.5, _fraction),
              "split_seed": (0, _seed)},
    "digits": dict(_SPLIT),
    "breast_cancer": dict(_SPLIT),
    "sine": {"n_train": (30, _count), "n_test": (500, _count), "noise": (0.2, _noise),
             "random_state": (0, _seed)},
}
# Ranges the built-in features are known to live in: (range, where it comes from).
# The others are generated or standardised, so no range is known beyond the observed one.
VALUE_RANGES = {"digits": ((0.0, 1.0), "digits pixels 0..16 scaled to [0, 1]")}
# The task of a built-in dataset is part of it; those not listed are classification.
BUILTIN_TASKS = {"sine": "regression"}
TASKS = ("classification", "regression")
FILE_OPTIONS = {
    ".npz": {},
    ".csv": {"target": ("label", _text), "split_column": ("split", _text), **_SPLIT},
}


def _split(x, y, test_size, split_seed, stratify=True):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_size, random_state=split_seed,
                            stratify=y if stratify else None)


def _circles(n_samples, noise, random_state, n_train):
    from sklearn.datasets import make_circles

    if n_train >= n_samples:
        raise ValueError(
            f"`n_train` must be < n_samples={n_samples}. Received: n_train={n_train}"
        )
    x, y = make_circles(n_samples=n_samples, noise=noise, random_state=random_state)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def _moons(n_samples, noise, random_state, test_size, split_seed):
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=random_state)
    return _split(x, y, test_size, split_seed)


def _digits(test_size, split_seed):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images[..., None] / 16.0  # pixel values are 0..16
    return _split(x, bunch.target, test_size, split_seed)


def _breast_cancer(test_size, split_seed):
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x_train, x_test, y_train, y_test = _split(bunch.data, bunch.target, test_size, split_seed)
    # Training statistics only: the test set must not leak into preprocessing.
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


def _sine(n_train, n_test, noise, random_state):
    """Bishop's curve-fitting problem: ``y = sin(2 pi x) + noise * N(0, 1)``, ``x ~ U(0, 1)``.

    Training and test points are drawn alike (test targets noisy too), so the
    best possible test mse is ``noise ** 2``.
    """
    rng = np.random.default_rng(random_state)

    def draw(n):
        x = rng.uniform(0.0, 1.0, size=(n, 1))
        return x, np.sin(2 * np.pi * x[:, 0]) + noise * rng.standard_normal(n)

    return (*draw(n_train), *draw(n_test))


def _reorder(split):
    """train_test_split returns (x_tr, x_te, y_tr, y_te); we use (x_tr, y_tr, x_te, y_te)."""
    x_train, x_test, y_train, y_test = split
    return x_train, y_train, x_test, y_test


_BUILDERS = {
    "circles": _circles,
    "moons": lambda **kw: _reorder(_moons(**kw)),
    "digits": lambda **kw: _reorder(_digits(**kw)),
    "breast_cancer": lambda **kw: _reorder(_breast_cancer(**kw)),
    "sine": _sine,
}


_KEYS = ("x_train", "y_train", "x_test", "y_test")
_NPZ_HELP = "save one with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
_DROP_HELP = 'fix the data or set [data] nonfinite = "drop" to drop those rows'


def _npz(path):
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x93NUMPY"):
        raise ValueError(f"{path.name}: not a NumPy .npz archive (it is a single .npy array); "
                         f"{_NPZ_HELP}")
    if not head.startswith(b"PK"):  # a .npz is a zip file; np.load would call it pickled data
        raise ValueError(f"{path.name}: not a NumPy .npz archive (it starts with {head!r}, "
                         f"not a zip file's b'PK'); {_NPZ_HELP}")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in _KEYS if k not in f]
            if missing:
                raise ValueError(
                    f"{path.name} lacks arrays {missing}; a study .npz needs x_train, "
                    f"y_train, x_test, y_test. Found: {sorted(f.files)}"
                )
            return tuple(_npz_array(path, f, key) for key in _KEYS)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise ValueError(f"{path.name}: not a readable .npz archive ({e})") from None


def _npz_array(path, archive, key):
    try:
        return archive[key]
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise ValueError(f"{path.name}: array {key!r} cannot be read ({e})") from None
        raise ValueError(f"{path.name}: array {key!r} holds Python objects, which are not "
                         "loaded (unpickling can run code); save numbers or strings") from None


def _read_csv(path):
    """``[(line number, cells), ...]`` of the non-blank records, the header first."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            return [(reader.line_num, cells) for cells in reader if cells]
    except UnicodeDecodeError as e:
        raise ValueError(f"{path.name}: not a UTF-8 text file (byte {e.start} is not UTF-8); "
                         "save the CSV as UTF-8") from None
    except csv.Error as e:
        raise ValueError(f"{path.name}: not a readable CSV file ({e})") from None


def _listed(items, limit=5):
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _rows(items):
    return f"row {items[0]}" if len(items) == 1 else f"rows {_listed(items)}"


def _plural(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _csv_features(path, header, body, features, others):
    """float64 features; an empty cell is a missing value (NaN), any other text is refused."""
    x = np.empty((len(body), len(features)))
    for r, (line, cells) in enumerate(body):
        for c, i in enumerate(features):
            cell = cells[i].strip()
            try:
                x[r, c] = float(cell) if cell else np.nan
            except ValueError:
                raise ValueError(
                    f"{path.name}: row {line}, column {header[i]!r}: not a number: {cells[i]!r} "
                    f"(every column but {others} is a numeric feature)") from None
    return x


def _csv_nonfinite(path, header, body, features, x, nonfinite, notes):
    """Keep the rows whose features are finite in float32; refuse others unless dropping."""
    with np.errstate(over="ignore"):
        bad = ~np.isfinite(x.astype("float32"))
    if not bad.any():
        return body, x
    rows = np.flatnonzero(bad.any(axis=1))
    lines = [body[r][0] for r in rows]
    if nonfinite == "drop":
        notes.append(f"{path.name}: dropped {len(rows)} of {_plural(len(body), 'row')} with "
                     f"missing or non-finite feature values ({_rows(lines)})")
        keep = ~bad.any(axis=1)
        return [b for b, k in zip(body, keep) if k], x[keep]
    where = []
    for r, c in np.argwhere(bad)[:_SHOWN]:
        cell = body[r][1][features[c]].strip()
        if not cell:
            what = "empty"
        else:  # finite in float64 but not in float32: too large for the model's inputs
            what = cell if not np.isfinite(x[r, c]) else f"{cell} (beyond float32)"
        where.append(f"{what} at row {body[r][0]} column {header[features[c]]!r}")
    more = ", ..." if bad.sum() > _SHOWN else ""
    count = _plural(int(bad.sum()), "missing or non-finite feature value")
    raise ValueError(f"{path.name}: {count} ({', '.join(where)}{more}); {_DROP_HELP}")


def _csv_labels(path, target, body, t, task="classification"):
    """The label cells; empty, NaN and continuous labels are refused with their rows
    (regression: the targets as numbers, text refused with its row)."""
    y = [cells[t] for _, cells in body]
    empty = [line for (line, _), v in zip(body, y) if not v.strip()]
    if empty:
        raise ValueError(f"{path.name}: {_plural(len(empty), 'empty label')} in column "
                         f"{target!r} at {_rows(empty)}; every row needs its "
                         + ("target" if task == "regression" else "class"))
    numbers = []
    for (line, _), v in zip(body, y):
        try:
            numbers.append(float(v))
        except ValueError:
            if task == "regression":
                raise ValueError(f"{path.name}: row {line}, column {target!r}: a regression "
                                 f"target must be a number. Received: {v!r}") from None
            return np.array(y)  # text labels: classes, whatever they look like
    if task == "regression":
        return np.array(numbers)
    numbers = np.array(numbers)
    missing = [line for (line, _), v in zip(body, numbers) if not np.isfinite(v)]
    if missing:
        raise ValueError(f"{path.name}: {_plural(len(missing), 'missing or non-finite label')} "
                         f"(nan or inf) in column {target!r} at {_rows(missing)}")
    _check_discrete(f"{path.name}: column {target!r}", numbers)
    return np.array(y)


def _csv(path, target, split_column, test_size, split_seed, nonfinite="refuse", notes=None,
         task="classification"):
    records = _read_csv(path)
    if len(records) < 2:
        raise ValueError(f"{path.name} needs a header row and at least one data row")
    (_, header), body = records[0], records[1:]
    if target not in header:
        raise ValueError(
            f"{path.name} has no label column {target!r} (set `target`). Columns: {header}"
        )
    for column in (target, split_column):
        if header.count(column) > 1:
            raise ValueError(f"{path.name}: the header has {header.count(column)} columns "
                             f"named {column!r}; which one is meant cannot be told")
    for line, cells in body:
        if len(cells) != len(header):
            raise ValueError(f"{path.name}: row {line} has {len(cells)} cells, the header "
                             f"has {len(header)}")
    t = header.index(target)
    s = header.index(split_column) if split_column in header else None
    features = [i for i in range(len(header)) if i not in (t, s)]
    others = " and ".join(repr(header[i]) for i in (t, s) if i is not None)
    x = _csv_features(path, header, body, features, others)
    body, x = _csv_nonfinite(path, header, body, features, x, nonfinite,
                             [] if notes is None else notes)
    if not body:
        raise ValueError(f"{path.name}: no row is left once the rows with missing or "
                         "non-finite features are dropped")
    y = _csv_labels(path, target, body, t, task)
    if s is None:  # stratified for classes; a regression target has none
        return _reorder(_split(x, y, test_size, split_seed, stratify=task != "regression"))
    split = np.array([cells[s].strip().lower() for _, cells in body])
    bad = sorted(set(split) - {"train", "test"})
    if bad:
        raise ValueError(
            f"{path.name}: column {split_column!r} must hold 'train' or 'test'. Received: {bad}"
        )
    train = split == "train"
    return x[train], y[train], x[~train], y[~train]


def _forget_if_elsewhere(module_name, base_dir):
    """Two specs in two folders may both have a ``models.py``: import the one beside
    the spec, not whichever a previous study of this process imported first."""
    loaded = sys.modules.get(module_name)
    if base_dir is None or loaded is None or not getattr(loaded, "__file__", None):
        return
    relative = module_name.replace(".", os.sep)
    local = [os.path.join(base_dir, relative + ".py"),
             os.path.join(base_dir, relative, "__init__.py")]
    if any(os.path.exists(p) for p in local) and not any(
            os.path.exists(p) and os.path.samefile(p, loaded.__file__) for p in local):
        for name in [m for m in sys.modules if m == module_name or
                     m.startswith(module_name + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()


def _import(module_name, base_dir):
    """Import a module with ``base_dir`` on sys.path meanwhile."""
    added = base_dir is not None and str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        _forget_if_elsewhere(module_name, base_dir)
        return importlib.import_module(module_name)
    finally:
        if added:
            sys.path.remove(str(base_dir))


def resolve_callable(ref, base_dir=None, what="loader"):
    """Import ``"package.module:function"``; ``base_dir`` is on sys.path meanwhile.
    A callable (from a dict spec) is returned as it is."""
    if callable(ref) and not isinstance(ref, str):
        return ref
    module_name, _, attr = ref.partition(":")
    module = _import(module_name, base_dir)
    target = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ValueError(f"{what} {ref!r}: module {module_name!r} has no {attr!r}")
    if not callable(target):
        raise ValueError(f"{what} {ref!r} is not callable")
    return target


def _loader(ref, base_dir, options):
    out = resolve_callable(ref, base_dir)(**options)
    ref = _callable_name(ref)
    if isinstance(out, dict):
        try:
            return out["x_train"], out["y_train"], out["x_test"], out["y_test"]
        except KeyError as e:
            raise ValueError(f"loader {ref!r} returned a dict without {e}") from None
    if isinstance(out, (tuple, list)) and len(out) == 4:
        return tuple(out)
    raise ValueError(
        f"loader {ref!r} must return a dict with x_train, y_train, x_test, y_test or "
        f"that 4-tuple. Received: {type(out).__name__}"
    )


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


_CACHE = {}


def _data_file(base, relative):
    path = base / relative
    if not path.exists():
        raise ValueError(f"{relative}: no such data file (looked in {base.resolve()})")
    if path.is_dir():
        raise ValueError(f"{relative}: is a folder, not a .npz or .csv data file")
    return path


def load_dataset(data, base_dir=None, *, validation_split=None):
    """Load the dataset described by a validated ``[data]`` table.

    Args:
        data: The ``[data]`` table (``name``, ``path`` or ``loader``, plus options;
            ``nonfinite = "drop"`` drops the rows of user data with non-finite
            features instead of refusing them; ``task = "regression"`` keeps
            the labels as float targets; ``standardize = true`` rescales the
            features, see :mod:`~noisewise.study.splits`).
        base_dir: Folder that relative paths and loader modules are resolved
            against (the spec's folder); default the current directory.
        validation_split: ``[train] validation_split``: the fraction of the
            training rows held out for validation (None: validate on the test
            split), drawn from the data's ``split_seed`` (0 when it has none).

    Returns:
        A :class:`Dataset`. Built-in datasets are cached per process (before
        the split and standardisation, which are cheap).

    Raises:
        ValueError: The data cannot be used as it is (the message says where).
    """
    data = dict(data)
    task = data.pop("task", BUILTIN_TASKS.get(data.get("name"), "classification"))
    standardize = data.pop("standardize", False)
    seed = data.get("split_seed", 0)
    dataset = _load(data, base_dir, task)
    if standardize and dataset.value_range is not None:  # rescaled features leave the known range
        dataset = dataclasses.replace(dataset, value_range=None, range_source=None)
    return splits.prepare(dataset, validation_split, standardize, seed)


def _load(data, base_dir, task):
    """The :class:`Dataset` of a ``[data]`` table without ``task`` and ``standardize``."""
    if "arrays" in data or "x" in data:  # Python objects: nothing to cache or read
        return _python_arrays(data, task)
    key = json.dumps(data, sort_keys=True, default=str)
    if "name" in data:
        if key not in _CACHE:
            name = data.pop("name")
            options = {k: v for k, (v, _) in BUILTIN[name].items()}
            options.update(data)
            value_range, source = VALUE_RANGES.get(name, (None, None))
            _CACHE[key] = dataclasses.replace(_finish(name, _BUILDERS[name](**options), task=task),
                                              value_range=value_range, range_source=source)
        return _CACHE[key]
    base = Path(base_dir or os.getcwd())
    nonfinite = data.pop("nonfinite", "refuse")
    if "path" in data:
        path = _data_file(base, data.pop("path"))
        options = {k: v for k, (v, _) in FILE_OPTIONS[path.suffix.lower()].items()}
        options.update(data)
        notes = []
        if path.suffix.lower() == ".npz":
            arrays = _npz(path)
        else:
            arrays = _csv(path, nonfinite=nonfinite, notes=notes, task=task, **options)
        return _finish(path.name, arrays, nonfinite, notes, task=task)
    ref = data.pop("loader")
    return _finish(_callable_name(ref), _loader(ref, base, data), nonfinite, task=task)


def _callable_name(ref):
    return ref if isinstance(ref, str) else getattr(ref, "__qualname__", type(ref).__name__)


def _python_arrays(data, task):
    """The dataset of ``[data] arrays = (x_train, y_train, x_test, y_test)`` (or that
    dict), or of ``x`` and ``y`` split by ``test_size`` and ``split_seed`` as a CSV is."""
    nonfinite = data.pop("nonfinite", "refuse")
    if "arrays" in data:
        arrays = data["arrays"]
        arrays = [arrays[k] for k in _KEYS] if isinstance(arrays, dict) else arrays
        return _finish("arrays", arrays, nonfinite, task=task)
    x, y = (np.asarray(a, dtype=object) if isinstance(a, (list, tuple)) else np.asarray(a)
            for a in (data["x"], data["y"]))
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 and task != "regression" else y
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(f"arrays: y must have one label per row of x. Received: "
                         f"x.shape={x.shape}, y.shape={y.shape}")
    _labels("arrays", "y", y, task)  # before the split: a continuous label is no stratum
    split = _split(x, y, data["test_size"], data["split_seed"], stratify=task != "regression")
    return _finish("arrays", _reorder(split), nonfinite, task=task)


def fingerprint(dataset):
    """sha256 of a dataset's four arrays (dtype, shape and bytes) and its class count.

    Two loads of the same data give the same fingerprint; any changed value,
    row or label changes it. Streaming sources are not read whole: their
    fingerprint is the data's ``id``, the sources' kinds and batches per
    epoch, and the dtypes and per-row shapes of their batches.
    """
    h = hashlib.sha256()
    if dataset.streaming:
        h.update(f"stream:{dataset.name};".encode())
        for key, source in (("train", dataset.train_source), ("test", dataset.test_source)):
            h.update(f"{key}:{source.kind}:{source.steps}:{source.continuous};".encode())
        for key in _KEYS:
            a = getattr(dataset, key)
            h.update(f"{key}:{a.dtype.str}:{a.shape[1:]};".encode())
        h.update(f"num_classes:{dataset.num_classes}".encode())
        return h.hexdigest()
    for key in _KEYS:
        a = np.ascontiguousarray(getattr(dataset, key))
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(memoryview(a).cast("B"))
    h.update(f"num_classes:{dataset.num_classes}".encode())
    return h.hexdigest()


def code_fingerprint(data, model, base_dir=None):
    """sha256 of the user's code: loader and builder modules, and a pretrained model file.

    ``data`` and ``model`` are the *normalised* tables. The whole module file of
    a ``'module:function'`` reference is hashed (a helper beside the function
    matters as much as the function); a callable's description already holds
    the hash of its source (see :mod:`~noisewise.study.sources`); a ``.keras``
    file (``[model] path``) is hashed whole. None when data and model are built-in.
    """
    refs = [(what, table[what]) for what, table in (("loader", data), ("builder", model))
            if isinstance(table, dict) and what in table]
    pretrained = model.get("path") if isinstance(model, dict) else None
    if not refs and pretrained is None:
        return None
    h = hashlib.sha256()
    if pretrained is not None:
        h.update(f"path={pretrained}\n".encode())
        h.update(_file_digest(Path(base_dir or os.getcwd()) / pretrained).encode())
    for what, ref in refs:
        if ref.startswith("<callable "):
            h.update(f"{what}={ref}\n".encode())
            continue
        module = _import(ref.partition(":")[0], base_dir)
        source = getattr(module, "__file__", None)
        h.update(f"{what}={ref}\n".encode())
        h.update(Path(source).read_bytes() if source else b"(no source file)")
    return h.hexdigest()


def _file_digest(path):
    """sha256 of a file's bytes, read in blocks (a saved model may be large)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
    except OSError as e:
        raise ValueError(f"{path}: cannot read the model file ({e.strerror or e})") from None
    return h.hexdigest()
