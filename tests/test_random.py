"""Seeds: derivation, independence of neighbouring seeds, and reproducibility."""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy

import noisewise
from noisewise.random import MAX_SEED, child_seeds, derive_seed, layer_seed, replica_seed


def test_derive_seed_is_a_pure_function_of_root_and_path():
    assert derive_seed(7, "arm", 3) == derive_seed(7, "arm", 3)
    seeds = {derive_seed(7, "arm", i) for i in range(1000)}
    assert len(seeds) == 1000  # 1000 draws from 2**31 values: a collision has p ~ 2e-4
    assert all(0 <= s < MAX_SEED for s in seeds)
    assert derive_seed(7, "a") != derive_seed(8, "a")
    assert derive_seed(7, "a") != derive_seed(7, "b")


def test_replica_seed_is_shared_by_every_arm_and_child_seeds_are_distinct():
    assert replica_seed(0, 4) == derive_seed(0, "replica", 4)
    assert len(set(child_seeds(3, 50))) == 50


def test_consecutive_user_seeds_are_spread_apart():
    # Keras' torch backend seeds torch.Generator with seed + counter: seeds 1 and 2
    # would overlap after one draw. layer_seed maps them far apart.
    mapped = [layer_seed(s) for s in range(100)]
    gaps = np.diff(sorted(mapped))
    assert gaps.min() > 1000  # 100 uniform seeds in 2**31: P(min gap <= 1000) ~ 100**2*1000/2**31 ~ 5e-3
    assert layer_seed(None) is None


def test_consecutive_seeds_do_not_share_draws():
    # The second draw of seed s must not equal the first draw of seed s + 1 (on torch
    # it would, without layer_seed).
    x = np.zeros((4, 64), "float32")
    for s in range(5):
        a = noisewise.GaussianNoise(1.0, seed=s)
        b = noisewise.GaussianNoise(1.0, seed=s + 1)
        a(x, training=True)
        second_of_a = to_numpy(a(x, training=True))
        first_of_b = to_numpy(b(x, training=True))
        assert not np.allclose(second_of_a, first_of_b)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None])
def test_bad_seeds_are_refused(bad):
    with pytest.raises(ValueError, match="seed|root"):
        derive_seed(bad)


def test_bad_path_parts_are_refused():
    with pytest.raises(ValueError, match="-2"):
        derive_seed(1, -2)


def test_seed_everything_makes_unseeded_draws_reproducible():
    def draw():
        noisewise.seed_everything(123)
        layer = keras.layers.Dense(3)
        layer.build((None, 2))
        return to_numpy(layer.kernel), np.random.rand(3)

    (k1, n1), (k2, n2) = draw(), draw()
    np.testing.assert_array_equal(k1, k2)
    np.testing.assert_array_equal(n1, n2)
    with pytest.raises(ValueError, match="seed=-1"):
        noisewise.seed_everything(-1)


def test_backend_is_the_one_the_suite_runs_on():
    assert keras.backend.backend() == BACKEND
