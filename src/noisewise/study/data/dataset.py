"""The :class:`Dataset` of a study, its tasks and known value ranges, the checks
of the options of built-in and file data, and the fixed train/test split they share.

See :mod:`~noisewise.study.datasets` for the data a study can load.
"""

import dataclasses

import numpy as np

from noisewise._core.validation import check_int, check_number


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
_SPLIT = {"test_size": (0.25, _fraction), "split_seed": (0, _seed)}
# Ranges the built-in features are known to live in: (range, where it comes from).
# The others are generated or standardised, so no range is known beyond the observed one.
VALUE_RANGES = {"digits": ((0.0, 1.0), "digits pixels 0..16 scaled to [0, 1]")}
TASKS = ("classification", "regression")
_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _split(x, y, test_size, split_seed, stratify=True):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_size, random_state=split_seed,
                            stratify=y if stratify else None)


def _reorder(split):
    """train_test_split returns (x_tr, x_te, y_tr, y_te); we use (x_tr, y_tr, x_te, y_te)."""
    x_train, x_test, y_train, y_test = split
    return x_train, y_train, x_test, y_test
