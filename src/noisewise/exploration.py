"""Exploration noise for reinforcement learning: action noise and adaptive parameter noise.

These run in the environment loop, on NumPy, each from its own explicit seed:

* :class:`GaussianActionNoise`: independent ``N(0, sigma^2)`` per step;
* :class:`OrnsteinUhlenbeckActionNoise`: temporally correlated noise (Uhlenbeck
  and Ornstein 1930), as DDPG uses it (Lillicrap et al. 2016);
* :class:`ParameterNoise`: Gaussian noise on a copy of a policy's weights, its
  scale adapted so the perturbed policy stays at a target distance from the
  unperturbed one (Plappert et al. 2018, "Parameter Space Noise for
  Exploration"), with the distances :func:`dqn_distance` (and its threshold
  :func:`dqn_threshold`) and :func:`policy_distance`.

For noise inside a network, learned by gradient descent (NoisyNet), see
:class:`noisewise.layers.NoisyDense`.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from noisewise._core.validation import check_int, check_number


def _size(size):
    sizes = (size,) if isinstance(size, int) and not isinstance(size, bool) else size
    try:
        sizes = tuple(sizes)
    except TypeError:
        sizes = None
    if not sizes or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes):
        raise ValueError("`size` must be an integer >= 1 or a tuple of them. "
                         f"Received: size={size!r}")
    return sizes


class GaussianActionNoise:
    """Independent Gaussian action noise: each call returns ``sigma * N(0, 1)`` of ``size``.

    Args:
        sigma: Standard deviation, finite and >= 0.
        size: Shape of one draw (the action's shape), an integer or tuple.
        seed: Seed of the NumPy generator (None: fresh entropy).

    Example:
        >>> noise = GaussianActionNoise(0.1, size=2, seed=0)
        >>> noise().shape
        (2,)
    """

    def __init__(self, sigma: float, size: int | Sequence[int] = 1, seed: int | None = None) -> None:
        self.sigma = check_number("sigma", sigma, low=0.0)
        self.size = _size(size)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Nothing to reset (no state between draws); kept for the common interface."""

    def __call__(self) -> np.ndarray:
        return self.sigma * self.rng.standard_normal(self.size)


class OrnsteinUhlenbeckActionNoise:
    """Ornstein-Uhlenbeck noise ``dx = theta (mu - x) dt + sigma dW``, Euler-Maruyama discretised.

    Each call advances one step, ``x <- x + theta (mu - x) dt + sigma sqrt(dt) z``
    with ``z ~ N(0, 1)``, and returns the new ``x``. With ``a = 1 - theta dt``
    the discrete process after ``k`` steps has mean ``mu + (x0 - mu) a^k``
    (the continuous ``mu + (x0 - mu) exp(-theta t)`` at ``t = k dt``, up to
    ``O(dt)``) and variance ``sigma^2 dt (1 - a^(2k)) / (1 - a^2)``, whose limit
    ``sigma^2 / (theta (2 - theta dt))`` is the continuous ``sigma^2 / (2 theta)``
    up to the factor ``1 / (1 - theta dt / 2)`` (:meth:`moments`).

    Args:
        theta: Mean-reversion rate, > 0.
        sigma: Diffusion scale, >= 0.
        mu: Long-run mean.
        dt: Time step, > 0, with ``theta * dt < 2`` (else the discrete process
            diverges).
        size: Shape of one draw.
        seed: Seed of the NumPy generator.
        x0: Starting value, a number or an array of ``size``; default 0, as in
            the DDPG reference code.

    Example:
        >>> noise = OrnsteinUhlenbeckActionNoise(size=2, seed=0, x0=1.0)
        >>> noise().shape
        (2,)
        >>> mean, var = noise.moments(100)  # exact, for the discretised process
        >>> round(float(mean), 4), round(float(var), 5)
        (0.8606, 0.03461)
    """

    def __init__(self, theta: float = 0.15, sigma: float = 0.2, mu: float = 0.0, dt: float = 1e-2,
                 size: int | Sequence[int] = 1, seed: int | None = None,
                 x0: float | np.ndarray | None = None) -> None:
        self.theta = check_number("theta", theta, low=0.0, low_open=True)
        self.sigma = check_number("sigma", sigma, low=0.0)
        self.mu = check_number("mu", mu)
        self.dt = check_number("dt", dt, low=0.0, low_open=True)
        if self.theta * self.dt >= 2:
            raise ValueError("`theta * dt` must be < 2, or the discretised process diverges. "
                             f"Received: theta={theta!r}, dt={dt!r}")
        self.size = _size(size)
        if x0 is not None and not np.all(np.isfinite(np.asarray(x0, dtype=float))):
            raise ValueError(f"`x0` must be finite. Received: x0={x0!r}")
        self.x0 = x0
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Back to ``x0`` (at the start of an episode); the generator keeps its stream."""
        start = 0.0 if self.x0 is None else np.asarray(self.x0, dtype=float)
        self.x = np.broadcast_to(start, self.size).astype(float)
        self.steps = 0

    def __call__(self) -> np.ndarray:
        z = self.rng.standard_normal(self.size)
        self.x = self.x + self.theta * (self.mu - self.x) * self.dt + self.sigma * math.sqrt(self.dt) * z
        self.steps += 1
        return self.x

    def moments(self, steps: int) -> tuple[np.ndarray, float]:
        """Exact mean and variance of the discrete process ``steps`` steps after :meth:`reset`."""
        check_int("steps", steps, low=0)
        a = 1.0 - self.theta * self.dt
        start = 0.0 if self.x0 is None else np.asarray(self.x0, dtype=float)
        mean = self.mu + (start - self.mu) * a**steps
        var = self.sigma**2 * self.dt * (1 - a ** (2 * steps)) / (1 - a**2)
        return mean, var


def dqn_threshold(epsilon: float, n_actions: int) -> float:
    """The KL distance matching epsilon-greedy: ``-log(1 - epsilon + epsilon / n_actions)``.

    Plappert et al. (2018, section 3) choose the target distance of parameter
    noise for DQN so that the perturbed greedy policy differs from the greedy
    one as much as epsilon-greedy does, in KL divergence.
    """
    epsilon = check_number("epsilon", epsilon, low=0.0, high=1.0)
    n_actions = check_int("n_actions", n_actions, low=2)
    return -math.log(1.0 - epsilon + epsilon / n_actions)


def _softmax(q):
    z = q - q.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def dqn_distance(q: Any, q_perturbed: Any) -> float:
    """Mean over states of ``KL(softmax(q) || softmax(q_perturbed))`` (Q-values ``(states, actions)``)."""
    q, qp = np.asarray(q, dtype=float), np.asarray(q_perturbed, dtype=float)
    if q.shape != qp.shape or q.ndim != 2:
        raise ValueError("`q` and `q_perturbed` must be (states, actions) arrays of one shape. "
                         f"Received: q.shape={q.shape}, q_perturbed.shape={qp.shape}")
    p, pp = _softmax(q), _softmax(qp)
    return float(np.mean(np.sum(p * (np.log(p + 1e-12) - np.log(pp + 1e-12)), axis=-1)))


def policy_distance(actions: Any, perturbed_actions: Any) -> float:
    """``sqrt(mean((a - a')^2))`` over states and action dimensions (DDPG's distance)."""
    a, b = np.asarray(actions, dtype=float), np.asarray(perturbed_actions, dtype=float)
    if a.shape != b.shape:
        raise ValueError("`actions` and `perturbed_actions` must have one shape. "
                         f"Received: {a.shape} and {b.shape}")
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _normalization_variables(model):
    found, stack = set(), [model]
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", ()))
        if "Normalization" in type(layer).__name__:
            found.update(id(v) for v in layer.weights)
    return found


class ParameterNoise:
    """Adaptive Gaussian noise on a copy of a model's weights (Plappert et al. 2018).

    :meth:`perturb` writes ``w + stddev * N(0, 1)`` into a second model of the
    same architecture (the exploring policy); :meth:`adapt` moves ``stddev``
    towards the scale where the two policies are ``desired_distance`` apart:
    ``stddev <- stddev * alpha`` if the measured distance is below it, else
    ``stddev <- stddev / alpha``. For DQN, measure the distance with
    :func:`dqn_distance` against :func:`dqn_threshold` (the paper's rule);
    for continuous actions with :func:`policy_distance`.

    Args:
        stddev: Initial noise scale, finite and > 0.
        desired_distance: Target distance ``delta`` between the policies, > 0.
        adoption_coefficient: ``alpha`` > 1 (the paper's 1.01).
        seed: Seed of the NumPy generator.
        perturbable: ``callable(variable) -> bool`` choosing the trainable
            variables to perturb. Default: all but those of normalization
            layers (which the paper leaves unperturbed).

    Example:
        >>> noise = ParameterNoise(0.1, desired_distance=0.2, seed=0)
        >>> round(noise.adapt(0.1), 4)  # too close: more noise
        0.101
    """

    def __init__(self, stddev: float = 0.1, desired_distance: float = 0.1,
                 adoption_coefficient: float = 1.01, seed: int | None = None,
                 perturbable: Callable[[Any], bool] | None = None) -> None:
        self.stddev = check_number("stddev", stddev, low=0.0, low_open=True)
        self.desired_distance = check_number("desired_distance", desired_distance, low=0.0,
                                             low_open=True)
        self.adoption_coefficient = check_number("adoption_coefficient", adoption_coefficient,
                                                 low=1.0, low_open=True)
        self.seed = seed
        self.perturbable = perturbable
        self.rng = np.random.default_rng(seed)

    def adapt(self, distance: float) -> float:
        """Update ``stddev`` from a measured policy ``distance``; returns the new ``stddev``."""
        distance = check_number("distance", distance, low=0.0)
        if distance < self.desired_distance:
            self.stddev *= self.adoption_coefficient
        else:
            self.stddev /= self.adoption_coefficient
        return self.stddev

    def perturb_weights(self, weights: Sequence[Any], mask: Sequence[bool] | None = None) -> list:
        """``weights`` (arrays) with noise added where ``mask`` is true (default: everywhere)."""
        mask = [True] * len(weights) if mask is None else list(mask)
        out = []
        for w, noisy in zip(weights, mask):
            w = np.asarray(w)
            if noisy:
                w = (w + self.stddev * self.rng.standard_normal(w.shape)).astype(w.dtype)
            out.append(w)
        return out

    def perturb(self, model: Any, perturbed_model: Any) -> None:
        """Copy ``model``'s variables into ``perturbed_model``, perturbing the trainable ones."""
        source, target = list(model.variables), list(perturbed_model.variables)
        shapes = [tuple(v.shape) for v in source]
        if shapes != [tuple(v.shape) for v in target]:
            raise ValueError("`perturbed_model` must have the variables of `model` (same "
                             f"architecture). Received: {len(source)} variables of shapes "
                             f"{shapes} and {len(target)} of {[tuple(v.shape) for v in target]}")
        trainable = {id(v) for v in model.trainable_variables}
        skip = set() if self.perturbable is not None else _normalization_variables(model)
        choose = self.perturbable or (lambda v: id(v) not in skip)
        mask = [id(v) in trainable and bool(choose(v)) for v in source]
        for variable, value in zip(target, self.perturb_weights([v.numpy() for v in source], mask)):
            variable.assign(value)
