"""Metric names are checked: show, report, export and run --metric refuse an unknown one
(exit 2, the study's metrics listed) before they print, write or train anything."""

import hashlib
import sys
from pathlib import Path

import pytest

from conftest import run_cli as cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "study"))  # the store helpers
from _report_stores import synthetic_store  # noqa: E402

from noisewise.study.defaults import (UnknownMetric, available_metrics, check_metric,  # noqa: E402
                                      spec_metrics)

AVAILABLE = "accuracy, best_val_accuracy, loss, val_accuracy, val_loss"
UNKNOWN = (f"noisewise: --metric: unknown metric 'val_acc' for study 'm'; available: "
           f"{AVAILABLE} (did you mean 'val_accuracy'?)")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path, _ = synthetic_store(tmp_path_factory.mktemp("metrics") / "m.db", name="m", seeds=3,
                              grid=False)
    return path


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_show_with_an_unknown_metric_exits_2_and_lists_the_metrics(store, capsys):
    before = sha(store)
    code, out, err = cli(capsys, "show", "m", "--store", store, "--metric", "val_acc")
    assert code == 2 and out == ""  # no empty table
    assert err.strip() == UNKNOWN
    assert sha(store) == before


def test_show_with_another_stored_metric_tabulates_it(store, capsys):
    code, out, err = cli(capsys, "show", "--store", store, "--metric", "loss")
    assert code == 0, err
    assert out.startswith("m: loss over 6 of 6 runs")
    assert out.splitlines()[3].split()[:2] == ["baseline", "3"]


def test_a_failed_report_leaves_the_existing_report_byte_for_byte(store, tmp_path, capsys):
    target = tmp_path / "m.html"
    assert cli(capsys, "report", "m", "--store", store, "-o", target)[0] == 0
    before = target.read_bytes()
    assert b"Noise study <code>m</code>" in before
    code, out, err = cli(capsys, "report", "m", "--store", store, "-o", target,
                         "--metric", "val_acc")
    assert code == 2 and out == "" and err.strip() == UNKNOWN
    assert target.read_bytes() == before
    # No file is created for a report that cannot be made either.
    code, _, _ = cli(capsys, "report", "m", "--store", store, "-o", tmp_path / "new.html",
                     "--metric", "val_acc", "--force")
    assert code == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["m.html"]


def test_export_checks_the_metric_before_exporting(store, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, out, err = cli(capsys, "export", "m", "--store", store, "--format", "mlflow",
                         "--tracking-uri", uri, "--metric", "val_acc")
    assert code == 2 and err.strip() == UNKNOWN
    assert not (tmp_path / "mlflow.db").exists()
    code, _, err = cli(capsys, "export", "m", "--store", store, "--format", "csv",
                       "--metric", "loss")
    assert code == 2 and "--metric applies to --format mlflow" in err
    assert "Received: --metric loss --format csv" in err


SPEC = """
[study]
name = "quick"
seeds = 2

[data]
name = "circles"

[model]
name = "mlp"
hidden = [4]

[train]
epochs = 2
metrics = ["accuracy"]

[[arms]]
name = "baseline"
"""


def test_run_with_an_unknown_metric_exits_2_before_training(tmp_path, capsys):
    spec = tmp_path / "quick.toml"
    spec.write_text(SPEC)
    store = tmp_path / "quick.db"
    code, out, err = cli(capsys, "run", spec, "--store", store, "--metric", "val_acc")
    assert code == 2 and out == ""
    assert err.strip() == ("noisewise: --metric: unknown metric 'val_acc' for study 'quick'; "
                           f"available: {AVAILABLE} (did you mean 'val_accuracy'?)")
    assert not store.exists()  # nothing trained, nothing stored


def test_spec_metrics_are_the_compiled_keras_names():
    assert spec_metrics({"train": {"metrics": ["accuracy", "mae"]}}) == [
        "accuracy", "best_val_accuracy", "loss", "mae", "val_accuracy", "val_loss", "val_mae"]
    assert spec_metrics({"train": {"metrics": []}}) == ["best_val_loss", "loss", "val_loss"]
    # A [robustness] table adds names only its evaluations know: not checked before training.
    assert spec_metrics({"train": {"metrics": ["accuracy"]}, "robustness": {"noise": []}}) is None
    assert check_metric([], "clean_acc", "s", {"robustness": {"noise": [{}]}}) == "clean_acc"


def test_available_metrics_come_from_the_stored_runs_then_the_spec():
    runs = [{"final": {"loss": 0.1, "best_epoch": 3, "clean_acc": 0.9}}, {"final": {}}]
    assert available_metrics(runs) == ["clean_acc", "loss"]  # best_epoch is no metric
    spec = {"train": {"metrics": ["accuracy"]}}
    assert available_metrics([{"final": {}}], spec) == spec_metrics(spec)  # every run failed
    assert available_metrics([]) is None
    with pytest.raises(UnknownMetric) as e:
        check_metric(runs, "val_loss", "s")
    assert e.value.available == ["clean_acc", "loss"] and e.value.suggestion == "loss"
    assert isinstance(e.value, ValueError)
    assert str(e.value) == ("`metric` must be a metric stored for study 's': clean_acc, loss. "
                            "Received: metric='val_loss'. Did you mean 'loss'?")
    with pytest.raises(UnknownMetric) as e:
        check_metric(runs, "zzz", "s")
    assert e.value.suggestion is None and "did you mean" not in e.value.cli_text()
