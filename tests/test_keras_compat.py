"""The Keras compatibility module: the tested versions, its functions, and that nothing else touches Keras internals."""

import json
import os
import re
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from noisewise._core import keras_compat

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "noisewise"
COMPAT = SRC / "_core" / "keras_compat.py"


# -- versions -------------------------------------------------------------------

@pytest.mark.parametrize("version", ["3.10.0", "3.12.1", "3.15.1", "3.15.0rc1"])
def test_tested_versions_import_silently(version):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        keras_compat.check_version(version)


@pytest.mark.parametrize("version", ["3.9.2", "3.0.0", "2.15.0"])
def test_an_older_keras_is_refused_with_what_to_install(version):
    with pytest.raises(ImportError) as info:
        keras_compat.check_version(version)
    message = str(info.value)
    assert f"Received: keras.__version__={version!r}" in message
    assert "pip install 'keras>=3.10,<3.16'" in message


def test_a_newer_keras_warns_and_is_tried():
    with pytest.warns(keras_compat.UntestedKerasWarning, match=r"keras>=3\.10,<3\.16.*3\.16\.0"):
        keras_compat.check_version("3.16.0")


def test_an_unreadable_version_is_refused():
    with pytest.raises(ImportError, match=r"Received: keras.__version__='nightly'"):
        keras_compat.check_version("nightly")


def test_the_installed_keras_is_in_the_tested_range():
    low, high = keras_compat.TESTED_KERAS
    found = tuple(int(p) for p in keras.__version__.split(".")[:2])
    assert low <= found < high


def test_pyproject_declares_the_tested_range():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (line,) = [d for d in deps if re.match(r"keras\b", d)]
    (low_major, low_minor), (high_major, high_minor) = keras_compat.TESTED_KERAS
    assert line.replace(" ", "") == f"keras>={low_major}.{low_minor},<{high_major}.{high_minor}"


def _python(code, args=()):
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend(),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def test_importing_noisewise_with_an_old_keras_says_so():
    # The real import path: Keras reports an old version before noisewise loads.
    done = _python("import keras\nkeras.__version__ = '3.8.0'\nimport noisewise")
    assert done.returncode != 0
    assert "ImportError: noisewise needs Keras 3.10 or newer" in done.stderr
    assert "keras.__version__='3.8.0'" in done.stderr


# -- seeds ------------------------------------------------------------------------

SEEDED = """
import json, random, sys
import keras, numpy as np
from noisewise._core import keras_compat

seed = keras_compat.set_random_seed if sys.argv[1] == "ours" else keras.utils.set_random_seed
seed(7)
dense = keras.layers.Dense(3)  # an unseeded initializer: the global seed
dense.build((None, 2))
print(json.dumps({
    "python": random.random(), "numpy": float(np.random.rand()),
    "keras": keras.ops.convert_to_numpy(keras.random.normal((3,))).tolist(),
    "dense": keras.ops.convert_to_numpy(dense.kernel).ravel().tolist(),
    "tensorflow": "tensorflow" in sys.modules}))
"""


def _seeded(which):
    done = _python(SEEDED, args=[which])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_set_random_seed_seeds_like_keras_without_importing_tensorflow():
    # Each in a fresh process: the same draws from the same seed.
    ours, theirs = _seeded("ours"), _seeded("keras")
    assert ours.pop("tensorflow") is (keras.backend.backend() == "tensorflow")
    theirs.pop("tensorflow")
    assert ours == theirs


SERIALIZED = """
import sys
import keras
import noisewise

layer = noisewise.GaussianNoise(0.1, seed=3)
clone = type(layer).from_config(layer.get_config())
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2), layer])
again = keras.models.clone_model(model)
print(clone.get_config() == layer.get_config(), len(again.layers), "tensorflow" in sys.modules)
"""


def test_layer_configs_and_clones_do_not_import_tensorflow():
    done = _python(SERIALIZED)
    assert done.returncode == 0, done.stderr
    same, layers, tensorflow = done.stdout.split()
    assert (same, layers) == ("True", "2")
    assert tensorflow == str(keras.backend.backend() == "tensorflow")


def test_set_random_seed_refuses_a_non_integer():
    with pytest.raises(ValueError, match=r"`seed` must be an int. Received: seed=1.5"):
        keras_compat.set_random_seed(1.5)


