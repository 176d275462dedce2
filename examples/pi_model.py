"""Does the Pi-model learn from unlabeled digits? 50 and 100 labels, paired seeds.

Runs ``pi_model.toml`` twice, keeping the labels of 50 and then 100 of the
1,347 digits training rows (``[data] labeled``, stratified, from the study
seed). Both arms train the same MLP with input Gaussian noise and dropout:
``supervised`` on the labeled rows alone, ``pi`` on every training row with
Laine and Aila's consistency loss between two noisy passes (weight 10, ramped
up over 30 epochs; :class:`noisewise.consistency.PiModel`). The answer, read
from the store: each arm's test accuracy with its 95% interval over seeds,
and the paired difference ``pi - supervised``.

    python examples/pi_model.py            # 10 seeds, 100 epochs per label count
    python examples/pi_model.py --quick    # 2 seeds, 12 epochs (CI); or NOISEWISE_QUICK=1

``NOISEWISE_STORE`` sets the store (default ``pi_model.db`` here); rerunning
resumes. The labeled rows are one draw per study, so the intervals are over
initial weights, noise and data order, not over which rows were labeled.
"""

import os
import sys
import tomllib
from pathlib import Path

from noisewise.study import Study, load, load_spec
from noisewise.study.stats import compare, summarize

HERE = Path(__file__).resolve().parent
QUICK = "--quick" in sys.argv[1:] or os.environ.get("NOISEWISE_QUICK") == "1"
STORE = os.environ.get("NOISEWISE_STORE", "pi_model.db")
LABELS = (50, 100)
METRIC = "val_accuracy"  # no validation split: validation is the test split


def spec_for(labeled):
    with open(HERE / "pi_model.toml", "rb") as f:
        raw = tomllib.load(f)
    raw["study"]["name"] = f"pi_model_{labeled}"
    raw["data"]["labeled"] = labeled
    return load_spec(raw, seeds=2 if QUICK else None, epochs=12 if QUICK else None,
                     base_dir=HERE)


def answer(labeled):
    spec = spec_for(labeled)
    Study(spec).run(store=STORE, quiet=True)
    runs = [r for r in load(STORE, spec.name).runs if r["status"] == "done"]
    print(f"{spec.name}: {labeled} labeled digits, test accuracy after {spec.train['epochs']} "
          "epochs (95% CI over seeds)")
    for arm, s in summarize(runs, metric=METRIC).items():
        print(f"  {arm:>10}  {s.mean:.4f} [{s.ci_low:.4f}, {s.ci_high:.4f}]  n={s.n}")
    c = compare(runs, reference="supervised", metric=METRIC)["pi"]
    p = "no test" if c.p_ttest is None else f"p = {c.p_ttest:.3g}"
    print(f"  pi - supervised: {c.mean_diff:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}], "
          f"n={c.n} paired seeds, {p}, better on {c.prob_better:.0%}")


for n in LABELS:
    answer(n)
