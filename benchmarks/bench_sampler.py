"""Nanoseconds per normal draw: the hash sampler, its variants, and jax.random.normal on three generators.

The contenders, each compiled with ``jax.jit`` and timed in this one process
on JAX's CPU backend:

* ``hashed``: ``noisewise._core.sampling`` as the noise layers run it (the
  keys are arguments, so only their O(1) derivation from a ``SeedGenerator``
  is left out): two hash words per element, the 31-bit tail probability
  refined by a second word, tails out to |z| = 8.54;
* ``hashed-lowbias-word``: the same with the second word from a third
  lowbias32 hash instead of multiply-shift hashing (the choice it was measured for);
* ``hashed-24bit``: the previous version, kept here as :func:`_old_normal`: one
  word, a 24-bit symmetric grid in (-1, 1), truncated at |z| = 5.42, with
  Giles' single-precision tail polynomial;
* ``jax.random.normal``: Threefry-2x32 bits through JAX's own erfinv;
* ``jax-rbg`` and ``jax-unsafe-rbg``: the same transform on bits from JAX's
  ``rbg`` and ``unsafe_rbg`` generators (XLA's RngBitGenerator; ``unsafe_rbg``
  also derives keys without Threefry, so streams are not guaranteed to be
  independent);
* ``hashed-box-muller``: two lowbias32 hash words per pair of draws, their top
  24 bits turned into normals by the Box-Muller transform (a log, a square
  root, a sine and a cosine per pair), with tails out to
  sqrt(-2 log 2**-24) = 5.77.

Each contender is compiled and run once, then they take turns for
``--rounds`` rounds of ``--repeats`` calls each, so a burst of load from another
process on a shared machine hits all of them alike. Per round it takes the
fastest call's wall time and the process CPU time of all the round's calls
(CPU time leaves out the time the process waits for a core, so it is the
steadier figure on a loaded machine). The table gives the best and the median
over rounds, per draw, and the ratios of the best times to ``hashed``'s;
compare ratios from one run, not figures across runs. It also
prints the largest |z| each sampler can produce and the relative error of the
two hash samplers' inverse CDF against SciPy's ``erfcinv`` out to there.

``--fit`` instead prints the coefficients of the sampler's two erfinv
polynomials, refitted by :func:`_fit`.

Usage:
    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_sampler.py [--rounds 7] [--repeats 10]
        [--shapes 256x500 4096x4096] [--one-thread] [--fit]
"""

import argparse
import os
import sys
import time

# JAX, Keras and noisewise are imported inside the functions: --one-thread must set
# XLA_FLAGS before JAX starts.


def _old_normal(n, keys):
    """The 24-bit sampler as it was: ``v = (2m + 1) / 2**24 - 1`` from the top 24 bits."""
    from keras import ops

    from noisewise._core import sampling as s

    k0, k1 = keys[0], keys[1]
    bits = s._hash(ops.add(s._hash(ops.bitwise_xor(ops.arange(n, dtype="int32"), k0)), k1))
    v = ops.cast(2 * s._shr(bits, 8) + (1 - 2**24), "float32") * (2.0**-24)
    return s._materialized(_old_erfinv(v) * 1.4142135623730951, k0)


# Giles (2011), single precision: polynomials in w - 2.5 and sqrt(w) - 3.
_OLD_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_OLD_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
             -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def _old_erfinv(v):
    from keras import ops

    from noisewise._core import sampling as s

    w = ops.negative(ops.log((1.0 - v) * (1.0 + v)))
    p = ops.where(w < 5.0, s._polynomial(_OLD_CENTRAL, w - 2.5), s._polynomial(_OLD_TAIL, ops.sqrt(w) - 3.0))
    return p * v


