"""The two-circles tutorial: a wide MLP on 30 points, with and without hidden noise.

Trains the same MLP (500 ReLU units, Adam) on make_circles(n_samples=100,
noise=0.1, random_state=1) (first 30 points train, the other 70 test) for a
few paired seeds, once without noise and once with GaussianNoise(0.1) between
the hidden layer's linear output and its ReLU, and prints the test accuracy
of each run and the mean paired difference.
"""

import sys

import noisewise  # chooses JAX unless KERAS_BACKEND is set
import keras
import numpy as np
from sklearn.datasets import make_circles

SEEDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000


def build(seed, stddev):
    init = lambda k: keras.initializers.GlorotUniform(seed=noisewise.random.derive_seed(seed, "init", k))
    layers = [keras.Input((2,)), keras.layers.Dense(500, kernel_initializer=init(0))]
    if stddev:
        layers.append(noisewise.GaussianNoise(stddev, seed=noisewise.random.derive_seed(seed, "noise")))
    layers += [keras.layers.Activation("relu"),
               keras.layers.Dense(1, activation="sigmoid", kernel_initializer=init(1))]
    model = keras.Sequential(layers)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def main():
    x, y = make_circles(n_samples=100, noise=0.1, random_state=1)
    x, y = x.astype("float32"), y.astype("float32")
    x_train, y_train, x_test, y_test = x[:30], y[:30], x[30:], y[30:]
    results = {0.0: [], 0.1: []}
    for replica in range(SEEDS):
        seed = noisewise.random.replica_seed(0, replica)
        for stddev in results:
            noisewise.seed_everything(seed)
            model = build(seed, stddev)
            model.fit(x_train, y_train, epochs=EPOCHS, batch_size=32, verbose=0)
            acc = model.evaluate(x_test, y_test, verbose=0)[1]
            results[stddev].append(acc)
            print(f"replica {replica}  hidden noise {stddev:<4}  test accuracy {acc:.3f}", flush=True)
    base, noisy = np.array(results[0.0]), np.array(results[0.1])
    print(f"\nbaseline mean {base.mean():.3f}; pre-activation noise 0.1 mean {noisy.mean():.3f}; "
          f"paired difference {np.mean(noisy - base):+.3f} over {SEEDS} seeds, {EPOCHS} epochs "
          f"({keras.backend.backend()} backend)")


if __name__ == "__main__":
    main()
