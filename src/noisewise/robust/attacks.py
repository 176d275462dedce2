"""Gradient attacks: FGSM and PGD under L-infinity and L2 budgets.

Both maximise the model's own cross-entropy (or, when ``targeted``, minimise it
towards the given target labels) within an epsilon ball around each input,
clipped to the data range. They work on Keras 3 models on JAX, PyTorch and
TensorFlow; input gradients come from :mod:`noisewise.robust._grad`.

References:
    Goodfellow, Shlens and Szegedy (2015), "Explaining and Harnessing
    Adversarial Examples" (FGSM). Madry et al. (2018), "Towards Deep Learning
    Models Resistant to Adversarial Attacks" (PGD with random start).
"""

import functools

import keras
import numpy as np
from keras import ops

from noisewise._core.validation import check_int, check_non_negative, check_number, check_range
from noisewise.robust import _grad, _model

NORMS = ("linf", "l2")
_NORM_ALIASES = {"linf": "linf", "inf": "linf", np.inf: "linf", "l2": "l2", 2: "l2", "2": "l2"}
_TINY = 1e-12


def check_norm(norm):
    try:
        return _NORM_ALIASES[norm.lower() if isinstance(norm, str) else norm]
    except (KeyError, TypeError):
        raise ValueError(
            f"`norm` must be one of 'linf' (or np.inf) and 'l2' (or 2). Received: norm={norm!r}"
        ) from None


def per_example(v, x):
    """Reshape a (batch,) vector so it broadcasts against ``x``."""
    return ops.reshape(v, (-1,) + (1,) * (len(x.shape) - 1))


def l2_norm(v):
    return ops.sqrt(ops.sum(ops.square(v), axis=tuple(range(1, len(v.shape))), keepdims=True))


def direction(grad, norm):
    """Steepest-ascent direction of unit size in the given norm."""
    if norm == "linf":
        return ops.sign(grad)
    return grad / ops.maximum(l2_norm(grad), _TINY)


def project(x_adv, x, eps, norm, clip):
    """Project ``x_adv`` onto the ``eps`` ball around ``x``, then onto the data range.

    Clipping to the range after projecting keeps the point in the ball as long
    as ``x`` itself lies in the range: each coordinate only moves towards ``x``.
    """
    delta = x_adv - x
    if norm == "linf":
        delta = ops.clip(delta, -eps, eps)
    else:
        delta = delta * ops.minimum(1.0, eps / ops.maximum(l2_norm(delta), _TINY))
    out = x + delta
    if clip is not None:
        out = ops.clip(out, clip[0], clip[1])
    return out


def sample_ball(shape, eps, norm, rng):
    """A uniform draw from the ``eps`` ball (NumPy), for PGD's random start."""
    if norm == "linf":
        return rng.uniform(-eps, eps, size=shape).astype("float32")
    d = int(np.prod(shape[1:]))
    g = rng.standard_normal(size=(shape[0], d))
    g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), _TINY)
    r = eps * rng.uniform(size=(shape[0], 1)) ** (1.0 / d)
    return (g * r).reshape(shape).astype("float32")


def perturb(model, x, y, loss_fn, *, eps, norm, steps, step_size, delta=None, clip=None,
            targeted=False, keep_best=False, key=None, state=None):
    """Run ``steps`` projected gradient steps from ``x + delta`` (tensors in, tensor out).

    This is the attack loop shared by :func:`fgsm`, :func:`pgd` and adversarial
    training. ``keep_best`` returns, per example, the iterate with the highest
    loss (lowest for ``targeted``) instead of the last one.
    """
    sign = -1.0 if targeted else 1.0
    x0 = project(x + delta, x, eps, norm, clip) if delta is not None else x

    def grad(x_cur):
        return _grad.loss_and_input_grad(model, x_cur, y, loss_fn, key=key, state=state)

    def step(x_cur, g):
        return project(x_cur + sign * step_size * direction(g, norm), x, eps, norm, clip)

    if not keep_best:
        return ops.fori_loop(0, steps, lambda i, x_cur: step(x_cur, grad(x_cur)[1]), x0)

    def keep(x_cur, losses, best, best_score):
        better = sign * losses > best_score
        return ops.where(per_example(better, x), x_cur, best), ops.where(better, sign * losses, best_score)

    def body(i, carry):
        x_cur, best, best_score = carry
        losses, g = grad(x_cur)
        return (step(x_cur, g),) + keep(x_cur, losses, best, best_score)

    # A loop rather than unrolled steps: JAX compiles one step, not ``steps`` copies.
    no_score = ops.full_like(ops.sum(x, axis=tuple(range(1, len(x.shape)))), -np.inf)
    x_last, best, best_score = ops.fori_loop(0, steps, body, (x0, x0, no_score))
    return keep(x_last, grad(x_last)[0], best, best_score)[0]


def _prepare(model, x, y, from_logits, clip):
    x = _model.check_input(model, np.asarray(x, dtype="float32"))
    spec = _model.inspect_output(model, from_logits, probe=x[:2])
    y = _model.labels(y, spec)
    if len(y) != len(x):
        raise ValueError(f"`x` and `y` must have the same length. Received: {len(x)} and {len(y)}")
    return x, y, spec, check_range("clip", clip)


