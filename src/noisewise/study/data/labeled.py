"""Semi-supervised data: ``[data] labeled = 50`` keeps the labels of 50 training rows.

The labeled rows are chosen once per study, stratified by class (in
proportion to the class sizes, every class keeping at least one label, the
rounding by largest remainders), from
``numpy.random.default_rng(derive_seed(study.seed, "labeled"))``, so every
arm and replica sees the same labeled rows and the comparisons between arms
are paired on them; replicas vary the initial weights, noise draws and data
order, not which rows are labeled. The selection follows the validation split
(:mod:`~noisewise.study.splits`) and any label noise, so validation and test
labels are all kept.

The other training rows keep their features and get the label
:data:`UNLABELED` (-1), the convention of :class:`noisewise.consistency.PiModel`.
An arm with a ``consistency`` noise entry trains on every training row (the
Pi-model learns from the unlabeled ones); any other arm trains on the labeled
rows alone (:func:`data_for`), since an unlabeled row has nothing to teach a
supervised loss.

Example:
    >>> import numpy as np
    >>> rows = choose(np.repeat([0, 1, 2], [60, 30, 10]), 10, 3, seed=0)
    >>> np.bincount(np.repeat([0, 1, 2], [60, 30, 10])[rows]).tolist()
    [6, 3, 1]
"""

import dataclasses
import weakref

import numpy as np

from noisewise._core.validation import check_int
from noisewise.random import derive_seed

UNLABELED = -1


def check_labeled(value) -> int:
    """``[data] labeled``: a number of training rows, >= 1 (checked against the data when it loads)."""
    return check_int("labeled", value, low=1)


def check_spec(value, data, task) -> int:
    """``[data] labeled`` in a spec's ``[data]`` table (``data``, of task ``task``): what
    can be checked before loading. Raises ValueError naming ``labeled``."""
    value = check_labeled(value)
    if task != "classification":
        raise ValueError(f"`labeled` keeps the class labels of some training rows; the "
                         f"data's task is {task}. Received: labeled={value}")
    if "train" in data:
        raise ValueError("`labeled` chooses rows of training arrays, and a streaming source "
                         f"is not read whole; unlabel rows in the source. Received: labeled={value}")
    return value


def _quotas(counts, n):
    """Labels per class: ``n`` in proportion to the class sizes, at least one per
    present class, rounding by the largest remainders."""
    target = n * counts / counts.sum()
    quota = np.minimum(np.maximum(np.floor(target), counts > 0), counts).astype(np.int64)
    while quota.sum() > n:  # the minimum of one pushed the total over: take from the largest excess
        c = np.argmax(np.where(quota > 1, quota - target, -np.inf))
        quota[c] -= 1
    while quota.sum() < n:
        c = np.argmax(np.where(quota < counts, target - quota, -np.inf))
        quota[c] += 1
    return quota


def choose(y, n, num_classes, seed):
    """Sorted indices of the ``n`` rows of ``y`` that keep their labels.

    Args:
        y: Class codes ``0..num_classes-1`` of the training rows.
        n: Rows to keep labeled, from the number of classes present to ``len(y)``.
        num_classes: k.
        seed: The study seed (the draw is ``default_rng(derive_seed(seed, "labeled"))``).
    """
    y = np.asarray(y)
    counts = np.bincount(y, minlength=num_classes)
    if not (counts > 0).sum() <= n <= len(y):
        raise ValueError(f"`n` must be between the number of classes present "
                         f"({(counts > 0).sum()}) and the rows ({len(y)}). Received: n={n}")
    rng = np.random.default_rng(derive_seed(seed, "labeled"))
    picked = [rng.choice(np.flatnonzero(y == c), size=q, replace=False)
              for c, q in enumerate(_quotas(counts, n)) if q]
    return np.sort(np.concatenate(picked))


