"""Does Monte Carlo prediction make a digits MLP better calibrated than one deterministic pass?

One study on the digits (half the images test; a fifth of the rest
validates), three arms trained alike on the same seeds, each predicting the
test split after training both ways (an arm's ``predict`` table):

- ``dropout``: an MLP with dropout, predicted once with dropout off
  (``deterministic``, the usual inference) and as the mean of 30 draws with
  it kept on (``mc_dropout``, Gal and Ghahramani 2016);
- ``noise``: Gaussian noise after each hidden layer, kept on (``mc_noise``);
- ``tta``: trained with small shifts and pixel noise, and predicted as the
  mean over 30 augmented copies of each test image (test-time augmentation).

For accuracy, ECE (15 bins), NLL, Brier score and AURC (selective prediction)
it prints each prediction's mean over seeds with its 95% interval, and the
paired difference of each against ``deterministic`` (same replica seeds; for
``mc_dropout``, the same trained weights) with its interval, p-value and the
share of seeds on which it is better; then, per arm, its Monte Carlo
prediction against its own deterministic one (the same weights both ways).
Between the two, each arm's accuracy minus its mean confidence over every
seed's test rows, deterministic / Monte Carlo (below 0: overconfident), from
the reliability sums each run stores. The figures come from the store, with
noisewise.study's estimates and paired comparisons.

    python examples/mc_uncertainty.py                  # 20 seeds, 60 epochs
    NOISEWISE_QUICK=1 python examples/mc_uncertainty.py    # 2 seeds, few epochs (CI)

``NOISEWISE_STORE`` sets the store (default ``mc_uncertainty.db`` here);
rerunning resumes.
"""

import os

from noisewise.study import Study, load, load_spec
from noisewise.study.stats import compare, summarize

QUICK = os.environ.get("NOISEWISE_QUICK") == "1"
STORE = os.environ.get("NOISEWISE_STORE", "mc_uncertainty.db")
SAMPLES = 5 if QUICK else 30
PREDICT = {"samples": SAMPLES}
SHIFT = {"type": "shift", "height_factor": 0.125, "width_factor": 0.125, "fill_mode": "constant"}
SPEC = {
    "study": {"name": "mc_uncertainty", "seeds": 2 if QUICK else 20, "seed": 0},
    "data": {"name": "digits", "test_size": 0.5},
    "model": {"name": "mlp", "hidden": [128, 128]},
    "train": {"epochs": 5 if QUICK else 60, "batch_size": 32, "learning_rate": 0.001,
              "validation_split": 0.2},
    "arms": [
        {"name": "dropout", "noise": [{"type": "dropout", "where": "post_activation",
                                       "rate": 0.3}],
         "predict": {**PREDICT, "mode": "dropout"}},
        {"name": "noise", "noise": [{"type": "gaussian", "where": "post_activation",
                                     "stddev": 0.5}],
         "predict": {**PREDICT, "mode": "noise"}},
        {"name": "tta", "augment": [SHIFT, {"type": "gaussian_noise", "stddev": 0.05}],
         "predict": {**PREDICT, "mode": "tta"}},
    ],
}
# Each row: (prediction, arm, prefix of its stored test figures).
ROWS = [("deterministic", "dropout", "test_"), ("mc_dropout", "dropout", "test_mc_"),
        ("mc_noise", "noise", "test_mc_"), ("tta", "tta", "test_mc_")]
# (metric, higher is better, its range: intervals stay inside it; NLL has no upper bound).
METRICS = [("accuracy", True, (0.0, 1.0)), ("ece", False, (0.0, 1.0)), ("nll", False, None),
           ("brier", False, (0.0, 2.0)), ("aurc", False, (0.0, 1.0))]


def records(runs, metric, rows=ROWS):
    """One run record per (prediction, replica) holding that prediction's ``metric``,
    so the stats functions compare predictions as they compare arms."""
    out = []
    for position, (row, arm, prefix) in enumerate(rows):
        for r in runs:
            if r["arm"] == arm:
                value = r["final"].get(f"{prefix}{metric}")
                out.append({"arm": row, "replica": r["replica"], "status": r["status"],
                            "arm_position": position, "final": {metric: value}})
    return out


def confidence_gaps(runs):
    """Per arm, deterministic / Monte Carlo: correct rows minus summed confidence over
    the rows, from the reliability sums each run stores (``calibration``)."""
    out = []
    for arm in ("dropout", "noise", "tta"):
        gaps = []
        for kind in ("deterministic", "mc"):
            sums = [r["calibration"][kind] for r in runs if r["arm"] == arm]
            rows = sum(sum(s["count"]) for s in sums)
            gaps.append((sum(sum(s["correct"]) for s in sums)
                         - sum(sum(s["confidence"]) for s in sums)) / rows)
        out.append(f"{arm} {gaps[0]:+.4f} / {gaps[1]:+.4f}")
    return ", ".join(out)


def answer():
    spec = load_spec(SPEC)
    Study(spec).run(store=STORE, quiet=QUICK)
    runs = load(STORE, spec.name).runs
    done = [r for r in runs if r["status"] == "done"]
    print(f"{spec.name}: digits MLP, {len({r['replica'] for r in done})} seeds, "
          f"{SAMPLES} draws per Monte Carlo prediction, half the images test")
    for metric, higher, bounds in METRICS:
        table = records(runs, metric)
        summary = summarize(table, metric=metric, bounds=bounds)
        pairs = compare(table, reference="deterministic", metric=metric,
                        higher_is_better=higher, bounds=bounds)
        print(f"{metric} ({'higher' if higher else 'lower'} is better):")
        for row, *_ in ROWS:
            s = summary[row]
            line = f"  {row:>13} {s.mean:.4f} [{s.ci_low:.4f}, {s.ci_high:.4f}]"
            if row in pairs:
                c = pairs[row]
                p = "no test" if c.p_ttest is None else f"p = {c.p_ttest:.3g}"
                line += (f"  - deterministic: {c.mean_diff:+.4f} [{c.ci_low:+.4f}, "
                         f"{c.ci_high:+.4f}], n={c.n} paired seeds, {p}, "
                         f"better on {c.prob_better:.0%}")
            print(line)
    print(f"accuracy - confidence over every seed's test rows (below 0: overconfident): "
          f"{confidence_gaps(done)}")
    # The same weights both ways: what drawing at test time does to each arm's own model.
    print("each arm's Monte Carlo prediction - its own deterministic one (same weights):")
    for arm in ("dropout", "noise", "tta"):
        own = [("deterministic", arm, "test_"), ("mc", arm, "test_mc_")]
        parts = []
        for metric, higher, bounds in METRICS:
            c = compare(records(runs, metric, own), reference="deterministic", metric=metric,
                        higher_is_better=higher, bounds=bounds)["mc"]
            parts.append(f"{metric} {c.mean_diff:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}]")
        print(f"  {arm:>13} {', '.join(parts)} (n={c.n})")


answer()
