"""Benchmark: a noise study trained replica by replica with ``fit`` versus vectorised.

Two studies, each run both ways in this one process on the JAX backend:

- ``circles``: the two-circles tutorial study of ``examples/circles.toml``
  (MLP with 500 ReLU units, Adam, batch 32, validation every epoch), by
  default its first six arms (baseline, input, hidden_pre, hidden_post,
  input_and_hidden and the first level of the hidden-noise grid) x 30 seeds
  x 4000 epochs.
- ``digits``: scikit-learn's 8x8 digits with the built-in small CNN, baseline
  vs Gaussian input noise vs dropout.

For each it prints:

- the vectorised study's wall time (``Study.run(executor="vmap")`` into a
  fresh SQLite store: planning, compiling, training and storing included);
- two sequential sides, each a sample of runs per arm timed and scaled up to
  the whole study (the output says so), and the ratio of each to the
  vectorised study:
  - noisewise's own per-run ``fit`` path (``--sample`` runs per arm, two by
    default): one ``model.fit`` per run, but the compiled program is reused
    across runs of an arm and fed the study's data order;
  - a plain ``model.fit`` loop as the tutorial writes it (``--plain-sample``
    runs per arm, one by default): per run a fresh model with the same layers
    and seeds, ``compile``, and ``fit(x, y, validation_data=..., epochs,
    batch_size)`` with Keras' own shuffling;
- that both sides agree: the largest difference between the sampled ``fit``
  runs' per-epoch metrics and the stored vectorised runs' (same seeds);
- the per-replica-step cost of a chunk of replicas against one compiled
  replica trained alone by the same program (the practical limit here), per
  arm, compile excluded;
- the process' peak resident memory after the vectorised study.

``--chunks 8,16,32,64`` adds a sweep of the chunk size (replicas per program)
on the baseline arm, to show that time per replica stays flat.

``--workers 2`` also times the study trained in worker processes.

``--which scaling`` times the baseline arm with 32, 64, 128 and 256 runs
(``--scaling``; 1000 epochs, ``--scaling-epochs``), cut into chunks of the
default size and, for comparison, as one program holding every replica:
chunked, the time per run stays flat as the number of runs grows.

Run: ``python benchmarks/bench_study.py`` (both studies, about 10 minutes on
2 cores; ``--quick`` for a 2-minute smoke run with fewer seeds and epochs).
"""

import argparse
import os
import pathlib
import resource
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

import noisewise  # noqa: E402,F401  (chooses JAX before Keras is imported)
from noisewise.study import Study  # noqa: E402
from noisewise.study.config import load_spec  # noqa: E402
from noisewise.study.execute import FitExecutor, prepare_model, vmap  # noqa: E402
from noisewise.study.store import Store  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def digits_spec(seeds, epochs):
    return {
        "study": {"name": "bench-digits", "seeds": seeds, "seed": 0},
        "data": {"name": "digits"},
        "model": {"name": "cnn"},
        "train": {"epochs": epochs, "batch_size": 32, "learning_rate": 0.001,
                  "metrics": ["accuracy"], "validate_every": 1},
        "arms": [
            {"name": "baseline"},
            {"name": "input_noise", "noise": [{"type": "gaussian", "where": "input",
                                                "stddev": 0.1}]},
            {"name": "dropout", "noise": [{"type": "dropout", "where": "post_activation",
                                            "rate": 0.2}]},
        ],
    }


def circles_spec(seeds, epochs, grid_levels):
    """examples/circles.toml with the first ``grid_levels`` levels of its grid."""
    raw = load_spec(ROOT / "examples" / "circles.toml", seeds=seeds, epochs=epochs).to_dict()
    raw["study"]["name"] = "bench-circles"
    for arm in raw["arms"]:
        for key, levels in arm.get("grid", {}).items():
            arm["grid"][key] = levels[:grid_levels]
    return Study(raw)


def peak_rss_mib():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def per_step(program, plans, size, repeats=2):
    """Seconds per replica-epoch of ``program`` on ``plans`` (compile excluded)."""
    list(program.run(plans[:size], size))  # compile and warm up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        list(program.run(plans[:size], size))
        best = min(best, time.perf_counter() - t0)
    return best / (size * program.epochs)


