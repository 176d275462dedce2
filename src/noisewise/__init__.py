"""noisewise: noise and randomness for Keras 3 models, used on purpose and measured.

JAX is the default backend: if the user has not chosen one (``KERAS_BACKEND``)
before importing noisewise, noisewise chooses JAX before Keras is imported.

The public names below are the whole API; everything else lives in private
modules. The heavier parts (studies, augmentation, robustness, injection)
load on first use.
"""

import importlib
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

from noisewise import random  # noqa: E402

# Layers and the optimizer wrapper are imported eagerly: importing them
# registers them with Keras, so `keras.models.load_model` finds them in a
# fresh process after a plain `import noisewise`.
from noisewise.layers import (  # noqa: E402
    GaussianNoise,
    MultiplicativeNoise,
    PoissonNoise,
    SaltAndPepperNoise,
    UniformNoise,
    WeightNoise,
)
from noisewise.optimizers import GradientNoise  # noqa: E402
from noisewise.random import seed_everything  # noqa: E402

__version__ = "0.1.0"

# name -> module that defines it; imported on first access.
_LAZY = {
    "NoiseScheduler": "noisewise.layers.schedules",
    "schedules": "noisewise.layers.schedules",
    "inject": "noisewise.injection",
    "injection_points": "noisewise.injection",
    "InjectionPoint": "noisewise.injection",
}
_SUBPACKAGES = ("augment", "robust", "study")


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if module.__name__.rsplit(".", 1)[-1] == name else getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"noisewise.{name}")
    raise AttributeError(f"module 'noisewise' has no attribute {name!r}")


__all__ = [
    "GaussianNoise",
    "GradientNoise",
    "MultiplicativeNoise",
    "NoiseScheduler",
    "PoissonNoise",
    "SaltAndPepperNoise",
    "UniformNoise",
    "WeightNoise",
    "InjectionPoint",
    "inject",
    "injection_points",
    "random",
    "schedules",
    "seed_everything",
]
