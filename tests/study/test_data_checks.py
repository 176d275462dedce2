"""Data is checked when it is loaded, before training: nothing guessed, nothing non-finite.

Every case writes a real file (CSV, .npz, a loader module) in tmp_path and
loads it as a study would; the messages name the file, the split or column,
the rows and the values.
"""

import hashlib
import re

import numpy as np
import pytest

from noisewise.cli import main
from noisewise.study.datasets import code_fingerprint, fingerprint, load_dataset


def _csv(path, rows, header="a,b,label"):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _rows(n=12, label=lambda i: i % 2):
    return [f"{i * 0.1:.1f},{1 - i * 0.1:.1f},{label(i)}" for i in range(n)]


def _refused(data, base, pattern):
    with pytest.raises(ValueError) as info:
        load_dataset(data, base_dir=base)
    message = str(info.value)
    assert re.search(pattern, message), message
    return message


# -- non-finite features ---------------------------------------------------------------
def test_nan_and_inf_in_an_npz_are_refused_with_split_count_and_positions(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 2))
    x[4, 1], x[9, 0], x[11, 0] = np.nan, np.inf, -np.inf
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(20) % 2,
             x_test=np.zeros((4, 2)), y_test=[0, 1, 0, 1])
    message = _refused({"path": "d.npz"}, tmp_path, r"^d\.npz: x_train has 3 non-finite values ")
    assert "nan at row 4 col 1, inf at row 9 col 0, -inf at row 11 col 0" in message
    assert 'set [data] nonfinite = "drop" to drop those rows' in message


def test_values_beyond_float32_count_as_non_finite(tmp_path):
    x = np.ones((6, 8, 8, 1))
    x[2, 3, 4, 0] = 1e300
    np.savez(tmp_path / "img.npz", x_train=np.zeros_like(x), y_train=np.arange(6) % 2,
             x_test=x, y_test=np.arange(6) % 2)
    _refused({"path": "img.npz"}, tmp_path,
             r"x_test has 1 non-finite value \(1e\+300 \(beyond float32\) at row 2, "
             r"position \(3, 4, 0\)\)")


def test_drop_removes_the_rows_and_says_how_many(tmp_path):
    x = np.arange(40, dtype=float).reshape(20, 2)
    x[[3, 7], 0] = np.nan
    y = np.arange(20) % 2
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=np.zeros((4, 2)), y_test=y[:4])
    data = load_dataset({"path": "d.npz", "nonfinite": "drop"}, base_dir=tmp_path)
    assert data.x_train.shape == (18, 2) and np.isfinite(data.x_train).all()
    np.testing.assert_array_equal(data.y_train, np.delete(y, [3, 7]))
    assert data.notes == ("d.npz: dropped 2 of 20 rows of x_train with non-finite values",)
    clean = load_dataset({"path": "d.npz", "nonfinite": "drop"}, base_dir=tmp_path)
    assert fingerprint(clean) == fingerprint(data)


def test_csv_nan_inf_and_empty_cells_are_refused_by_file_row_and_column(tmp_path):
    rows = _rows()
    rows[2], rows[5], rows[8] = "nan,0.5,0", "0.5,inf,1", "0.5,,0"
    _csv(tmp_path / "d.csv", rows)
    message = _refused({"path": "d.csv"}, tmp_path,
                       r"^d\.csv: 3 missing or non-finite feature values \(")
    assert "nan at row 4 column 'a', inf at row 7 column 'b', empty at row 10 column 'b'" in message
    data = load_dataset({"path": "d.csv", "nonfinite": "drop", "test_size": 0.3},
                        base_dir=tmp_path)
    assert len(data.x_train) + len(data.x_test) == 9
    assert data.notes == ("d.csv: dropped 3 of 12 rows with missing or non-finite feature "
                          "values (rows 4, 7, 10)",)


