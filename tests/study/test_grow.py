"""Growing studies: more seeds or arms reuse every stored run whose identity is unchanged.

One real study (circles, 2 arms x 10 seeds x 40 epochs) is trained once per
module; each test grows a copy of its store.
"""

import hashlib
import shutil
import textwrap

import pytest

from noisewise.cli import main
from noisewise.random import replica_seed
from noisewise.study import Store, StoreError, Study, load, stats

BASELINE = {"name": "baseline"}
INPUT = {"name": "input", "noise": [{"type": "gaussian", "where": "input", "stddev": 0.1}]}
DROP = {"name": "drop", "noise": [{"type": "dropout", "where": "post_activation", "rate": 0.2}]}


def spec(seeds=10, arms=(BASELINE, INPUT), epochs=40, seed=0):
    return {"study": {"name": "grow", "seeds": seeds, "seed": seed},
            "data": {"name": "circles"}, "model": {"name": "mlp", "hidden": [8]},
            "train": {"epochs": epochs, "batch_size": 8}, "arms": list(arms)}


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ten(tmp_path_factory):
    path = tmp_path_factory.mktemp("grow") / "ten.db"
    outcome = Study(spec()).run(store=path, quiet=True)
    assert (outcome.ran, outcome.skipped, outcome.failed) == (20, 0, 0)
    return path


@pytest.fixture
def store(ten, tmp_path):
    path = tmp_path / "s.db"
    shutil.copyfile(ten, path)
    return path


def stored(path, current=True):
    """``{(arm, replica): (id, identity, seed, final)}`` of the study's done runs."""
    with Store(path, readonly=True) as s:
        return {(r["arm"], r["replica"]): (r["id"], r["identity"], r["seed"], r["final"])
                for r in s.runs(s.study("grow")["id"], current=current)}


@pytest.mark.slow
def test_growing_from_10_to_15_seeds_trains_5_runs_per_arm_and_keeps_the_first_10(store):
    before = stored(store)
    with Store(store, readonly=True) as s:
        runs10 = s.runs(s.study("grow")["id"])
    outcome = Study(spec(seeds=15)).run(store=store, quiet=True)
    assert (outcome.total, outcome.reused, outcome.trained, outcome.kept) == (30, 20, 10, 0)
    after = stored(store)
    assert {k: v for k, v in after.items() if k[1] < 10} == before  # same rows, untouched
    new = sorted(k for k in after if k not in before)
    assert new == sorted((arm, r) for arm in ("baseline", "input") for r in range(10, 15))
    assert all(after[k][2] == replica_seed(0, k[1]) for k in new)  # paired seeds, as ever
    with Store(store, readonly=True) as s:
        runs15 = s.runs(s.study("grow")["id"])
    first10 = [r for r in runs15 if r["replica"] < 10]
    for compute in (lambda runs: stats.summarize(runs, "val_accuracy"),
                    lambda runs: stats.compare(runs, "baseline", "val_accuracy")):
        assert compute(first10) == compute(runs10)
    assert [(r["arm"], r["n"]) for r in load(store).summary()] == [("baseline", 15), ("input", 15)]


@pytest.mark.slow
def test_adding_an_arm_trains_only_that_arm_and_reordering_trains_nothing(store):
    before = stored(store)
    outcome = Study(spec(arms=(BASELINE, INPUT, DROP))).run(store=store, quiet=True)
    assert (outcome.trained, outcome.reused, outcome.kept) == (10, 20, 0)
    after = stored(store)
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(k for k in after if k not in before) == [("drop", r) for r in range(10)]
    outcome = Study(spec(arms=(DROP, INPUT, BASELINE))).run(store=store, quiet=True)
    assert (outcome.trained, outcome.reused) == (0, 30)
    with Store(store, readonly=True) as s:
        assert [a["name"] for a in s.study("grow")["arms"]] == ["drop", "input", "baseline"]
        # the reference follows the spec: its first arm, unless study.reference names one
        assert s.study("grow")["reference"] == "drop"


