"""A study's identity includes its data and the user's code: a resume never mixes them."""

import hashlib
import textwrap

import numpy as np
import pytest

from noisewise.cli import main
from noisewise.study import Store

SPEC = """
[study]
name = "own"
seeds = 2

[data]
path = "data.csv"
split_column = "split"

[model]
builder = "my_models:build"

[train]
epochs = 2
batch_size = 8

[[arms]]
name = "baseline"
"""

BUILDER = """
import keras


def build(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    hidden = keras.layers.Dense({units}, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
"""


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_csv(path, flip=False):
    rng = np.random.default_rng(0)
    lines = ["x0,x1,label,split"]
    for i in range(40):
        x = rng.normal(size=2)
        label = int(x[0] > 0) ^ (flip and i % 3 == 0)
        lines.append(f"{x[0]:.4f},{x[1]:.4f},{label},{'train' if i < 28 else 'test'}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "spec.toml").write_text(SPEC)
    (tmp_path / "my_models.py").write_text(BUILDER.format(units=4))
    write_csv(tmp_path / "data.csv")
    return tmp_path


def run(capsys, folder, *extra):
    code = main(["run", str(folder / "spec.toml"), "--store", str(folder / "s.db"), "--quiet",
                 "--no-report", *extra])
    return code, capsys.readouterr().err


def test_resume_with_changed_data_is_refused_and_the_store_untouched(folder, capsys):
    assert run(capsys, folder)[0] == 0
    write_csv(folder / "data.csv", flip=True)
    before = sha256(folder / "s.db")
    code, err = run(capsys, folder)
    assert code == 3, err
    assert "data" in err and "--new" in err
    assert sha256(folder / "s.db") == before
    # --new keeps the old study under another name and trains the new data from scratch.
    code, err = run(capsys, folder, "--new")
    assert code == 0, err
    with Store(folder / "s.db", readonly=True) as store:
        names = [s["name"] for s in store.studies()]
        assert names[-1] == "own" and names[0].startswith("own@")
        assert len(store.runs(store.study("own")["id"])) == 2


def test_resume_with_changed_builder_is_refused(folder, capsys):
    assert run(capsys, folder)[0] == 0
    (folder / "my_models.py").write_text(BUILDER.format(units=6))
    before = sha256(folder / "s.db")
    code, err = run(capsys, folder)
    assert code == 3, err
    assert "code" in err
    assert sha256(folder / "s.db") == before


def test_resume_with_the_same_data_and_code_trains_nothing(folder, capsys):
    assert run(capsys, folder)[0] == 0
    code, err = run(capsys, folder)
    assert code == 0, err
    with Store(folder / "s.db", readonly=True) as store:
        assert len(store.runs(store.study("own")["id"])) == 2


def test_a_raising_loader_is_a_data_error(tmp_path, capsys):
    (tmp_path / "loader.py").write_text(textwrap.dedent("""
        def load():
            raise RuntimeError("the bucket is gone")
    """))
    spec = SPEC.replace('path = "data.csv"\nsplit_column = "split"', 'loader = "loader:load"')
    spec = spec.replace('builder = "my_models:build"', 'name = "mlp"\nhidden = [4]')
    (tmp_path / "spec.toml").write_text(spec)
    code, err = run(capsys, tmp_path)
    assert code == 2, err
    assert "data: cannot load the dataset: RuntimeError: the bucket is gone" in err
    assert not (tmp_path / "s.db").exists()
