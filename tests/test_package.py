"""The package as a user meets it: the default backend, the flat API, saved models."""

import os
import subprocess
import sys

import numpy as np
import pytest

import noisewise


def _python(code, backend=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    if backend:
        env["KERAS_BACKEND"] = backend
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_jax_is_chosen_when_the_user_chose_nothing_and_the_choice_is_kept_otherwise():
    code = "import noisewise, keras; print(keras.backend.backend())"
    assert _python(code) == "jax"
    assert _python(code, backend="torch") == "torch"


def test_public_names_resolve():
    for name in noisewise.__all__:
        assert getattr(noisewise, name) is not None, name
    with pytest.raises(AttributeError, match="no_such_name"):
        noisewise.no_such_name  # noqa: B018


@pytest.mark.slow
def test_a_saved_model_loads_in_a_fresh_process_after_a_plain_import(tmp_path, backend):
    import keras

    model = keras.Sequential([
        keras.Input((3,)),
        noisewise.GaussianNoise(2.0, clip=(-1, 1), seed=1),
        noisewise.WeightNoise(keras.layers.Dense(2), stddev=0.1, seed=2),
    ])
    model.compile(optimizer=noisewise.GradientNoise("adam", eta=0.01, seed=3), loss="mse")
    model.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    expected = model.predict(np.ones((1, 3)), verbose=0)[0, 0]
    code = ("import noisewise, keras, numpy as np; "
            f"m = keras.models.load_model({str(path)!r}); "
            "print(type(m.optimizer).__name__, float(m.predict(np.ones((1, 3)), verbose=0)[0, 0]))")
    name, value = _python(code, backend=backend).split()
    assert name == "GradientNoise"
    assert float(value) == pytest.approx(float(expected), abs=1e-6)
