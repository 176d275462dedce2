"""The counter-based Gaussian sampler: exact N(0, 1) marginal, no detectable correlation.

Every statistical bound is k standard errors of the statistic under the null
(k = 5 unless noted), from the sample size n; with the fixed seeds below the
draws are fixed, and the sampler gives the same integers on every backend.
"""

import keras
import numpy as np
import pytest
from scipy import stats

from noisewise._core import sampling as _sampling
from noisewise._core.sampling import hashed_normal, normal, resolve_sampler

N = 2**20
K = 5.0


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def draw(seed=0, n=N, calls=1):
    gen = keras.random.SeedGenerator(seed)
    out = [to_numpy(hashed_normal((n,), gen)).astype("float64") for _ in range(calls)]
    return out if calls > 1 else out[0]


def test_shape_dtype_and_reproducible():
    a = to_numpy(hashed_normal((3, 5, 7), keras.random.SeedGenerator(1), dtype="float16"))
    b = to_numpy(hashed_normal((3, 5, 7), keras.random.SeedGenerator(1), dtype="float16"))
    assert a.shape == (3, 5, 7) and a.dtype == np.float16
    np.testing.assert_array_equal(a, b)


def test_successive_calls_and_seeds_differ():
    first, second = draw(0, n=1000, calls=2)
    other = draw(1, n=1000)
    assert not np.allclose(first, second)
    assert not np.allclose(first, other)


def test_moments_match_standard_normal():
    z = draw(0)
    assert abs(z.mean()) < K / np.sqrt(N)  # SE of the mean: 1/sqrt(n)
    assert abs(z.var() - 1.0) < K * np.sqrt(2.0 / N)  # SE of the variance: sqrt(2/n)
    assert abs(stats.skew(z)) < K * np.sqrt(6.0 / N)  # SE of the skewness: sqrt(6/n)
    assert abs(stats.kurtosis(z)) < K * np.sqrt(24.0 / N)  # SE of excess kurtosis: sqrt(24/n)


def test_kolmogorov_smirnov_against_normal():
    z = draw(3)
    # Critical value of the KS statistic at alpha = 1e-4: sqrt(-ln(alpha / 2) / 2) / sqrt(n).
    crit = np.sqrt(-np.log(1e-4 / 2) / 2) / np.sqrt(N)
    assert stats.kstest(z, "norm").statistic < crit


def test_tails_match_normal_and_are_bounded():
    z = draw(4)
    p = 2 * stats.norm.sf(3.0)  # P(|Z| > 3)
    frac = np.mean(np.abs(z) > 3.0)
    assert abs(frac - p) < K * np.sqrt(p * (1 - p) / N)
    # The 24-bit grid truncates at sqrt(2) erfinv(1 - 2**-24) = 5.46.
    assert np.abs(z).max() <= 5.47


@pytest.mark.parametrize("lag", [1, 3, 672])  # neighbour, next pixel (RGB), next row of 224x3
def test_no_correlation_between_neighbours(lag):
    z = draw(5)
    r = np.corrcoef(z[:-lag], z[lag:])[0, 1]
    assert abs(r) < K / np.sqrt(N)  # SE of a correlation under independence: 1/sqrt(n)


def test_no_correlation_between_calls_and_seeds():
    first, second = draw(6, calls=2)
    other = draw(7)
    assert abs(np.corrcoef(first, second)[0, 1]) < K / np.sqrt(N)
    assert abs(np.corrcoef(first, other)[0, 1]) < K / np.sqrt(N)


def test_adjacent_pairs_are_independent():
    z = draw(8)
    edges = stats.norm.ppf(np.linspace(0, 1, 11)[1:-1])
    bins = np.digitize(z, edges)
    table = np.zeros((10, 10))
    np.add.at(table, (bins[0::2], bins[1::2]), 1)
    assert stats.chi2_contingency(table).pvalue > 1e-4


def test_resolve_sampler():
    expected = "fast" if keras.backend.backend() == "jax" else "keras"
    assert resolve_sampler("auto") == expected
    assert resolve_sampler("keras") == "keras"
    with pytest.raises(ValueError, match="`sampler` must be one of"):
        resolve_sampler("mersenne")


def test_normal_dispatches_to_both_samplers():
    gen = keras.random.SeedGenerator(2)
    assert to_numpy(normal((4, 4), gen, sampler="keras")).shape == (4, 4)
    assert to_numpy(normal((4, 4), gen, sampler="fast")).shape == (4, 4)


def test_erfinv_matches_the_exact_function_on_the_whole_grid():
    # Every value the sampler can produce: v = (2m + 1) / 2**24 - 1 for 24-bit m
    # (a strided subset plus both ends, where the tail polynomial works).
    from scipy.special import erfinv

    m = np.concatenate([np.arange(0, 2**24, 97), np.arange(2**24 - 64, 2**24), np.arange(64)])
    v = ((2 * m + 1) / 2**24 - 1).astype(np.float32)
    got = keras.ops.convert_to_numpy(_sampling._erfinv(keras.ops.convert_to_tensor(v)))
    exact = erfinv(v.astype(np.float64))
    assert np.max(np.abs(got - exact) / np.abs(exact)) < 3e-7
    assert np.all(np.isfinite(got)) and np.abs(got).max() < 3.87  # sqrt(2) * 3.87 = 5.47