def _run(model, x, y, spec, batch_size, deltas=None, **kwargs):
    check_int("batch_size", batch_size, low=1)
    loss_fn = functools.partial(_model.per_example_loss, spec)
    size = min(batch_size, len(x))
    if keras.backend.backend() == "jax":
        # One compiled program for the whole attack loop: eager JAX would
        # dispatch (and compile) every small op of every step separately.
        import jax

        def build():
            def fn(trainable, non_trainable, x, y, delta):
                return perturb(model, x, y, loss_fn, delta=delta, state=(trainable, non_trainable), **kwargs)
            return jax.jit(fn)

        jitted = _grad.cached(model, ("attack", spec, tuple(sorted(kwargs.items()))), build)

        def attack(xb, yb, delta):
            return jitted(*_grad.state_of(model), xb, yb, delta)
    else:
        def attack(xb, yb, delta):
            return perturb(model, xb, yb, loss_fn, delta=delta, key=spec, **kwargs)

    out = []
    for i in range(0, len(x), size):
        # Pad the last batch to the common size: JAX compiles once per shape,
        # and padded rows cannot affect the others (inference mode, per-example loss).
        m = min(size, len(x) - i)
        pad = [(0, size - m)] + [(0, 0)] * (x.ndim - 1)
        xb, yb = np.pad(x[i : i + m], pad), np.pad(y[i : i + m], pad[:1])
        delta = None if deltas is None else _grad.as_tensor(np.pad(deltas[i : i + m], pad))
        x_adv = attack(_grad.as_tensor(xb), _grad.as_tensor(yb), delta)
        out.append(np.asarray(ops.convert_to_numpy(x_adv))[:m])
    return np.concatenate(out) if out else x.copy()


def fgsm(model: keras.Model, x, y, eps: float, *, norm: str = "linf", targeted: bool = False,
         clip: tuple[float, float] | None = None, from_logits: bool | None = None,
         batch_size: int = 256) -> np.ndarray:
    """Fast gradient sign method: one step of size ``eps`` along the loss gradient.

    ``x + eps * sign(grad_x loss)`` for ``norm="linf"``, or
    ``x + eps * grad / ||grad||_2`` for ``norm="l2"`` (the fast gradient method),
    then clipped to ``clip``.

    Args:
        model: Keras classifier with a (batch, classes) output of logits or
            probabilities (softmax, or one sigmoid unit for binary problems).
        x: Inputs (NumPy array).
        y: True labels (integers, (n, 1) or one-hot), or target labels when
            ``targeted``.
        eps: Budget, >= 0, in the data's units.
        norm: "linf" (default) or "l2".
        targeted: Step towards ``y`` (descend its loss) instead of away from it.
        clip: Optional ``(low, high)`` data range.
        from_logits: None to detect from the output activation, or True/False.
        batch_size: Examples per gradient call.

    Returns:
        Adversarial inputs, a float32 NumPy array shaped like ``x``.

    Example:
        >>> import keras, numpy as np
        >>> from noisewise.robust import fgsm
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
        >>> x_adv = fgsm(model, np.zeros((4, 2)), [0, 1, 0, 1], eps=0.1, clip=(-1, 1))
        >>> float(np.abs(x_adv).max()) <= 0.1 + 1e-6
        True
    """
    eps = check_non_negative("eps", eps)
    norm = check_norm(norm)
    x, y, spec, clip = _prepare(model, x, y, from_logits, clip)
    return _run(model, x, y, spec, batch_size, eps=eps, norm=norm, steps=1, step_size=eps,
                clip=clip, targeted=bool(targeted))


def pgd(model: keras.Model, x, y, eps: float, *, norm: str = "linf", steps: int = 10,
        step_size: float | None = None, random_start: bool = True, targeted: bool = False,
        clip: tuple[float, float] | None = None, from_logits: bool | None = None,
        seed: int | None = None, keep_best: bool = True, batch_size: int = 256) -> np.ndarray:
    """Projected gradient descent (Madry et al. 2018) under an L-infinity or L2 budget.

    Starts from a uniform point of the ``eps`` ball (``random_start``), takes
    ``steps`` steps of ``step_size`` along the sign of the gradient (linf) or
    the normalised gradient (l2), and projects back onto the ball and the data
    range after every step, so the result never leaves either.

    Args:
        model, x, y, targeted, clip, from_logits, batch_size: As for :func:`fgsm`.
        eps: Budget, >= 0.
        norm: "linf" (default) or "l2".
        steps: Number of gradient steps, >= 1.
        step_size: Step length; defaults to ``2.5 * eps / steps`` (Madry et al.),
            enough to cross the ball from a random start.
        random_start: Start from a random point of the ball (drawn with NumPy
            from ``seed``, so every backend starts from the same point).
        seed: Seed of the random start; None draws one from NumPy's global
            generator (seeded by :func:`noisewise.seed_everything`).
        keep_best: Return each example's highest-loss iterate rather than the last.

    Returns:
        Adversarial inputs, a float32 NumPy array shaped like ``x``.

    Example:
        >>> import keras, numpy as np
        >>> from noisewise.robust import pgd
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
        >>> x_adv = pgd(model, np.zeros((4, 2)), [0, 1, 2, 0], eps=0.5, norm="l2", seed=0)
        >>> bool((np.linalg.norm(x_adv, axis=1) <= 0.5 + 1e-5).all())
        True
    """
    eps = check_non_negative("eps", eps)
    norm = check_norm(norm)
    steps = check_int("steps", steps, low=1)
    step_size = 2.5 * eps / steps if step_size is None else check_number(
        "step_size", step_size, low=0.0, low_open=True)
    x, y, spec, clip = _prepare(model, x, y, from_logits, clip)
    deltas = None
    if random_start and eps > 0:
        if seed is None:
            seed = int(np.random.randint(2**31 - 1))
        rng = np.random.default_rng(check_int("seed", seed, low=0))
        deltas = sample_ball(x.shape, eps, norm, rng)
    return _run(model, x, y, spec, batch_size, eps=eps, norm=norm, steps=steps,
                step_size=step_size, clip=clip, targeted=bool(targeted),
                keep_best=bool(keep_best), deltas=deltas)

