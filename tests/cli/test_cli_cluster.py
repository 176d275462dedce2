"""`noisewise run --cluster`: a study trained on a real Dask LocalCluster from the command line."""

import pytest

from conftest import raw, run_cli

SPEC = """
[study]
name = "cluster"
seeds = 3
seed = 2

[data]
name = "circles"

[model]
name = "mlp"
hidden = [8]

[train]
epochs = 20
batch_size = 16

[[arms]]
name = "baseline"

[[arms]]
name = "input"
noise = [{ type = "gaussian", where = "input", stddev = 0.2 }]
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_text(SPEC)
    return path


@pytest.mark.parametrize("value", ["local:0", "local", "http://host:1", "tcp://host"])
def test_a_bad_cluster_address_is_refused_naming_it(capsys, spec, tmp_path, value):
    pytest.importorskip("distributed", reason="the Dask extra is not installed")
    code, _, err = run_cli(capsys, "run", str(spec), "--store", str(tmp_path / "s.db"),
                           "--cluster", value)
    assert code == 2
    assert "--cluster" in err and repr(value) in err and "local:N" in err
    assert not (tmp_path / "s.db").exists()  # refused before the store is touched


@pytest.mark.parametrize("extra", [["--workers", "2"], ["--executor", "fit"]])
def test_options_of_the_local_executors_are_refused_with_a_cluster(capsys, spec, tmp_path, extra):
    code, _, err = run_cli(capsys, "run", str(spec), "--store", str(tmp_path / "s.db"),
                           "--cluster", "local:1", *extra)
    assert code == 2 and extra[0] in err and "--cluster" in err


@pytest.mark.slow
def test_a_study_runs_on_a_local_cluster_and_resumes(capsys, spec, tmp_path):
    pytest.importorskip("distributed", reason="the Dask extra is not installed")
    store = tmp_path / "s.db"
    code, out, err = run_cli(capsys, "run", str(spec), "--store", str(store), "--cluster",
                             "local:1", "--no-report")
    assert code == 0, err
    assert "Dask executor" in err and "6 run(s) trained" in err
    rows = raw(store, "SELECT arm, replica, status, attempts FROM runs ORDER BY arm, replica")
    assert rows == [(a, r, "done", 1) for a in ("baseline", "input") for r in range(3)]
    assert raw(store, "SELECT COUNT(*) FROM claims") == [(0,)]  # released
    code, _, err = run_cli(capsys, "run", str(spec), "--store", str(store), "--cluster",
                           "local:1", "--no-report")
    assert code == 0 and "0 run(s) trained, 6 reused" in err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_bad_claim_ttl_is_refused_naming_it(capsys, spec, tmp_path, value):
    code, _, err = run_cli(capsys, "run", str(spec), "--store", str(tmp_path / "s.db"),
                           "--claim-ttl", value)
    assert code == 2 and "--claim-ttl" in err and repr(value) in err
    assert not (tmp_path / "s.db").exists()
