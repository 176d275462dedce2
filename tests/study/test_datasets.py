"""Built-in datasets (no network) and the user's own data: npz, csv and a loader function."""

import numpy as np
import pytest
from sklearn.datasets import make_circles

from noisewise.study import SpecError, load_spec
from noisewise.study.datasets import load_dataset


def test_circles_is_the_tutorial_split():
    x, y = make_circles(n_samples=100, noise=0.1, random_state=1)
    data = load_dataset({"name": "circles"})
    np.testing.assert_array_equal(data.x_train, x[:30].astype("float32"))
    np.testing.assert_array_equal(data.x_test, x[30:].astype("float32"))
    np.testing.assert_array_equal(data.y_train, y[:30])
    np.testing.assert_array_equal(data.y_test, y[30:])
    assert data.binary and data.input_shape == (2,)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32


def test_moons_split_is_stratified_and_fixed():
    data = load_dataset({"name": "moons"})
    assert (len(data.x_train), len(data.x_test)) == (100, 100)
    assert np.bincount(data.y_train).tolist() == [50, 50]
    again = load_dataset({"name": "moons", "split_seed": 0})
    np.testing.assert_array_equal(data.x_train, again.x_train)
    other = load_dataset({"name": "moons", "split_seed": 1})
    assert not np.array_equal(data.x_train, other.x_train)


def test_digits_are_images_in_unit_range():
    data = load_dataset({"name": "digits"})
    assert data.x_train.shape[1:] == (8, 8, 1) and data.num_classes == 10
    assert len(data.x_train) + len(data.x_test) == 1797
    assert len(data.x_test) == int(np.ceil(0.25 * 1797))
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0


def test_breast_cancer_is_standardised_with_training_statistics():
    data = load_dataset({"name": "breast_cancer"})
    assert data.x_train.shape[1] == 30 and data.binary
    # Exactly standardised on the training split (float32 rounding only) ...
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1.0, rtol=1e-4)
    # ... but not on the test split, which did not take part in the statistics.
    assert np.abs(data.x_test.mean(axis=0)).max() > 1e-3


def _arrays(rng, n_train=40, n_test=20):
    x = rng.normal(size=(n_train + n_test, 3))
    y = (x[:, 0] > 0).astype(int)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def test_npz_file(tmp_path):
    x_train, y_train, x_test, y_test = _arrays(np.random.default_rng(0))
    np.savez(tmp_path / "data.npz", x_train=x_train, y_train=y_train + 1, x_test=x_test,
             y_test=y_test + 1)
    data = load_dataset({"path": "data.npz"}, base_dir=tmp_path)
    np.testing.assert_allclose(data.x_train, x_train.astype("float32"))
    np.testing.assert_array_equal(data.y_test, y_test)  # labels {1, 2} mapped to {0, 1}
    np.savez(tmp_path / "bad.npz", x_train=x_train)
    with pytest.raises(ValueError, match="y_train"):
        load_dataset({"path": "bad.npz"}, base_dir=tmp_path)


def _write_csv(path, x, labels, split=None):
    header = ["a", "b", "c", "label"] + (["split"] if split is not None else [])
    lines = [",".join(header)]
    for i, (row, label) in enumerate(zip(x, labels)):
        cells = [repr(float(v)) for v in row] + [str(label)]
        cells += [split[i]] if split is not None else []
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def test_csv_with_a_split_column_and_string_labels(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    labels = np.where(x[:, 1] > 0, "cat", "dog")
    split = ["train"] * 20 + ["test"] * 10
    _write_csv(tmp_path / "d.csv", x, labels, split)
    data = load_dataset({"path": "d.csv"}, base_dir=tmp_path)
    np.testing.assert_allclose(data.x_train, x[:20].astype("float32"))
    np.testing.assert_array_equal(data.y_test, (labels[20:] == "dog").astype(int))


def test_csv_without_split_column_is_split_by_test_size(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3))
    _write_csv(tmp_path / "d.csv", x, (x[:, 0] > 0).astype(int))
    data = load_dataset({"path": "d.csv", "test_size": 0.25}, base_dir=tmp_path)
    assert (len(data.x_train), len(data.x_test)) == (30, 10)
    with pytest.raises(ValueError, match="no label column 'y'"):
        load_dataset({"path": "d.csv", "target": "y"}, base_dir=tmp_path)


def test_loader_function_next_to_the_spec(tmp_path):
    (tmp_path / "my_data.py").write_text(
        "import numpy as np\n"
        "def load(n=10):\n"
        "    x = np.arange(4 * n, dtype=float).reshape(2 * n, 2)\n"
        "    y = np.arange(2 * n) % 3\n"
        "    return {'x_train': x[:n], 'y_train': y[:n], 'x_test': x[n:], 'y_test': y[n:]}\n"
    )
    data = load_dataset({"loader": "my_data:load", "n": 6}, base_dir=tmp_path)
    assert data.x_train.shape == (6, 2) and data.num_classes == 3 and not data.binary


def test_data_errors_are_spec_errors_with_the_key():
    base = {"study": {"name": "d"}, "model": {"name": "mlp"}, "arms": [{"name": "a"}]}
    with pytest.raises(SpecError, match=r"^data\.test_size: "):
        load_spec({**base, "data": {"name": "digits", "test_size": 1.5}})
    with pytest.raises(SpecError, match=r"^data\.loader: "):
        load_spec({**base, "data": {"loader": "not a reference"}})
    with pytest.raises(SpecError, match=r"^data\.colour: unknown key"):
        load_spec({**base, "data": {"name": "moons", "colour": 1}})
