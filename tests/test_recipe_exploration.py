"""The exploration recipe (examples/exploration_rl.py): its CartPole, its answers, its quick mode."""

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax",
                                reason="the recipe trains its seeds under jax.vmap (JAX only)")

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "exploration_rl.py"


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("exploration_rl", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cartpole_first_step_matches_gymnasium(recipe):
    # From rest, pushing right (F = 10 N): temp = F / (m_c + m_p) = 9.0909,
    # theta_acc = -temp / (l (4/3 - m_p / (m_c + m_p))) = -14.634, x_acc = temp - m_p l
    # theta_acc / (m_c + m_p) = 9.7561; one Euler step of 0.02 s gives gymnasium's
    # CartPole-v1 state (0, 0.19512196, 0, -0.29268292).
    env = recipe.CartPole([0, 1])
    env.state[:] = 0.0
    state, terminated, truncated = env.step(np.array([1, 0]))
    np.testing.assert_allclose(state[0], [0.0, 0.19512196, 0.0, -0.29268292], rtol=1e-6)
    np.testing.assert_allclose(state[1], [0.0, -0.19512196, 0.0, 0.29268292], rtol=1e-6)
    assert not terminated.any() and not truncated.any()


def test_cartpole_limits_and_cap(recipe):
    env = recipe.CartPole([0, 1, 2])
    limit = 12 * 2 * math.pi / 360
    env.state[:] = 0.0
    env.state[0, 0] = 2.4 + 1e-3            # past the track's end
    env.state[1, 2] = limit + 1e-3          # pole past 12 degrees
    env.steps[2] = 499                      # the 500th step: truncated, not terminated
    _, terminated, truncated = env.step(np.array([1, 1, 1]))
    assert terminated.tolist() == [True, True, False]
    assert truncated.tolist() == [False, False, True]
    env.reset(np.array([True, False, False]))
    assert np.all(np.abs(env.state[0]) <= 0.05) and env.steps.tolist() == [0, 1, 500]


def test_cartpole_starts_are_seeded_per_environment(recipe):
    a, b = recipe.CartPole([3, 4]), recipe.CartPole([3, 5])
    np.testing.assert_array_equal(a.state[0], b.state[0])
    assert not np.array_equal(a.state[1], b.state[1])


def test_episodes_to_solve_and_censoring(recipe):
    assert recipe.episodes_to_solve([200.0] * 20) == 20
    assert recipe.episodes_to_solve([10.0] * 19 + [200.0] * 20) == 39
    assert recipe.episodes_to_solve([200.0] * 19) is None  # fewer than 20 episodes
    assert recipe.episodes_to_solve([194.0] * 50) is None
    # Censored (None) is slower than any solved run; two censored runs tie.
    assert recipe.faster_than([10, None, None, 30], [20, 5, None, 30]) == [1, -1, 0, 0]
    assert recipe.solved_text([12, None], [40, 77]) == "12 >77"


def test_return_curve_averages_the_episodes_ending_in_each_window(recipe):
    out = recipe.curve([[10.0, 20.0, 30.0]], [[5, 8, 15]], np.array([0, 10, 20, 30]))
    np.testing.assert_array_equal(out[0, :2], [15.0, 30.0])
    assert np.isnan(out[0, 2])


@pytest.mark.slow
def test_quick_mode_answers_for_every_method(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KERAS_BACKEND": "jax",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(RECIPE), "--quick", "--out", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "CartPole-v1 DQN, 2 paired seeds, 1500 environment steps per run", lines
    for method in ("epsilon_greedy", "noisy_dense", "parameter_noise"):
        solved = [line for line in lines if line.strip().startswith(f"{method}: solved")]
        greedy = [line for line in lines if line.strip().startswith(f"{method}: ") and "wall" in line]
        assert len(solved) == 1 and len(greedy) == 1, lines
        if method != "epsilon_greedy":
            # Two pairs: no t-test or Wilcoxon p-value is honest, and none is shown.
            assert "n=2 p_t=- p_w=-" in greedy[0], greedy
    assert sum(line.split()[0].isdigit() for line in lines) == 10  # the curve's 10 windows
    if importlib.util.find_spec("matplotlib") is not None:  # the figure is optional
        assert (tmp_path / "exploration_returns.png").stat().st_size > 0
