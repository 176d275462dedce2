"""Never train wrong silently: the pre-flight refuses, before the store is touched, a model whose
output does not fit the task (logits or probabilities, output units) and continuous labels."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from noisewise.study import Study
from noisewise.study.config import SpecError


def _mlp(input_shape, units, activation):
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(units, activation=activation)(x))


def logits_head(input_shape, num_classes):
    return _mlp(input_shape, num_classes, None)


def softmax_head(input_shape, num_classes):
    return _mlp(input_shape, num_classes, "softmax")


def two_units(input_shape, num_classes):
    return _mlp(input_shape, 2, "softmax")


def spec(builder=None, data=None, **train):
    model = {"builder": builder} if builder is not None else {"name": "mlp", "hidden": [8]}
    return {"study": {"name": "preflight", "seeds": 1}, "data": data or {"name": "digits"},
            "model": model, "train": {"epochs": 1, **train}, "arms": [{"name": "baseline"}]}


def refused(raw, tmp_path):
    store = tmp_path / "never.db"
    with pytest.raises(SpecError) as info:
        Study(raw).run(store=store, quiet=True)
    assert not store.exists()  # refused before the store was touched
    text = str(info.value)
    assert len(text.splitlines()) == 1, text
    return text


def test_a_logits_head_with_a_probability_loss_is_refused(tmp_path):
    text = refused(spec(logits_head), tmp_path)
    assert text.startswith("model: arm 'baseline': the model's outputs are not probabilities")
    assert "end the model with a softmax" in text and "train.from_logits = true" in text


def test_from_logits_on_a_softmax_head_is_refused(tmp_path):
    text = refused(spec(softmax_head, from_logits=True), tmp_path)
    assert text.startswith("train.from_logits = true, but the model's output is a softmax")
    # The built-in models end with a softmax or sigmoid too.
    assert "a sigmoid" in refused(spec(data={"name": "moons"}, from_logits=True), tmp_path)


def test_the_wrong_number_of_output_units_is_refused(tmp_path):
    text = refused(spec(two_units), tmp_path)
    assert text == ("model: arm 'baseline': the model has 2 output unit(s) per row (output "
                    "shape (2,)), and the data has 10 classes: a 10-class task needs 10 output "
                    "units (softmax)")
    # Binary: one sigmoid unit or two softmax units both fit.
    assert Study(spec(two_units, data={"name": "moons"})).check() > 0
    text = refused(spec(softmax_head, data={"name": "sine"}, metrics=["mae"]), tmp_path)
    assert "the model ends with a softmax, which cannot output the regression targets" in text
    text = refused(spec(two_units, data={"name": "sine"}, metrics=["mae"]), tmp_path)
    assert "the regression data has 1 target(s) per row" in text


def test_float_labels_given_to_a_classifier_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = x @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=200)
    np.savez(tmp_path / "reg.npz", x_train=x[:150], y_train=y[:150], x_test=x[150:],
             y_test=y[150:])
    text = refused(spec(data={"path": str(tmp_path / "reg.npz")}), tmp_path)
    assert "labels look continuous" in text and 'set the task to regression ([data] task = ' \
        '"regression")' in text
    # Integer-valued targets (a count, a score) are refused too, before the
    # stratified split of a CSV fails on classes seen once.
    rows = ["a,b,label"] + [f"{i},{i % 7},{100 + 3 * i}" for i in range(120)]
    (tmp_path / "scores.csv").write_text("\n".join(rows) + "\n")
    text = refused(spec(data={"path": str(tmp_path / "scores.csv")}), tmp_path)
    assert "labels look continuous (120 distinct numbers in 120 rows" in text
    assert "if they are classes, give them as text" in text


@pytest.mark.slow
def test_the_logits_builder_trains_as_the_softmax_builder_with_from_logits():
    # The refusal's advice followed: the same network, its softmax moved into
    # the loss, trains to the softmax builder's accuracy (digits, 3 seeds).
    def accuracy(builder, **train):
        raw = spec(builder, epochs=15, batch_size=64, learning_rate=0.005, **train)
        raw["study"]["seeds"] = 3
        study = Study(raw)
        study.check()
        from noisewise.study.execute import FitExecutor

        return [FitExecutor().run_one(p).final["val_accuracy"] for p in study.plans()]

    soft = accuracy(softmax_head)
    logit = accuracy(logits_head, from_logits=True)
    assert min(soft) > 0.85
    assert abs(np.mean(soft) - np.mean(logit)) <= 0.01, (soft, logit)


def test_the_command_line_exits_2_with_one_line(tmp_path):
    (tmp_path / "models.py").write_text(
        "import keras\n\n\ndef build(input_shape, num_classes):\n"
        "    inputs = keras.Input(input_shape)\n"
        "    x = keras.layers.Flatten()(inputs)\n"
        "    return keras.Model(inputs, keras.layers.Dense(3)(x))\n")
    (tmp_path / "spec.toml").write_text(
        '[study]\nname = "cli"\nseeds = 1\n[data]\nname = "digits"\n'
        '[model]\nbuilder = "models:build"\n[train]\nepochs = 1\n[[arms]]\nname = "baseline"\n')
    done = subprocess.run([sys.executable, "-m", "noisewise.cli", "run", "spec.toml", "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if "3 output unit(s)" in line]
    assert len(lines) == 1 and "a 10-class task needs 10 output units" in lines[0]
    assert not (tmp_path / "noisewise.db").exists()
