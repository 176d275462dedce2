"""Shared test setup: the suite runs once per backend (KERAS_BACKEND=jax|torch|tensorflow)."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.fixture
def backend():
    return BACKEND


def pytest_report_header(config):
    return f"keras backend: {BACKEND} (keras {keras.__version__})"
