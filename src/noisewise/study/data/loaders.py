"""Loading a ``[data]`` table: the dispatch to built-in, file, loader and
in-memory data (:func:`load_dataset`), importing the user's callables, and the
fingerprints of the loaded data and of the user's code.
"""

import dataclasses
import hashlib
import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from noisewise.study import splits
from noisewise.study.data.builtin import _BUILDERS, BUILTIN, BUILTIN_TASKS
from noisewise.study.data.checks import _finish, _labels
from noisewise.study.data.dataset import _KEYS, VALUE_RANGES, _reorder, _split
from noisewise.study.data.files import FILE_OPTIONS, _csv, _data_file, _npz
from noisewise.study.data.label_noise import apply_label_noise
from noisewise.study.data.labeled import apply_labeled


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


_CACHE = {}


def load_dataset(data, base_dir=None, *, validation_split=None, study_seed=0):
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
        study_seed: ``[study] seed``, which draws ``[data] label_noise`` (the
            training labels are corrupted after the validation split is held
            out; see :mod:`~noisewise.study.data.label_noise`).
            It also chooses the rows that keep their labels under ``[data]
            labeled`` (:mod:`~noisewise.study.data.labeled`).

    Returns:
        A :class:`Dataset`. Built-in datasets are cached per process (before
        the split and standardisation, which are cheap).

    Raises:
        ValueError: The data cannot be used as it is (the message says where).
    """
    data = dict(data)
    task = data.pop("task", BUILTIN_TASKS.get(data.get("name"), "classification"))
    standardize = data.pop("standardize", False)
    label_noise = data.pop("label_noise", None)
    labeled = data.pop("labeled", None)
    seed = data.get("split_seed", 0)
    dataset = _load(data, base_dir, task)
    if standardize and dataset.value_range is not None:  # rescaled features leave the known range
        dataset = dataclasses.replace(dataset, value_range=None, range_source=None)
    dataset = splits.prepare(dataset, validation_split, standardize, seed)
    if label_noise is not None:  # after the hold-out: validation labels stay clean
        dataset = apply_label_noise(dataset, label_noise, study_seed)
    if labeled is not None:  # after the hold-out and the label noise: validation keeps labels
        dataset = apply_labeled(dataset, labeled, study_seed)
    return dataset


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
