"""Training options: a validation split apart from the test split, early stopping, schedules,
weight decay, class weights, label smoothing, and the same trajectories on both executors."""

import copy
import dataclasses

import keras
import numpy as np
import pytest

from noisewise.study import Study, load_spec
from noisewise.study.config import SpecError
from noisewise.study.datasets import load_dataset
from noisewise.study.execute import FitExecutor, VmapExecutor, vmap
from noisewise.study.execute.prepare import SmoothedSparseCrossentropy, class_weights, learning_rate

JAX = keras.backend.backend() == "jax"
needs_jax = pytest.mark.skipif(not JAX, reason="the vectorised executor is JAX-only")


def spec(seeds=1, data=None, arms=None, **train):
    return {"study": {"name": "options", "seeds": seeds, "seed": 3},
            "data": data or {"name": "moons"},
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"epochs": 12, "batch_size": 32, "learning_rate": 0.01, **train},
            "arms": arms or [{"name": "baseline"}]}


def poisoned(plan, rng):
    """``plan`` with test labels replaced by random classes: nothing but the
    ``test_*`` figures may change."""
    y = rng.integers(0, plan.data.num_classes, size=len(plan.data.y_test)).astype("int32")
    return dataclasses.replace(plan, data=dataclasses.replace(plan.data, y_test=y))


def _without_test(result):
    return {k: v for k, v in result.final.items() if not k.startswith("test_")}


def test_the_test_split_never_chooses_the_stopping_or_best_epoch():
    # Early stopping with a short patience stops at an epoch that depends on the
    # validation curve; if any part of it looked at the test split, random test
    # labels would move the stopping epoch, the best epoch or some curve.
    raw = spec(epochs=60, validation_split=0.25,
               early_stopping={"patience": 2, "monitor": "val_accuracy"})
    plan = Study(raw).plans()[0]
    assert plan.data.x_val is not None and len(plan.data.x_val) == 24  # 12 of each class
    fit = FitExecutor()
    clean = fit.run_one(plan)
    assert clean.status == "done" and len(clean.history["loss"]) < 60  # it stopped early
    for seed in range(3):
        spied = fit.run_one(poisoned(plan, np.random.default_rng(seed)))
        assert spied.history == clean.history
        assert _without_test(spied) == _without_test(clean)
        assert spied.final["test_accuracy"] != clean.final["test_accuracy"]


def test_test_figures_are_those_of_the_restored_best_weights():
    raw = spec(epochs=40, validation_split=0.25, early_stopping={"patience": 3})
    study = Study(raw)
    plan = study.plans()[0]
    result = FitExecutor().run_one(plan)
    val_loss = result.history["val_loss"]
    best = int(np.argmin(val_loss))  # early stopping monitors val_loss
    assert len(val_loss) == best + 1 + 3  # patience 3: stopped three epochs after the best
    # Retrain to the best epoch without early stopping: the same weights, the same test loss.
    again = copy.deepcopy(raw)
    again["train"].pop("early_stopping")
    again["train"]["epochs"] = best + 1
    short = FitExecutor().run_one(Study(again).plans()[0])
    assert short.final["test_loss"] == pytest.approx(result.final["test_loss"], rel=1e-5)
    assert short.history["val_loss"] == val_loss[:best + 1]


def test_without_a_validation_split_validation_stays_on_the_test_split():
    plan = Study(spec(epochs=3)).plans()[0]
    assert plan.data.x_val is None
    result = FitExecutor().run_one(plan)
    assert not any(k.startswith("test_") for k in result.final)
    # The val_* curves are the test figures, as before: test labels move them.
    spied = FitExecutor().run_one(poisoned(plan, np.random.default_rng(0)))
    assert spied.history["val_accuracy"] != result.history["val_accuracy"]