def apply_labeled(data, n, seed):
    """``data`` with the labels of all but ``n`` training rows set to :data:`UNLABELED`.

    Args:
        data: A loaded :class:`~noisewise.study.datasets.Dataset` (classification).
        n: ``[data] labeled``.
        seed: The study seed; a note in ``data.notes`` states what was kept.

    Raises:
        ValueError: ``n`` below the number of classes present in the training
            rows, or not below the number of training rows, or a regression task.
    """
    n = check_labeled(n)
    if data.task != "classification":
        raise ValueError(f"data.labeled: keeps class labels of some rows; the data's task is "
                         f"{data.task}. Received: labeled={n}")
    y = np.asarray(data.y_train)
    classes = int((np.bincount(y, minlength=data.num_classes) > 0).sum())
    if n < classes:
        raise ValueError(f"data.labeled: must be at least the number of classes in the "
                         f"training rows ({classes}), so that every class keeps a label. "
                         f"Received: labeled={n}")
    if n >= len(y):
        raise ValueError(f"data.labeled: must be below the number of training rows "
                         f"({len(y)}), or no row is unlabeled. Received: labeled={n}")
    rows = choose(y, n, data.num_classes, seed)
    kept = np.full(len(y), UNLABELED, dtype=y.dtype)
    kept[rows] = y[rows]
    note = (f"{data.name}: labels kept for {n} of {len(y)} training rows (stratified by "
            f"class, study seed {seed}); the other {len(y) - n} are unlabeled")
    return dataclasses.replace(data, y_train=kept, notes=(*data.notes, note))


def uses_unlabeled(noise) -> bool:
    """Whether an arm's noise entries learn from unlabeled rows (a ``consistency`` entry)."""
    return any(entry["type"] == "consistency" for entry in noise)


_LABELED_ONLY = weakref.WeakKeyDictionary()  # dataset -> its labeled rows alone


def data_for(arm, data):
    """The dataset ``arm`` trains on: ``data`` itself, or without its unlabeled rows
    for an arm that cannot learn from them (the same object for every such arm)."""
    y = getattr(data, "y_train", None)
    if (getattr(data, "streaming", False) or y is None or uses_unlabeled(arm.noise)
            or getattr(data, "task", "classification") != "classification"):
        return data
    if data not in _LABELED_ONLY:
        rows = np.flatnonzero(np.asarray(y) != UNLABELED)
        if len(rows) == len(y):
            _LABELED_ONLY[data] = data
        else:
            note = (f"arms without a consistency entry train on the {len(rows)} labeled rows "
                    "alone")
            _LABELED_ONLY[data] = dataclasses.replace(
                data, x_train=data.x_train[rows], y_train=np.asarray(y)[rows],
                notes=(*data.notes, note))
    return _LABELED_ONLY[data]


_PROBE_ROWS = 16  # training rows the stochasticity check runs the model on


def consistency_model(net, config, data, arm, index):
    """``net`` in a :class:`noisewise.consistency.PiModel` for an arm's ``consistency``
    entry (``noise[index]`` of ``arm``), refused when the task is no classification or
    when two training passes agree (no noise, dropout or augmentation in the model)."""
    from noisewise.consistency import pi_model  # loads Keras; the data code does not

    where = f"arm {arm!r}: noise[{index}] (consistency)"
    task = getattr(data, "task", "classification")
    if task != "classification":
        raise ValueError(f"{where} compares class probabilities; the data's task is {task}")
    pi = pi_model(net, config)
    if data is not None and not pi.passes_differ(data.x_train[:_PROBE_ROWS]):
        raise ValueError(f"{where} needs a model that is stochastic in training, and two "
                         "training passes of this arm's model agree: add a noise layer, "
                         "dropout, weight noise or augmentation to the arm. Received: "
                         f"noise[{index}]={{type = 'consistency', {_shown(config)}}}")
    return pi


def _shown(config):
    return ", ".join(f"{k} = {v!r}" for k, v in config.items())
