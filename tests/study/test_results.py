"""Results as tables: records, pandas and Jupyter HTML, the same numbers as the statistics."""

import dataclasses
import math
import re
import sys

import pytest

from _report_stores import synthetic_store
from noisewise.study import Store, Study, StudyResults, load, stats


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path, spec = synthetic_store(tmp_path_factory.mktemp("results") / "s.db", name="tab",
                                 seeds=4, epochs=6)
    with Store(path, readonly=True) as s:
        runs = s.runs(s.study("tab")["id"], status=None)
    return path, spec, runs


def same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a)
                      and math.isnan(b))


def test_summary_records_are_the_statistics_flattened(synthetic):
    path, spec, runs = synthetic
    results = load(path, "tab")
    assert isinstance(results, StudyResults) and results.metric == "val_accuracy"
    expected = stats.summarize(runs, "val_accuracy")
    rows = results.summary()
    assert [r["arm"] for r in rows] == [a.name for a in spec.arms] == list(expected)
    for row in rows:
        s = expected[row["arm"]]
        for f in dataclasses.fields(stats.Estimate):  # every field, new ones too
            assert same(row[f.name], getattr(s.final, f.name))
            assert same(row[f"best_{f.name}"], getattr(s.best, f.name))
            assert same(row[f"gap_{f.name}"], getattr(s.gap, f.name))
        assert (row["done"], row["diverged"], row["failed"]) == (4, 0, 0)
        assert row["is_reference"] == (row["arm"] == "baseline")
    assert rows[3]["noise0_stddev"] == 0.1 and rows[3]["grid"] == "hidden"
    loss = results.summary("val_loss")
    assert loss[0]["metric"] == "val_loss" and same(
        loss[0]["mean"], stats.summarize(runs, "val_loss")["baseline"].mean)


def test_comparisons_and_grids_are_those_of_compare_and_grid_best(synthetic):
    path, _, runs = synthetic
    results = load(path)  # the latest study
    compared = stats.compare(runs, "baseline", "val_accuracy")
    rows = results.comparisons()
    assert [r["arm"] for r in rows] == list(compared)
    for row in rows:
        for f in dataclasses.fields(stats.Comparison):
            assert same(row[f.name], getattr(compared[row["arm"]], f.name)), f.name
    (grid,) = stats.grid_best(runs, "val_accuracy").values()
    levels = results.grids()
    assert [r["arm"] for r in levels] == list(grid.levels)
    assert [r["p_best"] for r in levels] == [grid.p_best[a] for a in grid.levels]
    assert [r["is_best"] for r in levels].count(True) == 1
    assert {r["best"] for r in levels} == {grid.best}
    records = results.records()
    assert len(records) == len(runs) == 4 * 5
    assert {r["status"] for r in records} == {"done"}
    assert records[0]["val_accuracy"] == runs[0]["final"]["val_accuracy"]


def test_to_pandas_and_a_clear_error_without_pandas(synthetic, monkeypatch):
    pandas = pytest.importorskip("pandas")
    results = load(synthetic[0], "tab")
    frame = results.to_pandas()
    assert isinstance(frame, pandas.DataFrame) and list(frame["arm"]) == [
        r["arm"] for r in results.summary()]
    assert {"mean", "ci_low", "ci_high", "noise", "noise0_stddev"} <= set(frame.columns)
    assert len(results.to_pandas("runs")) == 20 and len(results.to_pandas("comparisons")) == 4
    with pytest.raises(ValueError, match="`what` must be one of .*Received: what='arms'"):
        results.to_pandas("arms")
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match=re.escape('pip install "noisewise[pandas]"')):
        results.to_pandas()


def test_html_is_a_small_escaped_table_without_scripts(tmp_path):
    path, _ = synthetic_store(tmp_path / "h.db", name="<b>tab</b>", seeds=3, epochs=4,
                              grid=False, arms=("base<script>", "noisy & co", "unused"))
    page = load(path)._repr_html_()
    assert page.startswith("<table>") and page.endswith("</table>")
    assert "<script" not in page and "<b>" not in page
    assert "base&lt;script&gt; (reference)" in page and "noisy &amp; co" in page
    assert "&lt;b&gt;tab&lt;/b&gt;: val_accuracy, 6 finished run(s) of 2 arm(s)" in page
    assert page.count("<tr>") == 3  # the header and one row per arm


def test_a_missing_store_or_study_is_a_store_error(tmp_path, synthetic):
    from noisewise.study import StoreError

    with pytest.raises(StoreError, match="no such store"):
        load(tmp_path / "none.db")
    with pytest.raises(StoreError, match="no study 'nope'"):
        load(synthetic[0], "nope")


@pytest.mark.slow
def test_study_run_gives_the_tables_of_its_store(tmp_path):
    spec = {"study": {"name": "demo", "seeds": 2}, "data": {"name": "circles"},
            "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 2},
            "arms": [{"name": "baseline"},
                     {"name": "input", "noise": [
                         {"type": "gaussian", "where": "input", "stddev": 0.1}]}]}
    outcome = Study(spec).run(store=tmp_path / "s.db", quiet=True, executor="fit")
    # every record has every arm's parameter columns: None where an arm has no such one
    assert [(r["arm"], r["n"], r["noise0_stddev"]) for r in outcome.summary()] == [
        ("baseline", 2, None), ("input", 2, 0.1)]
    assert [r["arm"] for r in outcome.comparisons()] == ["input"]
    assert outcome._repr_html_() == load(tmp_path / "s.db", "demo")._repr_html_()
