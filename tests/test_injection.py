"""noisewise.inject: noise inserted into existing models, weights and predictions kept.

Inference comparisons use exact equality: noise layers return their input
unchanged when ``training=False``, and every other layer is a copy running the
same float32 operations in the same order on the same backend, so the outputs
are bit for bit the same (a split ``Dense(relu)`` computes ``x @ W + b`` and
then ``relu``, exactly what the unsplit layer does). Only the compiled
``predict`` of the application model uses ``atol=1e-6``: there XLA/TF graph
compilation may fuse the two graphs differently, which can change rounding by
a few float32 ulps (~1e-7 on these values of order 1), far below 1e-6.
"""

import keras
import numpy as np
import pytest

import noisewise
from noisewise.injection import injection_points
from noisewise.random import derive_seed

RNG = np.random.default_rng(0)
X = RNG.normal(size=(8, 6)).astype("float32")


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def randomize(model, scale=1.0, seed=0):
    """Move every weight by ``scale`` times its tensor's std (1 for constant tensors).

    A stand-in for training: weights (BatchNorm statistics included) that no
    initializer produces, so a copy that re-initialized anything would show.
    """
    rng = np.random.default_rng(seed)
    weights = []
    for var, w in zip(model.weights, model.get_weights()):
        if "variance" in var.path:  # BatchNorm variances must stay positive
            weights.append(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))
        else:
            std = w.std() if w.std() > 0 else 1.0
            weights.append((w + scale * std * rng.normal(size=w.shape)).astype(w.dtype))
    model.set_weights(weights)
    return model


