"""``noisewise robustness``: a saved model evaluated from the command line, and its exit codes."""

import json

import keras
import numpy as np
import pytest

from noisewise.cli import main


@pytest.fixture
def saved(tmp_path):
    """A saved three-class linear model and an .npz of its test data."""
    rng = np.random.default_rng(8)
    w = rng.normal(size=(5, 3)).astype("float32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.set_weights([w, np.zeros(3, "float32")])
    x = rng.uniform(size=(60, 5)).astype("float32")
    y = (x @ w + rng.normal(scale=0.3, size=(60, 3))).argmax(axis=1)
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x_test=x, y_test=y)
    return tmp_path / "m.keras", tmp_path / "d.npz"


def test_evaluates_a_saved_model(saved, tmp_path, capsys):
    model, data = saved
    out = tmp_path / "metrics.json"
    code = main(["robustness", model, "--data", data, "--levels", "0,0.2", "--draws", "2",
                 "--noise", "gaussian", "--attack", "fgsm", "--eps", "0.1", "--clip", "0,1",
                 "--sigma", "0.25", "--n0", "10", "--n", "50", "--json", out])
    assert code == 0
    metrics = json.loads(out.read_text())
    expected = {"clean_acc", "noise_acc@gaussian=0.2", "adv_acc@fgsm_linf=0.1",
                "certified_acc@r=0.25"}
    assert expected <= set(metrics)
    assert "95% CI" in capsys.readouterr().out
    assert main(["robustness", model, "--data", data, "--levels", "0.1", "--draws", "1",
                 "--quiet", "--json", "-"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"clean_acc", "noise_acc@gaussian=0.1"}


def test_bad_inputs_exit_2_with_one_line(saved, tmp_path, capsys):
    model, data = saved
    assert main(["robustness", tmp_path / "missing.keras", "--data", data]) == 2
    assert "model file not found" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps({"attacks": [{"type": "cw"}]}))
    assert main(["robustness", model, "--data", data, "--config", tmp_path / "bad.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("noisewise robustness: ") and "attacks[0].type" in err
    assert main(["robustness", model, "--data", "mnist"]) == 2
    assert "--data must be" in capsys.readouterr().err
    assert main(["robustness", model, "--data", data, "--levels", "0,x"]) == 2
    assert "expected comma-separated numbers" in capsys.readouterr().err


def test_a_failed_evaluation_keeps_the_old_json_file(saved, tmp_path, capsys):
    model, data = saved
    out = tmp_path / "metrics.json"
    out.write_text('{"old": 1}\n')
    # Labels the model cannot have produced: refused after loading, before any file is written.
    np.savez(tmp_path / "wrong.npz", x_test=np.ones((4, 5), "float32"), y_test=np.full(4, 9))
    code = main(["robustness", model, "--data", tmp_path / "wrong.npz", "--json", out,
                 "--force"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("noisewise robustness: `y_test` must hold"), err
    assert out.read_text() == '{"old": 1}\n'


def test_reads_a_built_in_study_dataset(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    model.save(tmp_path / "digits.keras")
    out = tmp_path / "m.json"
    assert main(["robustness", tmp_path / "digits.keras", "--data", "digits", "--max-examples",
                 "30", "--levels", "0.1", "--draws", "1", "--quiet", "--json", out]) == 0
    assert set(json.loads(out.read_text())) == {"clean_acc", "noise_acc@gaussian=0.1"}
