"""Python-object data sources train the same models to the same metrics as the array path.

Every source here feeds exactly the batches the array path feeds in that run
(the order of :mod:`noisewise.study.data_order`), so the per-run ``fit``
executor must reproduce the array path's curves: a generator function taking
``epoch`` and ``seed`` does so for every replica; a PyDataset (ordered by its
``on_epoch_end`` count), a tf.data and a grain dataset (the whole training
sequence, cut by ``steps_per_epoch``) for replica 0, whose seed they are
built from. The test source is the test split in one batch, as the array
path validates (one batch up to 1,024 rows).
"""

import json

import keras
import numpy as np
import pytest

from noisewise.random import replica_seed
from noisewise.study import Study, load_spec
from noisewise.study.config import SpecError
from noisewise.study.data_order import epoch_permutation
from noisewise.study.execute import FitExecutor, unsupported_reason

EPOCHS, BATCH, SEED = 3, 32, 5


def build(input_shape, num_classes, units=16):
    # Named layers: an injected noise layer's seed derives from the name of the
    # layer it follows, and Keras numbers unnamed ones per process.
    inputs = keras.Input(input_shape, name="x")
    hidden = keras.layers.Dense(units, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax",
                                                  name="out")(hidden))


@pytest.fixture(scope="module")
def arrays():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y = (bunch.data / 16.0).astype("float32"), bunch.target.astype("int32")
    return x[:200], y[:200], x[1500:1600], y[1500:1600]


def spec(data, seeds=1, **train):
    return {"study": {"name": "sources", "seeds": seeds, "seed": SEED}, "data": data,
            "model": {"builder": build}, "train": {"epochs": EPOCHS, "batch_size": BATCH, **train},
            "arms": [{"name": "baseline"},
                     {"name": "input", "noise": [{"type": "gaussian", "where": "input",
                                                  "stddev": 0.2}]}]}


@pytest.fixture(scope="module")
def executor():
    return FitExecutor()


def histories(study, executor):
    out = {}
    for plan in study.plans():
        result = executor.run_one(plan)
        assert result.status == "done", result.error
        out[plan.key] = result.history
    return out


@pytest.fixture(scope="module")
def reference(arrays, executor):
    """The array path's curves, 2 arms x 2 replicas."""
    return histories(Study(spec({"arrays": arrays}, seeds=2)), executor)


def assert_same(got, reference):
    assert got, "nothing trained"
    for key, history in got.items():
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(history[name], reference[key][name], rtol=1e-6,
                                       err_msg=f"{key} {name}")


def ordered_batches(x, y, seed, epoch):
    order = epoch_permutation(seed, epoch, len(x))
    return [(x[order[i:i + BATCH]], y[order[i:i + BATCH]]) for i in range(0, len(x), BATCH)]


def test_array_tuple_dict_and_npz_file_are_one_dataset(arrays, tmp_path):
    np.savez(tmp_path / "d.npz", **dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays)))
    from_file = Study(load_spec(spec({"path": "d.npz"}), base_dir=tmp_path))
    as_tuple = Study(spec({"arrays": arrays}))
    keys = ("x_train", "y_train", "x_test", "y_test")
    as_dict = Study(spec({"arrays": dict(zip(keys, arrays))}))
    assert as_tuple.fingerprint()["data"] == from_file.fingerprint()["data"]
    assert as_dict.fingerprint()["data"] == from_file.fingerprint()["data"]
    assert as_tuple.spec.hash == as_dict.spec.hash  # same contents, same description
    changed = [a.copy() for a in arrays]
    changed[0][3, 5] += 0.5
    assert Study(spec({"arrays": changed})).spec.hash != as_tuple.spec.hash


def test_arrays_train_like_the_same_data_from_a_loader_callable(arrays, reference, executor):
    from_loader = Study(spec({"loader": lambda: arrays}, seeds=2))
    assert_same(histories(from_loader, executor), reference)
    assert from_loader.spec.to_dict()["data"]["loader"].startswith("<callable ")