def _lowbias_word_normal(n, keys):
    """``hashed`` with a full lowbias32 hash for the second word."""
    from keras import ops

    from noisewise._core import sampling as s

    k0, k1, k2 = keys
    inner = s._hash(ops.bitwise_xor(ops.arange(n, dtype="int32"), k0))
    z = s._normal_from_words(s._hash(ops.add(inner, k1)), s._hash(ops.bitwise_xor(inner, k2)))
    return s._materialized(z, k0)


def _box_muller_normal(n, keys):
    """Two hash words per pair: ``sqrt(-2 log u1)`` times the cosine and the sine of ``2 pi u2``."""
    from keras import ops

    from noisewise._core import sampling as s

    k0, k1 = keys[0], keys[1]
    half = (n + 1) // 2
    first = s._hash(ops.bitwise_xor(ops.arange(half, dtype="int32"), k0))
    second = s._hash(ops.add(first, k1))
    # The top 24 bits of each word as a float32 in (0, 1]: the log never sees 0.
    u1 = ops.cast(s._shr(first, 8) + 1, "float32") * (2.0**-24)
    u2 = ops.cast(s._shr(second, 8), "float32") * (2.0**-24)
    r, angle = ops.sqrt(-2.0 * ops.log(u1)), 6.283185307179586 * u2
    z = ops.concatenate([r * ops.cos(angle), r * ops.sin(angle)])[:n]
    return s._materialized(z, k0)


def _contenders(n):
    import jax

    from noisewise._core import sampling as s

    def jax_normal(keys, impl="threefry2x32"):
        return jax.random.normal(jax.random.key(keys[0], impl=impl), (n,))

    return {
        "hashed": jax.jit(lambda keys: s._normal_from_keys(n, keys)),
        "hashed-lowbias-word": jax.jit(lambda keys: _lowbias_word_normal(n, keys)),
        "hashed-24bit": jax.jit(lambda keys: _old_normal(n, keys)),
        "hashed-box-muller": jax.jit(lambda keys: _box_muller_normal(n, keys)),
        "jax.random.normal": jax.jit(jax_normal),
        "jax-rbg": jax.jit(lambda keys: jax_normal(keys, "rbg")),
        "jax-unsafe-rbg": jax.jit(lambda keys: jax_normal(keys, "unsafe_rbg")),
    }


def _time(shape, rounds, repeats):
    import jax.numpy as jnp
    import numpy as np

    n = int(np.prod(shape))
    keys = tuple(jnp.int32(k) for k in (0x1234567, -0x7654321, 0x2468ACE))
    fns = _contenders(n)
    for f in fns.values():
        f(keys).block_until_ready()  # compile
    wall, cpu = {name: [] for name in fns}, {name: [] for name in fns}
    for _ in range(rounds):
        for name, f in fns.items():
            times, cpu_start = [], time.process_time()
            for _ in range(repeats):
                start = time.perf_counter()
                f(keys).block_until_ready()
                times.append(time.perf_counter() - start)
            cpu[name].append((time.process_time() - cpu_start) / repeats / n * 1e9)
            wall[name].append(min(times) / n * 1e9)
    return wall, cpu


def _accuracy():
    """Largest |z| and worst relative error of each hash sampler's inverse CDF."""
    import jax
    import numpy as np
    from scipy.special import erfcinv

    from noisewise._core import sampling as s

    # Old: every v on its grid near the ends, a stride elsewhere.
    m = np.concatenate([np.arange(0, 2**23, 61), np.arange(4096)]).astype(np.float64)
    v = ((2 * m + 1) / 2**24 - 1).astype(np.float32)
    old = -np.asarray(jax.jit(_old_erfinv)(v), np.float64) * np.sqrt(2)
    old_exact = np.sqrt(2) * erfcinv(1 + v.astype(np.float64))
    # New: the tail probability d, log-spaced from 2**-56 to 1.
    d = (2.0 ** -np.linspace(0, 56, 400001)).astype(np.float32)
    new = np.asarray(jax.jit(s._half_normal)(d), np.float64)
    new_exact = np.sqrt(2) * erfcinv(d.astype(np.float64))
    for name, got, exact in (("hashed", new, new_exact), ("hashed-24bit", old, old_exact)):
        got, exact = got[exact > 0], exact[exact > 0]
        rel = np.abs(got - exact) / exact
        print(f"{name:>20}: max |z| {got.max():.4f}; relative error of |z|: worst {rel.max():.2e} "
              f"(at |z| = {exact[rel.argmax()]:.2f}), worst below |z| = 5.4: {rel[exact < 5.4].max():.2e}")


