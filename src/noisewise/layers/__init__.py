"""Keras 3 noise layers, built only on ``keras.ops`` and ``keras.random``."""

from noisewise.layers._base import NoiseLayer
from noisewise.layers.noise import (
    GaussianNoise,
    MultiplicativeNoise,
    PoissonNoise,
    SaltAndPepperNoise,
    UniformNoise,
)
from noisewise.layers.noisy_dense import NoisyDense
from noisewise.layers.weights import WeightNoise

NOISE_LAYERS = {
    "gaussian": GaussianNoise,
    "multiplicative": MultiplicativeNoise,
    "uniform": UniformNoise,
    "salt_and_pepper": SaltAndPepperNoise,
    "poisson": PoissonNoise,
}

__all__ = [
    "NOISE_LAYERS",
    "GaussianNoise",
    "MultiplicativeNoise",
    "NoiseLayer",
    "NoisyDense",
    "PoissonNoise",
    "SaltAndPepperNoise",
    "UniformNoise",
    "WeightNoise",
]
