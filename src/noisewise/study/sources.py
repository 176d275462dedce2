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

The code lives in :mod:`noisewise.study.data` (``objects``, ``streams``);
this module re-exports its names.

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

from noisewise.study.data.objects import (
    array_digest,
    check_python_data,
    check_stream,
    copy_spec,
    describe_arrays,
    describe_callable,
    is_plain,
)
from noisewise.study.data.streams import (
    MAX_COUNTED,
    PEEK_BATCHES,
    PEEK_ROWS,
    STREAM_KEYS,
    Stream,
    eval_inputs,
    fit_inputs,
    is_streaming,
    load_streams,
    stream_kind,
)

__all__ = ["MAX_COUNTED", "PEEK_BATCHES", "PEEK_ROWS", "STREAM_KEYS", "Stream", "array_digest",
           "check_python_data", "check_stream", "copy_spec", "describe_arrays", "describe_callable",
           "eval_inputs", "fit_inputs", "is_plain", "is_streaming", "load_streams", "stream_kind"]
