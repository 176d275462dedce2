"""Benchmark: the circles study on a Dask cluster of 1 and 2 local workers, and what more workers would give.

In one process, on the JAX backend:

1. the study (by default the first six arms of ``examples/circles.toml``, as
   ``bench_study.py`` times them, x 30 seeds x 4000 epochs) trained by the
   vectorised executor in this process, the obvious alternative;
2. the same study through ``DaskExecutor("local:N")`` for N = 1 and 2 worker
   processes (one core each; this machine has 2), cluster start included,
   each into a fresh store, with the stored metrics compared to step 1's;
3. on the 1-worker cluster, the same units again (the worker keeps its
   compiled programs, so this gives each unit's training time without
   compiling, and the compile time per structure), and the scheduler's cost
   per task: ``--null-tasks`` tasks that do nothing, two in flight as the
   executor keeps them; what is left of the 1-worker wall time is the
   study's fixed cost (cluster start, pre-flight, storing);
4. an extrapolation to 10 and 100 workers, printed as such: the fixed cost,
   plus the units' measured times scheduled in order on the first free worker
   (each worker compiling a structure the first time it trains it), plus the
   scheduler's cost per task for every unit. A study with fewer units than
   workers leaves the rest idle (a smaller ``--chunk`` gives more units). It
   assumes one core per worker and a scheduler that keeps up; the model is
   checked against the 2-worker measurement.

Run: ``python benchmarks/bench_cluster.py`` (about 4 minutes on 2 cores;
``--quick`` for a smoke run). Needs ``pip install "noisewise[distributed]"``.
"""

import argparse
import collections
import heapq
import math
import os
import pathlib
import statistics
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import noisewise  # noqa: E402,F401  (chooses JAX before Keras is imported)
from noisewise.study import Study  # noqa: E402
from noisewise.study.config import load_spec  # noqa: E402
from noisewise.study.execute import DEFAULT_CHUNK, VmapExecutor  # noqa: E402
from noisewise.study.execute.dask import DaskExecutor  # noqa: E402
from noisewise.study.execute.vmap import chunks, structure_key  # noqa: E402
from noisewise.study.store import Store  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def circles_spec(seeds, epochs, arms):
    """examples/circles.toml, its first ``arms`` arms (a grid arm by its first level)."""
    raw = load_spec(ROOT / "examples" / "circles.toml", seeds=seeds, epochs=epochs).to_dict()
    raw["study"]["name"] = "bench-cluster"
    kept = []
    for arm in raw["arms"]:
        for key, levels in arm.get("grid", {}).items():
            arm["grid"][key] = levels[:1]
        kept.append(arm)
    raw["arms"] = kept[:arms]
    return raw


def finals(path):
    with Store(path, readonly=True) as store:
        sid = store.study("bench-cluster")["id"]
        return {(r["arm"], r["replica"]): r["final"] for r in store.runs(sid)}


def largest_difference(a, b):
    assert a.keys() == b.keys(), "the two studies stored different runs"
    return max(abs(a[k][m] - b[k][m]) for k in a for m in a[k] if m in b[k])


def unit_times(path, plans, chunk):
    """Seconds each unit trained (compile included), from the stored runs' shares."""
    walls = {}
    with Store(path, readonly=True) as store:
        sid = store.study("bench-cluster")["id"]
        for r in store.runs(sid):
            walls[(r["arm"], r["replica"])] = r["wall_s"]
    out = []
    for unit, _ in chunks(plans, chunk):
        out.append(sum(walls[p.key] for p in unit))  # each run holds an equal share
    return out


def null_task_overhead(client, n):
    """Seconds per do-nothing task on ``client``'s cluster, two in flight as the executor keeps them."""
    from distributed import as_completed

    client.submit(os.getpid, pure=False).result()  # warm
    t0 = time.perf_counter()
    futures = as_completed([client.submit(os.getpid, pure=False) for _ in range(2)],
                           loop=client.loop)
    submitted = 2
    for future in futures:
        future.result()
        if submitted < n:
            futures.add(client.submit(os.getpid, pure=False))
            submitted += 1
    return (time.perf_counter() - t0) / n


