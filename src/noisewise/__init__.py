"""noisewise: noise and randomness for Keras 3 models, used on purpose and measured.

JAX is the default backend: if the user has not chosen one (``KERAS_BACKEND``)
before importing noisewise, noisewise chooses JAX before Keras is imported.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

from noisewise import random  # noqa: E402
from noisewise.layers import (  # noqa: E402
    GaussianNoise,
    MultiplicativeNoise,
    PoissonNoise,
    SaltAndPepperNoise,
    UniformNoise,
    WeightNoise,
)

__version__ = "0.1.0"

__all__ = [
    "GaussianNoise",
    "MultiplicativeNoise",
    "PoissonNoise",
    "SaltAndPepperNoise",
    "UniformNoise",
    "WeightNoise",
    "random",
]