def _fit(degree, lo, hi, centre, variable, iterations=300, points=4000):
    """Float32 coefficients (highest power first) of ``sqrt(2) erfinv(v) / v`` as a
    polynomial in ``variable(w) - centre`` for ``w`` in [lo, hi], where
    ``w = -log((1 - v)(1 + v))``: least squares on Chebyshev points, reweighted
    (Lawson) towards the minimax relative error. ``--fit`` prints the two sets in
    ``noisewise._core.sampling``."""
    import numpy as np
    from scipy.special import erfcinv

    t = variable(lo) + (variable(hi) - variable(lo)) * (1 + np.cos(np.pi * (np.arange(points) + 0.5) / points)) / 2
    w = t**2 if variable is np.sqrt else t
    v = np.sqrt(-np.expm1(-w))
    target = np.where(v > 1e-8, np.sqrt(2) * erfcinv(np.exp(-w) / (1 + v)) / np.maximum(v, 1e-300),
                      np.sqrt(np.pi / 2))  # the limit at w = 0
    basis, weights = np.vander(t - centre, degree + 1), np.ones(points)
    for _ in range(iterations):
        scale = weights / target
        coefficients = np.linalg.lstsq(basis * scale[:, None], target * scale, rcond=None)[0]
        weights = np.maximum(weights * np.abs(basis @ coefficients / target - 1), 1e-300)
        weights /= weights.sum()
    return ", ".join(str(c) for c in coefficients.astype(np.float32))  # shortest float32 repr


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--shapes", nargs="+", default=["256x500", "4096x4096"])
    parser.add_argument("--one-thread", action="store_true", help="restrict XLA to one CPU thread")
    parser.add_argument("--fit", action="store_true", help="print the refitted erfinv polynomials and stop")
    args = parser.parse_args(argv)
    if args.fit:
        import numpy as np

        print("central:", _fit(8, 0.0, 5.0, 2.5, lambda w: w))
        print("tail:", _fit(11, 5.0, 6.18**2, 3.5, np.sqrt, iterations=200))
        return
    if args.one_thread:  # must be set before JAX starts
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax
    import keras
    import numpy as np

    if keras.backend.backend() != "jax":
        sys.exit(f"This benchmark needs KERAS_BACKEND=jax. Received: {keras.backend.backend()}")
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs"
          f"{', one thread' if args.one_thread else ''}; {args.rounds} rounds x {args.repeats} calls")
    for text in args.shapes:
        shape = tuple(int(x) for x in text.split("x"))
        wall, cpu = _time(shape, args.rounds, args.repeats)
        print(f"\nshape {shape}: ns per draw, best (median) over rounds; ratio of the best to hashed's")
        print(f"{'':>20}  {'wall, fastest call':>22}  {'CPU, all calls':>22}")
        for name in wall:
            cells = [f"{min(t[name]):6.3f} ({np.median(t[name]):6.3f}) {min(t[name]) / min(t['hashed']):5.3f}"
                     for t in (wall, cpu)]
            print(f"{name:>20}  {cells[0]:>22}  {cells[1]:>22}")
        extra = [min(t["hashed"]) / min(t["hashed-24bit"]) - 1 for t in (wall, cpu)]
        print(f"{'':>20}  hashed against hashed-24bit: {extra[0]:+.1%} wall, {extra[1]:+.1%} CPU")
    print()
    _accuracy()


if __name__ == "__main__":
    main()
