"""Insert noise layers into an existing Functional or Sequential Keras model.

:func:`inject` walks the model's graph node by node (as
``keras.models.clone_model`` does) and rebuilds it with noise layers at the
chosen places. Every layer is *copied*: rebuilt from its config and given the
original's weights, so training the new model never touches the original.
Noise layers are identities at inference, so the new model predicts exactly
what the original predicts until it is trained.

Where noise goes (``where``):

- ``"input"``: one noise layer on each (floating-point) model input, the
  classic "training with noise" of Bishop (1995), "Training with Noise is
  Equivalent to Tikhonov Regularization".
- ``"pre_activation"``: before every non-linearity. A layer with its own
  activation (``Dense(64, activation="relu")``, ``Conv2D``, ...) is split into
  the same layer with a linear activation and the same weights, then the
  noise, then ``Activation("relu")``; standalone activation layers
  (``Activation``, ``ReLU``, ``LeakyReLU``, ``PReLU``, ``ELU``, ``Softmax``)
  get the noise just before them.
- ``"post_activation"``: just after those non-linearities (nothing is split).
- a list of layer names, or a callable ``layer -> bool``: after those layers.

Layers inside nested Functional/Sequential models are visited too; the nested
model is rebuilt the same way. Subclassed models (their own ``call``) have no
graph to walk and are refused.
"""

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from numbers import Real

import keras
from keras import tree

from noisewise._core import keras_compat
from noisewise._core.validation import check_non_negative
from noisewise.layers import GaussianNoise
from noisewise.random import derive_seed

MODES = ("input", "pre_activation", "post_activation")

# Layers whose activation is the last thing their call does, so
# Layer(activation=f) == Activation(f)(Layer(activation=None)) exactly.
# (Recurrent layers also have an `activation`, but apply it inside the loop.)
_SPLITTABLE = tuple(
    getattr(keras.layers, name)
    for name in (
        "Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose",
        "Conv2DTranspose", "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D",
        "SeparableConv1D", "SeparableConv2D",
    )
    if hasattr(keras.layers, name)
)
_ACTIVATION_LAYERS = (
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU,
    keras.layers.PReLU, keras.layers.ELU, keras.layers.Softmax,
)


@dataclasses.dataclass(frozen=True)
class InjectionPoint:
    """One inserted noise layer.

    Attributes:
        noise_layer: Name of the inserted noise layer (``"outer/inner"`` paths
            for layers inside nested models).
        layer: Name of the layer (or model input) it is attached to.
        position: ``"input"``, ``"pre_activation"``, ``"post_activation"`` or
            ``"after"`` (after a named/selected layer).
        node_index: Which call of ``layer`` (> 0 only for shared layers).
    """

    noise_layer: str
    layer: str
    position: str
    node_index: int = 0


@dataclasses.dataclass
class _NodePlan:
    position: str = None
    noise_names: tuple = ()
    activation_name: str = None  # set when the layer is split


@dataclasses.dataclass
class _Plan:
    inputs: dict = dataclasses.field(default_factory=dict)  # input index -> noise name
    nodes: dict = dataclasses.field(default_factory=dict)  # id(node) -> _NodePlan
    split: set = dataclasses.field(default_factory=set)  # id(layer) split in two
    nested: dict = dataclasses.field(default_factory=dict)  # id(model) -> _Plan


def _graph(model):
    """The Functional graph behind ``model``, or a ValueError saying why not."""
    if isinstance(model, keras.Sequential):
        graph = keras_compat.sequential_graph(model)
        if graph is None:
            raise ValueError(
                f"Sequential model {model.name!r} has no input shape yet, so it has no "
                "graph to rewrite. Start it with keras.Input(shape=...) or call it on "
                "data once before injecting."
            )
        return graph
    if keras_compat.is_plain_functional(model):
        return model
    if isinstance(model, keras.Model):
        raise ValueError(
            f"inject supports Functional and Sequential models only; {model.name!r} "
            f"is a subclassed model ({type(model).__name__} with its own `call`), whose "
            "layer graph cannot be read. Either add noisewise noise layers inside its "
            "`call` yourself, or build the model with the functional API "
            "(keras.Model(inputs, outputs)) or keras.Sequential."
        )
    raise ValueError(
        "`model` must be a Functional or Sequential keras.Model. "
        f"Received: model={model!r}"
    )