@pytest.mark.slow
def test_removing_an_arm_keeps_its_runs_out_of_the_statistics(store, capsys):
    outcome = Study(spec(arms=(BASELINE,))).run(store=store, quiet=True)
    assert (outcome.trained, outcome.reused, outcome.kept) == (0, 10, 10)
    results = load(store)
    assert [r["arm"] for r in results.summary()] == ["baseline"]
    assert results.comparisons() == [] and {r["arm"] for r in results.records()} == {"baseline"}
    everything = stored(store, current=False)
    assert len(everything) == 20 and len(stored(store)) == 10
    assert main(["show", "grow", "--store", str(store)]) == 0
    assert "input" not in capsys.readouterr().out
    # fewer seeds: the replicas beyond them are kept too
    outcome = Study(spec(seeds=4, arms=(BASELINE,))).run(store=store, quiet=True)
    assert (outcome.total, outcome.trained, outcome.kept) == (4, 0, 16)
    assert load(store).summary()[0]["n"] == 4
    # the removed arm comes back with every one of its runs: nothing trains
    outcome = Study(spec()).run(store=store, quiet=True)
    assert (outcome.trained, outcome.reused, outcome.kept) == (0, 20, 0)
    assert stored(store) == everything


@pytest.mark.slow
def test_an_arm_changed_under_its_name_trains_anew_and_its_old_runs_come_back(store):
    before = stored(store)
    louder = {**INPUT, "noise": [{**INPUT["noise"][0], "stddev": 0.3}]}
    outcome = Study(spec(seeds=3, arms=(BASELINE, louder))).run(store=store, quiet=True)
    # kept: baseline 3-9 and the ten runs of input at stddev 0.1
    assert (outcome.trained, outcome.reused, outcome.kept) == (3, 3, 17)
    after = stored(store)
    for r in range(3):
        assert after[("input", r)][:2] != before[("input", r)][:2]  # new row, new identity
        assert after[("input", r)][2] == before[("input", r)][2]  # the same seed
    assert load(store).summary()[1]["noise0_stddev"] == 0.3
    outcome = Study(spec()).run(store=store, quiet=True)  # back to stddev 0.1
    assert (outcome.trained, outcome.reused, outcome.kept) == (0, 20, 3)
    assert stored(store) == before


@pytest.mark.slow
@pytest.mark.parametrize("change, named", [
    (dict(epochs=41), "train.epochs 40 -> 41"),
    (dict(seed=1), "study.seed 0 -> 1"),
])
def test_changed_training_or_study_seed_is_refused_naming_it(store, change, named):
    before = sha256(store)
    with pytest.raises(StoreError, match=f"'grow' exists .*different spec \\({named}\\).*--new"):
        Study(spec(**change)).run(store=store, quiet=True)
    assert sha256(store) == before


@pytest.mark.slow
def test_new_still_starts_fresh_and_keeps_the_old_study(store):
    outcome = Study(spec(seeds=2, arms=(BASELINE,))).run(store=store, quiet=True, new=True)
    assert (outcome.trained, outcome.reused) == (2, 0)
    with Store(store, readonly=True) as s:
        studies = {x["name"]: x for x in s.studies()}
    (archived,) = [n for n in studies if n.startswith("grow@")]
    assert (studies[archived]["n_done"], studies["grow"]["n_done"]) == (20, 2)


@pytest.mark.slow
def test_the_command_line_says_what_was_reused(store, tmp_path, capsys):
    toml = tmp_path / "grow.toml"
    toml.write_text(textwrap.dedent("""
        [study]
        name = "grow"
        seeds = 10
        [data]
        name = "circles"
        [model]
        name = "mlp"
        hidden = [8]
        [train]
        epochs = 40
        batch_size = 8
        [[arms]]
        name = "baseline"
    """))
    assert main(["run", str(toml), "--store", str(store), "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "0 run(s) trained, 10 reused from the store (10 more stored, not in this spec)" in err
