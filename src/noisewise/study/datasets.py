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
- ``"digits"``: ``load_digits`` (1,797 8x8 images), pixels scaled to [0, 1],
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

Labels are classes (regression is not supported yet): they are mapped to
``0..k-1`` in sorted order; two classes make a binary task (one sigmoid
output), more a multiclass task (softmax). Features become float32.

Example:
    >>> from noisewise.study.datasets import load_dataset
    >>> data = load_dataset({"name": "circles"})
    >>> data.x_train.shape, data.x_test.shape, data.num_classes
    ((30, 2), (70, 2), 2)
"""

import csv
import dataclasses
import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from noisewise._validation import check_int, check_number


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test arrays of one classification dataset.

    Attributes:
        name: Where it came from (built-in name, file name or loader).
        x_train, y_train, x_test, y_test: float32 features, int32 labels 0..k-1.
        num_classes: k (2 for a binary task).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def binary(self):
        return self.num_classes == 2

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])


def _fraction(name, value):
    return check_number(name, value, low=0.0, high=1.0, low_open=True, high_open=True)


def _count(name, value):
    return check_int(name, value, low=1)


def _seed(name, value):
    return check_int(name, value, low=0)


def _noise(name, value):
    return check_number(name, value, low=0.0)


def _text(name, value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"`{name}` must be a non-empty string. Received: {name}={value!r}")
    return value


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
}
FILE_OPTIONS = {
    ".npz": {},
    ".csv": {"target": ("label", _text), "split_column": ("split", _text), **_SPLIT},
}


def _split(x, y, test_size, split_seed):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_size, random_state=split_seed, stratify=y)


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


def _reorder(split):
    """train_test_split returns (x_tr, x_te, y_tr, y_te); we use (x_tr, y_tr, x_te, y_te)."""
    x_train, x_test, y_train, y_test = split
    return x_train, y_train, x_test, y_test


_BUILDERS = {
    "circles": _circles,
    "moons": lambda **kw: _reorder(_moons(**kw)),
    "digits": lambda **kw: _reorder(_digits(**kw)),
    "breast_cancer": lambda **kw: _reorder(_breast_cancer(**kw)),
}


def _npz(path):
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f]
        if missing:
            raise ValueError(
                f"{path.name} lacks arrays {missing}; a study .npz needs x_train, "
                f"y_train, x_test, y_test. Found: {sorted(f.files)}"
            )
        return f["x_train"], f["y_train"], f["x_test"], f["y_test"]


def _csv(path, target, split_column, test_size, split_seed):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise ValueError(f"{path.name} needs a header row and at least one data row")
    header, body = rows[0], rows[1:]
    if target not in header:
        raise ValueError(
            f"{path.name} has no label column {target!r} (set `target`). Columns: {header}"
        )
    t = header.index(target)
    s = header.index(split_column) if split_column in header else None
    features = [i for i in range(len(header)) if i not in (t, s)]
    try:
        x = np.array([[float(row[i]) for i in features] for row in body])
    except (ValueError, IndexError) as e:
        raise ValueError(f"{path.name}: feature columns must be numbers ({e})") from None
    y = np.array([row[t] for row in body])
    if s is None:
        return _reorder(_split(x, y, test_size, split_seed))
    split = np.array([row[s].strip().lower() for row in body])
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


def resolve_callable(ref, base_dir=None, what="loader"):
    """Import ``"package.module:function"``; ``base_dir`` is on sys.path meanwhile."""
    module_name, _, attr = ref.partition(":")
    added = base_dir is not None and str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        _forget_if_elsewhere(module_name, base_dir)
        module = importlib.import_module(module_name)
    finally:
        if added:
            sys.path.remove(str(base_dir))
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


def _finish(name, arrays):
    x_train, y_train, x_test, y_test = (np.asarray(a) for a in arrays)
    for label, y, x in (("train", y_train, x_train), ("test", y_test, x_test)):
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or len(y) != len(x) or len(x) == 0:
            raise ValueError(
                f"{name}: y_{label} must be one label per row of x_{label} (class ids). "
                f"Received: x_{label}.shape={x.shape}, y_{label}.shape={y.shape}"
            )
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{name}: x_train and x_test must have the same feature shape. "
            f"Received: {x_train.shape[1:]} and {x_test.shape[1:]}"
        )
    y_train, y_test = y_train.reshape(-1), y_test.reshape(-1)
    classes, codes = np.unique(np.concatenate([y_train, y_test]), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"{name}: labels need at least 2 classes. Received: {classes.tolist()}")
    codes = codes.astype("int32")
    return Dataset(
        name,
        np.ascontiguousarray(x_train, dtype="float32"), codes[: len(y_train)],
        np.ascontiguousarray(x_test, dtype="float32"), codes[len(y_train):],
        len(classes),
    )


_CACHE = {}


def load_dataset(data, base_dir=None):
    """Load the dataset described by a validated ``[data]`` table.

    Args:
        data: The ``[data]`` table (``name``, ``path`` or ``loader``, plus options).
        base_dir: Folder that relative paths and loader modules are resolved
            against (the spec's folder); default the current directory.

    Returns:
        A :class:`Dataset`. Built-in datasets are cached per process.
    """
    data = dict(data)
    key = json.dumps(data, sort_keys=True, default=str)
    if "name" in data:
        if key not in _CACHE:
            name = data.pop("name")
            options = {k: v for k, (v, _) in BUILTIN[name].items()}
            options.update(data)
            _CACHE[key] = _finish(name, _BUILDERS[name](**options))
        return _CACHE[key]
    base = Path(base_dir or os.getcwd())
    if "path" in data:
        path = base / data.pop("path")
        options = {k: v for k, (v, _) in FILE_OPTIONS[path.suffix.lower()].items()}
        options.update(data)
        arrays = _npz(path) if path.suffix.lower() == ".npz" else _csv(path, **options)
        return _finish(path.name, arrays)
    ref = data.pop("loader")
    return _finish(ref, _loader(ref, base, data))
