"""Python objects in a study spec: callables, in-memory arrays and streaming data sources.

A dict spec may hold Python objects where a TOML spec holds references or files:

- ``model.builder`` and ``data.loader``: a callable, as well as a
  ``'package.module:function'`` string.
- ``data.arrays``: ``(x_train, y_train, x_test, y_test)`` or a dict with those
  keys. ``data.x`` and ``data.y``: one set of arrays, split like a CSV without a
  split column (``test_size``, default 0.25, stratified; ``split_seed``, default 0).
- ``data.train`` and ``data.test``: streaming sources, each a
  ``keras.utils.PyDataset``, a ``tf.data.Dataset``, a grain ``MapDataset``,
  ``IterDataset`` or ``DataLoader``, or a generator function (called once per
  pass over the data, it returns an iterator of batches; it may take the
  keyword arguments ``epoch``, the 0-based pass, and ``seed``, the run's
  replica seed, to order its batches like the array path does). Every element
  is one batch ``(x, y)``; labels are class ids ``0..k-1`` (regression:
  targets). ``data.id`` names the data and is required: a stream cannot be
  hashed without reading all of it, so its identity is ``id`` and the shapes
  and dtypes of its batches; change ``id`` when the data changes. Optional:
  ``num_classes`` (else the largest label of the peek plus one, stated in the
  dataset's notes), ``steps_per_epoch`` (batches per epoch; the source is
  iterated anew when it runs out, as Keras does; default one full pass) and
  ``test_steps`` (batches per evaluation, from the start of the test source;
  default all of it).

The stored spec (and every identity built from it) holds a description of
each object, never the object: a callable is ``"<callable module.qualname
sha256:...>"``, the hash of its source text (``inspect.getsource``), its
defaults, closure values and the plain global values its code reads (numbers,
strings, arrays, other functions); arrays are ``{"sha256", "shapes",
"dtypes"}`` of their contents; a stream is ``{"source": "tf.data.Dataset"}``
beside ``data.id``. A callable whose source cannot be read (defined at an
interactive prompt, a built-in) is refused with a clear error.

A streaming source is never loaded whole: the pre-flight reads its first
batches (at most :data:`PEEK_BATCHES` batches or :data:`PEEK_ROWS` rows) into
the dataset's arrays, for shape and label checks only, and counts the
batches of one pass when its length is unknown and ``steps_per_epoch`` is
not given. Training checks every batch (finite features, labels within the
classes) as it goes, and a pass holding another number of batches than the
first fails the run rather than changing what an epoch is. Only the per-run
``fit`` executor trains on streams; the data order is the source's, so
replicas are paired by model initialisation and noise, and by data order only
when the source orders its batches by ``seed``.

Example:
    >>> import numpy as np
    >>> def batches(epoch, seed):
    ...     rng = np.random.default_rng(seed + epoch)
    ...     for _ in range(3):
    ...         yield rng.normal(size=(4, 2)).astype("float32"), np.array([0, 1, 0, 1])
    >>> data = load_streams({"train": batches, "test": batches, "id": "demo"}, seed=0)
    >>> data.streaming, data.train_source.steps, data.num_classes, data.x_train.shape
    (True, 3, 2, (12, 2))
"""

import functools
import hashlib
import inspect
import itertools
import json
import sys
import types

import numpy as np

from noisewise.study.datasets import FILE_OPTIONS, Dataset

PEEK_BATCHES = 8
PEEK_ROWS = 1024
MAX_COUNTED = 1_000_000  # batches counted in one pass before a source is taken to be endless
STREAM_KEYS = ("id", "num_classes", "steps_per_epoch", "test_steps")
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


