"""The vectorised executor: same trajectories as one fit per run, and the automatic choice."""

import os

import keras
import numpy as np
import pytest

from noisewise.study import Study, load_spec
from noisewise.study.data_order import batches, epoch_permutation
from noisewise.study.execute import FitExecutor, VmapExecutor, vmap

JAX = keras.backend.backend() == "jax"
needs_jax = pytest.mark.skipif(not JAX, reason="the vectorised executor is JAX-only")

PRE = {"type": "gaussian", "where": "pre_activation", "stddev": 0.1}
ARMS = [
    {"name": "baseline"},
    {"name": "pre", "noise": [PRE]},
    {"name": "grid", "noise": [PRE], "grid": {"noise[0].stddev": [0.3, 1.0]}},
    {"name": "gradient", "noise": [{"type": "gradient", "eta": 0.01}]},
    {"name": "weight_dropout", "noise": [{"type": "weight", "stddev": 0.05},
                                         {"type": "dropout", "where": "post_activation",
                                          "rate": 0.2}]},
]


def spec(arms=ARMS, seeds=2, epochs=7, **train):
    return load_spec({
        "study": {"name": "vmap", "seeds": seeds, "seed": 3},
        "data": {"name": "circles"},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": epochs, "batch_size": 8, "validate_every": 3, **train},
        "arms": arms,
    })


def by_key(results):
    return {r.key: r for r in results}


def run_one(plan):
    return FitExecutor().run_one(plan)


@needs_jax
def test_every_run_follows_the_fit_path_trajectory():
    plans = Study(spec()).plans()
    fast = by_key(VmapExecutor().run(plans))
    slow = by_key(FitExecutor().run(plans))
    assert set(fast) == set(slow) and len(fast) == 6 * 2
    for key, expected in slow.items():
        got = fast[key]
        assert got.status == "done" and got.error is None
        assert got.history["epoch"] == expected.history["epoch"] == list(range(1, 8))
        assert got.history["val_epoch"] == expected.history["val_epoch"] == [3, 6, 7]
        assert set(got.history) == set(expected.history)
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
            # float32 sums in another order: differences of a few ulps, not more.
            np.testing.assert_allclose(got.history[metric], expected.history[metric],
                                       rtol=1e-5, atol=1e-6, err_msg=f"{key} {metric}")
        assert got.final.keys() == expected.final.keys()
        assert got.backend == "jax" and got.versions == expected.versions


@needs_jax
def test_a_grid_shares_one_program_and_each_level_is_its_own_state():
    plans = Study(spec()).plans()
    keys = {p.arm.name: vmap.structure_key(p) for p in plans}
    assert keys["pre"] == keys["grid[stddev=0.3]"] == keys["grid[stddev=1.0]"]
    assert len({keys["baseline"], keys["pre"], keys["gradient"], keys["weight_dropout"]}) == 4
    results = by_key(VmapExecutor().run([p for p in plans if p.arm.name != "baseline"]))
    losses = [results[(arm, 0)].history["loss"] for arm in
              ("pre", "grid[stddev=0.3]", "grid[stddev=1.0]")]
    assert not np.allclose(losses[0], losses[1]) and not np.allclose(losses[1], losses[2])


@needs_jax
def test_chunking_and_padding_do_not_change_results():
    plans = [p for p in Study(spec(arms=ARMS[:2], seeds=5)).plans()]
    whole = by_key(VmapExecutor(chunk_size=8).run(plans))
    chunked = by_key(VmapExecutor(chunk_size=2).run(plans))  # chunks of 2, 2, 1 + padding
    assert set(whole) == set(chunked) and len(whole) == 10
    for key in whole:
        np.testing.assert_allclose(chunked[key].history["val_loss"],
                                   whole[key].history["val_loss"], rtol=1e-6, atol=1e-7)


