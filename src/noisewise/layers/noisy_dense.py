"""A dense layer with learned Gaussian weight noise, for exploration (NoisyNet)."""

import math
from typing import Any

import keras
from keras import ops

from noisewise._core import sampling as _sampling
from noisewise._core.validation import check_choice, check_int, check_number
from noisewise.random import derive_seed, layer_seed

# The paper's sigma_0 per variant: 0.5 / sqrt(p) factorised, 0.017 independent.
DEFAULT_SIGMA0 = {True: 0.5, False: 0.017}


def scale_noise(x):
    """``f(x) = sign(x) sqrt(|x|)``, the factorised variant's noise map."""
    return ops.sign(x) * ops.sqrt(ops.abs(x))


@keras.saving.register_keras_serializable(package="noisewise")
class NoisyDense(keras.layers.Layer):
    """Dense layer ``y = x (mu_w + sigma_w * eps_w) + mu_b + sigma_b * eps_b``.

    Both the means ``mu`` and the noise scales ``sigma`` are trained, so the
    network learns how much to explore (Fortunato et al. 2018, "Noisy Networks
    for Exploration"). Factorised noise (the default) draws ``p + q`` normals
    per call for ``p`` inputs and ``q`` units: ``eps_w[i, j] = f(e_i) f(e_j)``
    and ``eps_b[j] = f(e_j)`` with ``f(x) = sign(x) sqrt(|x|)``; the
    independent variant draws all ``p q + q``. Initialisation follows the
    paper: ``mu ~ U[-1/sqrt(p), 1/sqrt(p)]`` and ``sigma = sigma0 / sqrt(p)``
    factorised; ``mu ~ U[-sqrt(3/p), sqrt(3/p)]`` and ``sigma = sigma0``
    independent.

    One draw is shared by the whole batch of a call and a new one is drawn
    at every training call. At inference the mean weights are used unless
    ``active_at_inference``. Given ``x``, output ``j`` has mean
    ``x mu_w[:, j] + mu_b[j]`` and variance
    ``(2/pi) sum_i sigma_w[i, j]^2 x_i^2 + sqrt(2/pi) sigma_b[j]^2``
    factorised (``E f(e)^2 = E|e| = sqrt(2/pi)``), and
    ``sum_i sigma_w[i, j]^2 x_i^2 + sigma_b[j]^2`` independent.

    Args:
        units: Number of output units, an integer >= 1.
        sigma0: Initial noise scale, finite and >= 0. Default: the paper's,
            0.5 factorised and 0.017 independent.
        factorised: Factorised (True) or independent (False) Gaussian noise.
        activation: Keras activation applied to the output.
        use_bias: Whether the layer has a (noisy) bias.
        active_at_inference: Also draw noise when ``training=False``.
        seed: Optional non-negative integer; it seeds the noise and the
            initial weights, so two layers with the same seed are identical.
        sampler: ``"auto"``, ``"fast"`` or ``"keras"``, as for
            :class:`~noisewise.GaussianNoise`.
        **kwargs: Other ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Example:
        >>> import keras
        >>> from noisewise.layers import NoisyDense
        >>> layer = NoisyDense(2, seed=0)
        >>> x = keras.ops.ones((3, 4))
        >>> tuple(layer(x, training=True).shape)
        (3, 2)
        >>> bool(keras.ops.all(layer(x) == layer(x)))  # mean weights at inference
        True
    """

    def __init__(self, units: int, sigma0: float | None = None, *, factorised: bool = True,
                 activation: Any = None, use_bias: bool = True,
                 active_at_inference: bool = False, seed: int | None = None,
                 sampler: str = "auto", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = check_int("units", units, low=1)
        self.factorised = bool(factorised)
        if sigma0 is None:
            sigma0 = DEFAULT_SIGMA0[self.factorised]
        self.sigma0 = check_number("sigma0", sigma0, low=0.0)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.active_at_inference = bool(active_at_inference)
        self.sampler = check_choice("sampler", sampler, _sampling.SAMPLERS)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(layer_seed(seed))
        self.supports_masking = True

    def _init_seed(self, part):
        # Seeded initial weights make two layers with one seed identical (a
        # clone from config, a reloaded model); None keeps Keras' global draw.
        return None if self.seed is None else derive_seed(self.seed, "noisy_dense", part)

    def build(self, input_shape):
        p = int(input_shape[-1])
        bound = 1.0 / math.sqrt(p) if self.factorised else math.sqrt(3.0 / p)
        sigma = self.sigma0 / math.sqrt(p) if self.factorised else self.sigma0

        def mean(part):
            return keras.initializers.RandomUniform(-bound, bound, seed=self._init_seed(part))

        self.kernel_mu = self.add_weight(name="kernel_mu", shape=(p, self.units),
                                         initializer=mean("kernel"))
        self.kernel_sigma = self.add_weight(name="kernel_sigma", shape=(p, self.units),
                                            initializer=keras.initializers.Constant(sigma))
        if self.use_bias:
            self.bias_mu = self.add_weight(name="bias_mu", shape=(self.units,),
                                           initializer=mean("bias"))
            self.bias_sigma = self.add_weight(name="bias_sigma", shape=(self.units,),
                                              initializer=keras.initializers.Constant(sigma))
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: p})

    # -- draw, then apply ----------------------------------------------------
    def draw(self, dtype=None) -> dict[str, Any]:
        """One noise draw: ``{"kernel": eps_w, "bias": eps_b}`` (``bias`` only with a bias)."""
        dtype = dtype or self.compute_dtype
        p = self.kernel_mu.shape[0]
        if self.factorised:
            e = scale_noise(_sampling.normal((p + self.units,), self.seed_generator, dtype,
                                             self.sampler))
            e_in, e_out = e[:p], e[p:]
            noise = {"kernel": ops.expand_dims(e_in, 1) * ops.expand_dims(e_out, 0)}
            if self.use_bias:
                noise["bias"] = e_out
            return noise
        n = p * self.units + (self.units if self.use_bias else 0)
        e = _sampling.normal((n,), self.seed_generator, dtype, self.sampler)
        noise = {"kernel": ops.reshape(e[:p * self.units], (p, self.units))}
        if self.use_bias:
            noise["bias"] = e[p * self.units:]
        return noise

    def apply_noise(self, inputs: Any, noise: dict[str, Any] | None) -> Any:
        """The output for ``inputs`` with drawn ``noise`` (``None``: the mean weights)."""
        dtype = self.compute_dtype
        kernel = ops.cast(self.kernel_mu, dtype)
        if noise is not None:
            kernel = kernel + ops.cast(self.kernel_sigma, dtype) * noise["kernel"]
        y = ops.matmul(inputs, kernel)
        if self.use_bias:
            bias = ops.cast(self.bias_mu, dtype)
            if noise is not None:
                bias = bias + ops.cast(self.bias_sigma, dtype) * noise["bias"]
            y = y + bias
        return self.activation(y) if self.activation is not None else y

    def call(self, inputs, training=None):
        x = ops.cast(inputs, self.compute_dtype)
        noisy = bool(training) or self.active_at_inference
        return self.apply_noise(x, self.draw() if noisy else None)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "sigma0": self.sigma0,
                "factorised": self.factorised,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "active_at_inference": self.active_at_inference,
                "seed": self.seed,
                "sampler": self.sampler,
            }
        )
        return config