def test_a_loader_returning_nan_is_refused_naming_the_loader(tmp_path):
    (tmp_path / "nan_loader.py").write_text(
        "import numpy as np\n"
        "def load():\n"
        "    x = np.ones((8, 2)); x[5, 1] = np.nan\n"
        "    return x, np.arange(8) % 2, np.ones((4, 2)), np.arange(4) % 2\n")
    _refused({"loader": "nan_loader:load"}, tmp_path,
             r"^nan_loader:load: x_train has 1 non-finite value \(nan at row 5 col 1\)")
    data = load_dataset({"loader": "nan_loader:load", "nonfinite": "drop"}, base_dir=tmp_path)
    assert len(data.x_train) == 7 and data.notes


# -- labels are never guessed ------------------------------------------------------------
def test_empty_csv_labels_are_refused_with_their_rows(tmp_path):
    rows = _rows(20)
    rows[3], rows[15] = "0.3,0.7,", "0.1,0.2, "
    _csv(tmp_path / "d.csv", rows)
    _refused({"path": "d.csv"}, tmp_path,
             r"^d\.csv: 2 empty labels in column 'label' at rows 5, 17; every row needs")


def test_nan_labels_in_a_csv_are_missing_not_a_class(tmp_path):
    rows = _rows()
    rows[6] = "0.1,0.1,nan"
    _csv(tmp_path / "d.csv", rows)
    _refused({"path": "d.csv"}, tmp_path,
             r"1 missing or non-finite label \(nan or inf\) in column 'label' at row 8")


def test_a_continuous_csv_target_is_refused(tmp_path):
    values = np.random.default_rng(1).uniform(0, 2, size=40)
    _csv(tmp_path / "d.csv", [f"{i},{i},{v:.2f}" for i, v in enumerate(values)])
    message = _refused({"path": "d.csv"}, tmp_path,
                       r"labels look continuous \(\d+ distinct non-integer values, e\.g\. ")
    assert 'set the task to regression ([data] task = "regression")' in message


def test_integer_valued_float_and_text_labels_stay_classes(tmp_path):
    _csv(tmp_path / "f.csv", _rows(label=lambda i: f"{i % 3 + 1}.0"))
    assert load_dataset({"path": "f.csv"}, base_dir=tmp_path).num_classes == 3
    _csv(tmp_path / "t.csv", _rows(label=lambda i: ["cat", "dog"][i % 2]))
    assert load_dataset({"path": "t.csv"}, base_dir=tmp_path).num_classes == 2
    y = np.arange(12) % 2 + 1.0
    np.savez(tmp_path / "d.npz", x_train=np.ones((12, 2)), y_train=y, x_test=np.ones((4, 2)),
             y_test=y[:4])
    data = load_dataset({"path": "d.npz"}, base_dir=tmp_path)
    assert data.num_classes == 2 and data.y_train.tolist() == (y - 1).astype(int).tolist()


def test_float_labels_in_arrays_are_checked(tmp_path):
    x = np.ones((10, 2))
    np.savez(tmp_path / "nan.npz", x_train=x, y_train=[0, 1, np.nan, 1, 0, 1, 0, 1, 0, 1],
             x_test=x, y_test=np.arange(10) % 2)
    _refused({"path": "nan.npz"}, tmp_path,
             r"y_train: 1 missing or non-finite label \(nan or inf\) at row 2 \(counting from 0\)")
    np.savez(tmp_path / "cont.npz", x_train=x, y_train=np.linspace(0, 1, 10), x_test=x,
             y_test=np.arange(10) % 2)
    _refused({"path": "cont.npz"}, tmp_path,
             r"^cont\.npz: y_train: labels look continuous \(8 distinct non-integer values")
    np.savez(tmp_path / "empty.npz", x_train=x, y_train=["a", "b", "", "a", "b"] * 2, x_test=x,
             y_test=["a", "b"] * 5)
    _refused({"path": "empty.npz"}, tmp_path, r"y_train: 2 empty labels at rows 2, 7")


def test_a_loader_with_none_labels_or_mixed_kinds_is_refused(tmp_path):
    (tmp_path / "labels.py").write_text(
        "import numpy as np\n"
        "x = np.ones((4, 2))\n"
        "def none():\n    return x, [0, None, 1, None], x, [0, 1, 0, 1]\n"
        "def mixed():\n    return x, [0, 'a', 1, 'b'], x, ['a', 'b', 'a', 'b']\n"
        "def kinds():\n    return x, [0, 1, 0, 1], x, ['a', 'b', 'a', 'b']\n")
    _refused({"loader": "labels:none"}, tmp_path, r"y_train: 2 empty labels at rows 1, 3")
    _refused({"loader": "labels:mixed"}, tmp_path, r"labels must all be numbers or all be text")
    _refused({"loader": "labels:kinds"}, tmp_path, r"y_train and y_test must both hold numbers")