def _nodes(graph):
    """Operation nodes in execution order (deepest first, as Keras runs them)."""
    by_depth = keras_compat.nodes_by_depth(graph)
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            if node.operation is not None and not node.is_input:
                yield node


def _is_model(op):
    return keras_compat.is_graph_model(op)


def _activation_kind(layer):
    """"split" for Dense-like layers with a non-linear activation, "layer" for activations."""
    if isinstance(layer, _SPLITTABLE):
        activation = getattr(layer, "activation", None)
        if activation is not None and activation is not keras.activations.linear:
            return "split"
        return None
    if isinstance(layer, keras.layers.Activation):
        return None if layer.activation is keras.activations.linear else "layer"
    return "layer" if isinstance(layer, _ACTIVATION_LAYERS) else None


def _names_in(graph):
    names = []
    for op in graph.operations:
        if not isinstance(op, keras.layers.InputLayer):
            names.append(op.name)
        if _is_model(op):
            names.extend(_names_in(_graph(op)))
    return names


class _Planner:
    """Decides, without building anything, where noise goes and what it is called."""

    def __init__(self, where, layer_types, include_output_layer):
        self.where = where
        self.layer_types = layer_types
        self.include_output_layer = include_output_layer
        self.points = []
        self.matched = set()

    def _position(self, layer, is_output):
        if self.layer_types is not None and not isinstance(layer, self.layer_types):
            return None
        if self.where in ("pre_activation", "post_activation"):
            if _activation_kind(layer) is None:
                return None
            if is_output and not self.include_output_layer:
                return None
            return self.where
        if callable(self.where):
            if is_output and not self.include_output_layer:
                return None
            return "after" if self.where(layer) else None
        if layer.name in self.where:  # explicit names are honoured even at the output
            self.matched.add(layer.name)
            return "after"
        return None

    def plan(self, model, prefix="", at_output=True):
        graph = _graph(model)
        plan = _Plan()
        used = {op.name for op in graph.operations} | {x.name for x in graph.inputs}

        def unique(base):
            name, k = base, 1
            while name in used:
                name, k = f"{base}_{k}", k + 1
            used.add(name)
            return name

        def record(noise, layer_name, position, index):
            self.points.append(InjectionPoint(prefix + noise, prefix + layer_name, position, index))

        if self.where == "input" and not prefix:
            for i, (x, layer) in enumerate(zip(graph.inputs, _input_layers(graph))):
                if not keras.backend.is_float_dtype(x.dtype):
                    warnings.warn(
                        f"inject: input {layer.name!r} has dtype {x.dtype}; no noise added to it."
                    )
                    continue
                plan.inputs[i] = unique(f"{layer.name}_noise")
                record(plan.inputs[i], layer.name, "input", 0)

        output_ids = {id(x) for x in graph.outputs}
        nodes = list(_nodes(graph))
        # A node feeds a model output directly; a nested model does if any of its calls does.
        node_at_out = {
            id(n): at_output and any(id(x) in output_ids for x in n.outputs) for n in nodes
        }
        op_at_out = {id(n.operation) for n in nodes if node_at_out[id(n)]}
        for node in nodes:
            op = node.operation
            index = keras_compat.call_index(node)
            if _is_model(op) and id(op) not in plan.nested:
                plan.nested[id(op)] = self.plan(op, f"{prefix}{op.name}/", id(op) in op_at_out)
            position = None
            if isinstance(op, keras.layers.Layer) and self.where != "input":
                position = self._position(op, node_at_out[id(node)])
            if position is None:
                continue
            if position == "pre_activation" and _activation_kind(op) == "split":
                plan.split.add(id(op))
            suffix = f"_{index}" if index else ""
            n_out = len(node.outputs) if position != "pre_activation" else 1
            names = tuple(
                unique(f"{op.name}_noise{suffix}" + (f"_{k}" if n_out > 1 else ""))
                for k in range(n_out)
            )
            plan.nodes[id(node)] = _NodePlan(position, names)
            for name in names:
                record(name, op.name, position, index)
        for node in nodes:  # a split layer needs its activation back at every call
            if id(node.operation) in plan.split:
                node_plan = plan.nodes.setdefault(id(node), _NodePlan())
                index = keras_compat.call_index(node)
                suffix = f"_{index}" if index else ""
                node_plan.activation_name = unique(f"{node.operation.name}_activation{suffix}")
        return plan


