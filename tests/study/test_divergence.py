"""Divergence is a status: runs whose curves become NaN or infinite are "diverged", not "done"."""

import math

import keras
import numpy as np
import pytest

from noisewise.study import Study, load_spec
from noisewise.study.execute import FitExecutor, VmapExecutor, classify

NAN, INF = math.nan, math.inf
JAX = keras.backend.backend() == "jax"
needs_jax = pytest.mark.skipif(not JAX, reason="the vectorised executor is JAX-only")


def history(epochs, val_epochs, **curves):
    return {**curves, "epoch": list(epochs), "val_epoch": list(val_epochs)}


def test_all_finite_curves_are_done():
    h = history([1, 2, 3], [2, 3], loss=[0.7, 0.6, 0.5], accuracy=[0.5, 0.6, 0.7],
                val_loss=[0.6, 0.55], val_accuracy=[0.6, 0.65])
    assert classify(h) == ("done", None, None)
    assert classify({"epoch": [], "val_epoch": []}) == ("done", None, None)


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_a_non_finite_loss_diverges_at_its_epoch(bad):
    h = history([1, 2, 3, 4], [2, 4], loss=[0.7, 0.6, bad, bad], accuracy=[0.5, 0.6, 0.5, 0.5],
                val_loss=[0.6, bad], val_accuracy=[0.6, 0.5])
    status, epoch, error = classify(h)
    assert (status, epoch) == ("diverged", 3)
    assert error == f"diverged at epoch 3: loss is {bad} (metrics from then on are meaningless)"


def test_a_validation_curve_alone_diverges_at_its_validated_epoch():
    # Training finite throughout; val_accuracy broken at the second validation, epoch 4.
    h = history([1, 2, 3, 4, 5], [2, 4, 5], loss=[0.7, 0.6, 0.5, 0.4, 0.3],
                val_loss=[0.6, 0.5, 0.4], val_accuracy=[0.6, NAN, NAN])
    status, epoch, error = classify(h)
    assert (status, epoch) == ("diverged", 4)
    assert error.startswith("diverged at epoch 4: val_accuracy is nan")


def test_the_earliest_epoch_wins_and_the_loss_names_a_tie():
    # val_loss breaks at epoch 2, before the training loss (epoch 3): epoch 2.
    h = history([1, 2, 3], [2, 3], loss=[0.7, 0.6, NAN], val_loss=[INF, NAN])
    assert classify(h)[:2] == ("diverged", 2)
    assert "val_loss is inf" in classify(h)[2]
    # accuracy and loss break together: the message names the loss.
    h = history([1, 2], [], accuracy=[0.5, NAN], loss=[0.7, NAN])
    assert classify(h) == (
        "diverged", 2, "diverged at epoch 2: loss is nan (metrics from then on are meaningless)")


def spec(arms, epochs=4, seeds=2, **train):
    return load_spec({
        "study": {"name": "diverging", "seeds": seeds, "seed": 1},
        "data": {"name": "circles"},
        "model": {"name": "mlp", "hidden": [16], **train.pop("model", {})},
        "train": {"epochs": epochs, "batch_size": 8, "validate_every": 2, **train},
        "arms": arms,
    })


# Weights perturbed by 1e30 overflow float32 in the first forward pass: every
# replica of this arm diverges in epoch 1 on every backend (on PyTorch the fit
# raises on NaN probabilities instead of returning a NaN loss).
BLOWN = {"name": "blown", "noise": [{"type": "weight", "stddev": 1e30}]}
MIXED = [{"name": "baseline"}, BLOWN]


def test_a_diverging_arm_is_diverged_and_the_other_arm_done():
    results = list(FitExecutor().run(Study(spec(MIXED)).plans()))
    by_arm = {}
    for r in results:
        by_arm.setdefault(r.arm.name, []).append(r)
    for r in by_arm["baseline"]:
        assert (r.status, r.diverged_epoch, r.error) == ("done", None, None)
        assert len(r.history["loss"]) == 4 and math.isfinite(r.final["loss"])
    for r in by_arm["blown"]:
        assert (r.status, r.diverged_epoch) == ("diverged", 1), r.error
        assert r.error.startswith("diverged at epoch 1: ") and "\n" not in r.error
        assert len(r.history.get("loss", [])) <= 1  # stopped, not trained for 4 epochs
        assert r.history["epoch"] == list(range(1, len(r.history.get("loss", [])) + 1))


# Exponential hidden units and Adam at 10 overflow after a few epochs (JAX,
# seed 1: replicas 0, 1, 2 at epochs 3, 3, 4), which shows the epoch number is
# the one the curves break at and that a fit stops there.
LATE = dict(epochs=8, seeds=3, optimizer="adam", learning_rate=10.0,
            model={"activation": "exponential"})


@needs_jax
def test_fit_stops_at_the_diverged_epoch_and_vmap_agrees():
    plans = Study(spec([{"name": "late"}, BLOWN], **LATE)).plans()
    fit = {r.key: r for r in FitExecutor().run(plans)}
    vmap = {r.key: r for r in VmapExecutor().run(plans)}
    assert set(fit) == set(vmap) and len(fit) == 6
    late = [fit[("late", i)] for i in range(3)]
    assert [r.diverged_epoch for r in late] == [3, 3, 4]
    for r in late:
        assert r.status == "diverged"
        assert len(r.history["loss"]) == r.diverged_epoch  # stopped after that epoch
        assert math.isnan(r.history["loss"][-1])
        assert all(e <= r.diverged_epoch for e in r.history["val_epoch"])
    for key, expected in fit.items():
        got = vmap[key]
        assert (got.status, got.diverged_epoch, got.error) == (
            expected.status, expected.diverged_epoch, expected.error), key
        # The vectorised run trained all 8 epochs; it is cut where fit stopped.
        assert got.history.keys() == expected.history.keys(), key
        for name, values in expected.history.items():
            np.testing.assert_allclose(got.history[name], values, rtol=1e-5, equal_nan=True,
                                       err_msg=f"{key} {name}")
    assert [fit[("blown", i)].diverged_epoch for i in range(3)] == [1, 1, 1]


@needs_jax
def test_vmap_keeps_a_healthy_arm_done_next_to_a_diverged_one():
    plans = Study(spec(MIXED)).plans()
    got = {r.key: r for r in VmapExecutor().run(plans)}
    for i in range(2):
        assert (got[("baseline", i)].status, got[("baseline", i)].diverged_epoch) == ("done", None)
        assert len(got[("baseline", i)].history["loss"]) == 4
        blown = got[("blown", i)]
        assert (blown.status, blown.diverged_epoch) == ("diverged", 1)
        assert len(blown.history["loss"]) == 1 and blown.history["val_epoch"] == []