# -- clear messages for broken files ------------------------------------------------------
def test_a_text_file_named_npz_is_not_called_pickled(tmp_path):
    (tmp_path / "x.npz").write_text("x_train,y_train\n1,2\n")
    message = _refused({"path": "x.npz"}, tmp_path, r"^x\.npz: not a NumPy \.npz archive \(")
    assert "pickle" not in message and "numpy.savez" in message
    np.save(tmp_path / "one.npy", np.zeros(3))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    _refused({"path": "one.npz"}, tmp_path, r"single \.npy array")
    np.savez(tmp_path / "obj.npz", x_train=np.ones((2, 2)), y_train=np.array([1, None]),
             x_test=np.ones((2, 2)), y_test=[0, 1])
    _refused({"path": "obj.npz"}, tmp_path, r"array 'y_train' holds Python objects")


@pytest.mark.parametrize("bad_row, cells", [("0.5,1", 2), ("0.5,1,0,extra", 4)])
def test_a_csv_row_with_the_wrong_cell_count_names_its_row(tmp_path, bad_row, cells):
    rows = _rows()
    rows[5] = bad_row
    _csv(tmp_path / "d.csv", rows)
    _refused({"path": "d.csv"}, tmp_path, rf"^d\.csv: row 7 has {cells} cells, the header has 3$")


def test_a_non_numeric_feature_names_row_column_and_value(tmp_path):
    rows = _rows()
    rows[1] = "0.5,high,1"
    _csv(tmp_path / "d.csv", rows)
    _refused({"path": "d.csv"}, tmp_path,
             r"^d\.csv: row 3, column 'b': not a number: 'high' \(every column but 'label' is")


def test_missing_folder_and_non_utf8_data_files(tmp_path):
    _refused({"path": "gone.csv"}, tmp_path, r"^gone\.csv: no such data file \(looked in ")
    (tmp_path / "dir.csv").mkdir()
    _refused({"path": "dir.csv"}, tmp_path, r"^dir\.csv: is a folder")
    (tmp_path / "latin.csv").write_bytes("a,b,label\n1,2,caf\xe9\n".encode("latin-1"))
    _refused({"path": "latin.csv"}, tmp_path, r"^latin\.csv: not a UTF-8 text file \(byte ")
    _csv(tmp_path / "dup.csv", _rows(), header="a,label,label")
    _refused({"path": "dup.csv"}, tmp_path, r"2 columns named 'label'")