def mlp():
    inputs = keras.Input((6,), name="x")
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    h = keras.layers.Dense(8, name="proj")(h)
    h = keras.layers.ReLU(name="relu")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(h)
    return randomize(keras.Model(inputs, outputs, name="mlp"))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A functional model with its own weights, saved and loaded back as a user would."""
    path = tmp_path_factory.mktemp("pretrained") / "mlp.keras"
    mlp().save(path)
    return keras.saving.load_model(path)


def names(model):
    return [layer.name for layer in model.layers]


def triples(points):
    return [(p.noise_layer, p.layer, p.position) for p in points]


EXPECTED = {
    "input": (
        [("x_noise", "x", "input")],
        ["x", "x_noise", "hidden", "proj", "relu", "out"],
    ),
    "pre_activation": (
        [("hidden_noise", "hidden", "pre_activation"), ("relu_noise", "relu", "pre_activation")],
        ["x", "hidden", "hidden_noise", "hidden_activation", "proj", "relu_noise", "relu", "out"],
    ),
    "post_activation": (
        [("hidden_noise", "hidden", "post_activation"), ("relu_noise", "relu", "post_activation")],
        ["x", "hidden", "hidden_noise", "proj", "relu", "relu_noise", "out"],
    ),
    "named": (
        [("proj_noise", "proj", "after")],
        ["x", "hidden", "proj", "proj_noise", "relu", "out"],
    ),
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_points_and_predictions(pretrained, mode):
    where = ["proj"] if mode == "named" else mode
    noisy = noisewise.inject(pretrained, where=where, noise=0.5, seed=1)
    points, layer_names = EXPECTED[mode]
    assert triples(noisy.injection_points_) == points
    assert names(noisy) == layer_names
    assert noisy.injection_points_ == tuple(injection_points(pretrained, where))
    for p in noisy.injection_points_:
        assert isinstance(noisy.get_layer(p.noise_layer), noisewise.GaussianNoise)

    clean = to_numpy(pretrained(X))
    np.testing.assert_array_equal(to_numpy(noisy(X)), clean)
    # stddev 0.5 noise on every example: the outputs can only match if no noise was added.
    assert not np.allclose(to_numpy(noisy(X, training=True)), clean, atol=1e-4)


def test_dense_relu_is_split_into_linear_plus_activation(pretrained):
    noisy = noisewise.inject(pretrained, where="pre_activation", noise=0.5)
    original, linear = pretrained.get_layer("hidden"), noisy.get_layer("hidden")
    assert linear.activation is keras.activations.linear
    assert isinstance(noisy.get_layer("hidden_activation"), keras.layers.Activation)
    for a, b in zip(original.get_weights(), linear.get_weights()):
        np.testing.assert_array_equal(a, b)

    kernel, bias = original.get_weights()
    np.testing.assert_allclose(to_numpy(linear(X)), X @ kernel + bias, rtol=1e-5, atol=1e-5)
    relu = noisy.get_layer("hidden_activation")
    np.testing.assert_array_equal(to_numpy(relu(linear(X))), to_numpy(original(X)))


def test_original_model_unchanged_by_injection_and_training(pretrained):
    before_weights = [w.copy() for w in pretrained.get_weights()]
    before_config = pretrained.get_config()
    before_pred = to_numpy(pretrained(X))
    noisy = noisewise.inject(pretrained, where="post_activation", noise=0.3, seed=0)
    noisy.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy")
    noisy.fit(X, np.eye(3)[np.arange(8) % 3], epochs=1, batch_size=8, verbose=0)

    # Copies, not shared layers: training the new model moved its weights only.
    assert not {id(v) for v in pretrained.weights} & {id(v) for v in noisy.weights}
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(before_weights, noisy.get_layer("hidden").get_weights())
    )
    for a, b in zip(before_weights, pretrained.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert pretrained.get_config() == before_config
    assert names(pretrained) == ["x", "hidden", "proj", "relu", "out"]
    np.testing.assert_array_equal(to_numpy(pretrained(X)), before_pred)


def test_sequential_stays_sequential():
    model = randomize(keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="tanh", name="d1"),
         keras.layers.Dense(2, name="d2")], name="seq",
    ))
    noisy = noisewise.inject(model, where="pre_activation", noise=0.5, seed=3)
    assert isinstance(noisy, keras.Sequential)
    assert names(noisy) == ["d1", "d1_noise", "d1_activation", "d2"]
    np.testing.assert_array_equal(to_numpy(noisy(X)), to_numpy(model(X)))
    assert not np.allclose(to_numpy(noisy(X, training=True)), to_numpy(model(X)), atol=1e-4)

    on_input = noisewise.inject(model, where="input", noise=0.5)
    assert isinstance(on_input.layers[0], noisewise.GaussianNoise)


def two_input_model():
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    shared = keras.layers.Dense(4, activation="relu", name="shared")
    joined = keras.layers.Concatenate(name="cat")([shared(a), shared(b)])
    head = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(5, activation="tanh", name="inner"),
         keras.layers.Dense(2, name="logits")], name="head",
    )
    aux = keras.layers.Dense(1, activation="sigmoid", name="aux")(joined)
    return randomize(keras.Model([a, b], [head(joined), aux], name="two"))


def test_two_inputs_two_outputs_shared_layer_and_nested_model():
    model = two_input_model()
    xs = [RNG.normal(size=(4, 3)).astype("float32") for _ in range(2)]
    expected = {
        "input": [("a_noise", "a", "input", 0), ("b_noise", "b", "input", 0)],
        # The shared layer is split once and gets one noise layer per call;
        # "aux" produces an output, so it is left alone by default.
        "pre_activation": [
            ("shared_noise", "shared", "pre_activation", 0),
            ("shared_noise_1", "shared", "pre_activation", 1),
            ("head/inner_noise", "head/inner", "pre_activation", 0),
        ],
    }
    for where, points in expected.items():
        noisy = noisewise.inject(model, where=where, noise=0.5, seed=2)
        assert [(p.noise_layer, p.layer, p.position, p.node_index)
                for p in noisy.injection_points_] == points
        clean = [to_numpy(y) for y in model(xs)]
        for got, want in zip(noisy(xs), clean):
            np.testing.assert_array_equal(to_numpy(got), want)
        noisy_out = [to_numpy(y) for y in noisy(xs, training=True)]
        assert not np.allclose(noisy_out[0], clean[0], atol=1e-4)

    noisy = noisewise.inject(model, where="pre_activation", noise=0.5)
    assert isinstance(noisy.get_layer("head"), keras.Sequential)
    assert names(noisy.get_layer("head")) == ["inner", "inner_noise", "inner_activation", "logits"]
    assert len([x for x in noisy.layers if x.name == "shared"]) == 1  # still shared


def test_named_layers_inside_nested_model_and_unknown_names():
    model = two_input_model()
    noisy = noisewise.inject(model, where=["cat", "inner"], noise=0.1)
    assert triples(noisy.injection_points_) == [
        ("cat_noise", "cat", "after"), ("head/inner_noise", "head/inner", "after"),
    ]
    with pytest.raises(ValueError, match=r"not in model 'two': \['nope'\].*Available.*'shared'"):
        noisewise.inject(model, where=["shared", "nope"], noise=0.1)


def test_include_output_layer_and_layer_type_filter(pretrained):
    points = injection_points(pretrained, "pre_activation", include_output_layer=True)
    assert [p.layer for p in points] == ["hidden", "relu", "out"]
    points = injection_points(pretrained, "post_activation", layers=keras.layers.ReLU)
    assert [p.layer for p in points] == ["relu"]
    with pytest.raises(ValueError, match="`layers`.*where='input'"):
        injection_points(pretrained, "input", layers=keras.layers.Dense)
    with pytest.raises(ValueError, match="`layers` must be a keras Layer class"):
        injection_points(pretrained, "pre_activation", layers="Dense")
    selected = injection_points(pretrained, lambda layer: isinstance(layer, keras.layers.Dense))
    assert [p.layer for p in selected] == ["hidden", "proj"]  # "out" is the output layer


def test_noise_template_is_cloned_with_distinct_derived_seeds(pretrained):
    template = noisewise.UniformNoise(0.2, clip=(-5.0, 5.0), seed=7)
    template.set_level(0.4)
    noisy = noisewise.inject(pretrained, where="post_activation", noise=template)
    inserted = [noisy.get_layer(p.noise_layer) for p in noisy.injection_points_]
    assert all(type(layer) is noisewise.UniformNoise for layer in inserted)
    assert all(layer is not template and layer.clip == (-5.0, 5.0) for layer in inserted)
    assert [layer.seed for layer in inserted] == [
        derive_seed(7, "inject", name) for name in ("hidden_noise", "relu_noise")
    ]
    assert [layer.get_level() for layer in inserted] == pytest.approx([0.4, 0.4])

    floats = noisewise.inject(pretrained, where="input", noise=0.25, seed=5)
    layer = floats.get_layer("x_noise")
    assert isinstance(layer, noisewise.GaussianNoise) and layer.get_level() == 0.25
    assert layer.seed == derive_seed(5, "inject", "x_noise")

    made = noisewise.inject(pretrained, where="post_activation",
                            noise=lambda: keras.layers.GaussianDropout(0.3))
    assert [type(made.get_layer(p.noise_layer)).__name__ for p in made.injection_points_] == [
        "GaussianDropout", "GaussianDropout",
    ]


def test_injected_model_compiles_fits_saves_and_loads(pretrained, tmp_path):
    pretrained.compile(optimizer="adam", loss="categorical_crossentropy")
    noisy = noisewise.inject(pretrained, where="pre_activation", noise=0.2, seed=0)
    assert noisy.compiled  # compile configuration carried over, as clone_model does
    noisy.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    history = noisy.fit(X, np.eye(3)[np.arange(8) % 3], epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])

    path = tmp_path / "noisy.keras"
    noisy.save(path)
    loaded = keras.saving.load_model(path)
    assert names(loaded) == names(noisy)
    assert isinstance(loaded.get_layer("relu_noise"), noisewise.GaussianNoise)
    np.testing.assert_array_equal(to_numpy(loaded(X)), to_numpy(noisy(X)))


def test_subclassed_and_unbuilt_models_are_refused():
    class Custom(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="subclassed.*functional API.*Sequential"):
        noisewise.inject(Custom(), where="input", noise=0.1)
    with pytest.raises(ValueError, match="no input shape yet"):
        noisewise.inject(keras.Sequential([keras.layers.Dense(2)]), where="input", noise=0.1)
    with pytest.raises(ValueError, match="`model` must be"):
        noisewise.inject(keras.layers.Dense(2), where="input", noise=0.1)


@pytest.mark.parametrize("where", ["pre", "inputs", 3, [], [1], keras.layers.Dense])
def test_bad_where_names_the_parameter_and_value(pretrained, where):
    with pytest.raises(ValueError, match="`where`") as info:
        noisewise.inject(pretrained, where=where, noise=0.1)
    assert f"Received: where={where!r}" in str(info.value)
    if isinstance(where, str):
        assert "'input', 'pre_activation', 'post_activation'" in str(info.value)


def test_bad_noise_and_empty_match(pretrained):
    with pytest.raises(ValueError, match=r"`noise` must be.*Received: noise='gauss'"):
        noisewise.inject(pretrained, where="input", noise="gauss")
    with pytest.raises(ValueError, match=r"`noise` must be in \[0.0, inf\]"):
        noisewise.inject(pretrained, where="input", noise=-1.0)
    with pytest.raises(ValueError, match="must return a keras Layer"):
        noisewise.inject(pretrained, where="input", noise=lambda: 0.1)
    with pytest.warns(UserWarning, match="matched nothing"):
        noisy = noisewise.inject(pretrained, where=lambda layer: False, noise=0.1)
    assert noisy.injection_points_ == ()


def test_integer_inputs_get_no_input_noise():
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(10, 4, name="embed")(tokens)
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(h))
    with pytest.warns(UserWarning) as record:
        noisy = noisewise.inject(model, where="input", noise=0.1)
    messages = [str(w.message) for w in record]
    assert any("'tokens' has dtype int32" in m for m in messages)
    assert any("matched nothing" in m for m in messages)
    assert noisy.injection_points_ == ()
    assert noisy.inputs[0].dtype == "int32"  # the Embedding still gets integer ids


@pytest.mark.slow
def test_keras_application_pre_activation_keeps_predictions():
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)
    randomize(model, scale=0.2)
    noisy = noisewise.inject(model, where="pre_activation", noise=0.1, seed=0)
    relus = [layer.name for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert [p.layer for p in noisy.injection_points_] == relus and len(relus) == 35
    layer_names = names(noisy)
    for relu in relus:  # each ReLU comes right after its own noise layer
        assert layer_names[layer_names.index(relu) - 1] == f"{relu}_noise"
    assert "predictions_noise" not in layer_names  # softmax output left alone

    # Compare every ReLU output, not only the class probabilities: deep in an
    # untrained network the features stop depending on the image, while the
    # early ones still do, so each insertion point is checked on a live signal.
    def taps(m):
        return keras.Model(m.input, [m.get_layer(n).output for n in relus] + [m.output])

    images = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    want = taps(model).predict(images, verbose=0)
    got = taps(noisy).predict(images, verbose=0)
    assert want[0].std(axis=0).max() > 0.1  # the first features differ between images
    for relu, a, b in zip(relus + ["predictions"], got, want):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=relu)
