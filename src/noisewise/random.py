"""Seeds: one explicit root seed derives every other seed noisewise uses.

A study seed derives one seed per (arm, replica); the same replica index gets the
same seed in every arm, so arms are compared on paired runs. Derivation uses
NumPy's ``SeedSequence`` (a hash), so seeds for neighbouring indices are
statistically independent and far apart.

The same seed gives the same numbers on the same backend, but *different*
numbers on different backends: JAX, PyTorch and TensorFlow implement their own
generators. Compare results across backends statistically, not bit for bit.

Why not pass consecutive integers straight to layers? Keras' PyTorch backend
seeds ``torch.Generator`` with ``seed + counter``, so ``seed=1`` at its second
draw reproduces ``seed=2`` at its first: consecutive seeds give overlapping
streams. :func:`layer_seed` spreads user seeds over 31 bits, and noisewise
layers pass every seed through it.
"""

import hashlib
import os
import random as _py_random

import numpy as np

from noisewise._core.validation import check_int

MAX_SEED = 2**31 - 1


def _as_entropy(part):
    if isinstance(part, (int, np.integer)) and not isinstance(part, bool):
        if part < 0:
            raise ValueError(f"Seed path parts must be >= 0. Received: {part!r}")
        return int(part)
    if isinstance(part, str):
        return int.from_bytes(hashlib.sha256(part.encode()).digest()[:8], "little")
    raise ValueError(
        f"Seed path parts must be non-negative ints or strings. Received: {part!r}"
    )


def derive_seed(root: int, *path: object) -> int:
    """Derive an independent child seed in ``[0, 2**31 - 1)`` from ``root`` and a path.

    Example:
        >>> from noisewise.random import derive_seed
        >>> derive_seed(42, "replica", 3) == derive_seed(42, "replica", 3)
        True
        >>> derive_seed(42, "replica", 3) != derive_seed(42, "replica", 4)
        True
    """
    check_int("root", root, low=0)
    keys = tuple(_as_entropy(p) for p in path)
    seq = np.random.SeedSequence(entropy=root, spawn_key=keys)
    return int(seq.generate_state(1, dtype=np.uint32)[0] % MAX_SEED)


def child_seeds(root: int, n: int, *path: object) -> list[int]:
    """``n`` independent seeds derived from ``root`` (and an optional path prefix)."""
    check_int("n", n, low=0)
    return [derive_seed(root, *path, i) for i in range(n)]


def replica_seed(study_seed: int, replica: int) -> int:
    """The seed of replica ``replica``; shared by every arm so runs are paired."""
    return derive_seed(study_seed, "replica", replica)


def layer_seed(seed: int | None) -> int | None:
    """Map a user seed (or None) to the seed handed to ``keras.random.SeedGenerator``.

    ``None`` stays ``None`` (Keras then draws from its global generator, which
    :func:`seed_everything` seeds). Integers are hashed so consecutive user
    seeds do not give overlapping streams on the PyTorch backend.
    """
    if seed is None:
        return None
    check_int("seed", seed, low=0)
    return derive_seed(seed, "layer")


def seed_everything(seed: int, *, deterministic: bool = False) -> int:
    """Seed Python, NumPy and the active Keras backend from one integer.

    Args:
        seed: Non-negative integer.
        deterministic: Also ask the backend for deterministic kernels where it
            offers a switch (TensorFlow op determinism, PyTorch deterministic
            algorithms). Slower; only needed on accelerators.

    Returns:
        The seed, for logging.

    Example:
        >>> import noisewise
        >>> noisewise.random.seed_everything(0)
        0
    """
    check_int("seed", seed, low=0)
    import keras  # start-up time: `import noisewise` imports no Keras

    from noisewise._core import keras_compat  # it imports Keras

    os.environ["PYTHONHASHSEED"] = str(seed)
    _py_random.seed(seed)
    np.random.seed(seed % 2**32)
    keras_compat.set_random_seed(seed)
    if deterministic:
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        elif backend == "torch":
            import torch

            torch.use_deterministic_algorithms(True)
    return seed