def stream_kind(source):
    """The kind of a streaming source (``"tf.data.Dataset"``, ...), or None if it is none.

    Only libraries already imported are asked: an object of a library that is
    not imported cannot exist, and looking would import TensorFlow.
    """
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(source, keras.utils.PyDataset):
        return "keras.utils.PyDataset"
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(source, tf.data.Dataset):
        return "tf.data.Dataset"
    grain = sys.modules.get("grain")
    for name in ("MapDataset", "IterDataset", "DataLoader"):
        cls = getattr(grain, name, None) if grain is not None else None
        if isinstance(cls, type) and isinstance(source, cls):
            return f"grain.{name}"
    if inspect.isgenerator(source) or isinstance(source, type):
        return None
    return "generator function" if callable(source) else None


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


def _keywords(fn, key="source"):
    """The keywords among ``epoch``, ``seed`` that a generator function takes."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return ()
    takes = tuple(p for p in ("epoch", "seed") if p in parameters)
    required = [n for n, p in parameters.items() if p.default is p.empty and n not in takes
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise ValueError(f"`{key}`: a generator function is called with no argument or with "
                         f"the keywords `epoch` and `seed`; it requires {required}")
    return takes


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


class Stream:
    """A streaming source seen as passes of ``(x, y)`` NumPy batches.

    Attributes:
        kind: What it is (``"tf.data.Dataset"``, ...).
        steps: Batches per epoch (training) or per evaluation (test).
        continuous: True when ``steps`` was given: batches are taken from one
            iterator, renewed when the source runs out; else each epoch is one
            full pass, which must hold ``steps`` batches.
    """

    def __init__(self, source, key, task="classification"):
        self.source, self.key, self.task = source, key, task
        self.kind = stream_kind(source)
        self.steps, self.continuous, self.num_classes = None, False, None
        self._takes = _keywords(source, key) if self.kind == "generator function" else ()

    def length(self):
        """Batches of one pass when the source knows it, None when it does not,
        ``-1`` when it is endless."""
        if self.kind in ("keras.utils.PyDataset", "grain.MapDataset"):
            try:
                n = len(self.source)
            except (TypeError, OverflowError):
                return -1
            return -1 if n is None else int(n)
        if self.kind == "tf.data.Dataset":
            n = int(self.source.cardinality())
            return n if n >= 0 else (-1 if n == -1 else None)  # -1 INFINITE, -2 UNKNOWN
        return None

    def elements(self, epoch=0, seed=0):
        """An iterator over one pass of the source's raw elements."""
        if self.kind in ("keras.utils.PyDataset", "grain.MapDataset"):
            n = self.length()
            return (self.source[i] for i in (range(n) if n >= 0 else itertools.count()))
        if self.kind == "tf.data.Dataset":
            return self.source.as_numpy_iterator()
        if self.kind == "generator function":
            kwargs = {"epoch": epoch, "seed": seed}
            out = self.source(**{k: kwargs[k] for k in self._takes})
            try:
                return iter(out)
            except TypeError:
                raise ValueError(f"data.{self.key}: the generator function must return an "
                                 f"iterator of (x, y) batches. Received: "
                                 f"{type(out).__name__}") from None
        return iter(self.source)

    def end_pass(self):
        if self.kind == "keras.utils.PyDataset":
            self.source.on_epoch_end()

    def batch(self, element, where):
        """One element as checked NumPy ``(x float32, y)``: a batch, finite, labels in range."""
        if isinstance(element, dict) or not isinstance(element, (tuple, list)) or \
                len(element) != 2:
            extra = " (sample weights are not supported)" if isinstance(
                element, (tuple, list)) and len(element) == 3 else ""
            raise ValueError(f"data.{self.key}: every element must be one batch (x, y){extra}. "
                             f"Received at {where}: {type(element).__name__}"
                             f"{f' of {len(element)}' if isinstance(element, (tuple, list)) else ''}")
        x, y = (np.asarray(a) for a in element)
        if y.ndim == 2 and y.shape[1] == 1 and self.task == "classification":
            y = y[:, 0]
        if x.ndim < 2 or y.ndim == 0 or len(x) != len(y) or len(x) == 0:
            raise ValueError(f"data.{self.key}: every element must be a batch: x of shape "
                             f"(batch, ...) and one label per row (batch the source, e.g. "
                             f"ds.batch(32)). Received at {where}: x.shape={x.shape}, "
                             f"y.shape={y.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.asarray(x, dtype="float32")
        if not np.isfinite(x).all():
            raise ValueError(f"data.{self.key}: {int((~np.isfinite(x)).sum())} non-finite "
                             f"feature values at {where}")
        if self.task != "classification":
            y = np.asarray(y, dtype="float32")
            if not np.isfinite(y).all():
                raise ValueError(f"data.{self.key}: non-finite targets at {where}")
            return x, y
        if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and (
                not np.isfinite(y).all() or (y != np.round(y)).any())):
            raise ValueError(f"data.{self.key}: labels must be class ids 0..k-1 (integers) in a "
                             f"streaming source. Received at {where}: dtype {y.dtype}, e.g. "
                             f"{y.ravel()[:3].tolist()}")
        y = y.astype("int32")
        k = self.num_classes
        if y.min() < 0 or (k is not None and y.max() >= k):
            raise ValueError(f"data.{self.key}: labels must be class ids in 0..{k - 1 if k else 'k-1'}"
                             f" (data.num_classes = {k}). Received at {where}: "
                             f"{sorted(set(y[(y < 0) | (y >= (k or 2**31))].tolist()))[:5]}")
        return x, y

    def peek(self, seed):
        """The first batches (at most PEEK_BATCHES or PEEK_ROWS rows), checked."""
        out, rows = [], 0
        elements = self.elements(0, seed)
        try:
            for i, element in enumerate(elements):
                out.append(self.batch(element, f"batch {i} of the first pass"))
                rows += len(out[-1][0])
                if len(out) >= PEEK_BATCHES or rows >= PEEK_ROWS:
                    break
        finally:
            _close(elements)
        if not out:
            raise ValueError(f"data.{self.key}: the source yielded no batch")
        shapes = {b[0].shape[1:] for b in out}
        if len(shapes) > 1:
            raise ValueError(f"data.{self.key}: batches have different feature shapes: "
                             f"{sorted(shapes)}")
        return np.concatenate([b[0] for b in out]), np.concatenate([b[1] for b in out])

    def count(self, seed):
        """Batches in one full pass, read without keeping them."""
        n = 0
        elements = self.elements(0, seed)
        try:
            for _ in elements:
                n += 1
                if n > MAX_COUNTED:
                    raise ValueError(f"data.{self.key}: more than {MAX_COUNTED:,} batches in "
                                     "one pass: set data.steps_per_epoch for an endless source")
        finally:
            _close(elements)
        self.end_pass()
        return n

    def feed(self, seed, passes=None):
        """Checked batches, ``steps`` per epoch, for as many epochs as asked."""
        epoch = 0
        while passes is None or epoch < passes:
            if self.continuous:
                yield from self._continuous(seed)
                return
            n = 0
            for n, element in enumerate(self.elements(epoch, seed), start=1):
                if n > self.steps:
                    raise ValueError(f"data.{self.key}: pass {epoch} holds more than the "
                                     f"{self.steps} batches of the first pass; set "
                                     "data.steps_per_epoch to fix an epoch's length")
                yield self.batch(element, f"batch {n - 1} of pass {epoch}")
            if n < self.steps:
                raise ValueError(f"data.{self.key}: pass {epoch} held {n} batches, the first "
                                 f"pass {self.steps}; set data.steps_per_epoch to fix an "
                                 "epoch's length")
            self.end_pass()
            epoch += 1

    def _continuous(self, seed):
        renewal, step = 0, 0
        while True:
            got = False
            for element in self.elements(renewal, seed):
                got = True
                yield self.batch(element, f"step {step}")
                step += 1
            if not got:
                raise ValueError(f"data.{self.key}: the source yielded no batch in pass {renewal}")
            self.end_pass()
            renewal += 1

    def evaluations(self, seed):
        """Endless: the test source's first ``steps`` batches, again and again (one
        evaluation each), for ``fit``'s ``validation_data`` with ``validation_steps``."""
        while True:
            n = 0
            elements = self.elements(0, seed)
            try:
                for n, element in enumerate(elements, start=1):
                    yield self.batch(element, f"batch {n - 1} of the test source")
                    if n == self.steps:
                        break
            finally:
                _close(elements)
            if n < self.steps:
                raise ValueError(f"data.{self.key}: held {n} batches, fewer than the "
                                 f"{self.steps} of an evaluation")
            self.end_pass()


