"""``[data] labeled`` and ``{type = "consistency"}`` arms: the spec, the data each arm
trains on, the checks before training, and a Pi-model arm trained with ``fit``."""

import copy
import inspect
import math

import keras
import numpy as np
import pytest

from noisewise.consistency import STUDY_KEYS, PiModel
from noisewise.study import SpecError, Study, load_spec
from noisewise.study.config import vocabulary
from noisewise.study.data.labeled import UNLABELED, choose
from noisewise.study.execute import FitExecutor, unsupported_reason
from noisewise.study.execute.prepare import prepare_model

NOISY = [{"type": "gaussian", "where": "input", "stddev": 0.2},
         {"type": "dropout", "where": "post_activation", "rate": 0.2}]
PI = {"type": "consistency", "weight": 5, "rampup_epochs": 3}
BASE = {
    "study": {"name": "semi", "seeds": 2, "seed": 4},
    "data": {"name": "circles", "labeled": 6},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 4, "batch_size": 8, "learning_rate": 0.01},
    "arms": [{"name": "supervised", "noise": NOISY}, {"name": "pi", "noise": [*NOISY, PI]}],
}


def spec_with(data=None, arms=None, **sections):
    raw = copy.deepcopy(BASE)
    if data is not None:
        raw["data"] = data
    if arms is not None:
        raw["arms"] = arms
    raw.update(sections)
    return raw


def test_labeled_and_consistency_are_normalised():
    spec = load_spec(spec_with())
    assert spec.to_dict()["data"]["labeled"] == 6
    assert spec.arms[1].noise[-1] == {"type": "consistency", "weight": 5.0, "rampup_epochs": 3}
    without = copy.deepcopy(BASE)
    del without["data"]["labeled"]
    assert "labeled" not in load_spec(without).to_dict()["data"]
    assert load_spec(without).spec_hash != spec.spec_hash


def test_vocabulary_matches_the_wrapper():
    params = list(inspect.signature(PiModel.__init__).parameters)
    assert list(vocabulary.CONSISTENCY_KEYS) == list(STUDY_KEYS)
    assert set(STUDY_KEYS) <= set(params)


@pytest.mark.parametrize("raw, path, message", [
    (spec_with(data={"name": "circles", "labeled": 0}), "data.labeled", "Received: labeled=0"),
    (spec_with(data={"name": "circles", "labeled": 2.5}), "data.labeled", "labeled=2.5"),
    (spec_with(data={"name": "sine", "labeled": 5}, arms=[{"name": "a"}]), "data.labeled",
     "the data's task is regression"),
    (spec_with(arms=[{"name": "pi", "noise": [{"type": "consistency"}]}]),
     "arms[0].noise[0].weight", "missing"),
    (spec_with(arms=[{"name": "pi", "noise": [{**PI, "weight": -1}]}]),
     "arms[0].noise[0].weight", "Received: weight=-1"),
    (spec_with(arms=[{"name": "pi", "noise": [{**PI, "rampup_epochs": -3}]}]),
     "arms[0].noise[0].rampup_epochs", "Received: rampup_epochs=-3"),
    (spec_with(arms=[{"name": "pi", "noise": [{**PI, "where": "input"}]}]),
     "arms[0].noise[0].where", "unknown key"),
    (spec_with(arms=[{"name": "pi", "noise": [PI, {"type": "adversarial", "eps": 0.1}]}]),
     "arms[0].noise", "one of them. Received: consistency, adversarial"),
])
def test_bad_specs_are_refused_with_their_key_path(raw, path, message):
    with pytest.raises(SpecError) as err:
        load_spec(raw)
    assert path in str(err.value) and message in str(err.value), str(err.value)


@pytest.mark.parametrize("labeled, message", [
    (1, "at least the number of classes in the training rows (2)"),
    (30, "below the number of training rows (30)"),
])
def test_labeled_is_checked_against_the_data_before_training(labeled, message):
    study = Study(spec_with(data={"name": "circles", "labeled": labeled}))
    with pytest.raises(SpecError, match=r"data.labeled") as err:
        study.check()
    assert message in str(err.value) and f"Received: labeled={labeled}" in str(err.value)


def test_consistency_without_training_noise_is_refused_at_preflight():
    for noise in ([PI], [{"type": "gaussian", "where": "input", "stddev": 0.0}, PI]):
        study = Study(spec_with(arms=[{"name": "plain"}, {"name": "pi", "noise": noise}]))
        with pytest.raises(SpecError) as err:
            study.check()
        text = str(err.value)
        assert "arm 'pi'" in text and f"noise[{len(noise) - 1}] (consistency)" in text, text
        assert "stochastic in training" in text and "weight = 5.0" in text, text