def test_x_and_y_split_as_a_csv_without_split_column(arrays):
    from noisewise.study.datasets import _split

    x, y = np.concatenate(arrays[0::2]), np.concatenate(arrays[1::2])
    data = Study(spec({"x": x, "y": y, "test_size": 0.3})).data
    x_train, x_test, y_train, y_test = _split(x, y, 0.3, 0)
    np.testing.assert_array_equal(data.x_train, x_train)
    np.testing.assert_array_equal(data.y_test, y_test)


def test_generator_function_with_epoch_and_seed_matches_every_replica(arrays, reference, executor):
    x, y, xt, yt = arrays
    calls = []

    def train(epoch, seed):
        calls.append((epoch, seed))
        yield from ordered_batches(x, y, seed, epoch)

    study = Study(spec({"train": train, "test": lambda: iter([(xt, yt)]), "id": "digits"}, seeds=2))
    assert study.data.streaming and study.data.train_source.steps == 7  # counted: 200 / 32
    assert any("counted before training" in n for n in study.data.notes)
    assert_same(histories(study, executor), reference)
    assert (2, replica_seed(SEED, 1)) in calls


class EpochOrdered(keras.utils.PyDataset):
    def __init__(self, x, y, seed):
        super().__init__()
        self.x, self.y, self.seed, self.epoch = x, y, seed, 0

    def __len__(self):
        return -(-len(self.x) // BATCH)

    def __getitem__(self, i):
        return ordered_batches(self.x, self.y, self.seed, self.epoch)[i]

    def on_epoch_end(self):
        self.epoch += 1


class Whole(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.x, self.y


def replica0(histories_):
    return {key: h for key, h in histories_.items() if key[1] == 0}


def test_keras_pydataset(arrays, reference, executor):
    x, y, xt, yt = arrays
    seed = replica_seed(SEED, 0)
    for replica_arm in ("baseline", "input"):  # a PyDataset's epoch count is its state
        data = {"train": EpochOrdered(x, y, seed), "test": Whole(xt, yt), "id": "digits"}
        study = Study(spec(data))
        plan = next(p for p in study.plans() if p.arm.name == replica_arm)
        result = executor.run_one(plan)
        assert result.status == "done", result.error
        assert_same({plan.key: result.history}, reference)


def whole_sequence(x, y, seed):
    """Every epoch's batches of replica ``seed``, one after another."""
    return [b for epoch in range(EPOCHS) for b in ordered_batches(x, y, seed, epoch)]


def test_tf_data_dataset(arrays, reference, executor):
    tf = pytest.importorskip("tensorflow")
    x, y, xt, yt = arrays
    parts = whole_sequence(x, y, replica_seed(SEED, 0))
    train = tf.data.Dataset.from_tensor_slices((x[:0], y[:0])).batch(BATCH)
    for bx, by in parts:  # batches of unequal size: one dataset each, concatenated
        train = train.concatenate(tf.data.Dataset.from_tensors((bx, by)))
    test = tf.data.Dataset.from_tensor_slices((xt, yt)).batch(len(xt))
    study = Study(spec({"train": train, "test": test, "id": "digits", "steps_per_epoch": 7}))
    assert study.spec.to_dict()["data"]["train"] == {"source": "tf.data.Dataset"}
    assert_same(replica0(histories(study, executor)), reference)


def test_grain_map_dataset(arrays, reference, executor):
    grain = pytest.importorskip("grain")
    x, y, xt, yt = arrays
    parts = whole_sequence(x, y, replica_seed(SEED, 0))
    train = grain.MapDataset.range(len(parts)).map(lambda i: parts[i])
    test = grain.MapDataset.source([(xt, yt)])
    study = Study(spec({"train": train, "test": test, "id": "digits", "steps_per_epoch": 7}))
    assert study.spec.to_dict()["data"]["train"] == {"source": "grain.MapDataset"}
    assert_same(replica0(histories(study, executor)), reference)


def test_streams_run_one_fit_each_and_say_why(arrays, tmp_path):
    x, y, xt, yt = arrays
    study = Study(spec({"train": lambda: iter([(x, y)]), "test": lambda: iter([(xt, yt)]),
                        "id": "digits"}, epochs=1))
    reason = unsupported_reason(study.plans(replicas=1))
    assert "streaming source" in reason and "\n" not in reason
    lines = []
    out = study.run(store=tmp_path / "s.db", quiet=True, log=lines.append)
    assert (out.ran, out.failed) == (2, 0)
    assert any(line.startswith("one fit per run: ") and "streaming" in line for line in lines)
    with pytest.raises(ValueError, match="streaming source"):
        study.run(store=tmp_path / "t.db", quiet=True, executor="vmap")


def test_the_stored_spec_describes_every_object(arrays):
    study = Study(spec({"arrays": arrays}))
    stored = json.loads(json.dumps(study.spec.to_dict()))
    assert stored["model"]["builder"].startswith(f"<callable {__name__}.build sha256:")
    assert stored["data"]["arrays"]["shapes"] == [[200, 64], [200], [100, 64], [100]]
    again = load_spec(study.spec, seeds=3)  # an override re-validates the live objects
    assert again.model["builder"] is build and again.data["arrays"] is arrays
    assert again.to_dict()["model"] == stored["model"]


def make_builder(units):
    def built(input_shape, num_classes):
        return build(input_shape, num_classes, units)
    return built


WIDTH = 16


def global_builder(input_shape, num_classes):
    return build(input_shape, num_classes, WIDTH)


def test_a_callable_description_covers_its_closure_and_the_globals_it_reads():
    from noisewise.study.sources import describe_callable

    assert describe_callable(make_builder(8)) == describe_callable(make_builder(8))
    assert describe_callable(make_builder(8)) != describe_callable(make_builder(9))
    before = describe_callable(global_builder)
    global WIDTH
    WIDTH = 17
    try:
        assert describe_callable(global_builder) != before
    finally:
        WIDTH = 16


@pytest.mark.parametrize("data, message", [
    ({"train": "gen", "test": "gen", "id": "d"}, "data.train: `train` must be a keras.utils"),
    ({"train": (b for b in []), "test": lambda: iter([]), "id": "d"}, "can be iterated once"),
    ({"train": lambda: iter([]), "test": lambda: iter([])}, "data.id: required"),
    ({"arrays": (1, 2, 3)}, "data.arrays: must be (x_train"),
    ({"x": np.zeros((3, 2))}, "data.y: required"),
    ({"loader": lambda: None, "scale": np.ones(3)}, "data.scale: must be a TOML value"),
])
def test_python_data_mistakes_are_spec_errors_with_their_key(data, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        load_spec(spec(data))


def test_a_callable_without_source_is_refused():
    bad = spec({"name": "circles"})
    bad["model"] = {"builder": eval("lambda input_shape, num_classes: None")}  # noqa: S307
    with pytest.raises(SpecError, match="model.builder: cannot read the source"):
        load_spec(bad)


def test_what_needs_arrays_is_refused_for_streams():
    data = {"train": lambda: iter([]), "test": lambda: iter([]), "id": "d", "standardize": True}
    raw = spec(data, validation_split=0.2)
    raw["robustness"] = {"noise": [{"type": "gaussian", "levels": [0.1]}]}
    with pytest.raises(SpecError) as caught:
        load_spec(raw)
    assert [e.split(":")[0] for e in caught.value.errors] == [
        "data.standardize", "train.validation_split", "robustness"]


def test_bad_batches_fail_before_or_during_training(arrays, executor):
    x, y, xt, yt = arrays
    test = lambda: iter([(xt, yt)])  # noqa: E731
    with pytest.raises(SpecError, match="every element must be a batch"):
        _ = Study(spec({"train": lambda: iter(zip(x, y)), "test": test, "id": "d"})).data
    with pytest.raises(SpecError, match="not below data.num_classes = 5"):
        _ = Study(spec({"train": lambda: iter([(x, y)]), "test": test, "id": "d",
                        "num_classes": 5})).data
    passes = []

    def shrinking(epoch):
        passes.append(epoch)
        yield from ordered_batches(x, y, 0, 0)[: 7 - len(passes) // 3]

    plan = Study(spec({"train": shrinking, "test": test, "id": "d"})).plans()[0]
    result = executor.run_one(plan)
    assert result.status == "failed" and "held 6 batches, the first pass 7" in result.error


@pytest.fixture(scope="module")
def saved(arrays, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrained")
    keras.utils.set_random_seed(1)
    model = build((64,), 10)
    model.save(folder / "m.keras")
    return folder, model


def pretrained(folder, **model):
    raw = spec({"arrays": None})
    raw["model"] = {"path": "m.keras", **model}
    return raw


def built(study, arm="input"):
    from noisewise.study.models import build_model

    s = study.spec
    return build_model(s.model, s.arm(arm).noise, study.data, 7, arm, base_dir=s.base_dir)


def weights(model, name):
    return [np.asarray(w) for w in model.get_layer(name).get_weights()]


def test_a_saved_model_keeps_its_weights_and_gets_the_arms_noise(arrays, saved):
    folder, original = saved
    raw = pretrained(folder)
    raw["data"] = {"arrays": arrays}
    study = Study(load_spec(raw, base_dir=folder))
    assert study.spec.model == {"path": "m.keras", "weights": "keep", "trainable": "all",
                                "reinit": []}
    noisy = built(study)
    assert any("noise" in layer.name for layer in noisy.layers)
    np.testing.assert_allclose(noisy.predict(arrays[2], verbose=0),
                               original.predict(arrays[2], verbose=0), rtol=1e-5)
    assert "code" in study.fingerprint()


def test_reinit_draws_from_the_replica_seed_and_trainable_freezes(arrays, saved, executor):
    folder, original = saved
    raw = pretrained(folder, reinit=["out"], trainable=["out"])
    raw["data"] = {"arrays": arrays}
    study = Study(load_spec(raw, base_dir=folder))
    a, b = built(study), built(study)
    for w, w0 in zip(weights(a, "out"), weights(b, "out")):
        np.testing.assert_array_equal(w, w0)  # same seed, same new head
    assert not np.allclose(weights(a, "out")[0], weights(original, "out")[0])
    np.testing.assert_array_equal(weights(a, "hidden")[0], weights(original, "hidden")[0])
    plan = study.plans()[0]
    model = executor.model_for(plan)
    executor.run_one(plan)
    np.testing.assert_array_equal(weights(model, "hidden")[0], weights(original, "hidden")[0])
    assert not np.allclose(weights(model, "out")[0], weights(a, "out")[0])


def test_pretrained_mistakes_are_refused_before_training(arrays, saved):
    folder, _ = saved
    with pytest.raises(SpecError, match="model.weights: must be 'keep'"):
        load_spec(pretrained(folder, weights="fresh"))
    raw = pretrained(folder, trainable=["nope"])
    raw["data"] = {"arrays": arrays}
    with pytest.raises(SpecError, match=r"model.trainable: no layer named \['nope'\]"):
        Study(load_spec(raw, base_dir=folder)).check()


def test_unnamed_builder_noise_does_not_depend_on_models_built_before():
    import keras

    from noisewise.study import datasets, models

    def build(input_shape, num_classes):
        inputs = keras.Input(shape=input_shape)
        x = keras.layers.Dense(16, activation="relu")(inputs)  # automatic names
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))

    data = datasets.load_dataset({"name": "circles"})
    noise = ({"type": "gaussian", "where": "pre_activation", "stddev": 0.5},)
    x = data.x_train[:8]

    def outputs():
        net = models.build_model({"builder": build}, noise, data, seed=3, arm="a")
        return [layer.name for layer in net.layers], keras.ops.convert_to_numpy(net(x, training=True))

    names, first = outputs()
    keras.layers.Dense(4)  # the process goes on naming layers
    again_names, again = outputs()
    assert names == again_names
    np.testing.assert_array_equal(first, again)
