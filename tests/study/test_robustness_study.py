"""Robustness evaluations in a study: validated up front, run on every trained model, stored, paired."""

import copy
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import BACKEND, raw
from noisewise.study import SpecError, Study, load_spec
from noisewise.study.stats import summarize
from noisewise.study.store import Store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_smoothing.toml"
SIGMA = 0.25
BASE = {
    "study": {"name": "robust", "seeds": 3},
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [64]},
    "train": {"epochs": 15, "batch_size": 64, "validate_every": 5},
    "arms": [
        {"name": "baseline"},
        {"name": "noise", "noise": [{"type": "gaussian", "where": "input", "stddev": 0.5}]},
    ],
    "robustness": {
        "max_examples": 120,
        "smoothing": {"sigma": SIGMA, "n0": 50, "n": 300, "alpha": 0.01, "radii": [0.0, SIGMA]},
        "noise": [{"type": "gaussian", "levels": [0.5], "draws": 2}],
        "attacks": [{"type": "fgsm", "eps": [0.1]}],
    },
}


def spec_with(**robustness):
    raw = copy.deepcopy(BASE)
    raw["robustness"] = robustness
    return raw


@pytest.mark.parametrize("robustness, path, message", [
    ({"smoothing": {"sigma": 0.25, "alpha": 1.5}}, "robustness.smoothing.alpha",
     "Received: robustness.smoothing.alpha=1.5"),
    ({"smoothing": {"sigma": 0.25, "n0": 500, "n": 100}}, "robustness.smoothing.n0",
     "must be <= `n` (100). Received: n0=500"),
    ({"smoothing": {"n": 100}}, "robustness.smoothing.sigma", "is required"),
    ({"attacks": [{"type": "fgsm", "eps": -0.1}]}, "robustness.attacks[0].eps",
     "Received: robustness.attacks[0].eps=-0.1"),
    ({"attacks": [{"type": "cw"}]}, "robustness.attacks[0].type", "Received: robustness.attacks[0].type='cw'"),
    ({"noise": [{"type": "gaussian", "levels": [-1]}]}, "robustness.noise[0].levels", "Received"),
    ({"smoothing_sigma": 0.25}, "robustness.smoothing_sigma", "is not a known key"),
    ({"corruptions": {"severities": [6]}}, "robustness.corruptions.severities", "Received"),
    ({"clip": "sometimes"}, "robustness.clip", "'data' (the data's range, the default), 'none' or a pair "
                                               "[low, high]. Received: robustness.clip='sometimes'"),
    ({"clip": [1.0, 0.0]}, "robustness.clip", "low < high"),
])
def test_bad_robustness_tables_fail_before_training_with_their_key_path(tmp_path, robustness,
                                                                         path, message):
    with pytest.raises(SpecError) as err:
        load_spec(spec_with(**robustness))
    assert str(err.value).startswith(path + ":"), str(err.value)
    assert message in str(err.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("clip", ["data", "none", [0.0, 1.0]])
def test_clip_is_the_data_range_none_or_a_given_range(clip):
    # Without `clip` the evaluation clips to the data's range (digits: observed [0, 1] on its test split).
    spec = load_spec(spec_with(clip=clip, attacks=[{"type": "pgd", "eps": 0.1}]))
    assert spec.robustness["clip"] == clip


def test_the_robustness_table_is_part_of_the_spec_hash():
    a, b = load_spec(BASE), load_spec(spec_with(smoothing={"sigma": 0.5}))
    assert a.spec_hash != b.spec_hash
    without = copy.deepcopy(BASE)
    del without["robustness"]
    assert load_spec(without).robustness is None
    assert "robustness" not in load_spec(without).to_dict()


@pytest.mark.slow
def test_every_run_stores_its_robustness_metrics_and_noise_training_certifies_more(tmp_path):
    # Cohen et al. (2019): a model trained with Gaussian input noise keeps its
    # prediction under the smoothing noise far more often than one trained
    # clean, so its certified accuracy at radius sigma is higher. Digits
    # pixels are in [0, 1]; sigma 0.25 noise is heavy for a clean model. 30
    # epochs: at 15 the clean model is still smooth enough that the margin
    # (+0.02 in one draw of the noise) is within the seed-to-seed spread.
    spec = copy.deepcopy(BASE)
    spec["train"]["epochs"] = 30
    outcome = Study(spec).run(tmp_path / "s.db", quiet=True, executor="fit")
    assert (outcome.ran, outcome.failed) == (6, 0)
    with Store(tmp_path / "s.db") as store:
        runs = store.runs(outcome.study_id)
    keys = {"clean_acc", "certified_acc@r=0", f"certified_acc@r={SIGMA:g}",
            "smoothing_abstain_rate", "noise_acc@gaussian=0.5", "adv_acc@fgsm_linf=0.1"}
    for run in runs:
        assert keys <= set(run["final"]), sorted(run["final"])
        assert all(0.0 <= run["final"][k] <= 1.0 for k in keys)
        # certifying at a larger radius can only lose examples
        assert run["final"][f"certified_acc@r={SIGMA:g}"] <= run["final"]["certified_acc@r=0"]
    metric = f"certified_acc@r={SIGMA:g}"
    by_arm = summarize(runs, metric)
    assert by_arm["noise"].mean > by_arm["baseline"].mean + 0.02, (
        by_arm["noise"].mean, by_arm["baseline"].mean)
    paired = {(r["arm"], r["replica"]): r["final"][metric] for r in runs}
    assert all(paired[("noise", i)] >= paired[("baseline", i)] for i in range(3)), paired


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "jax", reason="the vectorised executor runs on JAX only")
def test_vectorised_and_per_run_paths_store_the_same_robustness_metrics(tmp_path):
    raw = copy.deepcopy(BASE)
    raw["study"]["seeds"] = 2
    raw["train"]["epochs"] = 3
    fit = Study(raw).run(tmp_path / "fit.db", quiet=True, executor="fit")
    fast = Study(raw).run(tmp_path / "vmap.db", quiet=True, executor="vmap")
    with Store(tmp_path / "fit.db") as a, Store(tmp_path / "vmap.db") as b:
        ra, rb = a.runs(fit.study_id), b.runs(fast.study_id)
    assert [(r["arm"], r["replica"]) for r in ra] == [(r["arm"], r["replica"]) for r in rb]
    for x, y in zip(ra, rb):
        for key, value in x["final"].items():
            # Same seeds, same draws: only float rounding differs between the
            # paths, which may flip a sample near a decision boundary (1/n).
            assert np.isclose(y["final"][key], value, atol=0.02), (key, value, y["final"][key])
        # and both store the same terms behind them
        assert x["robustness"]["data"] == y["robustness"]["data"]
        settings = [{k: v for k, v in r.items() if k not in ("value", "count", "ci_low", "ci_high")}
                    for r in x["robustness"]["records"]]
        assert settings == [{k: v for k, v in r.items() if k not in ("value", "count", "ci_low", "ci_high")}
                            for r in y["robustness"]["records"]]


