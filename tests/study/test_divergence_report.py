"""Diverged runs are a status, shown everywhere and counted nowhere: statistics, table,
report, exports."""

import csv
import hashlib
import io
import json
import math

import pytest

from noisewise.cli import main
from noisewise.study import Store, load_spec, stats
from noisewise.study.execute.types import RunResult
from noisewise.study.report import write_report

NAN = float("nan")
SEEDS, EPOCHS = 4, 6


def spec_dict(name="div", arms=("baseline", "some", "all")):
    return {"study": {"name": name, "seeds": SEEDS, "seed": 1}, "data": {"name": "circles"},
            "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": EPOCHS},
            "arms": [{"name": a} for a in arms]}


def curves(level, diverged_at=None):
    """Learning curves; from ``diverged_at`` on every value is NaN."""
    out = {}
    for metric, start in (("loss", 0.7), ("accuracy", 0.5), ("val_loss", 0.7),
                          ("val_accuracy", 0.5)):
        sign = -1 if "loss" in metric else 1
        out[metric] = [start + sign * level * e / EPOCHS if not diverged_at or e < diverged_at
                       else NAN for e in range(1, EPOCHS + 1)]
    return out


# arm -> replica -> (accuracy gain, epoch it diverged at or None)
PLAN = {"baseline": {k: (0.30 + 0.01 * k, None) for k in range(SEEDS)},
        "some": {0: (0.35, None), 1: (0.36, 3), 2: (0.37, None), 3: (0.38, 5)},
        "all": {k: (0.0, 2 + k) for k in range(SEEDS)}}


def write_study(path, legacy=False):
    """The PLAN as stored runs; ``legacy``: diverged runs stored as done (older stores)."""
    spec = load_spec(spec_dict())
    arms = {a.name: a for a in spec.arms}
    with Store(path) as store:
        sid = store.open_study(spec)
        for replica in range(SEEDS):
            for arm, runs in PLAN.items():
                gain, at = runs[replica]
                history = curves(gain, at)
                final = {m: v[-1] for m, v in history.items()}
                if at is not None:  # what Keras reports of a broken model
                    final.update(accuracy=0.5, val_accuracy=0.5)
                status = "diverged" if at is not None and not legacy else "done"
                store.write_run(sid, RunResult(
                    arms[arm], replica, 100 + replica, status, history, final, 0.1, "jax", {},
                    error=f"diverged at epoch {at}: loss is nan" if status == "diverged" else None,
                    diverged_epoch=at if status == "diverged" else None))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_study(tmp_path_factory.mktemp("div") / "div.db")


def cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table(out):
    """``(header, {first word of a row: row})`` of the summary table `show` prints."""
    lines = out.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("\u2500"))
    rows = {}
    for line in lines[rule + 1:]:
        if not line.strip() or line.startswith("diff: "):  # the legend follows the table
            break
        rows[line.split()[0]] = line
    return lines[rule - 1], rows


def test_statistics_leave_diverged_runs_out_and_count_them(store):
    with Store(store) as s:
        runs = s.runs(s.study("div")["id"], status=None)
    counts = stats.run_counts(runs)
    assert [(c.arm, c.done, c.diverged, c.first_diverged_epoch) for c in counts.values()] == [
        ("baseline", 4, 0, None), ("some", 2, 2, 3), ("all", 0, 4, 2)]
    assert counts["all"].all_diverged and counts["some"].text() == "2 diverged (first at epoch 3)"
    summary = stats.summarize(runs, "val_accuracy")
    assert list(summary) == ["baseline", "some"] and summary["some"].n == 2
    # The diverged runs' 0.5 accuracy is not in the mean.
    assert summary["some"].mean == pytest.approx(0.5 + (0.35 + 0.37) / 2)
    c = stats.compare(runs, "baseline", "val_accuracy")
    assert list(c) == ["some"] and c["some"].n == 2
    assert "paired on 2 of 4 seeds, those both arms finished (2 diverged in 'some')" in \
        c["some"].note


def test_older_stores_diverged_runs_stored_as_done_count_as_diverged(tmp_path):
    path = write_study(tmp_path / "legacy.db", legacy=True)
    with Store(path) as s:
        runs = s.runs(s.study("div")["id"], status=None)
    assert {r["status"] for r in runs} == {"done"}
    counts = stats.run_counts(runs)
    assert (counts["some"].diverged, counts["all"].diverged) == (2, 4)
    assert counts["all"].first_diverged_epoch is None  # not recorded then
    assert list(stats.summarize(runs, "val_accuracy")) == ["baseline", "some"]


