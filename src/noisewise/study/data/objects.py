"""Python objects in a dict spec (callables, in-memory arrays, streaming
sources) and their descriptions for the stored spec.

See :mod:`~noisewise.study.sources` for what a dict spec may hold.
"""

import functools
import hashlib
import inspect
import json
import types

import numpy as np

from noisewise.study.data.files import FILE_OPTIONS
from noisewise.study.data.streams import STREAM_KEYS, _keywords, stream_kind


_PLAIN = (str, int, float, bool, type(None))


def is_plain(value):
    """Whether ``value`` is what TOML could hold (tables, lists, strings, numbers, booleans)."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


def _objects(value, found):
    if isinstance(value, dict):
        for item in value.values():
            _objects(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _objects(item, found)
    elif not isinstance(value, _PLAIN):
        found[id(value)] = value


def copy_spec(raw):
    """A deep copy of a spec dict that keeps its Python objects (arrays, datasets,
    callables) by reference: copying a dataset would double its memory or fail."""
    import copy

    memo = {}
    if isinstance(raw, dict):
        for section in ("data", "model"):
            _objects(raw.get(section), memo)
    return copy.deepcopy(raw, memo)


def array_digest(value):
    """sha256 of an array's dtype, shape and contents (lists become arrays first)."""
    a = np.asarray(value)
    h = hashlib.sha256(f"{a.dtype.str}:{a.shape};".encode())
    if a.dtype.kind == "O":
        h.update(json.dumps(a.tolist(), default=repr).encode())
    else:
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return h.hexdigest()


def describe_arrays(arrays):
    """``{"sha256", "shapes", "dtypes"}`` of a sequence of arrays."""
    arrays = [np.asarray(a) for a in arrays]
    digests = "".join(array_digest(a) for a in arrays)
    return {"sha256": hashlib.sha256(digests.encode()).hexdigest(),
            "shapes": [list(a.shape) for a in arrays], "dtypes": [a.dtype.str for a in arrays]}


def _code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _value(value, depth):
    """A stable text for a value a callable depends on (its defaults, closure, globals)."""
    if isinstance(value, np.ndarray):
        return f"ndarray:{array_digest(value)}"
    if isinstance(value, (*_PLAIN, bytes)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(v, depth) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k!r}:{_value(v, depth)}" for k, v in
                              sorted(value.items(), key=lambda kv: repr(kv[0]))) + "}"
    if isinstance(value, types.ModuleType):
        return f"module:{value.__name__}"
    if callable(value) and depth < 3:
        try:
            return _callable_text(value, depth + 1)
        except ValueError:
            pass
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"  # its state is not read: no stable text


def _callable_text(fn, depth):
    if isinstance(fn, functools.partial):
        return (f"partial({_callable_text(fn.func, depth)},{_value(fn.args, depth)},"
                f"{_value(fn.keywords, depth)})")
    target = fn if isinstance(fn, (types.FunctionType, types.MethodType, type)) else type(fn)
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError) as e:
        name = getattr(fn, "__qualname__", type(fn).__qualname__)
        raise ValueError(f"cannot read the source of {name!r} ({e}); a Python object in a "
                         "spec is identified by its source code: define it in a file or a "
                         "notebook cell, or give 'package.module:function'") from None
    parts = [source]
    function = getattr(fn, "__func__", fn)
    if isinstance(function, types.FunctionType):
        parts.append(_value(function.__defaults__, depth))
        parts.append(_value(function.__kwdefaults__, depth))
        cells = [c.cell_contents for c in function.__closure__ or () if _filled(c)]
        parts.append(_value(cells, depth))
        names = sorted({n for code in _code_objects(function.__code__) for n in code.co_names})
        read = {n: function.__globals__[n] for n in names if n in function.__globals__}
        parts.append(_value({n: v for n, v in read.items() if v is not fn}, depth))
    elif not isinstance(fn, type):
        parts.append(_value(getattr(fn, "__dict__", {}), depth))
    return "\n".join(parts)


def _filled(cell):
    try:
        cell.cell_contents  # noqa: B018 -- an empty cell raises
        return True
    except ValueError:
        return False


