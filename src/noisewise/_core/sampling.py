"""Gaussian draws for noise layers: Keras' generator, or a counter-based hash on JAX.

Why: Gaussian noise layers draw one normal number per activation per step
(a batch of 256 images of 224x224x3 is 38.5 million numbers; a 500-unit hidden
layer trained for 4000 epochs in 30 replicas is 1.8 billion), and on a CPU
that draw dominates. ``jax.random.normal`` spends most of its time in
Threefry-2x32 (20 rounds per 64 bits). Noise for regularisation and
augmentation needs an exact Gaussian marginal and no visible correlation, not
cryptographic strength, so this sampler hashes a counter instead:

* bits: ``h(h(i ^ k0) + k1)`` for element index ``i``, where ``h`` is the
  32-bit "lowbias32" integer hash (C. Wellons, "Prospecting for hash functions",
  2018: xorshift-multiply, avalanche bias 0.17), and a second word
  ``h(i ^ k0) * k2`` whose top bits are used (multiply-shift hashing with an
  odd multiplier, M. Dietzfelbinger et al., "A reliable randomized algorithm
  for the closest-pair problem", J. Algorithms 1997); ``k0, k1, k2`` are
  derived by hashing the two words of a ``keras.random.SeedGenerator`` draw,
  so every call gets fresh keys and the same seed replays the same numbers;
* normal: the sign bit of the first word is the sign of ``z``; its other 31
  bits and the top 24 bits of the second word make the tail probability
  ``d = P(|Z| > |z|)``, uniform on (0, 1] with a resolution of 2**-55 near 0,
  and ``|z| = sqrt(2) * erfinv(1 - d)`` (inverse-CDF, as JAX's own sampler
  does). Float32 keeps 24 significant bits of ``d`` at every depth, so the
  tail is the normal tail out to |z| = 8.54 (``d = 2**-56``; a mass of 1.4e-17
  lies beyond). The previous version mapped the top 24 bits of one word to a
  grid in (-1, 1) and never went past |z| = 5.42 (a mass of 6e-8 beyond: 60
  values missing per billion draws). The second word and the longer tail
  polynomial cost 3-5% more time per draw than that version (best times of
  ``benchmarks/bench_sampler.py`` for 256x500 and 4096x4096 draws, JAX on a
  loaded 2-core CPU: 1.61 against 1.56 ns and 3.84 against 3.68 ns; XLA's
  compiled loop has 107 instructions per 8 draws instead of 99);
* erfinv: M. Giles' single-precision form ("Approximating the erfinv
  function", GPU Computing Gems Jade Edition, 2011), a polynomial of degree 8
  in ``w = -log((1 - v)(1 + v))`` for ``w < 5`` (|z| < 2.93) and one in
  ``sqrt(w)`` beyond, refitted here (degree 11 for the tail) because Giles'
  tail polynomial was made for float32 ``v`` and drifts past |z| = 5.5. Both
  are built from ``log``, ``sqrt`` and multiply-adds, which XLA vectorises on
  a CPU (its own ``erfinv`` goes through ``log1p``, measured 1.6x slower).
  Measured relative error of ``|z|``: under 4e-7 from ``d = 2**-56`` to 1.

Everything is 32-bit integer arithmetic in ``keras.ops`` (multiplication wraps
modulo 2**32 on every backend), so XLA fuses it into one loop on JAX. On
PyTorch and TensorFlow (eager) every op is a separate pass over memory and the
native generator is faster, so ``sampler="auto"`` uses this sampler on JAX only.
The tests check the distribution (moments, Kolmogorov-Smirnov, the tail
frequencies beyond 4.5, 5, 5.42 and 6 standard deviations in 2.7e8 draws) and
the absence of correlation between neighbours, channels, calls, seeds and the
two words.
"""

import keras
from keras import ops

SAMPLERS = ("auto", "fast", "keras")

# lowbias32 multipliers; the second is 0x846CA68B as a signed 32-bit integer.
_M1 = 0x7FEB352D
_M2 = 0x846CA68B - 2**32
_GOLDEN = 0x9E3779B9 - 2**32
_MAX_ELEMENTS = 2**31 - 1