@needs_jax
def test_both_executors_train_every_option_alike():
    raw = spec(seeds=2, epochs=9, validate_every=3, validation_split=0.2, class_weight="balanced",
               label_smoothing=0.1, weight_decay=0.01,
               lr_schedule={"type": "cosine_decay", "decay_steps": 20},
               arms=[{"name": "baseline"},
                     {"name": "ridge", "train": {"weight_decay": 0.1, "learning_rate": 0.02},
                      "noise": [{"type": "gaussian", "where": "input", "stddev": 0.1}]}])
    plans = Study(raw).plans()
    fit = {r.key: r for r in map(FitExecutor().run_one, plans)}
    fast = {r.key: r for r in VmapExecutor().run(plans)}
    assert set(fit) == set(fast) and len(fit) == 4
    for key, result in fit.items():
        assert fast[key].history.keys() == result.history.keys()
        for name, values in result.history.items():
            np.testing.assert_allclose(fast[key].history[name], values, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{key} {name}")
        for name in ("test_loss", "test_accuracy", "best_epoch"):
            assert fast[key].final[name] == pytest.approx(result.final[name], rel=1e-5), name
    # The arm's own weight decay and learning rate changed its training.
    assert fit[("ridge", 0)].history["loss"] != fit[("baseline", 0)].history["loss"]


@needs_jax
def test_early_stopping_sends_the_study_to_the_fit_executor():
    raw = spec(validation_split=0.2, early_stopping={})
    reason = vmap.unsupported_reason(Study(raw).plans(replicas=1))
    assert reason is not None and "early_stopping" in reason
    with pytest.raises(ValueError, match="cannot run this study: train.early_stopping"):
        Study(raw).run(store=":memory:", executor="vmap", quiet=True)


def test_balanced_class_weights_are_scikit_learns_on_the_training_rows():
    from sklearn.utils.class_weight import compute_class_weight

    data = load_dataset({"name": "digits"}, validation_split=0.2)
    ours = class_weights({"class_weight": "balanced"}, data)
    theirs = compute_class_weight("balanced", classes=np.arange(10), y=data.y_train)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    table = class_weights({"class_weight": {"3": 2.5}}, data)
    assert table[3] == 2.5 and (np.delete(table, 3) == 1).all()
    with pytest.raises(ValueError, match=r"train.class_weight.11: not a class of the data"):
        class_weights({"class_weight": {"11": 2.0}}, data)


def test_class_weights_change_the_training_loss_not_validation_arithmetic():
    plain = FitExecutor().run_one(Study(spec(epochs=2, validation_split=0.2)).plans()[0])
    weighted = FitExecutor().run_one(Study(spec(epochs=2, validation_split=0.2,
                                                class_weight={"0": 3.0})).plans()[0])
    assert weighted.history["loss"][0] != plain.history["loss"][0]


def test_the_validation_split_is_stratified_and_seeded():
    full = load_dataset({"name": "digits"})
    data = load_dataset({"name": "digits"}, validation_split=0.2)
    assert len(data.x_train) + len(data.x_val) == len(full.x_train)
    np.testing.assert_array_equal(data.x_test, full.x_test)  # the test split is untouched
    share = np.bincount(data.y_val, minlength=10) / np.bincount(full.y_train, minlength=10)
    assert np.abs(share - 0.2).max() < 0.02
    again = load_dataset({"name": "digits"}, validation_split=0.2)
    np.testing.assert_array_equal(again.y_val, data.y_val)
    other = load_dataset({"name": "digits", "split_seed": 1}, validation_split=0.2)
    assert not np.array_equal(other.x_val[:20], data.x_val[:20])
    assert any("validation split: " in note for note in data.notes)


def test_standardize_is_fitted_on_the_training_rows_only():
    raw = load_dataset({"name": "breast_cancer"}, validation_split=0.25)
    data = load_dataset({"name": "breast_cancer", "standardize": True}, validation_split=0.25)
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1, atol=1e-4)
    mean, std = raw.x_train.mean(axis=0), raw.x_train.std(axis=0)
    np.testing.assert_allclose(data.x_test, (raw.x_test - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(data.x_val, (raw.x_val - mean) / std, rtol=1e-4, atol=1e-5)
    assert abs(data.x_test.mean()) > 1e-3  # the test rows were not fitted
    note = [n for n in data.notes if "standardised" in n]
    assert note and "30 feature(s)" in note[0]


def test_new_keys_enter_the_normalised_spec_only_when_not_default():
    base = load_spec(spec())
    spelled = load_spec(spec(weight_decay=0, label_smoothing=0.0, from_logits=False))
    assert spelled.spec_hash == base.spec_hash and spelled.train == base.train
    raw = spec()
    raw["data"]["standardize"] = False
    raw["data"]["task"] = "classification"
    assert load_spec(raw).spec_hash == base.spec_hash
    changed = load_spec(spec(validation_split=0.2))
    assert changed.train["validation_split"] == 0.2 and changed.spec_hash != base.spec_hash


@pytest.mark.parametrize(("train", "message"), [
    ({"early_stopping": {}}, "train.early_stopping: needs train.validation_split: without it "
                             "the validation curves are on the test split"),
    ({"validation_split": 0.2, "early_stopping": {"monitor": "val_auc"}},
     "train.early_stopping.monitor: must be one of val_loss, val_accuracy"),
    ({"lr_schedule": {"type": "cosine"}}, "train.lr_schedule.type: unknown learning-rate "
                                          "schedule 'cosine'; Keras schedules: cosine_decay"),
    ({"lr_schedule": {"type": "exponential_decay", "decay_steps": 10}},
     "train.lr_schedule.decay_rate: missing"),
    ({"lr_schedule": {"type": "cosine_decay", "decay_steps": 0}},
     "train.lr_schedule.decay_steps: `decay_steps` must be >= 1. Received: decay_steps=0"),
    ({"weight_decay": -0.1}, "train.weight_decay: `weight_decay` must be"),
    ({"weight_decay": 0.1, "optimizer_options": {"weight_decay": 0.1}}, "given twice"),
    ({"class_weight": "auto"}, 'train.class_weight: "balanced"'),
    ({"label_smoothing": 1.0}, "train.label_smoothing: `label_smoothing` must be in"),
    ({"from_logits": "yes"}, "train.from_logits: must be true"),
    ({"validation_split": 1.5}, "train.validation_split: `validation_split` must be in"),
])
def test_a_bad_option_is_refused_with_its_key_path(train, message):
    with pytest.raises(SpecError) as info:
        load_spec(spec(**train))
    assert message in str(info.value), str(info.value)


def test_an_arm_overrides_only_the_keys_that_make_sense_per_arm():
    raw = spec(arms=[{"name": "baseline"}, {"name": "r", "train": {"epochs": 3}}])
    with pytest.raises(SpecError, match=r"arms\[1\].train.epochs: unknown key; allowed keys: "
                                        "label_smoothing, learning_rate, loss, loss_options, "
                                        "weight_decay"):
        load_spec(raw)
    raw["arms"][1]["train"] = {"weight_decay": 0.01}
    loaded = load_spec(raw)
    assert loaded.arms[1].train == {"weight_decay": 0.01} and loaded.arms[0].train == {}
    assert "train" not in loaded.to_dict()["arms"][0]
    raw["arms"][1]["train"] = {}
    assert "train" not in load_spec(raw).to_dict()["arms"][1]


def test_a_schedule_starts_from_the_learning_rate():
    train = load_spec(spec(epochs=1, lr_schedule={"type": "exponential_decay", "decay_steps": 1,
                                                  "decay_rate": 0.5})).train
    schedule = learning_rate(train)
    assert isinstance(schedule, keras.optimizers.schedules.ExponentialDecay)
    assert float(schedule(0)) == pytest.approx(0.01) and float(schedule(2)) == pytest.approx(0.0025)
    assert learning_rate(load_spec(spec()).train) == 0.01


def test_smoothed_sparse_crossentropy_is_keras_categorical_on_one_hot_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=16)
    logits = rng.normal(size=(16, 4)).astype("float32")
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    ours = SmoothedSparseCrossentropy(label_smoothing=0.2, from_logits=True)(y, logits)
    theirs = keras.losses.CategoricalCrossentropy(label_smoothing=0.2, from_logits=True)(
        np.eye(4)[y], logits)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-6)
    plain = SmoothedSparseCrossentropy(label_smoothing=0.0)(y, probs)
    sparse = keras.losses.SparseCategoricalCrossentropy()(y, probs)
    assert float(plain) == pytest.approx(float(sparse), rel=1e-5)
