"""A study on the JAX or PyTorch backend never imports TensorFlow, even where it is installed.

TensorFlow takes seconds to import and prints oneDNN log lines; nothing a
JAX or PyTorch study does needs it. Each backend runs in its own process
(Keras fixes the backend at import).
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

STUDY = """
import json, os, sys, tempfile
from noisewise.study import Study, load_spec

folder = tempfile.mkdtemp()
with open(os.path.join(folder, "user_model.py"), "w") as f:
    f.write(
        "import keras\\n"
        "def build(input_shape, num_classes):\\n"
        "    inputs = keras.Input(input_shape)\\n"
        "    x = keras.layers.Dense(4, activation='relu')(inputs)\\n"
        "    return keras.Model(inputs, keras.layers.Dense(1, activation='sigmoid')(x))\\n")

def spec(model):
    return {"study": {"name": "imports", "seeds": 2}, "data": {"name": "circles"},
            "model": model, "train": {"epochs": 2},
            "arms": [{"name": "baseline"},
                     {"name": "input", "noise": [{"type": "gaussian", "where": "input",
                                                  "stddev": 0.1}]}]}

seen = {}
executors = sys.argv[1].split(",")
for executor in executors:
    for label, model in (("mlp", {"name": "mlp", "hidden": [4]}),
                         ("builder", {"builder": "user_model:build"})):
        store = os.path.join(folder, f"{executor}-{label}.db")
        out = Study(load_spec(spec(model), base_dir=folder)).run(store=store, quiet=True,
                                                                 executor=executor)
        seen[f"{executor} {label}"] = [out.ran, out.failed, "tensorflow" in sys.modules]
print(json.dumps(seen))
"""


def _run_study(backend, executors):
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": os.pathsep.join(sys.path),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", STUDY, ",".join(executors)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


needs_tf = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                              reason="TensorFlow is not installed: nothing could import it")


@needs_tf
@pytest.mark.slow
def test_a_jax_study_never_imports_tensorflow():
    seen, stderr = _run_study("jax", ["vmap", "fit"])
    assert set(seen) == {"vmap mlp", "vmap builder", "fit mlp", "fit builder"}
    for label, (ran, failed, tensorflow) in seen.items():
        assert (ran, failed) == (4, 0), label
        assert not tensorflow, f"{label}: tensorflow was imported"
    assert "oneDNN" not in stderr


@needs_tf
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_a_torch_study_never_imports_tensorflow():
    seen, stderr = _run_study("torch", ["fit"])
    assert set(seen) == {"fit mlp", "fit builder"}
    for label, (ran, failed, tensorflow) in seen.items():
        assert (ran, failed) == (4, 0), label
        assert not tensorflow, f"{label}: tensorflow was imported"
    assert "oneDNN" not in stderr