def _shr(x, bits):
    """Logical right shift of int32 bit patterns (``>>`` is arithmetic)."""
    return ops.bitwise_and(ops.right_shift(x, bits), (1 << (32 - bits)) - 1)


def _hash(x):
    x = ops.bitwise_xor(x, _shr(x, 16))
    x = ops.multiply(x, _M1)
    x = ops.bitwise_xor(x, _shr(x, 15))
    x = ops.multiply(x, _M2)
    return ops.bitwise_xor(x, _shr(x, 16))


# |z| = sqrt(2) erfinv(v) = v * p(w) with w = -log((1 - v)(1 + v)), in the form of M. Giles'
# single-precision erfinv ("Approximating the erfinv function", GPU Computing Gems Jade
# Edition, 2011), refitted to include the factor sqrt(2) (one multiply less) and to reach
# |z| = 8.54: Giles' tail polynomial was made for float32 v (|z| <= 5.42) and drifts beyond
# (relative error 6e-5 at |z| = 6, 8e-4 at 6.5). Each is fitted to SciPy's erfcinv by least
# squares on 4000 Chebyshev points, reweighted (Lawson) towards the minimax relative error
# (`benchmarks/bench_sampler.py --fit` prints them).
# Highest power first. For w < 5 (|z| < 2.93): degree 8 in w - 2.5, as Giles'.
_CENTRAL = (4.085278e-08, 4.8668966e-07, -4.9966116e-06, -6.2243894e-06, 0.00030917284,
            -0.0017729902, -0.0059081973, 0.34880266, 2.1233137)
# For w from 5 to 38.1 (|z| = 8.54): degree 11 in sqrt(w) - 3.5.
_TAIL = (1.4038658e-06, -1.145179e-05, 2.3393408e-05, 5.4347136e-05, -0.00033818945, 0.00070422,
         -0.0009721786, 0.0014806663, -0.002906238, 0.0046512177, 1.4246331, 4.717088)


def _polynomial(coefficients, x):
    p = coefficients[0]
    for c in coefficients[1:]:
        p = p * x + c
    return p


def _half_normal(d):
    """``|z|`` with ``P(|Z| > |z|) = d`` for float32 ``d`` in (0, 1]: ``sqrt(2) erfinv(1 - d)``.

    Takes the tail probability ``d = 1 - |v|`` rather than ``v``, because
    float32 ``v`` cannot hold ``1 - 2**-25`` and beyond: from ``d`` the log's
    argument ``(1 - v)(1 + v) = d (2 - d)`` keeps 24 significant bits at any
    depth. Measured relative error: under 4e-7 for ``d`` from 2**-56 to 1
    (tests/test_sampling.py).
    """
    w = ops.negative(ops.log(d * (2.0 - d)))
    p = ops.where(w < 5.0, _polynomial(_CENTRAL, w - 2.5), _polynomial(_TAIL, ops.sqrt(w) - 3.5))
    # (1 - d) p, not p - d p: 1 - d is exact for d >= 1/2 (Sterbenz), while p - d p
    # cancels near z = 0 unless the compiler fuses it into one multiply-add.
    return (1.0 - d) * p


def _normal_from_words(bits, word):
    """Float32 normal numbers from two uniform int32 hash words per element.

    The sign bit of ``bits`` is the sign; its other 31 bits ``a`` (mirrored for
    negative ``bits``, so ``-1`` and ``0`` both give ``a = 0``) and the top 24
    bits ``m`` of ``word`` give the tail probability
    ``d = (a + (m + 1/2) / 2**24) / 2**31``, uniform on (0, 1] with a
    resolution of 2**-55 near 0; float32 keeps 24 significant bits of it at
    every scale.
    """
    sign = ops.right_shift(bits, 31)  # arithmetic: -1 or 0
    a = ops.bitwise_xor(bits, sign)  # 0 <= a < 2**31
    fraction = ops.cast(_shr(word, 8), "float32") * (2.0**-55) + 2.0**-56
    z = _half_normal(ops.cast(a, "float32") * (2.0**-31) + fraction)
    return ops.where(sign < 0, ops.negative(z), z)