def test_the_example_spec_is_valid():
    spec = load_spec(EXAMPLE)
    assert spec.robustness["smoothing"]["sigma"] == 0.25
    assert [a.name for a in spec.arms] == ["baseline", "noise_0.25", "noise_0.5"]


ADVERSARIAL = {"type": "adversarial", "attack": "fgsm", "eps": 0.1, "ratio": 0.5,
               "clip": [0.0, 1.0]}


def adversarial_spec(**entry):
    raw = copy.deepcopy(BASE)
    raw["arms"][1] = {"name": "adv", "noise": [{**ADVERSARIAL, **entry}]}
    raw["robustness"] = {"max_examples": 100, "attacks": [{"type": "fgsm", "eps": 0.1}]}
    return raw


@pytest.mark.parametrize("entry, path", [
    ({"eps": -0.1}, "arms[1].noise[0].eps"),
    ({"attack": "cw"}, "arms[1].noise[0].attack"),
    ({"ratio": 2}, "arms[1].noise[0].ratio"),
    ({"where": "input"}, "arms[1].noise[0].where"),
])
def test_bad_adversarial_arms_fail_with_their_key_path(entry, path):
    with pytest.raises(SpecError) as err:
        load_spec(adversarial_spec(**entry))
    assert str(err.value).startswith(path + ":"), str(err.value)


def test_an_adversarial_arm_wraps_the_model_and_trains_with_fit(tmp_path):
    from noisewise.robust import AdversarialModel
    from noisewise.study.models import build_model

    study = Study(adversarial_spec())
    plan = [p for p in study.plans() if p.arm.name == "adv"][0]
    model = build_model(plan.model, plan.arm.noise, plan.data, plan.seed, plan.arm.name)
    assert isinstance(model, AdversarialModel) and model.eps == 0.1 and model.attack == "fgsm"
    raw = adversarial_spec()
    raw["study"]["seeds"], raw["train"]["epochs"] = 1, 2
    outcome = Study(raw).run(tmp_path / "s.db", quiet=True, executor="fit")
    assert (outcome.ran, outcome.failed) == (2, 0)
    with Store(tmp_path / "s.db") as store:
        finals = {r["arm"]: r["final"] for r in store.runs(outcome.study_id)}
    assert {"clean_acc", "adv_acc@fgsm_linf=0.1", "val_accuracy"} <= set(finals["adv"])


