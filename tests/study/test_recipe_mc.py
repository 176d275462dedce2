"""examples/mc_uncertainty.py runs end to end in its quick mode, in a fresh process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mc_uncertainty.py"
# The example as a script, then a last line: on JAX, it never loaded TensorFlow.
RUN = ("import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__'); "
       "print('tensorflow loaded:', 'tensorflow' in sys.modules)")


@pytest.mark.slow
@pytest.mark.skipif(__import__("keras").backend.backend() != "jax",
                    reason="a vectorised study; the fit path of predict tables is tested in "
                           "tests/study/test_uncertainty_arm.py on every backend")
def test_mc_uncertainty_example_answers_every_metric_for_every_prediction(tmp_path):
    env = {**os.environ, "NOISEWISE_QUICK": "1", "NOISEWISE_STORE": str(tmp_path / "s.db"),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", RUN, str(EXAMPLE)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("mc_uncertainty") and ", 2 seeds," in lines[0], lines
    headers = [line for line in lines if line.endswith("is better):")]
    assert [h.split()[0] for h in headers] == ["accuracy", "ece", "nll", "brier", "aurc"], lines
    split = next(i for i, line in enumerate(lines) if line.startswith("each arm's"))
    rows = [line.split() for line in lines[:split] if line.startswith("  ")]
    own = lines[split + 1:-1]
    assert [line.split()[0] for line in own] == ["dropout", "noise", "tta"], lines
    assert all(line.endswith("(n=2)") and "aurc " in line for line in own), own
    assert len(rows) == 5 * 4, lines
    assert [r[0] for r in rows[:4]] == ["deterministic", "mc_dropout", "mc_noise", "tta"]
    paired = [line for line in lines if " - deterministic: " in line]
    assert len(paired) == 5 * 3 and all("n=2 paired seeds" in line for line in paired), paired
    for r in rows:  # mean [low, high]: a finite estimate inside its interval
        mean, low, high = float(r[1]), float(r[2].strip("[,")), float(r[3].strip("],"))
        assert low <= mean <= high, r
    gaps = next(line for line in lines if line.startswith("accuracy - confidence"))
    values = [float(v) for part in gaps.rsplit("): ", 1)[1].split(", ")
              for v in part.split()[1::2]]
    assert len(values) == 6 and all(-1 <= v <= 1 for v in values), gaps
    assert lines[-1] == "tensorflow loaded: False"
    assert (tmp_path / "s.db").exists()
