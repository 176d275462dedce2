"""A study from Python objects, as in a notebook: arrays, a builder function, a table.

Run ``python examples/notebook.py``; ``NOISEWISE_QUICK=1`` runs the small
version CI runs (2 seeds, 3 epochs) and ``NOISEWISE_STORE`` sets the store
(default ``notebook.db`` here). The data is scikit-learn's digits, as arrays
split by ``test_size``; the model is a plain Keras function. The stored spec
describes both by content (a hash of the arrays, the builder's source), so
rerunning the cell resumes and editing the builder starts afresh.
"""

import os

import keras
from sklearn.datasets import load_digits

from noisewise.study import Study

quick = os.environ.get("NOISEWISE_QUICK") == "1"


def build(input_shape, num_classes):
    inputs = keras.Input(input_shape, name="pixels")
    hidden = keras.layers.Dense(64, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax",
                                                  name="digit")(hidden))


x, y = load_digits(return_X_y=True)
study = Study({"study": {"name": "notebook", "seeds": 2 if quick else 10},
               "train": {"epochs": 3 if quick else 30},
               "arms": [{"name": "baseline"},
                        {"name": "input noise", "noise": [
                            {"type": "gaussian", "where": "input", "stddev": 0.3}]}]},
              data={"x": x / 16, "y": y, "test_size": 0.25}, model=build)
outcome = study.run(store=os.environ.get("NOISEWISE_STORE", "notebook.db"), quiet=quick)
for row in outcome.summary():  # in Jupyter, `outcome` alone shows the table
    print(f"{row['arm']:>12}  n={row['n']}  {row['metric']} {row['mean']:.3f} "
          f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]")
