"""``noisewise plan``: the seed plan of a stored study, read from a real store."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "study"))  # the store helpers
from _report_stores import synthetic_store  # noqa: E402

from noisewise.study import Store, planning  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path, _ = synthetic_store(tmp_path_factory.mktemp("plan") / "p.db", name="pilot", seeds=4,
                              grid=False)
    return path


def test_plan_prints_the_plan_of_the_stored_runs(store, capsys):
    code, out, err = run_cli(capsys, "plan", "--store", store)
    assert code == 0, err
    with Store(store, readonly=True) as s:
        runs = s.runs(s.study("pilot")["id"], status=None)
    (p,) = planning.plan(runs, "baseline").values()  # one arm against the reference
    assert p.arm == "input" and p.n == 4 and p.seeds_ttest is not None
    row = next(line for line in out.splitlines() if line.strip("│ ").startswith("input"))
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells == ["input", "4", f"{p.mean_diff:.4f}", f"{p.std_diff:.4f}",
                     f"{p.detectable_diff:.4f}", f"{p.effect:.4f}", str(p.seeds_ttest),
                     f"{p.prob_better:.2f}", *(str(v) if v is not None else "-"
                                                for v in (p.seeds_sign, p.seeds_wilcoxon))]
    assert "pilot: seeds to detect a paired difference in val_accuracy vs baseline" in out
    assert "alpha 0.05 / 1 arms = 0.05 per test" in out
    assert "only 4 pilot seeds" in out  # the note of a small pilot


def test_plan_effect_and_power_options(store, capsys):
    with Store(store, readonly=True) as s:
        runs = s.runs(s.study("pilot")["id"], status=None)
    p = planning.plan(runs, "baseline", effect=0.05, power=0.9)["input"]
    code, out, _ = run_cli(capsys, "plan", "pilot", "--store", store, "--effect", "0.05",
                           "--power", "0.9", "--metric", "val_accuracy")
    assert code == 0 and "power 0.9" in out
    row = next(line for line in out.splitlines() if line.strip("│ ").startswith("input"))
    assert "0.0500" in row and str(p.seeds_ttest) in row


def test_plan_usage_errors_exit_2_and_a_missing_store_3(store, tmp_path, capsys):
    code, _, err = run_cli(capsys, "plan", "--store", store, "--power", "1.5")
    assert code == 2 and "--power: must be in (0, 1). Received: 1.5" in err
    code, _, err = run_cli(capsys, "plan", "--store", store, "--effect", "0")
    assert code == 2 and "Received: '0'" in err
    code, _, err = run_cli(capsys, "plan", "nope", "--store", store)
    assert code == 2 and "no study 'nope'" in err
    code, _, err = run_cli(capsys, "plan", "--store", store, "--metric", "val_acc")
    assert code == 2 and "unknown metric 'val_acc'" in err
    assert run_cli(capsys, "plan", "--store", tmp_path / "nothing.db")[0] == 3


def test_plan_help_imports_no_heavy_module():
    probe = ("import sys\nfrom noisewise.cli import main\n"
             "try:\n    main(['plan', '--help'])\nexcept SystemExit:\n    pass\n"
             "print([m for m in ('keras', 'jax', 'scipy', 'numpy', 'rich') if m in sys.modules],"
             " file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert "--effect" in done.stdout and "--power" in done.stdout
    assert json.loads(done.stderr.strip().splitlines()[-1].replace("'", '"')) == []
