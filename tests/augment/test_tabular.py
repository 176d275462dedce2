"""Per-feature tabular noise on a real table (scikit-learn's breast cancer data)."""

import keras
import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_breast_cancer

from noisewise.augment import TabularNoise, from_spec

K = 5.0


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.fixture(scope="module")
def table():
    """30 numeric features, plus a categorical code column (2) and a constant column (last)."""
    x = load_breast_cancer().data.astype("float32")
    x[:, 2] = np.arange(len(x)) % 4  # category codes 0..3
    return np.concatenate([x, np.full((len(x), 1), 7.0, "float32")], axis=1)


def test_adapt_learns_per_feature_scale(table):
    layer = TabularNoise(0.1, categorical=[2], seed=0).adapt(table)
    expected = 0.1 * table.astype("float64").std(axis=0)
    expected[[2, 30]] = 0.0
    np.testing.assert_allclose(layer.scale_, expected, rtol=1e-6)
    assert layer.categorical_ == [2] and layer.constant_ == [30]


def test_noise_scaled_per_feature_and_never_on_categorical_or_constant(table):
    layer = TabularNoise(0.2, categorical=[2], seed=1).adapt(table)
    big = np.tile(table, (8, 1))
    noise = to_numpy(layer(big, training=True)).astype("float64") - big
    assert np.array_equal(noise[:, 2], np.zeros(len(big)))
    assert np.array_equal(noise[:, 30], np.zeros(len(big)))
    numeric = [j for j in range(31) if j not in (2, 30)]
    z = (noise[:, numeric] / layer.scale_[numeric]).ravel()  # N(0, 1) if scaled right
    n = z.size
    assert abs(z.var() - 1.0) < K * np.sqrt(2.0 / n)
    assert stats.kstest(z, "norm").statistic < np.sqrt(-np.log(1e-4 / 2) / 2) / np.sqrt(n)
    # Each column separately: its std over 4552 rows within K SE (s / sqrt(2 m)).
    m = len(big)
    per_column = noise[:, numeric].std(axis=0) / layer.scale_[numeric]
    assert np.all(np.abs(per_column - 1.0) < K / np.sqrt(2 * m))


def test_user_marked_constant_columns_get_no_noise(table):
    """A column the user marks constant stays clean even though it varies in training."""
    layer = TabularNoise(0.2, categorical=[2], constant=[0, -2], seed=1).adapt(table)
    assert layer.constant_ == [0, 29, 30]  # marked (0, 29 given as -2) and detected (30)
    noise = to_numpy(layer(table, training=True)).astype("float64") - table
    for j in (0, 2, 29, 30):
        np.testing.assert_array_equal(noise[:, j], 0.0)
    assert np.all(noise[:, [1, 3, 28]].std(axis=0) > 0)
    with pytest.raises(ValueError, match="`constant` must list column indices"):
        TabularNoise(0.1, constant=[31]).adapt(table)


def test_inference_identity_shape_dtype_and_seed(table):
    a = TabularNoise(0.1, seed=3).adapt(table)
    b = TabularNoise(0.1, seed=3).adapt(table)
    np.testing.assert_array_equal(to_numpy(a(table, training=True)), to_numpy(b(table, training=True)))
    out = to_numpy(a(table))
    assert out.dtype == np.float32 and out.shape == table.shape
    np.testing.assert_array_equal(out, table)


def test_config_round_trip_keeps_fitted_scale(table):
    layer = TabularNoise(0.1, categorical=[2], seed=0).adapt(table)
    clone = TabularNoise.from_config(layer.get_config())
    np.testing.assert_allclose(clone.scale_, layer.scale_)
    np.testing.assert_array_equal(to_numpy(clone(table)), table)


def test_in_a_model_from_a_study_spec(table):
    aug = from_spec([{"type": "tabular_noise", "stddev": 0.1, "categorical": [2]}], seed=0,
                    value_range=None).adapt(table)
    inputs = keras.Input((31,))
    model = keras.Model(inputs, keras.layers.Dense(1)(aug(inputs)))
    model.compile("adam", "mse")
    model.fit(table[:64], np.zeros(64), epochs=1, verbose=0)
    assert model.predict(table[:4], verbose=0).shape == (4, 1)


def test_column_names_with_a_dataframe(table):
    pd = pytest.importorskip("pandas", reason="pandas is not a noisewise dependency")
    frame = pd.DataFrame(table, columns=[f"c{j}" for j in range(31)])
    layer = TabularNoise(0.1, categorical=["c2"]).adapt(frame)
    assert layer.categorical_ == [2]


def test_errors(table):
    with pytest.raises(ValueError, match="`stddev` must be in"):
        TabularNoise(-0.1)
    with pytest.raises(ValueError, match="must be adapted first"):
        TabularNoise(0.1)(table, training=True)
    with pytest.raises(ValueError, match="`categorical` must list column indices"):
        TabularNoise(0.1, categorical=[99]).adapt(table)
    with pytest.raises(ValueError, match="`categorical` names column 'age'"):
        TabularNoise(0.1, categorical=["age"]).adapt(table)
    with pytest.raises(ValueError, match="at least 2 rows"):
        TabularNoise(0.1).adapt(table[:1])
    layer = TabularNoise(0.1).adapt(table)
    with pytest.raises(ValueError, match="adapted to 31"):
        layer.adapt(table[:, :5])