def _keys(seed_generator):
    # Keras seeds are two uint32 (JAX) or int64 (TensorFlow, PyTorch) words; take
    # them 16 bits at a time so every conversion to int32 is exact.
    seed = seed_generator.next()
    key = ops.convert_to_tensor(_GOLDEN, "int32")
    for i in (0, 1):
        for shift in (0, 16):
            part = ops.bitwise_and(ops.right_shift(seed[i], shift), 0xFFFF)
            key = _hash(ops.bitwise_xor(key, ops.cast(part, "int32")))
    k1 = _hash(ops.bitwise_xor(key, _M1))
    return key, k1, ops.bitwise_or(_hash(ops.bitwise_xor(k1, _M1)), 1)  # k2 odd: a multiplier


def hashed_normal(shape, seed_generator, dtype="float32"):
    """Standard normal numbers of ``shape`` from the counter-based hash sampler.

    Args:
        shape: Shape (ints, or scalar tensors for dynamic dimensions).
        seed_generator: A ``keras.random.SeedGenerator``; each call advances it.
        dtype: Float dtype of the result.

    Example:
        >>> import keras
        >>> from noisewise._core.sampling import hashed_normal
        >>> z = hashed_normal((4, 8), keras.random.SeedGenerator(0))
        >>> tuple(z.shape)
        (4, 8)
    """
    n = 1
    for d in shape:  # static ints, or scalar tensors for dynamic dimensions
        n = n * d
    if isinstance(n, int) and n > _MAX_ELEMENTS:
        raise ValueError(
            f"`shape` must have fewer than 2**31 elements for the hash sampler. "
            f"Received: shape={tuple(shape)}"
        )
    return ops.reshape(_normal_from_keys(n, _keys(seed_generator), dtype), shape)


def _normal_from_keys(n, keys, dtype="float32"):
    """``n`` normal numbers (flat) from the three int32 keys of :func:`_keys`.

    The sampler after its seed bookkeeping, so it can be compiled with the
    keys as arguments (the tests and benchmarks/bench_sampler.py do).
    """
    z = _normal_from_words(*_words(n, keys))
    return _materialized(ops.cast(z, dtype), keys[0])


def _words(n, keys):
    """The two int32 hash words of elements ``0 .. n - 1``."""
    k0, k1, k2 = keys
    inner = _hash(ops.bitwise_xor(ops.arange(n, dtype="int32"), k0))
    # The second word only places d inside its 2**-31 cell, so multiply-shift hashing
    # of the inner hash (its top bits times the odd key k2) is enough; a third
    # lowbias32 costs more time (benchmarks/bench_sampler.py).
    return _hash(ops.add(inner, k1)), ops.multiply(inner, k2)


def _materialized(z, key):
    """``z`` (flat), computed once.

    XLA fuses cheap element-wise producers into every consumer, so on JAX the
    whole sampler would run again inside each use of the noise (the noisy
    forward pass and each backward use of it): about twice the cost of one
    draw for a noisy hidden layer. Writing ``z`` into a buffer at an offset
    that XLA cannot fold to a constant (always 0) makes it a real buffer.
    Other backends evaluate eagerly and need nothing.
    """
    if keras.backend.backend() != "jax":
        return z
    import jax
    import jax.numpy as jnp

    n = z.shape[0]
    start = jnp.minimum(jnp.bitwise_and(key, 1), 0)
    buffer = jnp.zeros((n + 1,), z.dtype)
    return jax.lax.dynamic_update_slice(buffer, z, (start,))[:n]


def resolve_sampler(sampler):
    """``"auto"`` -> ``"fast"`` on JAX (where XLA fuses the hash), else ``"keras"``."""
    if sampler not in SAMPLERS:
        shown = ", ".join(repr(s) for s in SAMPLERS)
        raise ValueError(f"`sampler` must be one of {shown}. Received: sampler={sampler!r}")
    if sampler == "auto":
        return "fast" if keras.backend.backend() == "jax" else "keras"
    return sampler


def normal(shape, seed_generator, dtype="float32", sampler="auto"):
    """Standard normal draws with the chosen sampler (see :func:`resolve_sampler`)."""
    if resolve_sampler(sampler) == "fast":
        return hashed_normal(shape, seed_generator, dtype)
    return keras.random.normal(shape, dtype=dtype, seed=seed_generator)
