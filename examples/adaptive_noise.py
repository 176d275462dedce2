"""Does adaptive noise match the best level of a grid, at the cost of one run?

Runs ``adaptive_circles.toml`` and ``adaptive_digits.toml`` (each a baseline, a
grid of fixed noise levels ``fixed[...]`` and adaptive arms whose level follows
the train-validation gap) and answers from the store: the grid's best level,
chosen on the *validation* split (so its test figure is not picked on the
test split), against each adaptive arm, paired on seeds, in test accuracy;
and the compute each needed (the grid trains one run per level and seed, an
adaptive arm one per seed).

    python examples/adaptive_noise.py                 # the full studies (30 and 20 seeds)
    NOISEWISE_QUICK=1 python examples/adaptive_noise.py   # 2 seeds, few epochs (CI)

``NOISEWISE_STORE`` sets the store (default ``adaptive.db`` here); rerunning
resumes.
"""

import os
from pathlib import Path

from noisewise.study import Study, load, load_spec
from noisewise.study.stats import compare, grid_best

HERE = Path(__file__).resolve().parent
QUICK = os.environ.get("NOISEWISE_QUICK") == "1"
STORE = os.environ.get("NOISEWISE_STORE", "adaptive.db")
STUDIES = {"adaptive_circles.toml": 40, "adaptive_digits.toml": 8}  # quick-mode epochs


def answer(spec_file):
    epochs = STUDIES[spec_file] if QUICK else None
    spec = load_spec(HERE / spec_file, seeds=2 if QUICK else None, epochs=epochs)
    Study(spec).run(store=STORE, quiet=QUICK)
    results = load(STORE, spec.name)
    runs = [r for r in results.runs if r["status"] == "done"]
    best = grid_best(runs, metric="val_accuracy", parent="fixed")["fixed"]
    levels = len(best.levels)
    wall = {}
    for r in runs:
        group = r.get("arm_parent") or r["arm"]
        wall[group] = wall.get(group, 0.0) + (r.get("wall_s") or 0.0)
    base = [r["final"]["test_accuracy"] for r in runs if r["arm"] == "baseline"]
    chosen = [r["final"]["test_accuracy"] for r in runs if r["arm"] == best.best]
    print(f"{spec.name}: test accuracy baseline {sum(base) / len(base):.4f}, "
          f"{best.best} {sum(chosen) / len(chosen):.4f}")
    print(f"{spec.name}: best fixed level on validation accuracy: {best.best} "
          f"(P(best) = {best.p_best[best.best]:.2f}); compute: the grid {levels} runs per "
          f"seed ({wall.get('fixed', 0.0):.1f} s), an adaptive arm 1 run per seed")
    pairs = [(arm, c) for arm, c in compare(runs, reference=best.best,
                                            metric="test_accuracy").items()
             if arm.startswith(("adaptive", "augment"))]
    if any(r["arm"] == "augment_adaptive" for r in runs):  # adaptive p against p = 1
        pairs.append(("augment_adaptive", compare(runs, reference="augment",
                                                  metric="test_accuracy")["augment_adaptive"]))
    for arm, c in pairs:
        p = "no test" if c.p_ttest is None else f"p = {c.p_ttest:.3g}"
        mine = [r for r in runs if r["arm"] == arm]
        own = sum(r.get("wall_s") or 0.0 for r in mine)
        levels = [v for r in mine for k, v in r["final"].items() if k.startswith("level_")]
        end = f", final level {sum(levels) / len(levels):.3f} (mean)" if levels else ""
        print(f"  {arm:>28} - {c.reference}: test accuracy {c.mean_diff:+.4f} "
              f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}], n={c.n} paired seeds, {p} "
              f"(unadjusted), better on {c.prob_better:.0%}; {own:.1f} s{end}")


for name in STUDIES:
    answer(name)
