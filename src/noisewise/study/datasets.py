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

The code lives in :mod:`noisewise.study.data` (``dataset``, ``builtin``,
``files``, ``checks``, ``loaders``); this module re-exports its names.

Example:
    >>> from noisewise.study.datasets import load_dataset
    >>> data = load_dataset({"name": "circles"})
    >>> data.x_train.shape, data.x_test.shape, data.num_classes
    ((30, 2), (70, 2), 2)
"""

from noisewise.study.data.builtin import BUILTIN, BUILTIN_TASKS
from noisewise.study.data.checks import _finish as _finish
from noisewise.study.data.dataset import MAX_SAMPLES, TASKS, VALUE_RANGES, Dataset
from noisewise.study.data.dataset import _KEYS as _KEYS
from noisewise.study.data.dataset import _reorder as _reorder
from noisewise.study.data.dataset import _split as _split
from noisewise.study.data.files import FILE_OPTIONS
from noisewise.study.data.loaders import _CACHE as _CACHE
from noisewise.study.data.loaders import _callable_name as _callable_name
from noisewise.study.data.loaders import _import as _import
from noisewise.study.data.loaders import code_fingerprint, fingerprint, load_dataset, resolve_callable

__all__ = ["BUILTIN", "BUILTIN_TASKS", "FILE_OPTIONS", "MAX_SAMPLES", "TASKS", "VALUE_RANGES", "Dataset",
           "code_fingerprint", "fingerprint", "load_dataset", "resolve_callable"]