@pytest.mark.skipif(BACKEND != "jax", reason="the vectorised executor runs on JAX only")
def test_an_adversarial_arm_trains_the_same_vectorised(tmp_path):
    raw = adversarial_spec()
    raw["study"]["seeds"], raw["train"]["epochs"] = 2, 2
    del raw["robustness"]
    fit = Study(raw).run(tmp_path / "fit.db", quiet=True, executor="fit")
    fast = Study(raw).run(tmp_path / "vmap.db", quiet=True, executor="vmap")
    with Store(tmp_path / "fit.db") as a, Store(tmp_path / "vmap.db") as b:
        ha = {(r["arm"], r["replica"]): r["history"] for r in a.history(fit.study_id)}
        hb = {(r["arm"], r["replica"]): r["history"] for r in b.history(fast.study_id)}
    assert ha.keys() == hb.keys()
    for key in ha:
        for metric, values in ha[key].items():
            np.testing.assert_allclose(hb[key][metric], values, rtol=1e-4, atol=1e-5,
                                       err_msg=f"{key} {metric}")


# -- the terms behind the figures: dataset range, spec identity, store, report, show ----
from noisewise.cli import main  # noqa: E402
from noisewise.study.datasets import load_dataset  # noqa: E402
from noisewise.study.report import write_report  # noqa: E402
from noisewise.study.store import SCHEMA_VERSION, StoreError  # noqa: E402

PGD = "adv_acc@pgd_linf=0.1"
# Two epochs, one seed: the figures are poor, but only their terms are checked.
TERMS = {
    "study": {"name": "terms", "seeds": 1},
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 2, "batch_size": 128},
    "arms": [{"name": "baseline"},
             {"name": "noise", "noise": [{"type": "gaussian", "where": "input", "stddev": 0.3}]}],
    "robustness": {"max_examples": 40, "attacks": [{"type": "pgd", "eps": 0.1, "steps": 3}],
                   "smoothing": {"sigma": SIGMA, "n0": 10, "n": 50, "alpha": 0.01}},
}
DIGITS_RANGE = "digits pixels 0..16 scaled to [0, 1]"


def cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("data, expected", [
    ({"name": "digits"}, (0.0, 1.0)),
    ({"name": "digits", "standardize": True}, None),  # rescaled pixels leave [0, 1]
    ({"name": "circles"}, None), ({"name": "moons"}, None),
    ({"name": "breast_cancer"}, None), ({"name": "sine"}, None),
])
def test_a_builtin_dataset_states_the_range_its_features_live_in(data, expected):
    dataset = load_dataset(data)
    assert dataset.value_range == expected
    assert dataset.range_source == (DIGITS_RANGE if expected else None)
    if expected:  # the range is the data's, not a guess
        assert dataset.x_test.min() >= expected[0] and dataset.x_test.max() <= expected[1]
        assert dataset.x_train.max() == expected[1]


def test_the_default_clip_is_explicit_in_the_spec_and_its_hash():
    # A store made when an absent clip meant "unclipped" hashes differently, so
    # resuming it is refused rather than mixing clipped and unclipped figures.
    absent = load_spec(spec_with(**TERMS["robustness"]))
    assert absent.to_dict()["robustness"]["clip"] == "data"
    assert absent.spec_hash == load_spec(spec_with(**TERMS["robustness"], clip="DATA")).spec_hash
    assert absent.spec_hash != load_spec(spec_with(**TERMS["robustness"], clip="none")).spec_hash
    assert load_spec(spec_with(**TERMS["robustness"], clip=None)).to_dict()["robustness"]["clip"] == "none"
    # smoothing never clips: a table without attacks or noise gets no clip
    assert "clip" not in load_spec(spec_with(smoothing={"sigma": SIGMA})).to_dict()["robustness"]


@pytest.fixture(scope="module")
def terms_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("terms") / "s.db"
    outcome = Study(TERMS).run(path, quiet=True, executor="fit")
    assert (outcome.ran, outcome.failed) == (2, 0)
    return path