def _input_layers(graph):
    return [keras_compat.producing_operation(x) for x in graph.inputs]


class _Builder:
    """Rebuilds a model from a plan: copies of every layer, plus the noise layers."""

    def __init__(self, make_noise):
        self.make_noise = make_noise
        self.clones = {}  # id(original op) -> copy
        self.weight_pairs = []  # (source, copy) whose weights are copied at the end

    def _clone(self, op, plan, prefix):
        if id(op) in self.clones:
            return self.clones[id(op)]
        if _is_model(op):
            clone = self.build(op, plan.nested[id(op)], f"{prefix}{op.name}/")
        else:
            config = op.get_config()
            if id(op) in plan.split:
                config["activation"] = "linear"
            try:
                clone = type(op).from_config(config)
            except Exception as error:
                raise ValueError(
                    f"inject copies every layer through get_config()/from_config(), which "
                    f"failed for {op.name!r} ({type(op).__name__}): {error}"
                ) from error
            if isinstance(op, keras.layers.Layer):
                self.weight_pairs.append((op, clone))
        self.clones[id(op)] = clone
        return clone

    def _noise(self, name, prefix, called):
        layer = self.make_noise(name, prefix + name, self.weight_pairs)
        called.append(layer)
        return layer

    def build(self, model, plan, prefix=""):
        graph = _graph(model)
        sequential = isinstance(model, keras.Sequential)
        called = []  # layers in call order: the layer list of a rebuilt Sequential
        in_layers = _input_layers(graph)
        new_inputs = [
            keras.Input(batch_shape=x.shape, dtype=x.dtype, name=layer.name)
            for x, layer in zip(graph.inputs, in_layers)
        ]
        tensors = {}
        for i, (x, y) in enumerate(zip(graph.inputs, new_inputs)):
            if i in plan.inputs:
                y = self._noise(plan.inputs[i], prefix, called)(y)
            tensors[id(x)] = y

        for node in _nodes(graph):
            args, kwargs = node.arguments.fill_in(tensors)
            clone = self._clone(node.operation, plan, prefix)
            step = plan.nodes.get(id(node), _NodePlan())
            if step.position == "pre_activation" and step.activation_name is None:
                args = (self._noise(step.noise_names[0], prefix, called)(args[0]),) + tuple(args[1:])
            called.append(clone)
            out = clone(*args, **kwargs)
            if step.activation_name is not None:
                if step.position == "pre_activation":
                    out = self._noise(step.noise_names[0], prefix, called)(out)
                activation = keras.layers.Activation(
                    node.operation.activation, name=step.activation_name
                )
                called.append(activation)
                out = activation(out)
            elif step.position in ("post_activation", "after"):
                flat = tree.flatten(out)
                flat = [self._noise(n, prefix, called)(t) for n, t in zip(step.noise_names, flat)]
                out = tree.pack_sequence_as(out, flat)
            for x, y in zip(node.outputs, tree.flatten(out)):
                tensors[id(x)] = y

        outputs = [tensors[id(x)] for x in graph.outputs]
        if sequential:
            input_layer = keras.layers.InputLayer(
                batch_shape=graph.inputs[0].shape, dtype=graph.inputs[0].dtype,
                name=in_layers[0].name,
            )
            new = keras.Sequential([input_layer, *called], name=model.name)
        else:
            new = keras.Model(
                tree.pack_sequence_as(keras_compat.inputs_structure(graph), new_inputs),
                tree.pack_sequence_as(keras_compat.outputs_structure(graph), outputs),
                name=model.name,
            )
        if not model.trainable:  # the setter recurses; True would unfreeze frozen layers
            new.trainable = False
        return new


