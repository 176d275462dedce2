"""examples/pi_model.py runs end to end in its quick mode and answers for both label counts."""

import keras
import pytest
from test_examples_python import run_example


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="one recipe run is enough; the Pi-model arm itself is tested on every "
                           "backend in tests/study/test_consistency_arm.py")
def test_pi_model_recipe_answers_for_50_and_100_labels(tmp_path):
    lines = run_example("pi_model.py", tmp_path)
    for labeled in (50, 100):
        start = next(i for i, line in enumerate(lines)
                     if line.startswith(f"pi_model_{labeled}:seeds=2,epochs=12: {labeled} labeled"))
        supervised, pi, diff = lines[start + 1:start + 4]
        assert supervised.split()[0] == "supervised" and pi.split()[0] == "pi", lines
        for row in (supervised, pi):
            mean, low, high = (float(v.strip("[],")) for v in row.split()[1:4])
            assert 0.0 <= low <= mean <= high <= 1.0, row  # a 95% interval inside [0, 1]
            assert mean > 0.3, row  # far above chance (0.1) even after 12 epochs
        assert diff.startswith("  pi - supervised: ") and "n=2 paired seeds" in diff, diff
    assert lines[-1] == "tensorflow loaded: False"
    assert (tmp_path / "s.db").exists()