def test_every_run_stores_the_terms_of_its_robustness_figures(terms_store):
    with Store(terms_store, readonly=True) as store:
        runs = store.runs(store.study("terms")["id"])
    assert [r["arm"] for r in runs] == ["baseline", "noise"]
    for run in runs:
        data, records = run["robustness"]["data"], run["robustness"]["records"]
        # digits' known range is the default clip, and says where it came from
        assert data["clip"] == data["range"] == [0.0, 1.0]
        assert data["clip_source"] == f"the data's range: {DIGITS_RANGE}"
        assert (data["split"], data["examples"], data["available"]) == ("test", 40, 450)
        by_metric = {r["metric"]: r for r in records}
        robust_final = {k for k in run["final"] if k.startswith(("clean_acc", "adv_acc", "certified",
                                                                 "smoothing"))}
        assert set(by_metric) == robust_final
        for metric, r in by_metric.items():  # the stored figure is the run's final one
            assert r["value"] == pytest.approx(run["final"][metric]) and r["examples"] == 40
            assert r["ci_low"] <= r["value"] <= r["ci_high"]
        pgd = by_metric[PGD]
        assert (pgd["attack"], pgd["norm"], pgd["eps"], pgd["steps"]) == ("pgd", "linf", 0.1, 3)
        assert pgd["step_size"] == pytest.approx(2.5 * 0.1 / 3) and pgd["clip"] == [0.0, 1.0]
        smooth = by_metric["certified_acc@r=0.25"]
        assert (smooth["sigma"], smooth["n0"], smooth["n"], smooth["alpha"], smooth["radius"],
                smooth["clip"]) == (SIGMA, 10, 50, 0.01, SIGMA, None)


def test_the_report_states_the_robustness_settings(terms_store, tmp_path):
    text = write_report(terms_store, "terms", tmp_path / "r.html").read_text()
    assert '<a href="#robustness">Robustness settings</a>' in text
    section = text[text.index('<section id="robustness">'):]
    section = section[:section.index("</section>")]
    assert ("Examples: test split, 40 of 450 examples, shape (8, 8, 1); range [0, 1] "
            f"({DIGITS_RANGE}); attacks and noise clipped to that range.") in section
    rows = re.findall(r"<tr><td class=\"arm\"><code>([^<]+)</code></td><td>([^<]+)</td>\s*"
                      r"<td>([^<]+)</td><td class=\"num\">(\d+)</td><td>([^<]+)</td></tr>", section)
    by_metric = {m: (settings, clip, int(n), interval) for m, settings, clip, n, interval in rows}
    assert list(by_metric) == ["clean_acc", PGD, "certified_acc@r=0", "certified_acc@r=0.25",
                               "smoothing_abstain_rate"]
    assert by_metric[PGD] == (
        "pgd attack, norm linf, eps 0.1, steps 3, step size 0.0833333, random start true, "
        "keep best true, targeted false", "[0, 1]", 40, "Clopper-Pearson 95% over examples")
    assert by_metric["certified_acc@r=0.25"][:2] == (
        "randomized smoothing, sigma 0.25, n0 10, n 50, alpha 0.01, radius 0.25",
        "none (the certificate is for unclipped noise)")
    assert "stored without" not in section and "differs across" not in section


def test_show_states_the_settings_of_a_robustness_metric_in_80_columns(terms_store, capsys):
    code, out, _ = cli(capsys, "show", "terms", "--store", terms_store, "--metric", PGD)
    assert code == 0
    assert all(len(line) <= 80 for line in out.splitlines()), max(out.splitlines(), key=len)
    text = " ".join(out.split())  # lines wrap at 80 columns
    assert (f"{PGD}: pgd attack, norm linf, eps 0.1, steps 3, step size 0.0833333, random start "
            "true, keep best true, targeted false; clip [0, 1]; 40 examples; per-run interval: "
            "Clopper-Pearson 95% over examples") in text
    assert f"examples: test split, 40 of 450 examples, shape (8, 8, 1); range [0, 1] ({DIGITS_RANGE})" in text
    code, out, _ = cli(capsys, "show", "terms", "--store", terms_store, "--metric", "val_accuracy")
    assert code == 0 and "pgd attack" not in out and "examples:" not in out


# fixtures/store_v3.sqlite3: written by the schema-3 store of commit ca1d82c (digits pixels
# already clipped to [0, 1] by default, the clip not yet in the normalised spec):
# Study(V3_SPEC).run(store, executor="fit") on JAX, then journal_mode=DELETE and VACUUM.
# Runs 1-4 done; their final metrics hold clean_acc and adv_acc@pgd_linf=0.1.
V3_SPEC = {"study": {"name": "golden3", "seed": 0, "seeds": 2}, "data": {"name": "digits"},
           "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 2, "batch_size": 128},
           "arms": [{"name": "baseline"},
                    {"name": "input", "noise": [{"type": "gaussian", "where": "input", "stddev": 0.3}]}],
           "robustness": {"max_examples": 40, "attacks": [{"type": "pgd", "eps": 0.1, "steps": 3}]}}