def makespan(units, train_s, compile_s, workers):
    """Seconds for ``workers`` to train the units in order, each unit going to the
    first free worker and paying its structure's compile on a worker that has
    not compiled it yet (what the executor does: a worker keeps its programs)."""
    free = [(0.0, w) for w in range(workers)]
    compiled = [set() for _ in range(workers)]
    heapq.heapify(free)
    end = 0.0
    for structure, seconds in zip(units, train_s):
        at, w = heapq.heappop(free)
        at += seconds + (0.0 if structure in compiled[w] else compile_s[structure])
        compiled[w].add(structure)
        end = max(end, at)
        heapq.heappush(free, (at, w))
    return end


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=4000)
    parser.add_argument("--arms", type=int, default=6)
    parser.add_argument("--chunk", type=int, default=None,
                        help=f"replicas per unit (default {DEFAULT_CHUNK}, the executors' default)")
    parser.add_argument("--null-tasks", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="8 seeds, 300 epochs, 3 arms")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.arms, args.null_tasks = 8, 300, 3, 50
    raw = circles_spec(args.seeds, args.epochs, args.arms)
    study = Study(raw)
    plans = study.plans()
    units = chunks(plans, args.chunk)
    chunk = args.chunk or DEFAULT_CHUNK
    print(f"circles: {len(study.spec.arms)} arms x {args.seeds} seeds x {args.epochs} epochs = "
          f"{len(plans)} runs in {len(units)} units of up to {chunk} replicas "
          f"({os.cpu_count()} cores)")
    tmp = pathlib.Path(tempfile.mkdtemp())

    t0 = time.perf_counter()
    Study(raw).run(store=tmp / "local.db", quiet=True, executor=VmapExecutor(chunk_size=args.chunk))
    local_s = time.perf_counter() - t0
    print(f"  vectorised executor in this process: {local_s:7.1f} s")
    reference = finals(tmp / "local.db")

    walls = {}
    for workers in (1, 2):
        path = tmp / f"dask{workers}.db"
        t0 = time.perf_counter()
        with DaskExecutor(f"local:{workers}", chunk_size=args.chunk) as executor:
            Study(raw).run(store=path, quiet=True, executor=executor)
            walls[workers] = time.perf_counter() - t0
            if workers == 1:  # the same units again on the warm worker: training without compiling
                first = unit_times(path, plans, args.chunk)
                Study(raw).run(store=tmp / "warm.db", quiet=True, executor=executor)
                warm = unit_times(tmp / "warm.db", plans, args.chunk)
                overhead = null_task_overhead(executor.client, args.null_tasks)
        diff = largest_difference(reference, finals(path))
        print(f"  Dask, {workers} local worker(s), cluster start included: {walls[workers]:7.1f} s "
              f"({local_s / walls[workers]:.2f}x the vectorised executor; largest metric "
              f"difference from it {diff:.1e})")

    structures = [structure_key(unit[0]) for unit, _ in units]
    compile_s = collections.defaultdict(float)
    for structure, cold, hot in zip(structures, first, warm):
        compile_s[structure] = max(compile_s[structure], cold - hot)
    fixed = walls[1] - sum(first) - len(units) * overhead  # start, pre-flight, storing
    print(f"  scheduler per task (do-nothing tasks, 2 in flight): {overhead * 1e3:.1f} ms")
    print(f"  per study, beyond its units: {fixed:.1f} s (cluster start, pre-flight, store)")
    print(f"  per unit: {statistics.mean(warm):.2f} s training (mean of {len(units)}), "
          f"{statistics.mean(compile_s.values()):.2f} s more where a worker compiles its structure")

    def model(w, repeat=1):
        return (fixed + makespan(structures * repeat, warm * repeat, compile_s, w)
                + repeat * len(units) * overhead)

    print("\n  workers | study time                          | units per worker")
    for w in (1, 2, 10, 100):
        measured = f"measured {walls[w]:6.1f} s, " if w in walls else " " * 19
        print(f"  {w:7d} | {measured}model {model(w):6.1f} s | {math.ceil(len(units) / w)}"
              + ("" if w in walls else "   (extrapolated)"))
    print(f"\n  the same study with 10x the seeds ({10 * len(units)} units), extrapolated:")
    for w in (1, 10, 100):
        print(f"  {w:7d} worker(s): {model(w, 10):7.1f} s")
    print("  (extrapolations assume one core per worker, the units' measured times, a "
          "scheduler that keeps up, and the same fixed cost at any size)")


if __name__ == "__main__":
    main()
