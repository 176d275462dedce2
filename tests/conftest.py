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


def raw(path, sql):
    """Rows of ``sql`` on a store opened read-only by plain sqlite3 (what is really on disk)."""
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def run_cli(capsys, *args):
    """``noisewise ARGS`` in this process: (exit code, stdout, stderr)."""
    from noisewise.cli import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err

