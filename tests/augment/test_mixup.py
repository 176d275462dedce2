"""MixupModel: the mixed batch and loss equal the formula, the draws follow the seed,
it trains on every backend, and a study arm ``{type = "mixup"}`` trains with it."""

import keras
import numpy as np
import pytest
from keras import ops

from noisewise.augment.mixup import MixupModel
from noisewise.study import SpecError, Study, load_spec
from noisewise.study.execute import FitExecutor

JAX = keras.backend.backend() == "jax"


def _net(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])


def _data(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), (np.arange(n) % 3).astype("int32")


def test_the_loss_is_the_mixed_cross_entropy_of_the_mixed_batch():
    x, y = _data()
    mix = MixupModel(_net(), alpha=0.4, seed=3)
    mix.compile(loss="sparse_categorical_crossentropy")
    mix(x)
    state = ops.convert_to_numpy(mix.seed_generator.state.value)
    mixed, lam, perm = mix.mix(ops.convert_to_tensor(x))
    mixed, lam, perm = (ops.convert_to_numpy(v) for v in (mixed, lam, perm))
    assert sorted(perm.tolist()) == list(range(len(x))) and 0 < lam < 1
    np.testing.assert_allclose(mixed, lam * x + (1 - lam) * x[perm], rtol=1e-6, atol=1e-6)
    # The same draws again from the same seed state, then the loss by hand:
    # cross-entropy against the mixed one-hot labels.
    mix.seed_generator.state.assign(state)
    loss = float(ops.convert_to_numpy(mix.compute_loss(x, y, mix(x), training=True)))
    p = ops.convert_to_numpy(mix.model(mixed))
    onehot = np.eye(3)[y]
    target = lam * onehot + (1 - lam) * onehot[perm]
    assert loss == pytest.approx(float(-(target * np.log(p)).sum(axis=1).mean()), rel=1e-5)
    # evaluation is the plain loss of the wrapped model
    plain = float(ops.convert_to_numpy(mix.compute_loss(x, y, mix(x), training=False)))
    assert plain == pytest.approx(float(-np.log(p_plain(mix, x)[np.arange(len(y)), y]).mean()),
                                  rel=1e-5)


def p_plain(mix, x):
    return ops.convert_to_numpy(mix.model(x))


def test_same_seed_same_draws_and_it_trains():
    x, y = _data(64)
    draws = []
    for _ in range(2):
        mix = MixupModel(_net(), alpha=0.2, seed=5)
        mix.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
        history = mix.fit(x, y, epochs=8, batch_size=16, verbose=0, shuffle=False)
        draws.append([float(v) for v in history.history["loss"]])
    assert draws[0] == pytest.approx(draws[1], rel=1e-6)
    assert draws[0][-1] < draws[0][0]
    other = MixupModel(_net(), alpha=0.2, seed=6)
    other.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    loss = other.fit(x, y, epochs=8, batch_size=16, verbose=0, shuffle=False).history["loss"]
    assert [float(v) for v in loss] != pytest.approx(draws[0], rel=1e-6)


@pytest.mark.parametrize("alpha", [0, -1, float("nan")])
def test_bad_alpha_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        MixupModel(_net(), alpha=alpha)


def test_config_round_trips():
    mix = MixupModel(_net(), alpha=0.3, seed=2)
    again = MixupModel.from_config(mix.get_config())
    assert (again.alpha, again.seed) == (0.3, 2)


SPEC = {"study": {"name": "mix", "seeds": 1, "seed": 2}, "data": {"name": "circles"},
        "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 3, "batch_size": 16},
        "arms": [{"name": "baseline"}, {"name": "mixup", "noise": [{"type": "mixup", "alpha": 0.2}]}]}


def test_a_mixup_arm_trains_wrapped_and_bad_entries_are_refused():
    study = Study(load_spec(SPEC))
    plan = study.plans()[1]
    result = FitExecutor().run_one(plan)
    assert result.status == "done", result.error
    assert len(result.history["loss"]) == 3
    with pytest.raises(SpecError, match=r"arms\[0\]\.noise\[0\]\.alpha: `alpha` must be in \(0\.0, inf\]"):
        load_spec({**SPEC, "arms": [{"name": "m", "noise": [{"type": "mixup", "alpha": 0}]}]})
    with pytest.raises(SpecError, match="one of them"):
        load_spec({**SPEC, "arms": [{"name": "m", "noise": [
            {"type": "mixup", "alpha": 0.2}, {"type": "adversarial", "eps": 0.1}]}]})


@pytest.mark.skipif(not JAX, reason="the vectorised executor is JAX-only")
def test_the_vectorised_executor_trains_mixup_as_fit_does():
    from noisewise.study.execute import VmapExecutor

    plans = Study(load_spec(SPEC)).plans()
    slow = {r.key: r.history["loss"] for r in FitExecutor().run(plans)}
    fast = {r.key: r.history["loss"] for r in VmapExecutor().run(plans)}
    for key, losses in slow.items():
        assert fast[key] == pytest.approx(losses, rel=1e-4), key
