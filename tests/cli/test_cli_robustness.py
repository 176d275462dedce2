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
    metrics = json.loads(out.read_text())["metrics"]
    expected = {"clean_acc", "noise_acc@gaussian=0.2", "adv_acc@fgsm_linf=0.1",
                "certified_acc@r=0.25"}
    assert expected <= set(metrics)
    assert "95% CI" in capsys.readouterr().out
    assert main(["robustness", model, "--data", data, "--levels", "0.1", "--draws", "1",
                 "--quiet", "--json", "-"]) == 0
    assert set(json.loads(capsys.readouterr().out)["metrics"]) == {"clean_acc", "noise_acc@gaussian=0.1"}


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
    assert set(json.loads(out.read_text())["metrics"]) == {"clean_acc", "noise_acc@gaussian=0.1"}


@pytest.fixture(scope="module")
def digits_models(tmp_path_factory):
    """An MLP trained on digits images (8x8x1) and the same weights behind a flat 64-feature input."""
    from noisewise.study.datasets import load_dataset

    data = load_dataset({"name": "digits"})
    keras.utils.set_random_seed(0)
    image = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
    image.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    image.fit(data.x_train, data.y_train, epochs=10, batch_size=64, verbose=0)
    flat = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(10)])
    flat.set_weights(image.get_weights())
    folder = tmp_path_factory.mktemp("digits")
    image.save(folder / "image.keras")
    flat.save(folder / "flat.keras")
    return folder


def pgd_json(model, capsys, *extra):
    args = ["robustness", model, "--data", "digits", "--attack", "pgd", "--eps", "0.1",
            "--max-examples", "200", "--json", "-", *extra]
    assert main(args) == 0
    text = capsys.readouterr().out
    return text, json.loads(text[text.index('{\n  "model"'):])  # the JSON follows any tables


def test_attacks_clip_to_the_data_range_by_default_and_every_setting_is_stated(digits_models, capsys,
                                                                                monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps at the terminal's width
    text, default = pgd_json(digits_models / "image.keras", capsys)
    _, given = pgd_json(digits_models / "image.keras", capsys, "--clip", "0,1", "--quiet")
    _, unclipped = pgd_json(digits_models / "image.keras", capsys, "--clip", "none", "--quiet")
    metric = "adv_acc@pgd_linf=0.1"
    assert default["metrics"][metric] == given["metrics"][metric]
    # Leaving [0, 1] (background pixels below 0) is a stronger attack on inputs that cannot occur:
    # on 200 examples the gap is far beyond one example (0.005).
    assert unclipped["metrics"][metric] < default["metrics"][metric] - 0.05, (unclipped, default)
    assert default["data"]["clip"] == [0.0, 1.0] and "digits pixels" in default["data"]["clip_source"]
    assert unclipped["data"]["clip"] is None
    record = next(r for r in default["records"] if r["metric"] == metric)
    assert {k: record[k] for k in ("attack", "norm", "eps", "steps", "step_size", "clip", "examples")} == {
        "attack": "pgd", "norm": "linf", "eps": 0.1, "steps": 10, "step_size": pytest.approx(0.025),
        "clip": [0.0, 1.0], "examples": 200}
    assert 0.0 <= record["ci_low"] < record["value"] < record["ci_high"] <= 1.0
    assert record["count"] == round(record["value"] * 200)
    for words in ("test split, 200 examples", "pgd attack", "norm linf", "steps 10", "step size",
                  "clip [0, 1]", "Clopper-Pearson 95% over examples", "eps"):
        assert words in text, words
    assert f"{record['value']:.4f}" in text


def test_smoothing_output_states_sigma_n0_n_and_alpha(digits_models, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["robustness", digits_models / "image.keras", "--data", "digits", "--sigma", "0.25",
                 "--n0", "10", "--n", "40", "--alpha", "0.01", "--max-examples", "20"]) == 0
    text = capsys.readouterr().out
    for words in ("randomized smoothing", "sigma 0.25", "n0 10", "n 40", "alpha 0.01",
                  "test split, 20 examples", "certified_acc@r=0.25", "smoothing_abstain_rate"):
        assert words in text, words


def test_a_flat_input_model_gets_reshaped_digits_and_the_same_figures(digits_models, capsys):
    _, image = pgd_json(digits_models / "image.keras", capsys, "--quiet")
    _, flat = pgd_json(digits_models / "flat.keras", capsys, "--quiet")
    assert flat["metrics"] == image["metrics"]
    assert (flat["data"]["shape"], flat["data"]["model_shape"], flat["data"]["reshaped"]) == (
        [8, 8, 1], [64], True)
    assert not image["data"]["reshaped"]


def test_a_model_of_another_input_size_is_refused_in_one_line(tmp_path, capsys):
    keras.Sequential([keras.Input((63,)), keras.layers.Dense(10)]).save(tmp_path / "m63.keras")
    assert main(["robustness", tmp_path / "m63.keras", "--data", "digits", "--attack", "pgd"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 300, err
    assert "(63,)" in err and "(8, 8, 1)" in err and "cannot be reshaped" in err


def test_data_without_a_known_range_is_clipped_to_its_observed_range(saved, capsys):
    model, data = saved
    args = ["robustness", model, "--data", data, "--attack", "fgsm", "--quiet", "--json", "-"]
    assert main(args) == 0
    default = json.loads(capsys.readouterr().out)
    with np.load(data) as f:
        low, high = float(f["x_test"].min()), float(f["x_test"].max())
    assert default["data"]["clip"] == [low, high]
    assert default["data"]["clip_source"] == "the data's range: observed min and max of the 60 test examples"
    assert main(args + ["--clip", f"{low!r},{high!r}"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == default["metrics"]
    assert main(args + ["--clip", "sometimes"]) == 2
    assert "--clip must be LOW,HIGH, 'data' or 'none'. Received: --clip='sometimes'" in capsys.readouterr().err