def compare_histories(stored, sampled, early=100):
    """How far the freshly fit runs are from the stored vectorised ones (same seeds).

    Returns the largest |difference| of any metric over the first ``early``
    epochs, the largest over all epochs, and how many runs end with the same
    final validation metrics (to 1e-6). Float rounding differs between one
    compiled replica and a vmapped chunk (summation order), and training
    amplifies such differences over thousands of epochs in some runs.
    """
    first = worst = 0.0
    same_final = 0
    for result in sampled:
        mine = stored[(result.arm.name, result.replica)]
        finals = []
        for key, values in result.history.items():
            if key in ("epoch", "val_epoch"):
                continue
            d = np.abs(np.asarray(values, float) - np.asarray(mine[key], float))
            first, worst = max(first, float(d[:early].max())), max(worst, float(d.max()))
            if key.startswith("val_"):
                finals.append(d[-1] <= 1e-6)
        same_final += all(finals)
    return first, worst, same_final


def plain_fit(plan):
    """One run as a user writes it: build, compile and ``fit`` a fresh model."""
    data, train = plan.data, plan.train
    model = prepare_model(plan)  # the same layers, seeds and optimizer
    model.fit(data.x_train, data.y_train, validation_data=(data.x_test, data.y_test),
              epochs=train["epochs"], batch_size=train["batch_size"], verbose=0)