V3_FIXTURE = Path(__file__).parent / "fixtures" / "store_v3.sqlite3"


@pytest.fixture
def v3(tmp_path):
    path = tmp_path / "v3.db"
    shutil.copyfile(V3_FIXTURE, path)
    return path


def test_a_v3_store_migrates_to_v4_keeping_its_runs_without_settings(tmp_path, v3, capsys):
    assert raw(v3, "PRAGMA user_version") == [(3,)]
    with Store(v3, readonly=True) as store:  # read as it is
        assert store.schema_version == 3
        assert [r["robustness"] for r in store.runs(1)] == [None] * 4
    runs_v3 = raw(v3, "SELECT * FROM runs ORDER BY id")
    with Store(v3) as store:
        assert store.schema_version == SCHEMA_VERSION == 6
        runs = store.runs(1)
    assert raw(v3, "PRAGMA user_version") == [(6,)]
    assert raw(v3, "PRAGMA integrity_check") == [("ok",)]
    # every old column as it was, the new ones after them, NULL: the settings were not kept
    assert [r[:-2] for r in raw(v3, "SELECT * FROM runs ORDER BY id")] == runs_v3
    assert raw(v3, "SELECT DISTINCT robustness_json, calibration_json FROM runs") == [(None, None)]
    assert [r["robustness"] for r in runs] == [None] * 4 and all(PGD in r["final"] for r in runs)
    Store(tmp_path / "fresh.db").close()  # a migrated store has the columns of a new one
    assert raw(v3, "PRAGMA table_info(runs)") == raw(tmp_path / "fresh.db", "PRAGMA table_info(runs)")
    # the report and show say the settings are not there rather than guess them
    text = write_report(v3, "golden3", tmp_path / "r.html").read_text()
    section = text[text.index('<section id="robustness">'):]
    assert "stored without their robustness settings" in section[:section.index("</section>")]
    code, out, _ = cli(capsys, "show", "golden3", "--store", v3, "--metric", PGD)
    assert code == 0 and "were not stored with its runs" in " ".join(out.split())


def test_resuming_a_store_made_before_the_clip_was_explicit_is_refused(v3):
    before = raw(v3, "SELECT id, final_json FROM runs ORDER BY id")
    with pytest.raises(StoreError, match=r"different spec \(robustness\.clip null -> \"data\"\)"):
        Study(V3_SPEC).run(store=v3, quiet=True, executor="fit")
    assert raw(v3, "SELECT id, final_json FROM runs ORDER BY id") == before


def test_settings_that_differ_across_runs_or_are_missing_are_said_so():
    from noisewise.study.report.robustness import metric_lines, settings

    data = {"split": "test", "examples": 9, "available": 9, "shape": [2], "model_shape": [2],
            "reshaped": False, "range": [-1.0, 2.0], "range_source": "observed min and max of the 9 "
            "test examples", "clip": None, "clip_source": "none: attacks and noise are not clipped"}

    def run(eps, seed):
        record = {"metric": "adv_acc@fgsm_linf=0.1", "evaluation": "attack", "attack": "fgsm",
                  "norm": "linf", "eps": eps, "steps": 1, "step_size": eps, "clip": None,
                  "examples": 9, "value": 0.5, "ci_low": 0.2, "ci_high": 0.8,
                  "interval": "Clopper-Pearson 95% over examples"}
        return {"robustness": {"data": {**data, "seed": seed}, "records": [record]}}

    same = settings([run(0.1, 1), run(0.1, 2)])  # the evaluation seed differs per replica
    assert [(r["variants"], r["runs"]) for r in same["rows"]] == [(1, 2)]
    assert same["data"].endswith("clip none: attacks and noise are not clipped")
    mixed = settings([run(0.1, 1), run(0.2, 2), {"robustness": None}])
    assert (mixed["rows"][0]["variants"], mixed["missing"], mixed["runs"]) == (2, 1, 3)
    lines = metric_lines(mixed, "adv_acc@fgsm_linf=0.1")
    assert lines[0].startswith("adv_acc@fgsm_linf=0.1: fgsm attack, norm linf, eps 0.1, steps 1")
    assert "differ across its 2 runs (2 variants" in lines[1]
    assert lines[-1] == "note: 1 of 3 runs were stored without their robustness settings (by an older noisewise)"
    assert metric_lines(mixed, "val_accuracy") == [] and settings([{"robustness": None}]) is None