# -- graph and layer helpers ------------------------------------------------------

def _functional():
    inputs = keras.Input((3,), name="x")
    shared = keras.layers.Dense(3, name="shared")
    outputs = keras.layers.Dense(1, name="out")(shared(shared(inputs)))
    return keras.Model(inputs, outputs, name="graph"), shared


def test_graph_helpers_read_a_functional_model():
    model, shared = _functional()
    assert keras_compat.is_plain_functional(model) and keras_compat.is_graph_model(model)
    assert keras_compat.producing_operation(model.inputs[0]).name == "x"
    assert keras_compat.producing_operation(keras.ops.ones((2,))) is None
    by_depth = keras_compat.nodes_by_depth(model)
    nodes = [n for d in sorted(by_depth, reverse=True) for n in by_depth[d]
             if n.operation is shared]
    assert [keras_compat.call_index(n) for n in nodes] == [0, 1]
    assert keras_compat.inputs_structure(model) is not None
    assert keras_compat.outputs_structure(model) is not None


def test_a_subclass_with_its_own_call_is_not_a_plain_graph():
    class Doubled(keras.Model):
        def call(self, x):
            return 2 * x

    assert not keras_compat.is_plain_functional(Doubled())
    assert not keras_compat.is_graph_model(keras.layers.Dense(2))
    assert keras_compat.is_graph_model(keras.Sequential([keras.layers.Dense(2)]))


def test_a_sequential_has_a_graph_once_its_input_is_known():
    assert keras_compat.sequential_graph(keras.Sequential([keras.layers.Dense(2)])) is None
    built = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert keras_compat.is_plain_functional(keras_compat.sequential_graph(built))


def test_flatten_layers_reaches_nested_models():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, name="deep")],
                             name="inner")
    inputs = keras.Input((3,))
    outer = keras.Model(inputs, inner(inputs), name="outer")
    names = [layer.name for layer in keras_compat.flatten_layers(outer)]
    assert names[0] == "outer" and "inner" in names and "deep" in names
    assert "outer" not in [layer.name for layer in
                           keras_compat.flatten_layers(outer, include_self=False)]
    assert [layer.name for layer in outer.layers if layer.name == "deep"] == []  # why it exists


def test_symbolic_build_creates_metric_and_optimizer_variables():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    keras_compat.symbolic_build(model, np.zeros((1, 2), "float32"), np.zeros((1, 1), "float32"))
    assert model.optimizer.built and model.metrics_variables


# -- nothing else touches Keras internals -------------------------------------------

# Private Keras attributes the package has used; any of them outside the
# compatibility module is a new dependency on Keras internals.
PRIVATE = ("_nodes_by_depth", "_symbolic_build", "_flatten_layers", "_build_at_init",
           "_track_variable", "_tracker", "_inbound_nodes", "_outbound_nodes",
           "_keras_history", "_inputs_struct", "_outputs_struct", "_functional",
           "_get_seed_generator", "_trainable_variables", "_variables", "_layers",
           "_dtype_policy", "_default_save_signature")
PATTERN = re.compile(r"keras\.src\b|\.(" + "|".join(PRIVATE) + r")\b")


def test_only_the_compatibility_module_touches_keras_internals():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path == COMPAT:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if PATTERN.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == [], "\n".join(found)


def test_the_pattern_finds_what_it_looks_for():
    assert PATTERN.search("from keras.src.models.functional import Functional")
    assert PATTERN.search("for layer in model._flatten_layers():")
    assert PATTERN.search("x._keras_history.operation")
    assert not PATTERN.search("keras_compat.flatten_layers(model)")
    assert not PATTERN.search("self._level = self.add_weight(...)")


def test_fresh_layer_names_do_not_depend_on_the_history_of_the_process():
    import keras

    from noisewise._core.keras_compat import fresh_layer_names

    def names():
        with fresh_layer_names():
            return [keras.layers.Dense(2).name, keras.layers.Dense(2).name]

    before = keras.layers.Dense(2).name
    first = names()
    keras.layers.Dense(3)  # the process goes on creating layers
    assert names() == first == ["dense", "dense_1"]
    after = keras.layers.Dense(2).name  # the process' own numbering continues
    count = int(before.rsplit("_", 1)[1]) if "_" in before else 0
    assert after == f"dense_{count + 2}"
