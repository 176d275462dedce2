"""Images per second of a standard augmentation pipeline: noisewise vs Keras vs albumentations.

The pipeline: horizontal flip (p = 0.5), rotation uniform in +-15 degrees,
Gaussian noise of std 10 grey levels, brightness +-0.2 and contrast +-0.2, on
a batch of 256 uint8 images of 224x224x3 (synthetic pixels: the content does
not change the cost of these transforms). Measured in one run:

* noisewise: ``image_pipeline(spec).augment(batch)`` on JAX (XLA-compiled, all
  cores, and again restricted to one thread), plus the noise alone;
* Keras alone: ``keras.layers`` RandomFlip, RandomRotation, GaussianNoise,
  RandomBrightness, RandomContrast on JAX, eager (as Keras runs them, because
  RandomRotation sets ``supports_jit=False``). GaussianNoise refuses a std above
  1, so this pipeline works on [0, 1] images with std 10/255 and cannot clip;
* albumentations: HorizontalFlip, Rotate(limit=15), GaussNoise, and
  RandomBrightnessContrast, one image at a time on one thread (its usual
  mode), plus GaussNoise alone. albumentations is not a noisewise dependency:
  it runs from a separate virtual environment (``--albumentations-python``,
  default ``benchmarks/.venv/bin/python``; create it with
  ``python -m venv benchmarks/.venv && benchmarks/.venv/bin/pip install albumentations``).
  What cannot be measured is reported as such.

The script itself needs only the standard library: it starts the noisewise and
Keras measurements with ``--python`` (default: the repository's
``.venv/bin/python`` when it exists, else the interpreter running the script),
so it runs the same from either environment.

Each measurement runs in its own process (so thread settings and JIT caches do
not leak), warms up once (compilation), then times ``--repeats`` batches. The
contenders take turns for ``--rounds`` rounds, so a burst of load from another
process on a shared machine hits all of them alike; the table gives the best
and the median over all timed batches. Compare ratios from one run, not
figures from different runs. The noise-only rows also report the standard
deviation of the added noise (on pixels far from the clipping range), which
must be 10 grey levels for both libraries.

Usage:
    benchmarks/.venv/bin/python benchmarks/bench_augment.py [--batch 256] [--repeats 3] [--rounds 3]
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_PYTHON = os.path.join(os.path.dirname(HERE), ".venv", "bin", "python")
SIZE = 224
SPEC = [
    {"type": "flip", "mode": "horizontal"},
    {"type": "rotate", "factor": 15, "unit": "degrees"},
    {"type": "gaussian_noise", "noise_std": 10, "clip": [0, 255]},
    {"type": "brightness", "factor": 0.2},
    {"type": "contrast", "factor": 0.2},
]
SINGLE_THREAD = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "OMP_NUM_THREADS": "1",
}


def _images(batch):
    import numpy as np

    return np.random.default_rng(0).integers(0, 256, (batch, SIZE, SIZE, 3), dtype=np.uint8)


def _time(fn, repeats):
    fn()  # warm-up: compilation and caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"times": times}


def _noise_std(x, y):
    """Std of the added noise where clipping at 0 or 255 is 6 sigma away."""
    import numpy as np

    keep = (x >= 60) & (x <= 195)
    return float(np.std(y.astype("float64")[keep] - x[keep]))


def _worker_noisewise(batch, repeats, spec):
    import noisewise

    x = _images(batch)
    pipeline = noisewise.augment.image_pipeline(spec, seed=0)
    out = _time(lambda: pipeline.augment(x), repeats)
    if len(spec) == 1:
        out["noise_std"] = _noise_std(x, pipeline.augment(x))
    return out


def _worker_keras(batch, repeats, noise_only):
    import jax
    import keras
    import numpy as np

    layers = [keras.layers.Rescaling(1.0 / 255)]
    if not noise_only:
        layers += [keras.layers.RandomFlip("horizontal", seed=1),
                   keras.layers.RandomRotation(15 / 360, seed=2)]
    layers.append(keras.layers.GaussianNoise(10 / 255, seed=3))
    if not noise_only:
        layers += [keras.layers.RandomBrightness(0.2, value_range=(0, 1), seed=4),
                   keras.layers.RandomContrast(0.2, value_range=(0, 1), seed=5)]
    model = keras.Sequential(layers)
    x = _images(batch)
    out = _time(lambda: jax.block_until_ready(model(x, training=True)), repeats)
    if noise_only:
        out["noise_std"] = _noise_std(x, 255 * np.asarray(model(x, training=True)))
    return out


_ALBUMENTATIONS = r"""
import json, sys, time
import numpy as np
import albumentations as A
import cv2
cv2.setNumThreads(1)
batch, repeats = int(sys.argv[1]), int(sys.argv[2])
x = np.random.default_rng(0).integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)
std = 10 / 255
pipelines = {
    "pipeline": A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Rotate(limit=15, border_mode=cv2.BORDER_REFLECT_101, p=1.0),
        A.GaussNoise(std_range=(std, std), p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=1.0),
    ], seed=0),
    "noise": A.Compose([A.GaussNoise(std_range=(std, std), p=1.0)], seed=0),
}
out = {"version": A.__version__}
for name, pipe in pipelines.items():
    run = lambda: [pipe(image=im)["image"] for im in x]
    run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
    out[name] = {"times": times}