def test_labeled_rows_are_stratified_and_one_draw_per_study():
    y = np.repeat(np.arange(4), [100, 50, 30, 4])
    rows = choose(y, 20, 4, seed=1)
    counts = np.bincount(y[rows], minlength=4)
    assert counts.sum() == 20 and (counts >= 1).all()
    np.testing.assert_array_equal(counts, [11, 5, 3, 1])  # 20 * share, remainders by size
    np.testing.assert_array_equal(rows, choose(y, 20, 4, seed=1))
    assert not np.array_equal(rows, choose(y, 20, 4, seed=2))

    data = Study(spec_with()).data
    assert (data.y_train != UNLABELED).sum() == 6
    assert np.bincount(data.y_train[data.y_train >= 0]).tolist() == [3, 3]
    assert (data.y_test >= 0).all()  # test labels are all kept
    other = Study(spec_with(study={"name": "semi", "seeds": 2, "seed": 5})).data
    assert not np.array_equal(data.y_train, other.y_train)


def test_validation_rows_keep_their_labels():
    raw = spec_with(data={"name": "moons", "labeled": 10})
    raw["train"]["validation_split"] = 0.2
    data = Study(raw).data
    assert (data.y_val >= 0).all() and (data.y_train != UNLABELED).sum() == 10


def test_each_arm_trains_on_its_rows_and_seeds_stay_paired():
    study = Study(spec_with())
    plans = study.plans()
    full = study.data
    by_arm = {}
    for plan in plans:
        by_arm.setdefault(plan.arm.name, []).append(plan)
    for plan in by_arm["supervised"]:
        assert len(plan.data.x_train) == 6 and (plan.data.y_train >= 0).all()
        assert plan.data is by_arm["supervised"][0].data  # one copy, every replica
        labeled = full.y_train != UNLABELED
        np.testing.assert_array_equal(plan.data.x_train, full.x_train[labeled])
        np.testing.assert_array_equal(plan.data.y_train, full.y_train[labeled])
    for plan in by_arm["pi"]:
        assert plan.data is full
    assert [p.seed for p in by_arm["pi"]] == [p.seed for p in by_arm["supervised"]]
    np.testing.assert_array_equal(by_arm["pi"][0].data.x_test, by_arm["supervised"][0].data.x_test)
    if keras.backend.backend() == "jax":  # elsewhere the backend alone rules vmap out
        assert "consistency" in unsupported_reason(plans)
        assert unsupported_reason(by_arm["supervised"]) is None


def test_pi_arm_trains_with_fit():
    study = Study(spec_with())
    plan = next(p for p in study.plans() if p.arm.name == "pi")
    model = prepare_model(plan)
    assert isinstance(model, PiModel) and (model.weight, model.rampup_epochs) == (5.0, 3)
    result = FitExecutor().run_one(plan)
    assert result.status == "done", result.error
    assert len(result.history["loss"]) == 4 and math.isfinite(result.final["val_accuracy"])
    supervised = FitExecutor().run_one(study.plans()[0])
    assert supervised.status == "done", supervised.error
    # The supervised arm's training accuracy counts its labeled rows: 6 rows, k/6.
    assert round(supervised.final["accuracy"] * 6, 4) == round(supervised.final["accuracy"] * 6)


def test_pi_arm_model_weights_follow_the_ramp_in_fit():
    study = Study(spec_with())
    plan = next(p for p in study.plans() if p.arm.name == "pi")
    executor = FitExecutor()
    _, trained = executor._fit(plan, None)
    # Epoch 3 (from 0) of 4 began with w(3) = 5 exp(-5 (1 - 3/3)^2) = 5.
    assert float(keras.ops.convert_to_numpy(trained.consistency_weight)) == pytest.approx(5.0)
    model = executor.model_for(plan)  # the cached compiled model, reset for the next run
    assert model is trained
    assert float(keras.ops.convert_to_numpy(model.consistency_weight)) == pytest.approx(
        5.0 * math.exp(-5.0))


def test_balanced_class_weights_count_the_labeled_rows_only():
    from noisewise.study.execute.prepare import class_weights

    study = Study(spec_with(train={**BASE["train"], "class_weight": "balanced"}))
    plan = next(p for p in study.plans() if p.arm.name == "pi")
    y = np.asarray(plan.data.y_train)
    assert (y == UNLABELED).any()
    labeled = y[y >= 0]
    counts = np.bincount(labeled, minlength=2)
    np.testing.assert_allclose(class_weights(plan.train, plan.data),
                               len(labeled) / (2 * counts), rtol=1e-6)
    result = FitExecutor().run_one(plan)
    assert result.status == "done", result.error


def test_the_audit_checks_the_labeled_rows_only():
    study = Study(spec_with(audit={"checks": ["duplicate", "imbalance"]}))
    result = study.audit()
    y = np.asarray(study.data.y_train)
    assert (y == UNLABELED).sum() > 0
    assert result.splits["train"] == int((y >= 0).sum()) == BASE["data"]["labeled"]
