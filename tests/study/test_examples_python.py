"""The Python examples run end to end in their quick mode, each in a fresh process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The example as a script, then a last line: on JAX and PyTorch, it never loaded TensorFlow.
RUN = ("import runpy, sys, keras; runpy.run_path(sys.argv[1], run_name='__main__'); "
       "print('tensorflow loaded:', 'tensorflow' in sys.modules "
       "and keras.backend.backend() != 'tensorflow')")


def run_example(name, tmp_path):
    env = {**os.environ, "NOISEWISE_QUICK": "1", "NOISEWISE_STORE": str(tmp_path / "s.db"),
           "NOISEWISE_WORKDIR": str(tmp_path / "work"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", RUN, str(EXAMPLES / name)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def rows(lines):
    return {line.split()[0]: line for line in lines if " n=2 " in line}


@pytest.mark.slow
def test_notebook_example(tmp_path):
    lines = run_example("notebook.py", tmp_path)
    table = rows(lines)
    assert set(table) == {"baseline", "input"}, lines
    assert lines[-1] == "tensorflow loaded: False"
    assert (tmp_path / "s.db").exists()


@pytest.mark.slow
def test_transfer_example_fine_tunes_the_model_it_saved(tmp_path):
    lines = run_example("transfer_digits.py", tmp_path)
    assert set(rows(lines)) == {"fine-tune", "input", "dropout"}, lines
    assert (tmp_path / "work" / "pretrained.keras").exists()
    assert lines[-1] == "tensorflow loaded: False"


@pytest.mark.slow
@pytest.mark.skipif(__import__("keras").backend.backend() != "jax",
                    reason="a vectorised study; the fit path of adaptive arms is tested in "
                           "tests/study/test_adaptive_arm.py on every backend")
def test_adaptive_noise_example_answers_for_both_studies(tmp_path):
    lines = run_example("adaptive_noise.py", tmp_path)
    for study in ("adaptive_circles", "adaptive_digits"):
        assert any(line.startswith(f"{study}:seeds=2") and "best fixed level on validation"
                   in line for line in lines), lines
    answers = [line for line in lines if " - fixed[stddev=" in line]
    assert len(answers) == 6 + 5, lines  # circles: 3 starts + 3 variants; digits: 3 + 2
    assert all("n=2 paired seeds" in line for line in answers), answers
    assert any("augment_adaptive - augment:" in line for line in lines), lines
    assert lines[-1] == "tensorflow loaded: False"
