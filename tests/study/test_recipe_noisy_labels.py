"""examples/noisy_labels.py runs end to end in its quick mode and answers from the store."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "noisy_labels.py"
ARMS = ("cross_entropy", "label_smoothing", "mixup", "gce", "sce", "input_noise")


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="a vectorised study; the losses' fit path is tested in "
                           "tests/study/test_loss_arm.py on every backend")
def test_noisy_labels_recipe_quick_mode(tmp_path):
    store = tmp_path / "s.db"
    env = {**os.environ, "NOISEWISE_STORE": str(store), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(EXAMPLE), "--quick"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    table = {(line.split()[0], line.split()[1]): line for line in lines[1:-1]}
    assert set(table) == {(rate, arm) for rate in ("0", "0.4") for arm in ARMS}, lines
    for (_rate, arm), line in table.items():
        accuracy = float(line.split()[2])
        assert 0.0 < accuracy <= 1.0, line
        assert ("(reference)" in line) == (arm == "cross_entropy"), line
        if arm != "cross_entropy":
            assert " n=2, better on " in line, line
    assert lines[-1].startswith("(2 seeds, 5 epochs;"), lines

    from noisewise.study import load

    noisy = load(store, "noisy_labels_rate0.4:seeds=2,epochs=5")
    assert noisy.spec["data"]["label_noise"] == {"kind": "symmetric", "rate": 0.4}
    clean = load(store, "noisy_labels_rate0:seeds=2,epochs=5")
    assert "label_noise" not in clean.spec["data"]
    assert {r["arm"] for r in noisy.runs if r["status"] == "done"} == set(ARMS)