def test_show_marks_the_arms_that_lost_runs(store, capsys):
    before = sha(store)
    code, out, err = cli(capsys, "show", "div", "--store", store)
    assert code == 0, err
    assert "div: val_accuracy over 6 of 12 runs (6 diverged)" in out
    header, rows = table(out)
    assert header.split()[-1] == "lost"
    assert rows["some"].split()[-1] == "2"  # lost
    assert "arm 'some': 2 diverged (first at epoch 3): left out of the statistics" in out
    assert rows["all"].endswith("all 4") and "reference" not in rows["all"]
    assert rows["all"].split()[1] == "0"  # n
    assert "arm 'all': all 4 runs diverged (first at epoch 2): no statistics" in out
    assert "paired on 2 of 4 seeds" in out
    code, out, _ = cli(capsys, "list", "--store", store)
    header = next(line for line in out.splitlines() if "┃" in line)
    assert code == 0 and header.split("┃")[4].strip() == "diverged"
    row = next(line for line in out.splitlines() if "│ div " in line)
    assert [c.strip() for c in row.split("│")[2:6]] == ["3", "6", "6", "0"]
    assert sha(store) == before


def test_report_shows_the_lost_runs_and_a_warning(store, tmp_path):
    text = write_report(store, "div", tmp_path / "div.html").read_text()
    assert '<tr data-arm="all" class="diverged">' in text
    assert "all 4 runs diverged (first at epoch 2)" in text
    assert "2 diverged (first at epoch 3)" in text
    assert ('<p class="warning">Arm <b>all</b>: all 4 runs diverged (first at epoch 2): it has '
            "no statistics and its results are not comparable.</p>") in text
    assert "2 run(s) diverged (the loss or a metric became NaN or infinite)" in text
    assert "title=\"runs left out of every statistic" in text
    assert "Only 6 of 12 runs" not in text  # diverged runs are final, not pending


def test_exports_carry_status_diverged_epoch_and_error(store, capsys):
    code, out, _ = cli(capsys, "export", "div", "--format", "csv", "--store", store)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 12
    lost = [(r["arm"], r["replica"], r["status"], r["diverged_epoch"]) for r in rows
            if r["status"] != "done"]
    assert lost == [("some", "1", "diverged", "3"), ("some", "3", "diverged", "5")] + [
        ("all", str(k), "diverged", str(2 + k)) for k in range(SEEDS)]
    assert all(r["error"].startswith("diverged at epoch") for r in rows
               if r["status"] == "diverged")
    code, out, _ = cli(capsys, "export", "div", "--format", "json", "--store", store)
    records = json.loads(out)
    assert [r["diverged_epoch"] for r in records if r["arm"] == "all"] == [2, 3, 4, 5]
    assert {r["status"] for r in records if r["arm"] == "baseline"} == {"done"}
    code, out, _ = cli(capsys, "export", "div", "--format", "csv", "--history", "--store", store)
    curves_rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["status"] for r in curves_rows if r["arm"] == "all"} == {"diverged"}


SCENARIO = """
[study]
name = "blowup"
seeds = 2
seed = 0

[data]
name = "circles"

[model]
name = "mlp"
hidden = [8]

[train]
epochs = 3
learning_rate = 0.01

[[arms]]
name = "baseline"

[[arms]]
name = "w"
noise = [{ type = "weight", stddev = 1e30 }]
"""


def test_an_arm_whose_every_run_diverged_is_reported_and_fails_the_run(tmp_path, capsys):
    spec = tmp_path / "blowup.toml"
    spec.write_text(SCENARIO)
    store = tmp_path / "blowup.db"
    code, out, err = cli(capsys, "run", spec, "--store", store, "--quiet")
    assert code == 1, err
    line = next(x for x in err.splitlines() if "every run of arm 'w' diverged" in x)
    assert line.startswith("noisewise: every run of arm 'w' diverged (2 runs, first at epoch 1")
    assert line.endswith("): its results are not comparable")
    _, rows = table(out)
    assert rows["w"].endswith("all 2") and "reference" in rows["baseline"]
    assert "+" not in rows["w"] and "<0.001" not in rows["w"]  # no difference, no p-value
    with Store(store) as s:
        runs = s.runs(s.study("blowup")["id"], status=None)
    assert [(r["arm"], r["status"]) for r in runs] == [
        ("baseline", "done"), ("baseline", "done"), ("w", "diverged"), ("w", "diverged")]
    assert all(r["diverged_epoch"] == 1 for r in runs if r["arm"] == "w")
    report = (tmp_path / "blowup-blowup.html").read_text()
    assert "Arm <b>w</b>: all 2 runs diverged (first at epoch 1)" in report
    assert not math.isnan(stats.summarize(runs, "val_accuracy")["baseline"].mean)
    assert list(stats.compare(runs, "baseline", "val_accuracy")) == []  # nothing to compare


def test_diverged_report_renders_and_sorts_in_chromium(store, tmp_path):
    from _browser import render

    path = write_report(store, "div", tmp_path / "div.html")
    probe = ("<script>window.addEventListener('load', function () {"
             "document.querySelectorAll('#summary th button')[2].click();"
             "document.body.dataset.asc = Array.prototype.map.call(document.querySelectorAll("
             "'#summary tbody tr'), function (r) { return r.dataset.arm; }).join('|');});"
             "</script></body>")
    clicked = tmp_path / "clicked.html"
    clicked.write_text(path.read_text().replace("</body>", probe))
    dom = render(clicked)
    assert 'data-asc="baseline|some|all"' in dom  # by mean; the arm without numbers last
    assert 'data-images-loaded="5"' in dom  # the forest plot, final, curves, loss, gap
