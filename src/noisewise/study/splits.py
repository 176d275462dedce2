"""Splits and preprocessing of a loaded dataset that must see the training split only.

Two steps, applied once when a study loads its data
(:func:`~noisewise.study.datasets.load_dataset`), in this order:

1. :func:`hold_out`: ``[train] validation_split = f`` moves a fraction ``f``
   of the *training* rows to a validation split (stratified by class for a
   classifier, so every class keeps its share; plain random rows for
   regression), drawn with ``numpy.random.default_rng(derive_seed(seed,
   "validation"))`` where ``seed`` is the data's ``split_seed`` (0 when the
   dataset has none). The test split is never touched: model selection,
   early stopping and the best epoch then use the validation split, and the
   test split gives the final figures.
2. :func:`standardize`: ``[data] standardize = true`` rescales every feature
   with the mean and standard deviation of the training rows left after the
   hold-out, and applies the same figures to the validation and test rows,
   so neither leaks into preprocessing. A constant feature is centred only
   (its std is taken as 1). The fitted figures are stated in
   ``Dataset.notes``.

Example:
    >>> from noisewise.study.datasets import load_dataset
    >>> data = load_dataset({"name": "moons"}, validation_split=0.2)
    >>> len(data.x_train), len(data.x_val), len(data.x_test)
    (80, 20, 100)
"""

import dataclasses

import numpy as np

from noisewise.random import derive_seed


def _stratified(y, fraction, rng):
    """Indices of the held-out rows: ``round(fraction * n_c)`` of each class ``c``
    (at least one, and never every row of a class)."""
    held = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        k = int(round(fraction * len(rows)))
        if len(rows) < 2:
            raise ValueError(
                f"`validation_split` is stratified by class, and class {int(c)} has "
                f"{len(rows)} training row; each class needs at least 2 (one to train on, "
                "one to validate)")
        k = min(max(k, 1), len(rows) - 1)
        held.append(rng.choice(rows, size=k, replace=False))
    return np.sort(np.concatenate(held))


def hold_out(data, fraction, seed=0):
    """``data`` with a fraction of its training rows moved to ``x_val``/``y_val``.

    Args:
        data: A :class:`~noisewise.study.datasets.Dataset` without a validation split.
        fraction: Share of the training rows held out, in (0, 1).
        seed: The data's split seed; the draw is ``derive_seed(seed, "validation")``.

    Returns:
        A new Dataset; its ``notes`` say how many rows were held out.

    Raises:
        ValueError: The training split is too small to hold out from.
    """
    if data.x_val is not None:
        raise ValueError(f"{data.name}: the dataset already has a validation split")
    n = len(data.x_train)
    rng = np.random.default_rng(derive_seed(seed, "validation"))
    if data.task == "classification":
        held = _stratified(data.y_train, fraction, rng)
    else:
        k = int(round(fraction * n))
        if not 1 <= k < n:
            raise ValueError(f"`validation_split`={fraction} of {n} training rows leaves "
                             f"{n - k} to train on and {k} to validate")
        held = np.sort(rng.choice(n, size=k, replace=False))
    keep = np.ones(n, dtype=bool)
    keep[held] = False
    how = "stratified by class" if data.task == "classification" else "random rows"
    note = (f"{data.name}: validation split: {len(held)} of {n} training rows held out "
            f"({how}, seed {seed}); the test split gives the final figures")
    return dataclasses.replace(
        data, x_train=data.x_train[keep], y_train=data.y_train[keep],
        x_val=data.x_train[held], y_val=data.y_train[held], notes=(*data.notes, note))


def _figures(values):
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 1:
        return f"{values[0]:.4g}"
    return f"{values.min():.4g} to {values.max():.4g}"


def standardize(data):
    """``data`` with features rescaled by the training split's mean and std.

    The figures are fitted per feature (every axis but the first) on
    ``x_train`` only and applied to ``x_train``, ``x_val`` and ``x_test``.

    Returns:
        A new Dataset; its ``notes`` state the fitted means and stds (their
        range when there are several features).
    """
    x = data.x_train.astype("float64")
    mean, std = x.mean(axis=0), x.std(axis=0)
    constant = std == 0
    std = np.where(constant, 1.0, std)

    def scaled(a):
        return None if a is None else ((a - mean) / std).astype("float32")

    extra = f"; {int(constant.sum())} constant feature(s) centred only" if constant.any() else ""
    note = (f"{data.name}: standardised {mean.size} feature(s) with the training split's "
            f"mean ({_figures(mean)}) and std ({_figures(std)}), applied to every split{extra}")
    return dataclasses.replace(data, x_train=scaled(data.x_train), x_val=scaled(data.x_val),
                               x_test=scaled(data.x_test), notes=(*data.notes, note))


def prepare(data, validation_split=None, standardize_features=False, seed=0):
    """Apply :func:`hold_out` (when ``validation_split``) then :func:`standardize`."""
    if validation_split:
        data = hold_out(data, validation_split, seed)
    if standardize_features:
        data = standardize(data)
    return data
