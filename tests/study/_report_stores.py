"""Study stores for the report and export tests.

``synthetic_store`` writes runs through the real :class:`Store` API from a real
validated spec, with learning curves drawn from a seeded generator instead of
training (fast, and the same on every backend). ``trained_store`` runs a tiny
real study with Keras ``fit``.
"""

import math
from pathlib import Path

import numpy as np

from noisewise.study import Store, Study, load_spec
from noisewise.study.execute.types import RunResult

NOISE = [{"type": "gaussian", "where": "pre_activation", "stddev": 0.1}]


ARMS = ("baseline", "input", "hidden")


def spec_dict(name, seeds, epochs, grid=True, validate_every=1, arms=ARMS):
    """A circles study; ``arms`` names the baseline, input-noise and grid arms."""
    base, noisy, hidden = arms
    arms = [{"name": base}, {"name": noisy, "noise": [
        {"type": "gaussian", "where": "input", "stddev": 0.05}]}]
    if grid:
        arms.append({"name": hidden, "noise": NOISE,
                     "grid": {"noise[0].stddev": [0.01, 0.1, 1.0]}})
    return {"study": {"name": name, "seeds": seeds, "seed": 3},
            "data": {"name": "circles"}, "model": {"name": "mlp", "hidden": [8]},
            "train": {"epochs": epochs, "validate_every": validate_every}, "arms": arms}


def _curves(rng, epochs, val_epochs, effect, metric="accuracy"):
    """Rising ``metric`` (accuracy-like) / falling loss with seed noise; validation lags."""
    t = np.arange(1, epochs + 1) / epochs
    acc = np.clip(0.55 + 0.4 * (1 - np.exp(-4 * t)) + rng.normal(0, 0.02, epochs), 0, 1)
    loss = 0.7 * np.exp(-3 * t) + 0.05 + rng.normal(0, 0.01, epochs) ** 2
    vt = val_epochs / epochs
    val_acc = np.clip(0.5 + (0.3 + effect) * (1 - np.exp(-5 * vt))
                      + rng.normal(0, 0.03, vt.size), 0, 1)
    val_loss = 0.7 * np.exp(-2 * vt) + 0.2 + 0.1 * vt + rng.normal(0, 0.01, vt.size) ** 2
    return {"loss": loss, metric: acc, "val_loss": val_loss, f"val_{metric}": val_acc}


def synthetic_store(path, name="synthetic", seeds=3, epochs=12, grid=True, validate_every=3,
                    seed=0, arms=ARMS, metric="accuracy", skip=()):
    """Write a study with made-up curves; returns (path, spec).

    ``arms`` names the three arms and ``metric`` the stored accuracy-like curve
    (``<metric>`` and ``val_<metric>``): any text, to test how the report shows it.
    ``skip`` holds the (arm index, replica) pairs left unrun.
    """
    spec = load_spec(spec_dict(name, seeds, epochs, grid, validate_every, arms))
    rng = np.random.default_rng(seed)
    val_epochs = np.unique(np.r_[np.arange(validate_every, epochs + 1, validate_every), epochs])

    def curves(k, arm, replica):
        effect = 0.02 * k - 0.01 * k * k / len(spec.arms)
        h = _curves(rng, epochs, val_epochs, effect, metric)  # drawn either way: same curves
        return None if (k, replica) in skip else (h, val_epochs)

    return write_runs(path, spec, curves, metric), spec


def write_runs(path, spec, curves, metric="accuracy"):
    """Store one done run per arm and replica of ``spec`` with the learning curves
    ``curves(arm index, arm, replica) -> ({name: values}, validated epochs)``
    (``val_*`` values on the validated epochs, the others on every epoch; None:
    that run is not stored); the
    final metrics are the last values and the best ``val_<metric>``, as training
    stores them. Returns the store's path."""
    with Store(path) as store:
        sid = store.open_study(spec)
        for replica in range(spec.seeds):
            for k, arm in enumerate(spec.arms):
                got = curves(k, arm, replica)
                if got is None:
                    continue
                h, val_epochs = got
                h = {m: np.asarray(v, dtype=float) for m, v in h.items()}
                final = {m: float(v[-1]) for m, v in h.items()}
                best = int(np.argmax(h[f"val_{metric}"]))
                final.update({f"best_val_{metric}": float(h[f"val_{metric}"][best]),
                              "best_epoch": int(val_epochs[best])})
                history = {m: list(map(float, v)) for m, v in h.items()}
                history["epoch"] = list(range(1, len(h["loss"]) + 1))
                history["val_epoch"] = [int(e) for e in val_epochs]
                store.write_run(sid, RunResult(
                    arm, replica, 1000 + replica, "done", history, final, 0.5 + 0.1 * k, "jax",
                    {"python": "3.11.7", "keras": "3.15.1", "jax": "0.10.2"},
                    started_at=1.7e9 + 10 * replica + k))
    return Path(path)


def trained_store(path, name="trained", seeds=2, epochs=5, grid=True):
    """Run a tiny real study (Keras fit on the current backend); returns (path, spec)."""
    spec = spec_dict(name, seeds, epochs, grid)
    if grid:  # keep it small: baseline and a two-level grid
        spec["arms"] = [spec["arms"][0], {**spec["arms"][2],
                                          "grid": {"noise[0].stddev": [0.1, 1.0]}}]
    spec = load_spec(spec)
    Study(spec).run(store=path, quiet=True)
    return Path(path), spec


def finite(x):
    return x is not None and math.isfinite(x)
