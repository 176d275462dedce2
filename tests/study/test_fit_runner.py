"""The per-run fit executor: data order, validation schedule, results, compiled-model reuse."""

import keras
import numpy as np
import pytest

from noisewise.study import Study, load_spec
from noisewise.study.data_order import batches, epoch_permutation
from noisewise.study.execute import FitExecutor, validated_epochs

SPEC = {
    "study": {"name": "fit", "seeds": 2, "seed": 3},
    "data": {"name": "circles"},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 7, "validate_every": 3, "batch_size": 8, "learning_rate": 0.01},
    "arms": [
        {"name": "noisy", "noise": [
            {"type": "gaussian", "where": "pre_activation", "stddev": 0.3},
            {"type": "dropout", "where": "post_activation", "rate": 0.2},
            {"type": "weight", "stddev": 0.02},
            {"type": "gradient", "eta": 0.01},
        ]},
    ],
}


@pytest.fixture(scope="module")
def plans():
    return Study(load_spec(SPEC)).plans()


@pytest.fixture(scope="module")
def executor():
    return FitExecutor()


@pytest.fixture(scope="module")
def results(plans, executor):
    return [executor.run_one(plan) for plan in plans]


def test_epoch_permutation_is_a_pure_function_of_seed_and_epoch():
    p = epoch_permutation(11, 4, 50)
    assert sorted(p.tolist()) == list(range(50))
    np.testing.assert_array_equal(p, epoch_permutation(11, 4, 50))
    assert not np.array_equal(p, epoch_permutation(11, 5, 50))
    assert not np.array_equal(p, epoch_permutation(12, 4, 50))


def test_batches_follow_the_permutation_and_cut_epochs_like_keras():
    x = np.arange(10)[:, None] * 1.0
    y = np.arange(10)
    got = list(batches(x, y, seed=2, epochs=2, batch_size=4))
    assert [len(b[1]) for b in got] == [4, 4, 2, 4, 4, 2]
    order = np.concatenate([epoch_permutation(2, 0, 10), epoch_permutation(2, 1, 10)])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in got]), order)


def test_validated_epochs_include_the_last():
    assert validated_epochs(7, 3) == [3, 6, 7]
    assert validated_epochs(6, 3) == [3, 6]
    assert validated_epochs(2, 5) == [2]


def test_run_result_has_curves_final_metrics_and_provenance(results, plans):
    r = results[0]
    assert r.status == "done", r.error
    assert (r.arm.name, r.replica, r.seed) == ("noisy", 0, plans[0].seed)
    assert r.history["epoch"] == list(range(1, 8))
    assert r.history["val_epoch"] == [3, 6, 7]
    assert len(r.history["loss"]) == len(r.history["accuracy"]) == 7
    assert len(r.history["val_loss"]) == len(r.history["val_accuracy"]) == 3
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert r.final[key] == r.history[key][-1]
    assert r.final["best_epoch"] in (3, 6, 7)
    assert r.final["best_val_accuracy"] == max(r.history["val_accuracy"])
    assert r.backend == keras.backend.backend()
    assert {"python", "keras", "numpy", "noisewise", r.backend} <= set(r.versions)
    assert r.wall_s > 0


def test_replicas_differ(results):
    assert results[0].history["loss"] != results[1].history["loss"]


def test_reused_compiled_model_trains_exactly_like_a_fresh_one(results, plans):
    # results[1] ran on the compiled model of replica 0 with its state replaced;
    # here replica 1 runs from scratch, on an executor with no compiled model:
    # the curves must match bit for bit.
    cold = FitExecutor().run_one(plans[1])
    assert cold.history == results[1].history


def test_compiled_models_belong_to_their_executor(plans, executor):
    one, other = FitExecutor(), FitExecutor()
    model = one.model_for(plans[0])
    assert one.model_for(plans[1]) is model  # same structure: compiled once
    assert other.model_for(plans[0]) is not model  # another executor compiles its own
    one.clear_cache()
    assert one.model_for(plans[0]) is not model


def test_fit_sees_the_data_in_epoch_permutation_order(plans, results, executor):
    """Training epoch by epoch on explicitly permuted arrays gives the same losses."""
    plan, result = plans[0], results[0]
    epochs, bs = plan.train["epochs"], plan.train["batch_size"]
    model = executor.model_for(plan)  # replica 0's initial state (compiled model reused)
    x, y = plan.data.x_train, plan.data.y_train
    losses = []
    for epoch in range(epochs):
        order = epoch_permutation(plan.seed, epoch, len(x))
        h = model.fit(x[order], y[order], batch_size=bs, shuffle=False, epochs=1, verbose=0)
        losses.append(h.history["loss"][0])
    np.testing.assert_allclose(losses, result.history["loss"], rtol=1e-6)


def test_a_failing_run_is_reported_not_raised(tmp_path):
    (tmp_path / "broken.py").write_text(
        "def build(input_shape, num_classes):\n    raise RuntimeError('no model today')\n")
    spec = load_spec({**SPEC, "model": {"builder": "broken:build"}}, base_dir=tmp_path)
    result = FitExecutor().run_one(Study(spec).plans()[0])
    assert result.status == "failed"
    assert "RuntimeError: no model today" in result.error
    assert result.history == {} and result.final == {}


def test_progress_callback_sees_every_epoch(plans, executor):
    seen = []
    executor.run_one(plans[0], on_epoch=seen.append)
    assert seen == list(range(1, plans[0].train["epochs"] + 1))
