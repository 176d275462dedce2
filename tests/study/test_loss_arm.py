"""An arm's ``train.loss``: noisewise's noise-robust losses in studies, on both executors."""

import keras
import numpy as np
import pytest

from noisewise.losses import GeneralizedCrossEntropy, SymmetricCrossEntropy
from noisewise.study import Study, load_spec
from noisewise.study.config import SpecError
from noisewise.study.execute import FitExecutor, VmapExecutor
from noisewise.study.execute.prepare import make_loss, prepare_model

ARMS = [{"name": "ce"},
        {"name": "gce", "train": {"loss": "gce", "loss_options": {"q": 0.5}}},
        {"name": "sce", "train": {"loss": "symmetric_cross_entropy"}}]


def spec(arms=ARMS, model=None, **train):
    return load_spec({
        "study": {"name": "losses", "seeds": 2, "seed": 1},
        "data": {"name": "moons", "n_samples": 120, "label_noise": {"kind": "symmetric",
                                                                   "rate": 0.2}},
        "model": model or {"name": "mlp", "hidden": [8]},
        "train": {"epochs": 3, "batch_size": 16, **train}, "arms": arms})


def test_arm_losses_are_normalised_and_built_with_their_options():
    s = spec()
    assert [a.train for a in s.arms] == [
        {}, {"loss": "generalized_cross_entropy", "loss_options": {"q": 0.5}},
        {"loss": "symmetric_cross_entropy", "loss_options": {"alpha": 0.1, "beta": 1.0, "A": -4.0}}]
    models = {p.arm.name: prepare_model(p) for p in Study(s).plans(replicas=1)}
    assert models["ce"].loss == "binary_crossentropy"
    gce, sce = models["gce"].loss, models["sce"].loss
    assert isinstance(gce, GeneralizedCrossEntropy) and gce.q == 0.5 and not gce.from_logits
    assert isinstance(sce, SymmetricCrossEntropy) and (sce.alpha, sce.beta, sce.A) == (0.1, 1.0, -4)
    # Spelling the default out hashes alike.
    spelled = spec(arms=[{"name": "sce", "train": {"loss": "sce", "loss_options": {"beta": 1}}}])
    assert spelled.to_dict()["arms"] == spec(arms=[ARMS[2]]).to_dict()["arms"]


def test_fit_runs_train_with_the_arm_loss_and_match_a_direct_evaluation():
    study = Study(spec())
    results = {r.key: r for r in FitExecutor().run(study.plans())}
    assert all(r.status == "done" for r in results.values())
    formulas = {"ce": lambda p: -np.log(p), "gce": lambda p: (1 - p ** 0.5) / 0.5,
                "sce": lambda p: 0.1 * -np.log(p) + 1.0 * 4.0 * (1 - p)}
    for plan in study.plans(replicas=1):
        model = prepare_model(plan)
        x, y = plan.data.x_train, plan.data.y_train
        p1 = np.asarray(keras.ops.convert_to_numpy(model(x)), dtype="float64")[:, 0]
        p_y = np.where(y == 1, p1, 1 - p1)
        # Before training, the compiled loss is the formula on the (noisy) training labels.
        got = float(model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)["loss"])
        assert got == pytest.approx(formulas[plan.arm.name](p_y).mean(), rel=1e-4)
    first = {arm: results[(arm, 0)].history["loss"][0] for arm in ("ce", "gce", "sce")}
    assert len({round(v, 6) for v in first.values()}) == 3, first


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the vectorised executor is JAX-only")
def test_both_executors_give_the_same_losses():
    plans = Study(spec()).plans()
    fast = {r.key: r for r in VmapExecutor().run(plans)}
    slow = {r.key: r for r in FitExecutor().run(plans)}
    for key, expected in slow.items():
        for metric in ("loss", "val_loss", "accuracy"):
            np.testing.assert_allclose(fast[key].history[metric], expected.history[metric],
                                       rtol=1e-5, atol=1e-6, err_msg=f"{key} {metric}")


def test_from_logits_reaches_the_loss_and_clashing_options_are_refused():
    s = spec(arms=[ARMS[1]], from_logits=True)
    head = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    loss = make_loss({**s.train, **s.arms[0].train}, head)
    assert isinstance(loss, GeneralizedCrossEntropy) and loss.from_logits and loss.q == 0.5
    with pytest.raises(SpecError, match="train.from_logits = true, but the model's output"):
        Study(s).check()  # the built-in MLP ends with a sigmoid: probabilities read as logits
    with pytest.raises(SpecError, match="train.label_smoothing applies to the cross-entropies"):
        Study(spec(arms=[{"name": "g", "train": {"loss": "gce", "label_smoothing": 0.1}}])).check()
    with pytest.raises(SpecError, match=r"arms\[0\].train.loss_options.q: `q` must be in "
                                        r"\(0.0, 1.0\]. Received: q=2.0"):
        spec(arms=[{"name": "g", "train": {"loss": "gce", "loss_options": {"q": 2.0}}}])
    with pytest.raises(SpecError, match=r"arms\[0\].train.loss_options: give the arm's `loss`"):
        spec(arms=[{"name": "g", "train": {"loss_options": {"q": 0.5}}}])
    with pytest.raises(SpecError, match="train.loss: must be 'auto', a Keras loss name or one of"):
        spec(loss="robust")
