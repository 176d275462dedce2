"""Every use of Keras internals, in one place, behind small named functions.

noisewise builds on Keras' public API. Where that API has no way to do what
a feature needs (read a model's layer graph, seed Keras without TensorFlow,
track an optimizer variable), the private attribute or ``keras.src`` module
is used here and nowhere else, so a Keras release that moves one breaks one
function with a clear name, not a dozen call sites. Each function says what
it does and why the public API cannot.

The Keras versions noisewise is tested with are :data:`TESTED_KERAS`
(the ``keras`` requirement in ``pyproject.toml`` says the same). Importing
this module with an older Keras raises an ImportError; a newer, untested one
gives a :class:`UntestedKerasWarning` and is tried anyway.

Example:
    >>> import keras
    >>> from noisewise._core import keras_compat
    >>> inputs = keras.Input((3,))
    >>> model = keras.Model(inputs, keras.layers.Dense(2, name="out")(inputs))
    >>> keras_compat.is_plain_functional(model)
    True
    >>> [layer.name for layer in keras_compat.flatten_layers(model, include_self=False)]
    ['input_layer', 'out']
"""

import collections
import contextlib
import random
import re
import sys
import warnings

import keras
import numpy as np

# Tested: 3.10 <= version < 3.16 (3.15.1 in the development environment).
# Keep in step with the `keras` line of pyproject.toml (a test checks it).
TESTED_KERAS = ((3, 10), (3, 16))


class UntestedKerasWarning(UserWarning):
    """Keras is newer than the versions noisewise is tested with."""


def _release(version):
    """``(major, minor)`` of a version string such as ``"3.15.1"`` or ``"3.16.0.dev2025"``."""
    found = re.match(r"(\d+)\.(\d+)", str(version))
    if found is None:
        raise ImportError(f"noisewise cannot read the Keras version. Received: "
                          f"keras.__version__={version!r}")
    return int(found.group(1)), int(found.group(2))


def check_version(version):
    """Refuse a Keras older than the tested range; warn about a newer one.

    Args:
        version: A Keras version string (``keras.__version__``).

    Raises:
        ImportError: ``version`` is older than ``TESTED_KERAS[0]``.
    """
    low, high = TESTED_KERAS
    found = _release(version)
    allowed = f"keras>={low[0]}.{low[1]},<{high[0]}.{high[1]}"
    if found < low:
        raise ImportError(
            f"noisewise needs Keras {low[0]}.{low[1]} or newer (it is tested with "
            f"{allowed}). Received: keras.__version__={version!r}. "
            f"Upgrade with: pip install '{allowed}'")
    if found >= high:
        warnings.warn(
            f"noisewise is tested with {allowed}; Keras {version} is newer and may have "
            "moved an internal noisewise relies on (noisewise._core.keras_compat). "
            f"If something breaks, install '{allowed}'.",
            UntestedKerasWarning, stacklevel=2)


check_version(keras.__version__)

# Imported after the version check, so an old Keras fails with its message
# rather than with an AttributeError or ModuleNotFoundError from here.
from keras.src.backend.common import global_state  # noqa: E402
from keras.src.models.functional import Functional  # noqa: E402
from keras.src.saving import serialization_lib  # noqa: E402
from keras.src.utils.backend_utils import DynamicBackend  # noqa: E402


# -- TensorFlow on other backends ----------------------------------------------

class _TensorFlowIfImported:
    """Keras' lazy ``tensorflow`` module, as the serializer sees it on other backends.

    ``keras.saving.serialize_keras_object`` (called by every layer's
    ``get_config``, for its dtype policy) asks ``tf.available and
    isinstance(obj, tf.TensorShape)``: ``available`` imports TensorFlow
    whenever it is installed, on any backend (seconds, and oneDNN log lines).
    An object can only be a TensorFlow type once TensorFlow is imported, so
    answering "imported already?" gives the same result without the import.
    Everything else goes to Keras' lazy module unchanged.
    """

    def __init__(self, lazy):
        self._lazy = lazy

    @property
    def available(self):
        return "tensorflow" in sys.modules and self._lazy.available

    def __getattr__(self, name):
        return getattr(self._lazy, name)


def serialize_without_tensorflow():
    """On the JAX, PyTorch and NumPy backends, keep Keras' serializer from
    importing TensorFlow (see :class:`_TensorFlowIfImported`). Applied when
    this module is imported; calling it again changes nothing."""
    if keras.backend.backend() == "tensorflow":
        return
    if not isinstance(serialization_lib.tf, _TensorFlowIfImported):
        serialization_lib.tf = _TensorFlowIfImported(serialization_lib.tf)


serialize_without_tensorflow()


# -- seeds ------------------------------------------------------------------

