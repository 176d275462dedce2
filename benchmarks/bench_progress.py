"""Benchmark: what reporting progress within a vectorised chunk costs.

The vectorised executor trains a chunk's epochs in blocks (compiled once,
queued at once, the last one padded) so the progress bar can move as each
block ends. This times one chunk of the circles study (the baseline arm of
``examples/circles.toml``: 30 replicas x 4000 epochs by default) trained as
one block (no progress within the chunk) and as 50 and 200 blocks, each with
a progress callback, in this one process; compilation is excluded (each
setting runs once to compile, then ``--repeat`` times, the settings
interleaved) and the median time is reported with its ratio to the one-block
median.

Run: ``python benchmarks/bench_progress.py [--seeds 30] [--epochs 4000]``.
"""

import argparse
import os
import pathlib
import time

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")

import noisewise  # noqa: E402,F401  (chooses JAX before Keras is imported)
from noisewise.study import Study, load_spec  # noqa: E402
from noisewise.study.execute import RunHooks, VmapExecutor  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=4000)
    parser.add_argument("--blocks", default="1,50,200")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    spec = load_spec(ROOT / "examples" / "circles.toml", seeds=args.seeds, epochs=args.epochs)
    study = Study(spec)
    plans = [p for p in study.plans() if p.arm.name == "baseline"]
    print(f"circles baseline arm: {len(plans)} replicas x {args.epochs} epochs in one chunk")
    settings = [int(b) for b in args.blocks.split(",")]
    executors, calls = {}, []
    hooks = RunHooks(on_chunk=lambda runs, epoch: calls.append(epoch))
    for blocks in settings:
        executors[blocks] = VmapExecutor(blocks=blocks)
        list(executors[blocks].run(plans, hooks))  # compiles
    times = {blocks: [] for blocks in settings}
    updates = {}
    for _ in range(args.repeat):  # interleaved, so a slow spell of the machine hits every setting
        for blocks in settings:
            calls.clear()
            t0 = time.perf_counter()
            results = list(executors[blocks].run(plans, hooks))
            times[blocks].append(time.perf_counter() - t0)
            updates[blocks] = len(calls)
            assert all(r.status == "done" for r in results)
    base = np.median(times[settings[0]])
    for blocks in settings:
        t = np.asarray(times[blocks])
        print(f"  {blocks:4d} block(s): median {np.median(t):7.3f} s (best {t.min():.3f}), "
              f"{updates[blocks]:4d} progress updates, median {np.median(t) / base:.3f}x "
              f"{settings[0]} block(s)")

if __name__ == "__main__":
    main()
