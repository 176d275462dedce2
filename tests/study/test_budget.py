"""The pre-flight size check: studies that cannot fit are refused before the store exists."""

import pytest

from noisewise.study import SpecError, Study
from noisewise.study import budget

SPEC = {
    "study": {"name": "big", "seeds": 2},
    "data": {"name": "circles"},
    "model": {"name": "mlp", "hidden": [4]},
    "train": {"epochs": 2},
    "arms": [{"name": "baseline"}],
}


def test_estimate_counts_what_grows_with_the_study():
    small = budget.estimate(runs=10, epochs=100, n_train=30, curves=4, params=2001,
                            replicas_at_once=1)
    longer = budget.estimate(runs=10, epochs=1000, n_train=30, curves=4, params=2001,
                             replicas_at_once=1)
    assert longer.store == 10 * small.store == 10 * 1000 * 4 * 8
    assert longer.memory > small.memory
    # The vectorised executor holds every epoch's data order, for two chunks at once.
    vec = budget.estimate(runs=10, epochs=1000, n_train=30, curves=4, params=2001,
                          replicas_at_once=8, vectorised=True)
    assert vec.memory >= 2 * 8 * 1000 * 30 * 20


def test_refusal_names_the_estimate_and_the_memory():
    need = budget.Need(memory=10 * 2**30, store=2**20)
    reason = budget.refusal(need, "s.db", memory=4 * 2**30, disk=100 * 2**30)
    assert "10.0 GiB" in reason and "4.0 GiB available" in reason
    assert budget.refusal(need, "s.db", memory=64 * 2**30, disk=100 * 2**30) is None
    on_disk = budget.refusal(budget.Need(memory=1, store=2**30), "s.db", memory=64 * 2**30,
                             disk=2**29)
    assert "1.0 GiB in the store" in on_disk and "512.0 MiB free" in on_disk


def test_machine_figures_are_read():
    assert budget.available_memory() > 0
    assert budget.free_disk("no/such/folder/s.db") > 0


def test_a_study_too_large_for_this_machine_is_refused_before_the_store(tmp_path):
    spec = {**SPEC, "study": {"name": "big", "seeds": 10_000},
            "train": {"epochs": 1_000_000}}
    store = tmp_path / "s.db"
    with pytest.raises(SpecError, match=r"study: too large for this machine: 1 arm\(s\) x "
                                        r"10000 seed\(s\) x 1000000 epoch\(s\).*available"):
        Study(spec).run(store=store, quiet=True)
    assert not store.exists()


def test_a_study_that_fits_runs(tmp_path):
    outcome = Study(SPEC).run(store=tmp_path / "s.db", quiet=True)
    assert (outcome.ran, outcome.failed, outcome.diverged) == (2, 0, 0)


def test_workers_with_the_fit_executor_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"`workers` applies to the vectorised executor.*"
                                         r"workers=2"):
        Study(SPEC).run(store=tmp_path / "s.db", quiet=True, executor="fit", workers=2)
    assert not (tmp_path / "s.db").exists()