def set_random_seed(seed):
    """``keras.utils.set_random_seed(seed)`` without importing TensorFlow on other backends.

    Keras' function also seeds TensorFlow whenever it is installed (for
    ``tf.data`` pipelines), which imports it (seconds, and oneDNN log lines)
    on the JAX and PyTorch backends too. This does the rest of what it does:
    records the seed Keras' unseeded initializers read, drops Keras' global
    seed generator so it is recreated from that seed, and seeds Python,
    NumPy and the active backend.

    Args:
        seed: A Python int, as ``keras.utils.set_random_seed`` takes.
    """
    if not isinstance(seed, int):
        raise ValueError(f"`seed` must be an int. Received: seed={seed!r}")
    backend = keras.backend.backend()
    if backend == "tensorflow":  # TensorFlow is loaded already: Keras' own function
        keras.utils.set_random_seed(seed)
        return
    # The names of keras.src.utils.rng_utils.GLOBAL_RANDOM_SEED and
    # keras.src.random.seed_generator.GLOBAL_SEED_GENERATOR (3.10 to 3.15).
    global_state.set_global_attribute("global_random_seed", seed)
    global_state.set_global_attribute("global_seed_generator", None)
    random.seed(seed)
    np.random.seed(seed)
    if backend == "torch":
        import torch  # the active backend: imported by Keras already

        torch.manual_seed(seed)


# -- model graphs (injection) ------------------------------------------------

@contextlib.contextmanager
def fresh_layer_names():
    """Keras' automatic names (``dense``, ``dense_1``, ...) numbered from scratch
    inside, the process' own numbering restored after.

    Why: a model's automatic layer names depend on how many layers the process
    created before, and noise seeds derived from layer names (``inject``) would
    then change with the history of the process instead of the seed. Every
    layer of one model is created inside one such block, so its names stay
    unique within the model.
    """
    saved = global_state.get_global_attribute("object_name_uids")
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    try:
        yield
    finally:
        global_state.set_global_attribute("object_name_uids", saved)


def is_graph_model(obj):
    """Whether ``obj`` is a ``keras.Sequential`` or a graph-built (Functional) model.

    Keras exports no name for the Functional class (``keras.Model(inputs,
    outputs)`` returns one), and nothing public tells a graph from a subclass.
    """
    return isinstance(obj, (keras.Sequential, Functional))


def is_plain_functional(model):
    """Whether ``model`` is a Functional model whose ``call`` is the graph's own
    (a subclass of Functional that overrides ``call`` is not: its graph is not
    what it computes)."""
    return isinstance(model, Functional) and type(model).call is Functional.call


def sequential_graph(model):
    """The Functional graph a ``keras.Sequential`` runs, or None before its input
    shape is known (Keras keeps it private and builds it lazily)."""
    return model._functional


def nodes_by_depth(graph):
    """``{depth: [node, ...]}`` of a Functional graph, depth 0 at the outputs.

    The execution order of a graph's layer calls; Keras has no public accessor.
    """
    return graph._nodes_by_depth


def call_index(node):
    """Which call of its layer a graph ``node`` is (0 unless the layer is shared)."""
    return node.operation._inbound_nodes.index(node)


def producing_operation(tensor):
    """The layer (or ``InputLayer``) whose call made a symbolic ``tensor``, or None
    for a tensor no layer made (Keras records it in a private attribute)."""
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.operation


def inputs_structure(graph):
    """The nesting (dict, list, single tensor) a Functional graph's inputs were given
    in, which ``keras.Model(...)`` needs to rebuild the same call signature."""
    return graph._inputs_struct


def outputs_structure(graph):
    """The nesting of a Functional graph's outputs (see :func:`inputs_structure`)."""
    return graph._outputs_struct


# -- layers and models ---------------------------------------------------------

def flatten_layers(layer, include_self=True):
    """Every layer inside ``layer`` (nested models and wrapped layers included),
    depth first, as a list.

    ``Model.layers`` lists direct children only; Keras' own recursive walk is private.
    """
    return list(layer._flatten_layers(include_self=include_self))


def build_at_init(layer):
    """Mark a layer that needs no input shape as built, in its ``__init__``.

    Keras does this for its own weightless layers (``Dropout``, ``GaussianNoise``)
    with a private method that also records the build for saving; calling
    ``build`` instead would need an input shape the layer does not have yet.
    """
    layer._build_at_init()


def symbolic_build(model, x, y):
    """Build a compiled model's metrics and optimizer from one batch, without training.

    ``fit`` does this on its first step; a stateless training loop (the
    vectorised executor) needs every metric and optimizer variable before that.
    """
    model._symbolic_build(data_batch=(x, y))


# -- optimizers -----------------------------------------------------------------

def track_variable(optimizer, variable):
    """Make ``variable`` part of ``optimizer.variables`` (saved with it and passed
    through ``stateless_apply``), as Keras does for its own slot variables."""
    optimizer._track_variable(variable)


def optimizer_trainable_variables(optimizer):
    """The model variables a built optimizer was built for (``build(var_list)``)."""
    return optimizer._trainable_variables


# -- preprocessing layers (augmentation) -----------------------------------------

def preprocessing_seed_generator(layer):
    """The seed generator a Keras preprocessing ``layer`` draws from on its current
    backend namespace (``layer.backend``: the Keras backend, or TensorFlow inside
    ``tf.data``), as Keras' own image layers get it."""
    return layer._get_seed_generator(layer.backend._backend)


def dynamic_backend():
    """A backend namespace (``.numpy``, ``.random``, ``.cast``...) like a preprocessing
    layer's ``self.backend``, for functions that compute as those layers do
    outside any layer."""
    return DynamicBackend()