y = np.stack([pipelines["noise"](image=im)["image"] for im in x]).astype("float64")
keep = (x >= 60) & (x <= 195)
out["noise"]["noise_std"] = float(np.std(y[keep] - x[keep]))
print(json.dumps(out))
"""


def _run_worker(name, args, env_extra=None):
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    cmd = [args.python, os.path.abspath(__file__), "--worker", name,
           "--batch", str(args.batch), "--repeats", str(args.repeats)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1:] or ["failed"]
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def _run_albumentations(args):
    python = args.albumentations_python
    if not os.path.exists(python):
        return None, f"no Python at {python} (create the venv, see the module docstring)"
    proc = subprocess.run([python, "-c", _ALBUMENTATIONS, str(args.batch), str(args.repeats)],
                          capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--albumentations-python",
                        default=os.path.join(HERE, ".venv", "bin", "python"))
    parser.add_argument("--python", default=REPO_PYTHON if os.path.exists(REPO_PYTHON)
                        else sys.executable, help="Python with noisewise and Keras installed")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        workers = {
            "noisewise": lambda: _worker_noisewise(args.batch, args.repeats, SPEC),
            "noisewise-noise": lambda: _worker_noisewise(args.batch, args.repeats, [SPEC[2]]),
            "keras": lambda: _worker_keras(args.batch, args.repeats, noise_only=False),
            "keras-noise": lambda: _worker_keras(args.batch, args.repeats, noise_only=True),
        }
        print(json.dumps(workers[args.worker]()))
        return 0

    print(f"batch {args.batch} x {SIZE}x{SIZE}x3 uint8, {args.rounds} rounds of {args.repeats} "
          f"timed batches after a warm-up, best (median) images/s; {os.cpu_count()} CPU cores "
          f"visible\nnoisewise and Keras: {args.python}\nalbumentations: "
          f"{args.albumentations_python}", flush=True)
    plan = [
        ("noisewise, JAX, all cores", "noisewise", None),
        ("noisewise, JAX, 1 thread", "noisewise", SINGLE_THREAD),
        ("noisewise noise only, 1 thread", "noisewise-noise", SINGLE_THREAD),
        ("Keras layers, JAX eager", "keras", None),
        ("Keras GaussianNoise only, eager", "keras-noise", None),
    ]
    results, missing, stds = {}, {}, {}

    def record(label, value):
        results.setdefault(label, []).extend(value["times"])
        if "noise_std" in value:
            stds[label] = value["noise_std"]

    for round_ in range(args.rounds):
        for label, worker, env in plan:
            value, error = _run_worker(worker, args, env)
            if value is None:
                missing[label] = error
            else:
                record(label, value)
        alb, error = _run_albumentations(args)
        if alb is None:
            missing["albumentations"] = error
        else:
            record(f"albumentations {alb['version']}, 1 thread", alb["pipeline"])
            record("albumentations GaussNoise only, 1 thread", alb["noise"])
        print(f"  round {round_ + 1} of {args.rounds} measured", flush=True)

    print()
    best = {label: args.batch / min(times) for label, times in results.items()}
    width = max(len(k) for k in list(results) + list(missing)) + 2
    for label, times in results.items():
        median = sorted(times)[len(times) // 2]
        std = f"   noise std {stds[label]:.3f}" if label in stds else ""
        print(f"{label:<{width}} {best[label]:8.1f} ({args.batch / median:.1f}) images/s{std}")
    for label, why in missing.items():
        if not any(k.startswith(label) for k in results):
            print(f"{label:<{width}} not measured: {why}")

    def rate(prefix):
        return next((v for label, v in best.items() if label.startswith(prefix)), None)

    print("\nratios (best vs best):")
    pairs = [
        ("noisewise, JAX, all cores", "Keras layers, JAX eager"),
        ("noisewise, JAX, all cores", "albumentations 2"),
        ("noisewise, JAX, 1 thread", "albumentations 2"),
        ("noisewise noise only, 1 thread", "albumentations GaussNoise only"),
        ("noisewise noise only, 1 thread", "Keras GaussianNoise only"),
    ]
    for a, b in pairs:
        ra, rb = rate(a), rate(b)
        print(f"  {a} / {b}: " + (f"{ra / rb:.2f}x" if ra and rb else "not measured"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
