"""The order in which a run sees its training data: a pure function of (seed, epoch).

Every executor feeds batches in exactly this order, so the per-run ``fit``
executor and a vectorised one train on the same sequence of mini-batches, and
replica ``i`` of every arm (same seed) sees the same batches.

Example:
    >>> from noisewise.study.data_order import epoch_permutation
    >>> epoch_permutation(7, 0, 5).tolist() == epoch_permutation(7, 0, 5).tolist()
    True
"""

import numpy as np

from noisewise.random import derive_seed


def epoch_permutation(seed, epoch, n):
    """Permutation of ``range(n)`` used in epoch ``epoch`` (0-based) of a run with ``seed``."""
    return np.random.default_rng(derive_seed(seed, "data", epoch)).permutation(n)


def batches(x, y, seed, epochs, batch_size):
    """Yield ``(x_batch, y_batch)`` for ``epochs`` epochs in :func:`epoch_permutation` order.

    Each epoch is cut into ``ceil(n / batch_size)`` batches, the last one
    possibly smaller, as Keras does for arrays.
    """
    n = len(x)
    for epoch in range(epochs):
        order = epoch_permutation(seed, epoch, n)
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            yield x[index], y[index]


def steps_per_epoch(n, batch_size):
    return -(-n // batch_size)