def describe_callable(fn):
    """``"<callable module.qualname sha256:...>"``: a callable's identity in a stored spec.

    Raises:
        ValueError: Its source cannot be read.
    """
    target = fn.func if isinstance(fn, functools.partial) else fn
    module = getattr(target, "__module__", None) or type(target).__module__
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    digest = hashlib.sha256(_callable_text(fn, 0).encode()).hexdigest()
    return f"<callable {module}.{name} sha256:{digest}>"


def check_stream(source, key):
    """The description ``{"source": kind}`` of a streaming source, or ValueError."""
    if inspect.isgenerator(source):
        raise ValueError(f"`{key}` is a generator, which can be iterated once; pass the function "
                         f"that makes it (e.g. `lambda: batches()`), called once per epoch. "
                         f"Received: {key}={source!r}")
    kind = stream_kind(source)
    if kind is None:
        raise ValueError(f"`{key}` must be a keras.utils.PyDataset, a tf.data.Dataset, a grain "
                         "MapDataset, IterDataset or DataLoader, or a generator function "
                         f"returning (x, y) batches. Received: {type(source).__name__}")
    if kind == "generator function":
        _keywords(source, key)
    return {"source": kind}


_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _array_like(value, path):
    if isinstance(value, (str, bytes, dict)) or value is None or not hasattr(
            value, "__len__") or (isinstance(value, np.ndarray) and value.ndim == 0):
        raise ValueError(f"{path}: must be an array (one row per example). "
                         f"Received: {type(value).__name__}")
    return value


def check_python_data(data, source):
    """The normalised ``[data]`` table of Python data (``arrays``, ``x``/``y`` or
    ``train``/``test``), without ``nonfinite``; ValueError messages start with the key path.

    ``test_size`` and ``split_seed`` default and are checked as a CSV's.
    """
    def unknown(allowed):
        extra = sorted(set(data) - set(allowed))
        if extra:
            raise ValueError(f"data.{extra[0]}: unknown key beside `{source}`; allowed keys: "
                             f"{', '.join(sorted(allowed))}")

    if source == "arrays":
        unknown(["arrays"])
        arrays = data["arrays"]
        if isinstance(arrays, dict):
            missing = [k for k in _ARRAY_KEYS if k not in arrays]
            if missing or len(arrays) != 4:
                raise ValueError(f"data.arrays: a dict must hold exactly {', '.join(_ARRAY_KEYS)}. "
                                 f"Received keys: {sorted(arrays)}")
            arrays = [arrays[k] for k in _ARRAY_KEYS]
        elif not isinstance(arrays, (tuple, list)) or len(arrays) != 4:
            raise ValueError("data.arrays: must be (x_train, y_train, x_test, y_test) or a dict "
                             f"with those keys. Received: {type(arrays).__name__}"
                             f"{f' of {len(arrays)}' if isinstance(arrays, (tuple, list)) else ''}")
        for key, a in zip(_ARRAY_KEYS, arrays):
            _array_like(a, f"data.arrays.{key}")
        return {"arrays": describe_arrays(arrays)}
    if source == "x":
        split = {k: v for k, v in FILE_OPTIONS[".csv"].items() if k in ("test_size", "split_seed")}
        unknown(["x", "y", *split])
        if "y" not in data:
            raise ValueError("data.y: required beside data.x (the labels, one per row)")
        options = {}
        for key, (default, check) in split.items():
            try:
                options[key] = check(key, data.get(key, default))
            except ValueError as e:
                raise ValueError(f"data.{key}: {e}") from None
        return {"x": describe_arrays([_array_like(data["x"], "data.x")]),
                "y": describe_arrays([_array_like(data["y"], "data.y")]), **options}
    unknown(["train", "test", *STREAM_KEYS])
    out = {}
    for key in ("train", "test"):
        if key not in data:
            raise ValueError(f"data.{key}: required: streaming data needs a train and a test source")
        try:
            out[key] = check_stream(data[key], key)
        except ValueError as e:
            raise ValueError(f"data.{key}: {e}") from None
    name = data.get("id")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("data.id: required for streaming sources: a string naming the data "
                         "(a stream cannot be fingerprinted without reading all of it; change "
                         f"the id when the data changes). Received: {name!r}")
    out["id"] = name
    for key, low in (("num_classes", 2), ("steps_per_epoch", 1), ("test_steps", 1)):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"data.{key}: must be an integer >= {low}. Received: {value!r}")
            out[key] = value
    return out
