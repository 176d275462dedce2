"""[data] label_noise: realised flip rates within binomial bounds, clean validation
and test labels, seeds, and the spec's checks."""

import math

import numpy as np
import pytest

from noisewise.study import Study, load_spec
from noisewise.study.config import SpecError, schema
from noisewise.study.data.label_noise import (
    DIGITS_MAP,
    corrupt,
    realised_matrix,
    transition_matrix,
)
from noisewise.study.datasets import load_dataset

Z = 4.5  # bounds in binomial standard deviations: about 7e-6 two-sided per cell


def raw(label_noise=None, seed=0, data=None, **train):
    data = {"name": "digits", **(data or {})}
    if label_noise is not None:
        data["label_noise"] = label_noise
    return {"study": {"name": "noisy", "seeds": 2, "seed": seed}, "data": data,
            "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1, **train},
            "arms": [{"name": "baseline"}]}


@pytest.mark.parametrize("kind,k", [("symmetric", 10), ("pairflip", 10), ("asymmetric", 10),
                                    ("symmetric", 2), ("pairflip", 3)])
@pytest.mark.parametrize("rate", [0.2, 0.6])
def test_realised_transitions_match_the_requested_matrix(kind, k, rate):
    y = np.repeat(np.arange(k), 3000)
    noisy, counts = corrupt(y, kind, rate, num_classes=k, seed=11)
    t = transition_matrix(kind, rate, k)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)
    assert (counts == np.histogram2d(y, noisy, bins=[np.arange(k + 1)] * 2)[0]).all()
    n = counts.sum(axis=1, keepdims=True)
    sd = np.sqrt(n * t * (1 - t))
    # A cell of probability 0 or 1 is exact; every other within Z binomial sds.
    assert (np.abs(counts - n * t) <= Z * sd + 1e-9).all(), (counts, n * t)
    assert np.allclose(realised_matrix(counts), counts / n)


def test_the_kinds_flip_where_they_say():
    y = np.repeat(np.arange(10), 400)
    for kind in ("symmetric", "pairflip", "asymmetric"):
        noisy, _ = corrupt(y, kind, 0.5, 10, seed=1)
        changed = noisy != y
        if kind == "symmetric":
            assert changed.mean() == pytest.approx(0.5, abs=Z * math.sqrt(0.25 / len(y)))
        if kind == "pairflip":
            assert (noisy[changed] == (y[changed] + 1) % 10).all()
        if kind == "asymmetric":
            assert set(np.unique(y[changed])) == set(DIGITS_MAP)
            assert all(DIGITS_MAP[a] == b for a, b in zip(y[changed], noisy[changed]))


def test_same_seed_same_corruption_other_seed_another():
    y = np.repeat(np.arange(10), 100)
    a, _ = corrupt(y, "symmetric", 0.4, 10, seed=5)
    b, _ = corrupt(y, "symmetric", 0.4, 10, seed=5)
    c, _ = corrupt(y, "symmetric", 0.4, 10, seed=6)
    assert (a == b).all() and (a != c).any()
    assert a.dtype == y.dtype


def test_study_corrupts_training_labels_only_after_the_hold_out():
    clean = load_dataset({"name": "digits"}, validation_split=0.2)
    study = Study(raw({"kind": "symmetric", "rate": 0.4}, seed=7, validation_split=0.2))
    noisy = study.data
    for key in ("x_train", "x_val", "x_test", "y_val", "y_test"):
        assert np.array_equal(getattr(noisy, key), getattr(clean, key)), key
    changed = noisy.y_train != clean.y_train
    n = len(changed)
    assert abs(changed.mean() - 0.4) <= Z * math.sqrt(0.24 / n)
    assert any(f"{int(changed.sum())} of {n} training labels changed" in note
               for note in noisy.notes), noisy.notes
    # The validation split is the clean load's: it was held out before the corruption.
    assert len(noisy.y_val) == len(clean.y_val) == 269


def test_study_seed_draws_the_corruption_shared_by_every_arm_and_replica():
    def labels(seed, **kw):
        return Study(raw({"kind": "pairflip", "rate": 0.3}, seed=seed, **kw)).data.y_train

    assert np.array_equal(labels(3), labels(3))
    assert not np.array_equal(labels(3), labels(4))
    plans = Study(raw({"kind": "pairflip", "rate": 0.3}, seed=3)).plans()
    assert len(plans) == 2 and all(p.data.y_train is plans[0].data.y_train for p in plans)
    # The data fingerprint (part of a run's identity) changes with the corruption.
    fingerprints = {Study(raw(noise, seed=3)).fingerprint()["data"] for noise in
                    (None, {"kind": "pairflip", "rate": 0.3})}
    assert len(fingerprints) == 2


def test_rate_zero_is_no_label_noise_and_the_table_is_typed():
    assert load_spec(raw({"kind": "symmetric", "rate": 0})).to_dict() == \
        load_spec(raw()).to_dict()
    spec = load_spec(raw({"kind": "asymmetric", "rate": 0.25}))
    assert spec.to_dict()["data"]["label_noise"] == {"kind": "asymmetric", "rate": 0.25}
    assert schema.typed(spec.to_dict()).data.label_noise.rate == 0.25


@pytest.mark.parametrize("entry,data,message", [
    ({"kind": "symmetric", "rate": 1.0}, None,
     "data.label_noise.rate: `rate` must be a number in [0, 1)"),
    ({"kind": "symmetric", "rate": -0.1}, None, "Received: rate=-0.1"),
    ({"kind": "symmetric", "rate": "half"}, None, "Received: rate='half'"),
    ({"kind": "uniform", "rate": 0.2}, None,
     "data.label_noise.kind: `kind` must be one of 'symmetric', 'asymmetric', 'pairflip'. "
     "Received: kind='uniform'"),
    ({"rate": 0.2}, None, "data.label_noise.kind: missing"),
    ({"kind": "pairflip", "rate": 0.2, "seed": 1}, None, "data.label_noise.seed: unknown key"),
    (0.2, None, "data.label_noise: must be a table"),
    ({"kind": "asymmetric", "rate": 0.2}, {"name": "moons"},
     "data.label_noise.kind: 'asymmetric' is the digit map"),
])
def test_bad_label_noise_is_a_spec_error_with_its_key_path(entry, data, message):
    spec = raw(entry)
    if data is not None:
        spec["data"] = {**data, "label_noise": entry}
    with pytest.raises(SpecError) as e:
        load_spec(spec)
    assert message in str(e.value)


def test_regression_data_is_refused(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 2))
    spec = raw()
    spec["data"] = {"x": x, "y": x[:, 0], "test_size": 0.25, "task": "regression",
                    "label_noise": {"kind": "symmetric", "rate": 0.2}}
    with pytest.raises(SpecError, match="data.label_noise: corrupts class labels; the data's "
                                        "task is regression"):
        load_spec(spec)
