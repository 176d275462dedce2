"""Streaming sources seen as passes of checked ``(x, y)`` NumPy batches: their
kinds, the peek and count of the pre-flight, and the inputs of ``fit`` and
``evaluate``.

See :mod:`~noisewise.study.sources` for the sources a dict spec may hold.
"""

import inspect
import itertools
import sys

import numpy as np

from noisewise.study.data.dataset import Dataset


PEEK_BATCHES = 8
PEEK_ROWS = 1024
MAX_COUNTED = 1_000_000  # batches counted in one pass before a source is taken to be endless
STREAM_KEYS = ("id", "num_classes", "steps_per_epoch", "test_steps")


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
