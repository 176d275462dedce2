"""Noise while fine-tuning a pretrained model: digits 0-4 teach a model, digits 5-9 test the transfer.

Nothing is downloaded: the example pretrains its own model on the digits 0-4
(scikit-learn's 8x8 digits), saves it as a ``.keras`` file, then runs a study
that fine-tunes it on the digits 5-9 with few training examples (labels
5-9 become classes 0-4), with and without noise. Every arm starts from the
saved weights but for the head, which each replica initialises anew from its
seed (``reinit = ["head"]``); ``trainable`` could freeze the body instead.
Each arm's noise is inserted into the loaded model by ``noisewise.inject``.

Run ``python examples/transfer_digits.py``; ``NOISEWISE_QUICK=1`` runs the
small version CI runs, ``NOISEWISE_WORKDIR`` sets the folder of the saved
model and the store (default ``./transfer_digits``).
"""

import os

import keras
import numpy as np
from sklearn.datasets import load_digits

from noisewise.study import Study, load_spec

quick = os.environ.get("NOISEWISE_QUICK") == "1"
folder = os.environ.get("NOISEWISE_WORKDIR", "transfer_digits")
os.makedirs(folder, exist_ok=True)

x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")
first, second = y < 5, y >= 5

# 1. Pretrain on the digits 0-4 and save the model. Seeded initialisers and a
# seeded order: every draw from an explicit seed.
init = keras.initializers.GlorotUniform
inputs = keras.Input((64,), name="pixels")
hidden = keras.layers.Dense(64, activation="relu", kernel_initializer=init(seed=1),
                            name="hidden")(inputs)
model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax", kernel_initializer=init(
    seed=2), name="head")(hidden))
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
order = np.random.default_rng(0).permutation(int(first.sum()))
model.fit(x[first][order], y[first][order], epochs=3 if quick else 30, batch_size=32,
          shuffle=False, verbose=0)
model.save(os.path.join(folder, "pretrained.keras"))

# 2. Fine-tune it on the digits 5-9, from 100 training examples, with noise arms.
spec = load_spec({
    "study": {"name": "transfer_digits", "seeds": 2 if quick else 10},
    "data": {"x": x[second], "y": y[second] - 5, "test_size": 1 - 100 / int(second.sum())},
    "model": {"path": "pretrained.keras", "weights": "keep", "reinit": ["head"]},
    "train": {"epochs": 3 if quick else 50, "batch_size": 16},
    "arms": [{"name": "fine-tune"},
             {"name": "input noise", "noise": [
                 {"type": "gaussian", "where": "input", "stddev": 0.3}]},
             {"name": "dropout", "noise": [
                 {"type": "dropout", "where": "post_activation", "rate": 0.3}]}],
}, base_dir=folder)
outcome = Study(spec).run(store=os.path.join(folder, "transfer.db"), quiet=quick)
for row in outcome.summary():
    print(f"{row['arm']:>12}  n={row['n']}  {row['metric']} {row['mean']:.3f} "
          f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]")
print(f"trained {outcome.ran} runs; the pretrained body reaches "
      f"{np.mean(model.predict(x[first], verbose=0).argmax(1) == y[first]):.3f} on 0-4")