def _noise_maker(noise, seed):
    """``make(name, path, weight_pairs)`` -> a fresh noise layer named ``name``."""
    if isinstance(noise, keras.layers.Layer):
        source = lambda: noise  # noqa: E731
    elif isinstance(noise, Real) and not isinstance(noise, bool):
        stddev = check_non_negative("noise", noise)
        source = lambda: GaussianNoise(stddev, seed=seed)  # noqa: E731
    elif callable(noise):
        def source():
            layer = noise()
            if not isinstance(layer, keras.layers.Layer):
                raise ValueError(
                    f"`noise` callable must return a keras Layer. Received: {layer!r} "
                    f"from noise={noise!r}"
                )
            return layer
    else:
        raise ValueError(
            "`noise` must be a noise layer (used as a template), a float (the stddev "
            f"of GaussianNoise) or a callable returning a layer. Received: noise={noise!r}"
        )

    def make(name, path, weight_pairs):
        template = source()
        config = template.get_config()
        config["name"] = name
        root = seed if seed is not None else config.get("seed")
        if "seed" in config and root is not None:
            # Distinct, reproducible streams: one child seed per inserted layer.
            config["seed"] = derive_seed(root, "inject", path)
        layer = type(template).from_config(config)
        if template.weights:  # e.g. a level changed with set_level()
            weight_pairs.append((template, layer))
        return layer

    return make


def _check_where(where):
    if isinstance(where, str):
        if where not in MODES:
            shown = ", ".join(repr(m) for m in MODES)
            raise ValueError(
                f"`where` must be one of {shown}, a list of layer names or a callable "
                f"layer -> bool (to insert after a layer named 'x', pass where=['x']). "
                f"Received: where={where!r}"
            )
        return where
    if isinstance(where, (list, tuple, set, frozenset)):
        if not where or not all(isinstance(w, str) for w in where):
            raise ValueError(
                f"`where` as a list must hold one or more layer names. Received: where={where!r}"
            )
        return frozenset(where)
    if isinstance(where, type):
        raise ValueError(
            "`where` must be a callable taking a layer, not a class; to insert after "
            f"every {where.__name__}, pass where=lambda layer: isinstance(layer, "
            f"{where.__name__}), or filter activations with layers={where.__name__}. "
            f"Received: where={where!r}"
        )
    if callable(where):
        return where
    raise ValueError(
        f"`where` must be one of {MODES}, a list of layer names or a callable layer -> "
        f"bool. Received: where={where!r}"
    )


def _plan(model, where, layers, include_output_layer):
    checked = _check_where(where)
    if layers is not None:
        if where == "input":
            raise ValueError(
                "`layers` filters layers, but where='input' inserts noise at the model "
                f"inputs. Received: layers={layers!r}, where='input'"
            )
        types = layers if isinstance(layers, tuple) else (layers,)
        if not all(isinstance(t, type) and issubclass(t, keras.layers.Layer) for t in types):
            raise ValueError(
                "`layers` must be a keras Layer class or a tuple of them. "
                f"Received: layers={layers!r}"
            )
        layers = types
    planner = _Planner(checked, layers, bool(include_output_layer))
    plan = planner.plan(model)
    if isinstance(checked, frozenset):
        missing = sorted(checked - planner.matched)
        if missing:
            raise ValueError(
                f"`where` names layers that are not in model {model.name!r}: {missing}. "
                f"Available layer names: {_names_in(_graph(model))}. Received: where={where!r}"
            )
    return plan, planner.points


