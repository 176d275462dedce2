"""Input gradients on every backend, behind one function.

Keras has no backend-agnostic gradient op, so this is the one place that
speaks each backend's own language: ``jax.value_and_grad`` over
``model.stateless_call`` (jitted once per model and loss), ``torch.autograd.grad``
and ``tf.GradientTape``. Everything else in :mod:`noisewise.robust` is written
with ``keras.ops`` on top of :func:`loss_and_input_grad`.
"""

import weakref

import keras
from keras import ops

_CACHE = weakref.WeakKeyDictionary()  # model -> {loss key: compiled function}


def _forward(model, x):
    from noisewise.robust._model import call_accepts_training

    return model(x, training=False) if call_accepts_training(model) else model(x)


def _jax_fn(model, loss_fn):
    import jax
    import jax.numpy as jnp

    from noisewise.robust._model import call_accepts_training

    kwargs = {"training": False} if call_accepts_training(model) else {}

    def fn(trainable, non_trainable, x, y):
        def total(x):
            out, _ = model.stateless_call(trainable, non_trainable, x, **kwargs)
            losses = loss_fn(y, out)
            return jnp.sum(losses), losses

        (_, losses), grad = jax.value_and_grad(total, has_aux=True)(x)
        return losses, grad

    return fn


def _torch_fn(model, loss_fn):
    import torch

    def fn(x, y):
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            losses = loss_fn(y, _forward(model, x))
            (grad,) = torch.autograd.grad(losses.sum(), x)
        return losses.detach(), grad.detach()

    return fn


def _tf_fn(model, loss_fn):
    import tensorflow as tf

    def fn(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            losses = loss_fn(y, _forward(model, x))
            total = tf.reduce_sum(losses)
        return losses, tape.gradient(total, x)

    return fn


def cached(model, key, factory):
    """``factory()``, built once per (model, key) and kept while the model lives."""
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = factory()
    return per_model[key]


def state_of(model):
    """Current (trainable, non_trainable) variable values, for ``stateless_call``."""
    return ([v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables])


_BUILDERS = {"jax": _jax_fn, "torch": _torch_fn, "tensorflow": _tf_fn}


def _compiled(model, loss_fn, key):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return cached(model, key, lambda: jax.jit(_jax_fn(model, loss_fn)))
    if backend == "tensorflow":
        import tensorflow as tf

        return cached(model, key, lambda: tf.function(_tf_fn(model, loss_fn), reduce_retracing=True))
    return cached(model, key, lambda: _torch_fn(model, loss_fn))


def loss_and_input_grad(model, x, y, loss_fn, *, key=None, state=None):
    """Per-example losses and the gradient of their sum with respect to ``x``.

    Examples do not interact (the model runs with ``training=False``), so row
    ``i`` of the gradient is the gradient of example ``i``'s own loss.

    Args:
        model: A built Keras model.
        x: Input batch (backend tensor).
        y: Labels (backend tensor), passed to ``loss_fn(y, outputs)``.
        loss_fn: Per-example loss written with ``keras.ops``.
        key: Hashable identifying ``loss_fn``; when given, the compiled
            function is cached per (model, key).
        state: Inside a JAX ``train_step`` only: the ``(trainable,
            non_trainable)`` variable values of the traced step, so the
            gradient uses the step's weights rather than stale constants.
    """
    backend = keras.backend.backend()
    if backend not in _BUILDERS:
        raise ValueError(
            "Attacks need input gradients, available on the jax, torch and tensorflow "
            f"backends. Received: backend={backend!r}"
        )
    if backend == "jax":
        fn = _jax_fn(model, loss_fn) if key is None or state is not None else _compiled(model, loss_fn, key)
        return fn(*(state if state is not None else state_of(model)), x, y)
    if key is not None and not _in_tf_graph():
        return _compiled(model, loss_fn, key)(x, y)
    return _BUILDERS[backend](model, loss_fn)(x, y)


def _in_tf_graph():
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.executing_eagerly()


def as_tensor(x, dtype=None):
    return ops.convert_to_tensor(x, dtype=dtype)