# -- refused before training, through the command line -------------------------------------
SPEC = """
[study]
name = "own"
seeds = 1

[data]
path = "data.csv"

[model]
name = "mlp"
hidden = [4]

[train]
epochs = 1

[[arms]]
name = "baseline"
"""


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_nan_cell_exits_2_before_any_store_is_written(tmp_path, capsys):
    rows = _rows(20)
    rows[9] = "nan,0.5,1"
    data = _csv(tmp_path / "data.csv", rows)
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    before = {p: _sha(p) for p in (data, spec)}
    code = main(["run", str(spec), "--store", str(tmp_path / "s.db"), "--quiet", "--no-report"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("noisewise: invalid spec: data: ") and "nan at row 11 column 'a'" in err
    assert len(err.strip().splitlines()) == 1
    assert {p: _sha(p) for p in (data, spec)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "spec.toml"]


def _text_npz(folder):
    (folder / "data.npz").write_text("not an archive\n")
    return {"path": "data.npz"}


def _short_row(folder):
    rows = _rows(20)
    rows[5] = "0.5,1"
    _csv(folder / "data.csv", rows)
    return {"path": "data.csv"}


def _empty_labels(folder):
    rows = _rows(20)
    rows[3] = "0.3,0.7,"
    _csv(folder / "data.csv", rows)
    return {"path": "data.csv"}


def _continuous(folder):
    _csv(folder / "data.csv", [f"{i},{i},{i / 7:.3f}" for i in range(40)])
    return {"path": "data.csv"}


def _inf_cell(folder):
    rows = _rows(20)
    rows[2] = "inf,0.5,0"
    _csv(folder / "data.csv", rows)
    return {"path": "data.csv"}


def _nan_loader(folder):
    (folder / "loader.py").write_text(
        "import numpy as np\n"
        "def load():\n"
        "    x = np.ones((10, 2)); x[3, 0] = np.nan\n"
        "    return x, np.arange(10) % 2, np.ones((4, 2)), np.arange(4) % 2\n")
    return {"loader": "loader:load"}


@pytest.mark.parametrize("make, expected", [
    (_text_npz, r"data\.npz: not a NumPy \.npz archive"),
    (_short_row, r"data\.csv: row 7 has 2 cells, the header has 3"),
    (_empty_labels, r"data\.csv: 1 empty label in column 'label' at row 5"),
    (_continuous, r"labels look continuous"),
    (_inf_cell, r"data\.csv: 1 missing or non-finite feature value \(inf at row 4 column 'a'\)"),
    (_nan_loader, r"loader:load: x_train has 1 non-finite value \(nan at row 3 col 0\)"),
])
def test_bad_data_exits_2_before_training_and_touches_no_file(tmp_path, capsys, make, expected):
    data = make(tmp_path)
    source = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in data.items())
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace('path = "data.csv"', source))
    files = sorted(p for p in tmp_path.iterdir() if p.is_file())
    before = {p: _sha(p) for p in files}
    code = main(["run", str(spec), "--store", str(tmp_path / "s.db"), "--quiet", "--no-report"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert re.search(r"^noisewise: invalid spec: data: .*" + expected, err), err
    assert len(err.splitlines()) == 1
    assert {p: _sha(p) for p in files} == before
    assert not (tmp_path / "s.db").exists()


# -- fingerprints -----------------------------------------------------------------------
def test_the_data_fingerprint_follows_the_arrays(tmp_path):
    _csv(tmp_path / "d.csv", _rows(20))
    first = fingerprint(load_dataset({"path": "d.csv"}, base_dir=tmp_path))
    assert first == fingerprint(load_dataset({"path": "d.csv"}, base_dir=tmp_path))
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    rows = _rows(20)
    rows[4] = "0.4,0.6,1"  # one label flipped
    _csv(tmp_path / "d.csv", rows)
    assert fingerprint(load_dataset({"path": "d.csv"}, base_dir=tmp_path)) != first
    circles = load_dataset({"name": "circles"})
    assert fingerprint(circles) != fingerprint(load_dataset({"name": "circles", "n_train": 31}))


def test_the_code_fingerprint_covers_the_whole_loader_and_builder_modules(tmp_path):
    assert code_fingerprint({"name": "circles"}, {"name": "mlp"}, tmp_path) is None
    loader = tmp_path / "my_loader.py"
    builder = tmp_path / "my_builder.py"
    loader.write_text("SCALE = 1\ndef helper():\n    return SCALE\ndef load():\n    pass\n")
    builder.write_text("def build(input_shape, num_classes):\n    pass\n")
    data, model = {"loader": "my_loader:load"}, {"builder": "my_builder:build"}
    both = code_fingerprint(data, model, tmp_path)
    assert both == code_fingerprint(data, model, tmp_path)
    only_loader = code_fingerprint(data, {"name": "mlp"}, tmp_path)
    assert only_loader is not None and only_loader != both
    loader.write_text(loader.read_text().replace("SCALE = 1", "SCALE = 2"))  # a helper's edit
    assert code_fingerprint(data, model, tmp_path) != both
    changed = code_fingerprint(data, model, tmp_path)
    builder.write_text(builder.read_text() + "# a comment\n")
    assert code_fingerprint(data, model, tmp_path) != changed
    (tmp_path / "unrelated.py").write_text("x = 1\n")
    assert code_fingerprint(data, {"name": "mlp"}, tmp_path) == code_fingerprint(
        data, {"name": "mlp"}, tmp_path)
