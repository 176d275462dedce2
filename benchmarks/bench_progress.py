"""Benchmark: what reporting progress within a vectorised chunk costs.

The vectorised executor trains a chunk's epochs in blocks (compiled once,
queued at once, the last one padded) so the progress bar can move as each
block ends. This times one chunk of the circles study (the baseline arm of
``examples/circles.toml``: 30 replicas x 4000 epochs by default) trained as
one block (no progress within the chunk) and as 50 and 200 blocks, each with
a progress callback, in this one process; compilation is excluded (each
setting runs once to compile, then ``--repeat`` times timed) and the best
time is reported with its ratio to the one-block time.

Run: ``python benchmarks/bench_progress.py [--seeds 30] [--epochs 4000]``.
"""

import argparse
import os
import pathlib
import time

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
    base = None
    for blocks in [int(b) for b in args.blocks.split(",")]:
        calls = []
        hooks = RunHooks(on_chunk=lambda runs, epoch: calls.append(epoch))
        executor = VmapExecutor(blocks=blocks)
        list(executor.run(plans, hooks))  # compiles
        best = float("inf")
        for _ in range(args.repeat):
            calls.clear()
            t0 = time.perf_counter()
            results = list(executor.run(plans, hooks))
            best = min(best, time.perf_counter() - t0)
        assert all(r.status == "done" for r in results)
        base = base or best
        print(f"  {blocks:4d} block(s): {best:7.3f} s, {len(calls):4d} progress updates, "
              f"{best / base:.3f}x one block")


if __name__ == "__main__":
    main()
