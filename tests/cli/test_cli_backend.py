"""A Keras backend that is not installed: one line naming the extra, exit code 2."""

import os
import subprocess
import sys

import pytest

from noisewise._core.backends import LIBRARIES, missing_backend



def _without(tmp_path, library):
    """Environment of a process in which ``library`` cannot be imported (as if not installed)."""
    (tmp_path / "sitecustomize.py").write_text(
        f"import sys\nsys.modules[{library!r}] = None  # find_spec gives None, import fails\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    env.pop("PYTHONSTARTUP", None)
    return env


@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_cli_names_the_extra(tmp_path, backend):
    env = _without(tmp_path, LIBRARIES[backend][0])
    env["KERAS_BACKEND"] = backend
    spec = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "circles.toml")
    p = subprocess.run([sys.executable, "-m", "noisewise.cli", "run", spec, "--seeds", "1", "--epochs", "1",
                        "--store", str(tmp_path / "s.db")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert lines == [f'noisewise: KERAS_BACKEND={backend} but {LIBRARIES[backend][0]} is not installed: '
                     f'pip install "noisewise[{LIBRARIES[backend][1]}]", or choose an installed backend: '
                     'KERAS_BACKEND=jax'], p.stderr
    assert not (tmp_path / "s.db").exists()  # nothing touched


def test_library_raises_an_import_error(tmp_path):
    env = _without(tmp_path, "torch")
    env["KERAS_BACKEND"] = "torch"
    code = ("import noisewise\ntry:\n    import keras\nexcept ModuleNotFoundError as e:\n"
            "    print(type(e).__name__, e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert p.stdout.startswith("BackendNotInstalled KERAS_BACKEND=torch but torch is not installed"), p


def test_installed_backends_pass():
    assert missing_backend("jax") is None
    assert missing_backend("not-a-backend") is None  # left to Keras' own message