def injection_points(model: keras.Model, where: str, *, layers: Sequence[str] | None = None,
                     include_output_layer: bool = False) -> list:
    """Where :func:`inject` would insert noise, without building anything.

    Arguments as for :func:`inject`. Returns a list of :class:`InjectionPoint`.
    """
    return _plan(model, where, layers, include_output_layer)[1]


def inject(model: keras.Model, where: str, noise: keras.layers.Layer | Callable[..., keras.layers.Layer], *,
           layers: Sequence[str] | None = None, include_output_layer: bool = False,
           seed: int | None = None) -> keras.Model:
    """Return a copy of ``model`` with noise layers inserted; ``model`` is left unchanged.

    Every layer is copied (rebuilt from its config, then given the original's
    weights, BatchNorm statistics included), so the two models share nothing:
    training the new one leaves the original as it was. Noise layers are
    identities at inference, so the copy predicts exactly what the original
    predicts until it is trained. If ``model`` was compiled, the copy is
    compiled with the same configuration (as ``keras.models.clone_model`` does).
    A Sequential model comes back Sequential; any other graph model comes back
    as a plain Functional ``keras.Model``.

    Args:
        model: A Functional or Sequential ``keras.Model`` (Keras applications
            included). Nested Functional/Sequential models are rewritten too.
            Subclassed models are refused with a ValueError.
        where: ``"input"``, ``"pre_activation"``, ``"post_activation"``, a list
            of layer names (noise after each), or a callable ``layer -> bool``
            (noise after each layer it accepts). See the module docstring.
        noise: A layer used as a template (each insertion gets a copy via
            ``get_config``/``from_config``, with its own seed derived from the
            template's), a float (``noisewise.GaussianNoise(stddev=noise)``) or
            a callable returning a new layer.
        layers: Optional Layer class (or tuple of classes): only insert at
            layers of these types, e.g. ``keras.layers.Conv2D``.
        include_output_layer: By default no noise is placed before or after the
            activation of a layer that produces a model output: noise after a
            softmax breaks the probabilities the loss expects, and noise on the
            logits perturbs the prediction itself rather than a hidden
            representation. Set True to allow it. Also applies to a callable
            ``where``; explicitly named layers are always honoured.
        seed: Optional root seed; each noise layer gets
            ``noisewise.random.derive_seed(seed, "inject", its_name)``.
            Defaults to the template's own ``seed``.

    Returns:
        The new model; ``new_model.injection_points_`` lists the inserted
        layers as :class:`InjectionPoint` records (not saved with the model).

    Example:
        >>> import keras, numpy as np, noisewise
        >>> inputs = keras.Input((4,))
        >>> hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
        >>> outputs = keras.layers.Dense(3, activation="softmax")(hidden)
        >>> model = keras.Model(inputs, outputs)
        >>> noisy = noisewise.inject(model, where="pre_activation", noise=0.1, seed=0)
        >>> [p.noise_layer for p in noisy.injection_points_]
        ['hidden_noise']
        >>> x = np.ones((2, 4), "float32")
        >>> bool(np.allclose(noisy.predict(x, verbose=0), model.predict(x, verbose=0)))
        True
    """
    plan, points = _plan(model, where, layers, include_output_layer)
    if not points:
        warnings.warn(f"inject: where={where!r} matched nothing in {model.name!r}; no noise added.")
    builder = _Builder(_noise_maker(noise, seed))
    new = builder.build(model, plan)
    for source, copy in builder.weight_pairs:
        copy.set_weights(source.get_weights())
    if model.compiled:
        new.compile_from_config(model.get_compile_config())
    new.injection_points_ = tuple(points)
    return new
