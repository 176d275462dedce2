"""The counter-based Gaussian sampler: N(0, 1) marginal out to 8.5 sigma, no detectable correlation.

Every statistical bound is k standard errors of the statistic under the null
(k = 5 unless noted), or for counts of rare events the two-sided binomial
interval of level 1e-4, from the sample size n; with the fixed seeds below the
draws are fixed, and the sampler gives the same integers on every backend.
"""

import keras
import numpy as np
import pytest
from scipy import stats
from scipy.special import erfcinv

from noisewise._core import sampling as _sampling
from noisewise._core.sampling import hashed_normal, normal, resolve_sampler

N = 2**20
K = 5.0
ALPHA = 1e-4
JAX = keras.backend.backend() == "jax"
# |z| where the previous sampler stopped: its 24-bit grid gave P(|Z| > |z|) >= 2**-24.
OLD_MAX = 5.42
# The deepest |z|: the words make tail probabilities d = P(|Z| > |z|) down to 2**-56.
MAX = float(np.sqrt(2) * erfcinv(2.0**-56))  # 8.5361


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def binomial_bounds(n, p, alpha=ALPHA):
    """Counts outside [lo, hi] have probability under ``alpha`` for Binomial(n, p)."""
    return stats.binom.ppf(alpha / 2, n, p), stats.binom.isf(alpha / 2, n, p)


def assert_tail_counts(z, cuts, conditional_on=1.0):
    """Counts of |z| beyond each cut against the normal tail, given ``P(|Z| > start) = conditional_on``."""
    for cut in cuts:
        p = 2 * stats.norm.sf(cut) / conditional_on
        lo, hi = binomial_bounds(z.size, p)
        count = int(np.count_nonzero(np.abs(z) > cut))
        assert lo <= count <= hi, f"|z| > {cut}: {count} draws of {z.size}, allowed [{lo}, {hi}]"


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
    assert_tail_counts(z, [3.5, 4.0])
    assert np.abs(z).max() <= MAX * (1 + 5e-7)


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


def test_inverse_cdf_is_accurate_out_to_the_deepest_tail():
    # Every depth the sampler reaches: d = P(|Z| > |z|) log-spaced from 2**-56 to 1,
    # plus a linear grid over the centre. Giles' single-precision tail polynomial
    # misses by 6e-5 at |z| = 6; the refitted one stays at float32 accuracy.
    d = np.concatenate([2.0 ** -np.linspace(0, 56, 100001), np.linspace(2**-10, 1, 50001)]).astype(np.float32)
    got = to_numpy(_sampling._half_normal(keras.ops.convert_to_tensor(d))).astype(np.float64)
    exact = np.sqrt(2) * erfcinv(d.astype(np.float64))
    inside = exact > 0
    assert np.max(np.abs(got - exact)[inside] / exact[inside]) < 5e-7  # measured 3.9e-7 on JAX
    assert got[d == 1].max() == 0 and abs(got.max() - MAX) < 1e-4


def words(bits, word):
    return to_numpy(_sampling._normal_from_words(
        keras.ops.convert_to_tensor(np.asarray(bits, np.int32)),
        keras.ops.convert_to_tensor(np.asarray(word, np.int32))))


def test_words_map_to_the_tail_probability_symmetrically():
    # bits 0 and -1 (a = 0) with the lowest second word are the deepest values, +-8.54;
    # a = 2**31 - 1 is the centre; flipping every bit of the first word flips the sign.
    z = words([0, -1, 2**31 - 1, -(2**31)], [0, 0, -1, -1])
    np.testing.assert_allclose(z[:2], [MAX, -MAX], rtol=5e-7)
    assert abs(z[2]) < 1e-6 and abs(z[3]) < 1e-6
    rng = np.random.default_rng(0)
    bits = rng.integers(-(2**31), 2**31, 10000)
    word = rng.integers(-(2**31), 2**31, 10000)
    np.testing.assert_array_equal(words(~bits, word), -words(bits, word))


