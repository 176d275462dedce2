"""TensorBoard and MLflow exports, read back with TensorBoard's and MLflow's own readers."""

import math
import sys
import types

import numpy as np
import pytest

from _report_stores import synthetic_store, trained_store
from noisewise.cli import main
from noisewise.study import Store, stats
from noisewise.study.exports import default_export_path, export_mlflow, export_tensorboard


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A grid study with validation every 3rd epoch: (store path, spec, runs, curves)."""
    store, spec = synthetic_store(tmp_path_factory.mktemp("exports") / "s.db", name="exp",
                                  seeds=2, epochs=8, validate_every=3)
    with Store(store) as s:
        sid = s.study("exp")["id"]
        runs = s.runs(sid)
        curves = {(h["arm"], h["replica"]): h for h in s.history(sid)}
    return store, spec, runs, curves


# -- TensorBoard --------------------------------------------------------------
def _tensorboard_runs(logdir):
    if "tensorflow" not in sys.modules:
        # TensorBoard's reader imports TensorFlow (7 s) whenever it is installed, unless
        # this marker module exists: then it reads with its own TF-free file layer, as
        # it does where TensorFlow is not installed (its "no_tensorflow" build).
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("notf"))
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.util import tensor_util

    mux = EventMultiplexer().AddRunsFromDirectory(str(logdir))
    mux.Reload()
    out = {}
    for run, tags in mux.Runs().items():
        out[run] = {}
        for tag in tags["tensors"]:
            events = mux.Tensors(run, tag)
            out[run][tag] = ([e.step for e in events],
                             [tensor_util.make_ndarray(e.tensor_proto).item() for e in events],
                             [e.wall_time for e in events],
                             mux.SummaryMetadata(run, tag).plugin_data.plugin_name)
    return out


def test_tensorboard_export_reads_back_as_keras_would_have_written_it(study, tmp_path):
    pytest.importorskip("tensorboard", reason="optional extra: pip install noisewise[tensorboard]")
    store, spec, runs, curves = study
    logdir = export_tensorboard(store, "exp", tmp_path / "tb")
    got = _tensorboard_runs(logdir)
    expected = {f"{a.name}/seed_{i}/{split}" for a in spec.arms for i in range(2)
                for split in ("train", "validation")}
    assert set(got) == expected
    for (arm, replica), curve in curves.items():
        for split, prefix in (("train", ""), ("validation", "val_")):
            tags = got[f"{arm}/seed_{replica}/{split}"]
            # Keras' TensorBoard callback: tag epoch_<metric>, val_ prefix dropped.
            assert set(tags) == {"epoch_loss", "epoch_accuracy"}
            for metric in ("loss", "accuracy"):
                steps, values, walls, plugin = tags[f"epoch_{metric}"]
                epochs = curve["epochs"][prefix + metric]
                assert steps == list(epochs - 1)  # Keras logs epoch k at step k - 1
                # Summaries are float32, as tf.summary.scalar writes them.
                assert values == list(np.float32(curve["history"][prefix + metric]))
                assert plugin == "scalars"
                assert walls == sorted(walls)
    assert got["baseline/seed_0/validation"]["epoch_loss"][0] == [2, 5, 7]  # epochs 3, 6, 8


def test_tensorboard_export_refuses_to_duplicate_and_can_overwrite(study, tmp_path):
    pytest.importorskip("tensorboard", reason="optional extra: pip install noisewise[tensorboard]")
    store, _, _, curves = study
    logdir = export_tensorboard(store, "exp", tmp_path / "tb")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_tensorboard(store, "exp", logdir)
    export_tensorboard(store, "exp", logdir, overwrite=True)
    folder = logdir / "input" / "seed_1" / "train"
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    steps, values, _, _ = _tensorboard_runs(logdir)["input/seed_1/train"]["epoch_loss"]
    assert values == list(np.float32(curves[("input", 1)]["history"]["loss"]))


# -- MLflow -------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlflow_export(study, tmp_path_factory):
    pytest.importorskip("mlflow", reason="optional extra: pip install noisewise[mlflow]")
    pytest.importorskip("sqlalchemy", reason="optional extra: pip install noisewise[mlflow]")
    from mlflow.tracking import MlflowClient

    uri = "sqlite:///" + str(tmp_path_factory.mktemp("mlflow") / "mlflow.db")
    out = export_mlflow(study[0], "exp", uri, "noise studies")
    return out, MlflowClient(tracking_uri=uri)


def test_mlflow_export_has_a_parent_run_per_arm_and_a_child_per_seed(study, mlflow_export):
    _, spec, runs, _ = study
    out, client = mlflow_export
    exp = client.get_experiment_by_name("noise studies")
    assert exp.experiment_id == out["experiment_id"]
    found = client.search_runs([exp.experiment_id], max_results=1000)
    parents = {r.info.run_name: r for r in found if "mlflow.parentRunId" not in r.data.tags}
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    assert sorted(parents) == sorted(a.name for a in spec.arms)
    assert len(children) == len(runs) == 2 * len(spec.arms)
    summary = stats.summarize(runs, "val_accuracy")
    for arm, parent in parents.items():
        assert parent.info.status == "FINISHED"
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert sorted(c.data.params["seed"] for c in mine) == ["1000", "1001"]
        assert parent.data.metrics["val_accuracy_mean"] == summary[arm].mean
        assert parent.data.metrics["val_accuracy_ci_low"] == summary[arm].ci_low
    grid_arm = parents["hidden[stddev=0.01]"].data.params
    assert grid_arm["noise.0.stddev"] == "0.01" and grid_arm["grid"] == "hidden"
    assert grid_arm["noise.0.where"] == "pre_activation"
    assert parents["baseline"].data.params["noise"] == "none"


def test_mlflow_metric_histories_equal_the_store(study, mlflow_export):
    _, _, runs, curves = study
    out, client = mlflow_export
    for run in runs:
        run_id = out["children"][(run["arm"], run["replica"])]
        curve = curves[(run["arm"], run["replica"])]
        mlrun = client.get_run(run_id)
        assert mlrun.data.params["replica"] == str(run["replica"])
        for metric, values in curve["history"].items():
            history = sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)
            assert [m.step for m in history] == list(curve["epochs"][metric] - 1)
            assert [m.value for m in history] == list(values)  # float64 both ways
        assert mlrun.data.metrics["best_val_accuracy"] == run["final"]["best_val_accuracy"]


def test_mlflow_export_refuses_to_duplicate_and_can_overwrite(study, mlflow_export):
    out, client = mlflow_export
    with pytest.raises(FileExistsError, match="overwrite"):
        export_mlflow(study[0], "exp", out["tracking_uri"], "noise studies")
    again = export_mlflow(study[0], "exp", out["tracking_uri"], "noise studies", overwrite=True)
    active = client.search_runs([out["experiment_id"]], max_results=1000)
    assert len(active) == len(again["parents"]) + len(again["children"])
    assert {r.info.run_id for r in active} == set(again["parents"].values()) | set(
        again["children"].values())


def test_cli_exports(study, tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="optional extra: pip install noisewise[tensorboard]")
    code = main(["export", "exp", "--format", "tensorboard", "--store", str(study[0]),
                 "-o", str(tmp_path / "logs")])
    assert code == 0
    assert capsys.readouterr().out.strip() == f"tensorboard --logdir {tmp_path / 'logs'}"
    assert (tmp_path / "logs" / "baseline" / "seed_0" / "validation").is_dir()


@pytest.mark.slow
def test_trained_study_exports_equal_the_store(tmp_path):
    pytest.importorskip("tensorboard", reason="optional extra: pip install noisewise[tensorboard]")
    pytest.importorskip("mlflow", reason="optional extra: pip install noisewise[mlflow]")
    from mlflow.tracking import MlflowClient

    store, spec = trained_store(tmp_path / "t.db", name="t", seeds=2, grid=False)
    with Store(store) as s:
        curves = {(h["arm"], h["replica"]): h for h in s.history(s.study("t")["id"])}
    tb = _tensorboard_runs(export_tensorboard(store, "t", tmp_path / "tb"))
    out = export_mlflow(store, "t", "sqlite:///" + str(tmp_path / "m.db"))
    client = MlflowClient(tracking_uri=out["tracking_uri"])
    for (arm, replica), curve in curves.items():
        for metric, values in curve["history"].items():
            split = "validation" if metric.startswith("val_") else "train"
            tag = "epoch_" + metric.removeprefix("val_")
            assert tb[f"{arm}/seed_{replica}/{split}"][tag][1] == list(np.float32(values))
            history = client.get_metric_history(out["children"][(arm, replica)], metric)
            assert sorted((m.step, m.value) for m in history) == [
                (int(e) - 1, v) for e, v in zip(curve["epochs"][metric], values)]
            assert all(math.isfinite(v) for v in values)


def test_mlflow_arm_params_name_augmentation_and_apply_grid_points():
    from noisewise.study.exports import _arm_params

    spec = {"arms": [{"name": "aug", "augment": [
        {"type": "rotate", "factor": 10, "unit": "degrees"},
        {"type": "gaussian_noise", "noise_std": 0.1}],
        "noise": [{"type": "gaussian", "where": "input", "stddev": 0.2}]}]}
    arm = {"arm": "aug[noise_std=0.3]", "arm_parent": "aug",
           "arm_params": {"augment[1].noise_std": 0.3}}
    params = _arm_params(spec, arm)
    assert params["augment[0].type"] == "rotate" and params["augment[0].factor"] == 10
    assert params["augment[1].noise_std"] == 0.3  # the grid point, not the spec's 0.1
    assert params["noise[0].stddev"] == 0.2 and params["noise"] == "1"
    assert params["grid.augment[1].noise_std"] == 0.3


def test_records_of_every_status_as_csv_and_json(study, tmp_path):
    import csv
    import io
    import json

    from noisewise.study.exports import write_records

    for fmt in ("csv", "json"):
        out = io.StringIO()
        write_records(study[0], "exp", out, fmt)
        if fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(out.getvalue())))
            # the arm's parameters follow its name (layout: noisewise.study.results)
            assert list(rows[0])[:9] == ["study", "arm", "noise", "noise0_type",
                                         "noise0_where", "noise0_stddev", "augment", "grid",
                                         "grid_noise[0].stddev"]
            assert list(rows[0])[9:13] == ["replica", "seed", "status", "diverged_epoch"]
            assert list(rows[0])[-1] == "error"
        else:
            rows = json.loads(out.getvalue())
            assert {"status", "diverged_epoch", "error"} <= set(rows[0])
        assert {r["status"] for r in rows} == {"done"}
    with pytest.raises(ValueError, match="fmt"):
        write_records(study[0], "exp", io.StringIO(), "xml")


def test_export_targets_never_write_into_the_store(study, tmp_path, capsys):
    store = study[0]
    before = store.read_bytes()
    code = main(["export", "exp", "--format", "tensorboard", "--store", str(store),
                 "-o", str(store)])
    assert code == 2 and "is the store this command reads" in capsys.readouterr().err
    code = main(["export", "exp", "--format", "mlflow", "--store", str(store),
                 "--tracking-uri", f"sqlite:///{store}"])
    assert code == 2 and "MLflow tables" in capsys.readouterr().err
    assert store.read_bytes() == before
    assert default_export_path("a/s.db", "a/b", "tensorboard").name != \
        default_export_path("a/s.db", "a_b", "tensorboard").name


def test_exports_have_one_column_per_arm_parameter(study):
    import csv
    import io
    import json

    from noisewise.study.exports import write_records

    out = io.StringIO()
    write_records(study[0], "exp", out, "csv")
    rows = {(r["arm"], r["replica"]): r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    base, noisy, level = rows[("baseline", "0")], rows[("input", "0")], rows[("hidden[stddev=1.0]", "1")]
    assert (base["noise"], base["noise0_type"], base["noise0_stddev"], base["grid"]) == (
        "none", "", "", "")
    assert (noisy["noise"], noisy["noise0_where"], float(noisy["noise0_stddev"])) == (
        "gaussian", "input", 0.05)
    # a grid level: its value applied to the noise entry, and the grid key beside it
    assert (level["noise0_where"], float(level["noise0_stddev"]), level["grid"],
            float(level["grid_noise[0].stddev"])) == ("pre_activation", 1.0, "hidden", 1.0)
    assert {r["augment"] for r in rows.values()} == {"none"}
    out = io.StringIO()
    write_records(study[0], "exp", out, "json")
    (record,) = [r for r in json.loads(out.getvalue())
                 if (r["arm"], r["replica"]) == ("hidden[stddev=0.01]", 0)]
    assert (record["noise0_stddev"], record["grid_noise[0].stddev"], record["grid"]) == (
        0.01, 0.01, "hidden")
    assert "noise0_stddev" not in [r for r in json.loads(out.getvalue())
                                   if r["arm"] == "baseline"][0]


def test_multi_noise_and_augmented_arms_get_numbered_columns():
    from noisewise.study.results import arm_columns

    config = {"noise": [{"type": "gaussian", "where": "input", "stddev": 0.1},
                        {"type": "dropout", "where": "post_activation", "rate": 0.2}],
              "augment": [{"type": "rotate", "factor": 10, "unit": "degrees"}],
              "augment_value_range": [0.0, 1.0]}
    assert arm_columns(config, "g", {"noise[1].rate": 0.2}) == {
        "noise": "gaussian+dropout",
        "noise0_type": "gaussian", "noise0_where": "input", "noise0_stddev": 0.1,
        "noise1_type": "dropout", "noise1_where": "post_activation", "noise1_rate": 0.2,
        "augment": "rotate", "augment0_type": "rotate", "augment0_factor": 10,
        "augment0_unit": "degrees", "augment_value_range": "[0.0, 1.0]",
        "grid": "g", "grid_noise[1].rate": 0.2}