def _close(iterator):
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


def is_streaming(data):
    """Whether a ``[data]`` table holds streaming sources (``train`` and ``test``)."""
    return isinstance(data, dict) and "train" in data


def load_streams(data, seed=0):
    """The :class:`~noisewise.study.datasets.Dataset` of a ``[data]`` table with streams.

    Its arrays are the peek (first batches) of each source; ``train_source``
    and ``test_source`` are :class:`Stream` objects. ``seed`` is passed to
    generator functions that take it while peeking and counting.
    """
    task = data.get("task", "classification")
    train, test = Stream(data["train"], "train", task), Stream(data["test"], "test", task)
    notes = []
    (x_train, y_train), (x_test, y_test) = train.peek(seed), test.peek(seed)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"data: train and test batches have different feature shapes: "
                         f"{x_train.shape[1:]} and {x_test.shape[1:]}")
    if task == "classification":
        k = data.get("num_classes")
        if k is None:
            k = max(2, int(max(y_train.max(), y_test.max())) + 1)
            notes.append(f"data: num_classes = {k}, from the largest label in the first "
                         f"{len(y_train)} training and {len(y_test)} test rows; set "
                         "data.num_classes if later batches hold more classes")
        train.num_classes = test.num_classes = k
        for stream, y in ((train, y_train), (test, y_test)):
            if y.max() >= k:
                raise ValueError(f"data.{stream.key}: label {int(y.max())} is not below "
                                 f"data.num_classes = {k}")
    else:
        k = 1 if y_train.ndim == 1 else int(np.prod(y_train.shape[1:]))
    for stream, given in ((train, data.get("steps_per_epoch")), (test, data.get("test_steps"))):
        length = stream.length()
        if given is not None:
            stream.steps, stream.continuous = int(given), stream.key == "train"
        elif length == -1:
            name = "steps_per_epoch" if stream.key == "train" else "test_steps"
            raise ValueError(f"data.{stream.key}: the source is endless; set data.{name}")
        else:
            stream.steps = length if length is not None else stream.count(seed)
            if length is None:
                notes.append(f"data.{stream.key}: {stream.steps} batches in one pass, counted "
                             "before training (set data."
                             f"{'steps_per_epoch' if stream.key == 'train' else 'test_steps'} "
                             "to skip counting)")
        if stream.steps < 1:
            raise ValueError(f"data.{stream.key}: the source holds no batch")
    return Dataset(str(data["id"]), x_train, y_train, x_test, y_test, k, tuple(notes),
                   task=task, train_source=train, test_source=test)


def fit_inputs(data, seed, epochs):
    """``fit``'s data arguments for a streaming dataset: training batches for
    ``epochs`` epochs and the test source's evaluations, with their step counts."""
    train, test = data.train_source, data.test_source
    return {"x": train.feed(seed, passes=None if train.continuous else epochs),
            "steps_per_epoch": train.steps,
            "validation_data": test.evaluations(seed), "validation_steps": test.steps}


def eval_inputs(data, seed):
    """``evaluate``'s data arguments for the test source: one evaluation."""
    test = data.test_source
    return {"x": test.evaluations(seed), "steps": test.steps}