def test_far_tail_given_uniform_words_is_the_normal_tail():
    # Words whose 31-bit magnitude lies in the previous sampler's outermost cell,
    # a < 2**8, so d < 2**-23 and |z| > 5.33: the second word must spread them
    # over the whole normal tail beyond (the old grid had one value there).
    n, start = 10**6, 2.0**-23
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**8, n)
    bits = np.where(rng.random(n) < 0.5, a, ~a)
    z = words(bits, rng.integers(-(2**31), 2**31, n)).astype(np.float64)
    assert np.abs(z).min() > stats.norm.isf(start / 2) - 1e-5
    assert_tail_counts(z, [5.5, 6.0, 6.5, 7.0], conditional_on=start)
    # The whole conditional law: P(|Z| > |z|) / start is uniform on (0, 1).
    u = 2 * stats.norm.sf(np.abs(z)) / start
    assert stats.kstest(u, "uniform").pvalue > ALPHA


def test_second_word_is_uniform_and_independent_of_the_first():
    n = 2**22
    keys = _sampling._keys(keras.random.SeedGenerator(9))
    bits, word = (to_numpy(w).astype(np.int64) for w in _sampling._words(n, keys))
    a = np.where(bits < 0, ~bits, bits) / 2.0**31  # the first word's magnitude, in [0, 1)
    g = ((word & 0xFFFFFFFF) >> 8) / 2.0**24  # the top 24 bits the sampler uses
    crit = np.sqrt(-np.log(ALPHA / 2) / 2) / np.sqrt(n)  # KS critical value at level ALPHA
    assert stats.kstest(g, "uniform").statistic < crit
    assert abs(np.corrcoef(a, g)[0, 1]) < K / np.sqrt(n)
    table = np.zeros((16, 16))
    np.add.at(table, ((a * 16).astype(int), (g * 16).astype(int)), 1)
    assert stats.chi2_contingency(table).pvalue > ALPHA
    # Where the second word matters, in the deepest cells, it is still uniform.
    deep = g[a < 2.0**-7]
    assert stats.kstest(deep, "uniform").pvalue > ALPHA and deep.size > 0.9 * n / 2**7


needs_jax = pytest.mark.skipif(not JAX, reason="compiles the sampler with jax.jit (its integer arithmetic is "
                               "the same on every backend)")


@needs_jax
def test_compiled_sampler_is_the_eager_one():
    import jax

    eager = to_numpy(hashed_normal((4096,), keras.random.SeedGenerator(10)))
    keys = _sampling._keys(keras.random.SeedGenerator(10))
    compiled = to_numpy(jax.jit(lambda k: _sampling._normal_from_keys(4096, k))(keys))
    np.testing.assert_allclose(compiled, eager, rtol=1e-6, atol=1e-7)


@needs_jax
@pytest.mark.slow
def test_tail_frequencies_in_2_7e8_draws():
    # 16 calls of 2**24 draws (64 MB each). Beyond the previous sampler's largest
    # value, 5.42, 16 draws are expected and the interval, [3, 34], excludes the
    # 0 it gave (with these seeds: 19 now, 0 then; 139 and 143 beyond 5).
    import jax

    chunk, calls = 2**24, 16
    sample = jax.jit(lambda k: _sampling._normal_from_keys(chunk, k))
    gen = keras.random.SeedGenerator(11)
    cuts = (4.5, 5.0, OLD_MAX, 6.0)
    counts = np.zeros(len(cuts), np.int64)
    for _ in range(calls):
        z = np.abs(np.asarray(sample(_sampling._keys(gen))))
        counts += [np.count_nonzero(z > cut) for cut in cuts]
    n = chunk * calls
    for cut, count in zip(cuts, counts):
        lo, hi = binomial_bounds(n, 2 * stats.norm.sf(cut))
        assert lo <= count <= hi, f"|z| > {cut}: {count} draws of {n}, allowed [{lo}, {hi}]"
    assert binomial_bounds(n, 2 * stats.norm.sf(OLD_MAX))[0] >= 1
