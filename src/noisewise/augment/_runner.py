"""Running a pipeline's jitted per-transform programs over a batch, chunk by chunk (JAX).

See the module docstring of :mod:`noisewise.augment.image` for why a pipeline
runs as one program per transform on a CPU.
"""

import keras
import numpy as np
from keras import ops


def to_numpy(t):
    return np.asarray(ops.convert_to_numpy(t))


class JaxRunner:
    """The jitted per-transform steps of a pipeline, run one after the other.

    A step is ``(variables, step, donating)``: ``step(values, data)`` returns
    the output and the new values of the layer's variables (its seed states),
    so chunks thread the states through without touching the Keras variables;
    ``donating`` is the same program, free to overwrite its input ``data``.
    """

    def __init__(self, steps, cast):
        self.steps, self.cast = steps, cast

    def states(self):
        return [[v.value for v in variables] for variables, _, _ in self.steps]

    def store(self, states):
        for (variables, _, _), values in zip(self.steps, states):
            for v, value in zip(variables, values):
                v.assign(value)

    def apply(self, states, data, donate=False):
        if not self.steps:
            return self.cast(data), states
        new = []
        for i, ((_, step, donating), values) in enumerate(zip(self.steps, states)):
            # The first step's input may be the caller's array; later inputs are
            # ours, and overwriting them in place saves a fresh output buffer
            # (on a CPU, its page faults cost as much as a cheap transform).
            data, values = (donating if donate and i > 0 else step)(values, data)
            new.append(values)
        return data, new

    def __call__(self, data):
        out, states = self.apply(self.states(), data)
        self.store(states)
        return out

    def map_chunks(self, data, n, size):
        """Augment ``data`` ``size`` images at a time; NumPy out.

        JAX dispatches asynchronously: chunk j + 1 is queued before chunk j is
        copied out, so the copy overlaps the computation.
        """
        states, out, pending = self.states(), None, None

        def collect(start, result):
            nonlocal out
            result = keras.tree.map_structure(to_numpy, result)
            if out is None:
                out = keras.tree.map_structure(
                    lambda r: np.empty((n,) + r.shape[1:], r.dtype), result)
            keras.tree.map_structure(
                lambda o, r: o.__setitem__(slice(start, start + len(r)), r), out, result)

        for start in range(0, n, size):
            part = keras.tree.map_structure(lambda a: a[start:start + size], data)
            result, states = self.apply(states, part, donate=True)
            if pending is not None:
                collect(*pending)
            pending = (start, result)
        collect(*pending)
        self.store(states)
        return out