@needs_jax
def test_chunks_overlap_but_results_come_in_order_and_a_failed_launch_falls_back(monkeypatch):
    # Chunk k + 1 is launched before chunk k's results are read; a chunk whose
    # launch fails is trained one fit per run, in its place in the order.
    plans = Study(spec(arms=ARMS[:3], seeds=2)).plans()
    units = vmap.chunks(plans, chunk_size=2)
    launch = vmap._Program.launch

    def failing(self, chunk, size):
        if chunk[0].arm.name == "pre":
            raise RuntimeError("launch refused")
        return launch(self, chunk, size)

    monkeypatch.setattr(vmap._Program, "launch", failing)
    fallback = FitExecutor()
    with pytest.warns(UserWarning, match="launch refused"):
        results = list(VmapExecutor(chunk_size=2, fallback=fallback).run(plans))
    assert [r.key for r in results] == [p.key for chunk, _ in units for p in chunk]
    assert all(r.status == "done" for r in results) and len(results) == 8
    expected = run_one(next(p for p in plans if p.arm.name == "pre"))
    got = by_key(results)[expected.key]
    assert got.history == expected.history  # the fit path's own result, bit for bit
    # The failed chunk (pre and grid[stddev=0.3], replica 0) trained on the
    # executor's own fallback, which compiled one model for each.
    assert len(fallback._compiled) == 2


def _open_fds():
    return sorted(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


@needs_jax
def test_worker_processes_give_the_same_results_as_one_process():
    plans = Study(spec(arms=ARMS[:3], seeds=3)).plans()  # baseline, pre, a 2-level grid
    units = vmap.chunks(plans)
    assert [len(chunk) for chunk, _ in units] == [3, 9]  # the grid shares pre's program
    parts = vmap._split(units, 2)
    assert [u for part in parts for u in part] == units and len(parts) == 2
    one = by_key(VmapExecutor(workers=1).run(plans))
    fds = _open_fds()
    two = by_key(VmapExecutor(workers=2).run(plans))  # two spawned processes
    assert _open_fds() == fds  # the workers' pipes and lifeline are closed again
    assert set(one) == set(two) and len(one) == 12
    for key, result in one.items():
        assert two[key].history == result.history, key
        assert two[key].final == result.final, key
    with pytest.raises(ValueError, match="Received: workers=0"):
        VmapExecutor(workers=0)


def test_epoch_orders_are_the_data_order_functions_and_shared_across_arms():
    executor = VmapExecutor()
    perms = executor.permutations(11, 5, 30)
    assert perms.shape == (5, 30) and perms.dtype == np.int32 and not perms.flags.writeable
    x = np.arange(30)
    fed = np.concatenate([xb for xb, _ in batches(x, x, 11, 5, 8)])  # the fit path's order
    np.testing.assert_array_equal(fed, perms.reshape(-1))
    for epoch in range(5):
        np.testing.assert_array_equal(perms[epoch], epoch_permutation(11, epoch, 30))
    assert executor.permutations(11, 5, 30) is perms  # the next arm's replica reuses it
    assert VmapExecutor().permutations(11, 5, 30) is not perms  # each executor its own
    executor.permutation_cache_bytes = perms.nbytes
    other = executor.permutations(12, 5, 30)  # evicts the older one to stay in budget
    assert list(executor._permutations) == [(12, 5, 30)] and other is not perms


NO_JIT = """
import keras

class Eager(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_jit = False

    def call(self, x):
        return x

def build(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(4, activation="relu")(Eager(name="eager")(inputs))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
"""


def test_the_choice_is_automatic_and_says_why(tmp_path):
    lines = []
    out = Study(spec(arms=ARMS[:1], seeds=2, epochs=2)).run(
        store=tmp_path / "a.db", quiet=True, log=lines.append)
    assert out.ran == 2 and len(lines) == 1
    if JAX:
        assert lines[0].startswith("vectorised executor")
    else:
        assert lines[0].startswith("one fit per run") and "needs the JAX backend" in lines[0]
        with pytest.raises(ValueError, match="executor='vmap'.*JAX"):
            Study(spec(arms=ARMS[:1])).run(store=tmp_path / "b.db", executor="vmap")

    (tmp_path / "eager_model.py").write_text(NO_JIT)
    raw = load_spec({"study": {"name": "eager", "seeds": 1}, "data": {"name": "circles"},
                     "model": {"builder": "eager_model:build"}, "train": {"epochs": 1},
                     "arms": [{"name": "baseline"}]}, base_dir=tmp_path)
    lines.clear()
    Study(raw).run(store=tmp_path / "c.db", quiet=True, log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("one fit per run")
    if JAX:
        assert "'eager'" in lines[0] and "cannot be jit-compiled" in lines[0]
    with pytest.raises(ValueError, match="`executor` must be one of"):
        Study(raw).run(store=tmp_path / "d.db", executor="fastest")
