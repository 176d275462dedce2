"""Built-in datasets (scikit-learn and a generated sinusoid, no network): their
options, tasks and builders.
"""

import numpy as np

from noisewise.study.data.dataset import _SPLIT, _count, _fraction, _noise, _reorder, _seed, _split


# name -> {option: (default, check)}; check(name, value) returns the clean value.
BUILTIN = {
    "circles": {"n_samples": (100, _count), "noise": (0.1, _noise),
                "random_state": (1, _seed), "n_train": (30, _count)},
    "moons": {"n_samples": (200, _count), "noise": (0.2, _noise),
              "random_state": (1, _seed), "test_size": (0.5, _fraction),
              "split_seed": (0, _seed)},
    "digits": dict(_SPLIT),
    "breast_cancer": dict(_SPLIT),
    "sine": {"n_train": (30, _count), "n_test": (500, _count), "noise": (0.2, _noise),
             "random_state": (0, _seed)},
}
# The task of a built-in dataset is part of it; those not listed are classification.
BUILTIN_TASKS = {"sine": "regression"}


def _circles(n_samples, noise, random_state, n_train):
    from sklearn.datasets import make_circles

    if n_train >= n_samples:
        raise ValueError(
            f"`n_train` must be < n_samples={n_samples}. Received: n_train={n_train}"
        )
    x, y = make_circles(n_samples=n_samples, noise=noise, random_state=random_state)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def _moons(n_samples, noise, random_state, test_size, split_seed):
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=random_state)
    return _split(x, y, test_size, split_seed)


def _digits(test_size, split_seed):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images[..., None] / 16.0  # pixel values are 0..16
    return _split(x, bunch.target, test_size, split_seed)


def _breast_cancer(test_size, split_seed):
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x_train, x_test, y_train, y_test = _split(bunch.data, bunch.target, test_size, split_seed)
    # Training statistics only: the test set must not leak into preprocessing.
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


def _sine(n_train, n_test, noise, random_state):
    """Bishop's curve-fitting problem: ``y = sin(2 pi x) + noise * N(0, 1)``, ``x ~ U(0, 1)``.

    Training and test points are drawn alike (test targets noisy too), so the
    best possible test mse is ``noise ** 2``.
    """
    rng = np.random.default_rng(random_state)

    def draw(n):
        x = rng.uniform(0.0, 1.0, size=(n, 1))
        return x, np.sin(2 * np.pi * x[:, 0]) + noise * rng.standard_normal(n)

    return (*draw(n_train), *draw(n_test))


_BUILDERS = {
    "circles": _circles,
    "moons": lambda **kw: _reorder(_moons(**kw)),
    "digits": lambda **kw: _reorder(_digits(**kw)),
    "breast_cancer": lambda **kw: _reorder(_breast_cancer(**kw)),
    "sine": _sine,
}