def bench(name, study, sample, chunk_sizes, step_arms, workers=(), plain_sample=0):
    spec = study.spec
    runs = len(spec.arms) * spec.seeds
    print(f"\n== {name}: {len(spec.arms)} arms x {spec.seeds} seeds x "
          f"{spec.train['epochs']} epochs = {runs} runs (JAX, chunks of "
          f"{vmap.DEFAULT_CHUNK} replicas)", flush=True)

    # Vectorised: the whole study, as `noisewise run` does it.
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.db")
        t0 = time.perf_counter()
        outcome = study.run(db, quiet=True, executor="vmap")
        fast = time.perf_counter() - t0
        assert outcome.ran == runs and outcome.failed == 0, outcome
        rss = peak_rss_mib()
        with Store(db) as store:
            stored = {(r["arm"], r["replica"]): r["history"]
                      for r in store.history(outcome.study_id)}
    print(f"vectorised study:  {fast:8.1f} s wall ({fast / runs * 1000:.0f} ms per run); "
          f"peak RSS {rss:.0f} MiB", flush=True)
    for n in workers:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            study.run(os.path.join(tmp, "bench.db"), quiet=True, executor="vmap", workers=n)
            wall = time.perf_counter() - t0
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"  with {n} workers: {wall:8.1f} s wall (largest worker RSS {children:.0f} MiB)",
              flush=True)

    # Sequential: a sample of runs per arm, one model.fit each, scaled up.
    plans = [p for p in study.plans() if p.replica < sample]
    executor = FitExecutor()
    t0 = time.perf_counter()
    sampled = [executor.run_one(p) for p in plans]
    seq_sample = time.perf_counter() - t0
    seq = seq_sample / len(plans) * runs
    print(f"sequential fit:    {seq:8.1f} s estimated ({len(plans)} runs timed, {sample} per "
          f"arm: {seq_sample:.1f} s, {seq_sample / len(plans):.2f} s per run, scaled to "
          f"{runs} runs)", flush=True)
    print(f"ratio:             {seq / fast:8.1f}x faster vectorised", flush=True)
    if plain_sample:
        plain_plans = [p for p in study.plans() if p.replica < plain_sample]
        t0 = time.perf_counter()
        for plan in plain_plans:
            plain_fit(plan)
        plain_time = time.perf_counter() - t0
        plain = plain_time / len(plain_plans) * runs
        print(f"plain model.fit:   {plain:8.1f} s estimated ({len(plain_plans)} runs timed, "
              f"{plain_sample} per arm: {plain_time:.1f} s, {plain_time / len(plain_plans):.2f} s "
              f"per run, scaled to {runs} runs; a fresh model, compile and fit per run)",
              flush=True)
        print(f"ratio:             {plain / fast:8.1f}x faster vectorised", flush=True)
    first, worst, same = compare_histories(stored, sampled)
    print(f"same results:      largest |fit - vectorised| of any metric over the first 100 "
          f"epochs {first:.1e}, over all epochs {worst:.1e}; final validation metrics equal "
          f"in {same} of {len(plans)} sampled runs", flush=True)

    # Per-replica-step cost: a chunk against one replica alone, same program shape.
    size = min(vmap.DEFAULT_CHUNK, spec.seeds)
    by_arm = {}
    for plan in study.plans():
        by_arm.setdefault(plan.arm.name, []).append(plan)
    for arm in list(by_arm)[:step_arms]:
        arm_plans = by_arm[arm]
        chunk = per_step(vmap._Program(arm_plans[0]), arm_plans, size)
        alone = per_step(vmap._Program(arm_plans[0]), arm_plans, 1)
        print(f"per replica-epoch: {arm:<18} {chunk * 1e6:7.1f} us in a chunk of {size}, "
              f"{alone * 1e6:7.1f} us alone: {chunk / alone:.2f}x", flush=True)

    for size in chunk_sizes:
        arm_plans = by_arm[next(iter(by_arm))]
        arm_plans = (arm_plans * (size // len(arm_plans) + 1))[:size]
        cost = per_step(vmap._Program(arm_plans[0]), arm_plans, size, repeats=1)
        print(f"chunk size {size:4d}:   {cost * 1e6:7.1f} us per replica-epoch", flush=True)


def scaling(counts, epochs):
    """Seconds per run of the circles baseline arm as the number of runs grows."""
    raw = circles_spec(max(counts), epochs, 1).spec.to_dict()
    raw["arms"] = [arm for arm in raw["arms"] if arm["name"] == "baseline"]
    plans = Study(raw).plans()
    print(f"\n== scaling: circles baseline arm, {epochs} epochs, runs "
          f"{', '.join(map(str, counts))} (compile excluded, initial states included)",
          flush=True)
    program = vmap._Program(plans[0])
    for label, chunk in (("chunks of %d" % vmap.DEFAULT_CHUNK, vmap.DEFAULT_CHUNK),
                         ("one program", None)):
        for n in counts:
            size = min(chunk or n, n)
            list(program.run(plans[:size], size))  # compile this program shape
            t0 = time.perf_counter()
            for start in range(0, n, size):
                list(program.run(plans[start:start + size], size))
            wall = time.perf_counter() - t0
            print(f"{label:>14}: {n:4d} runs {wall:7.1f} s, {wall / n * 1000:6.1f} ms per run, "
                  f"{wall / (n * epochs) * 1e6:5.1f} us per replica-epoch", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", default="circles,digits")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=4000, help="circles epochs")
    parser.add_argument("--grid-levels", type=int, default=1,
                        help="circles: levels of the hidden-noise grid kept (8 = the whole "
                             "example, 13 arms; 1 = six arms)")
    parser.add_argument("--digits-seeds", type=int, default=8)
    parser.add_argument("--digits-epochs", type=int, default=10)
    parser.add_argument("--sample", type=int, default=2, help="fit runs timed per arm")
    parser.add_argument("--plain-sample", type=int, default=1,
                        help="plain model.fit runs timed per arm (0 to skip)")
    parser.add_argument("--step-arms", type=int, default=3,
                        help="arms whose per-replica-step cost is measured")
    parser.add_argument("--chunks", default="", help="chunk sizes to sweep, e.g. 8,16,32,64")
    parser.add_argument("--workers", default="", help="also time the study with N worker "
                                                      "processes, e.g. 2,4")
    parser.add_argument("--scaling", default="32,64,128,256",
                        help="with --which scaling: numbers of runs to time")
    parser.add_argument("--scaling-epochs", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="8 seeds, 400 circles epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.digits_seeds, args.digits_epochs = 8, 400, 4, 5
    import jax
    import keras

    print(f"noisewise {noisewise.__version__}, keras {keras.__version__}, jax {jax.__version__} "
          f"on {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
    chunks = [int(c) for c in args.chunks.split(",") if c]
    workers = [int(w) for w in args.workers.split(",") if w]
    which = args.which.split(",")
    if "circles" in which:
        bench("circles", circles_spec(args.seeds, args.epochs, args.grid_levels), args.sample,
              chunks, args.step_arms, workers, args.plain_sample)
    if "digits" in which:
        study = Study(digits_spec(args.digits_seeds, args.digits_epochs))
        bench("digits (small CNN)", study, min(args.sample, 1), [], 1,
              plain_sample=min(args.plain_sample, 1))
    if "scaling" in which:
        scaling([int(n) for n in args.scaling.split(",") if n], args.scaling_epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
