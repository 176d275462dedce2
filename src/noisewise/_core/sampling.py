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
  2018: xorshift-multiply, avalanche bias 0.17) and ``k0, k1`` are derived by
  hashing the two words of a ``keras.random.SeedGenerator`` draw, so every call
  gets fresh keys and the same seed replays the same numbers;
* normal: the top 24 bits give ``v = (2m + 1) / 2**24 - 1`` on a symmetric grid
  in (-1, 1), and ``z = sqrt(2) * erfinv(v)`` (inverse-CDF, as JAX's own
  sampler does). The grid truncates the tails at |z| = 5.46 (mass 5e-8 beyond),
  about where float32 uniforms truncate JAX's sampler. ``erfinv`` is M. Giles'
  single-precision approximation ("Approximating the erfinv function", GPU
  Computing Gems Jade Edition, 2011: two polynomials of degree 8 in
  ``w = -log((1 - v)(1 + v))``): relative error under 3e-7 on the grid, and
  built from ``log``, ``sqrt`` and multiply-adds, which XLA vectorises on a
  CPU (its own ``erfinv`` goes through ``log1p``, measured 1.6x slower).

Everything is 32-bit integer arithmetic in ``keras.ops`` (multiplication wraps
modulo 2**32 on every backend), so XLA fuses it into one loop on JAX. On
PyTorch and TensorFlow (eager) every op is a separate pass over memory and the
native generator is faster, so ``sampler="auto"`` uses this sampler on JAX only.
The tests check the distribution (moments, Kolmogorov-Smirnov) and the absence
of correlation between neighbours, channels, calls and seeds.
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


# Giles (2011), single precision: erfinv(v) = v * p(w), w = -log((1 - v)(1 + v)),
# p a polynomial in w - 2.5 for w < 5 and in sqrt(w) - 3 beyond (highest power first).
_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
            -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
         -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def _erfinv(v):
    """Inverse error function of float32 ``v`` in (-1, 1)."""
    w = ops.negative(ops.log((1.0 - v) * (1.0 + v)))
    central, tail = w - 2.5, ops.sqrt(w) - 3.0
    p, q = _CENTRAL[0], _TAIL[0]
    for a, b in zip(_CENTRAL[1:], _TAIL[1:]):
        p, q = p * central + a, q * tail + b
    return ops.where(w < 5.0, p, q) * v


def _keys(seed_generator):
    # Keras seeds are two uint32 (JAX) or int64 (TensorFlow, PyTorch) words; take
    # them 16 bits at a time so every conversion to int32 is exact.
    seed = seed_generator.next()
    key = ops.convert_to_tensor(_GOLDEN, "int32")
    for i in (0, 1):
        for shift in (0, 16):
            part = ops.bitwise_and(ops.right_shift(seed[i], shift), 0xFFFF)
            key = _hash(ops.bitwise_xor(key, ops.cast(part, "int32")))
    return key, _hash(ops.bitwise_xor(key, _M1))


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
    k0, k1 = _keys(seed_generator)
    counter = ops.arange(n, dtype="int32")
    bits = _hash(ops.add(_hash(ops.bitwise_xor(counter, k0)), k1))
    m = _shr(bits, 8)  # 24 bits
    v = ops.cast(2 * m + (1 - 2**24), "float32") * (2.0**-24)
    z = ops.cast(_erfinv(v) * 1.4142135623730951, dtype)
    return ops.reshape(_materialized(z, k0), shape)


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
