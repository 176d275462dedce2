"""Precision and recall of ``noisewise audit`` on problems planted in the digits data.

The digits (1,797 8x8 images, scaled to [0, 1]) are split 70/30 (seeded); then,
in the training split: 5% of the labels flipped to another class, 20 test
images copied in (leakage), 10 rows given a NaN, 10 rows replaced by far
outliers (random values at 10x the data's range), 15 rows duplicated.
The audit runs once (:func:`noisewise.study.audit.audit_arrays`, the study's
MLP, K folds) and each check is scored against the planted truth:
precision = planted among flagged, recall = flagged among planted. The exact
checks must reach recall 1.0. A copied test image that was also an
exact duplicate of another digit is counted as planted for both checks.

Run: ``python benchmarks/bench_audit.py [--folds 5] [--epochs 30] [--seed 0]``
"""

import argparse
import time

import numpy as np


def planted(seed):
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.data / 16).astype("float32"), d.target.astype("int64")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_train = int(0.7 * len(x))
    x_train, y_train = x[order[:n_train]].copy(), y[order[:n_train]].copy()
    x_test, y_test = x[order[n_train:]], y[order[n_train:]]
    n = len(x_train)
    rows = rng.permutation(n)
    flips, nan_rows, outliers, dup_dst = rows[:n // 20], rows[n // 20:n // 20 + 10], \
        rows[n // 20 + 10:n // 20 + 20], rows[n // 20 + 20:n // 20 + 35]
    y_train[flips] = (y_train[flips] + rng.integers(1, 10, len(flips))) % 10
    x_train[nan_rows, rng.integers(0, 64, 10)] = np.nan
    x_train[outliers] = rng.uniform(-10, 10, (10, 64)).astype("float32")  # range [0, 1] x 10
    keep = np.setdiff1d(np.arange(n), np.concatenate([nan_rows, outliers, dup_dst]))
    dup_src = rng.choice(keep, 15, replace=False)
    x_train[dup_dst], y_train[dup_dst] = x_train[dup_src], y_train[dup_src]
    leaked = rng.choice(len(x_test), 20, replace=False)
    x_train = np.concatenate([x_train, x_test[leaked]])
    y_train = np.concatenate([y_train, y_test[leaked]])
    truth = {"label": set(flips.tolist()), "nonfinite": set(nan_rows.tolist()),
             "outlier": set(outliers.tolist()), "leakage": set(leaked.tolist()),
             "duplicate": set(dup_dst.tolist()) | set(dup_src.tolist())}
    return (x_train, y_train, x_test, y_test), truth


def flagged(result, name):
    c = result[name]
    if name == "leakage":
        return set(c.indices.get("test", []))
    if name == "duplicate":
        return {i for g in c.groups.get("train", []) for i in g}
    return set(c.indices.get("train", []))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import keras

    from noisewise.study.audit import audit_arrays

    (x_train, y_train, x_test, y_test), truth = planted(args.seed)
    spec = {"study": {"name": "bench-audit", "seeds": 1}, "data": {"name": "digits"},
            "model": {"name": "mlp", "hidden": [64]},
            "train": {"epochs": args.epochs, "learning_rate": 0.01, "batch_size": 32},
            "arms": [{"name": "baseline"}]}
    t0 = time.perf_counter()
    audit_arrays(x_train, y_train, x_test, y_test, checks=["nonfinite", "duplicate",
                                                             "leakage"])
    t_exact = time.perf_counter() - t0
    result = audit_arrays(x_train, y_train, x_test, y_test, model=spec, folds=args.folds,
                          seed=args.seed)
    t_all = time.perf_counter() - t0 - t_exact
    print(f"digits: {len(x_train)} training rows (planted), {len(x_test)} test rows; "
          f"keras {keras.__version__} on {keras.backend.backend()}; {args.folds} folds x "
          f"{args.epochs} epochs; seed {args.seed}")
    print(f"{'check':<10} {'planted':>8} {'flagged':>8} {'precision':>10} {'recall':>7}")
    for name in ("nonfinite", "duplicate", "leakage", "label", "outlier"):
        found, want = flagged(result, name), truth[name]
        hit = len(found & want)
        precision = hit / len(found) if found else float("nan")
        print(f"{name:<10} {len(want):>8} {len(found):>8} {precision:>10.2f} "
              f"{hit / len(want):>7.2f}")
    print(f"time: exact checks {t_exact:.3f} s; whole audit (exact + {args.folds}-fold "
          f"training + Datalab) {t_all:.1f} s")


if __name__ == "__main__":
    main()
