"""A self-contained HTML report of a stored study: tables, plots, and how to rerun it.

The report is made from the store alone (the store is the truth): a finished
study can be reported years later, from another process or machine. The HTML
file needs no network to open: CSS and the small scripts are inline and every
figure is an embedded PNG (matplotlib, Agg). It holds:

- the summary table (n, mean, 95% CI, paired difference to the reference with
  its CI, Holm-adjusted paired t-test and Wilcoxon p-values, or the reason
  there is no test, P(better), the verdict, the train-test gap), sortable by
  clicking a column header, with the tests behind each column named;
- for a study with a ``[robustness]`` table, the settings behind each
  robustness metric as the runs stored them (attack, norm, eps, steps, step
  size, clip and where it came from; sigma, n0, n, alpha, radius; the split and
  number of examples; :mod:`~noisewise.study.report.robustness`);
- the verdict: a forest plot of each arm's paired difference to the
  reference with its 95% CI and the zero line, each arm marked helps, hurts
  or no detectable difference, and one plain sentence per arm
  (:mod:`~noisewise.study.report.verdict`);
- a warning when the metric is still improving at the end of training
  (:func:`~noisewise.study.report.verdict.trend`), or an arm has few seeds;
- for grids, the metric against the noise level with its 95% band and the best
  level marked (with the bootstrap probability that it is the best);
- the final metric per arm, every seed a point, with the mean and its CI;
- learning curves (training and validation, mean and 95% band over seeds) and
  the train-test gap over epochs, one small panel per arm;
- the spec as TOML (ready for ``noisewise run``), the environment (backend,
  versions, seeds) and the store it came from.

Diverged and failed runs are left out of every statistic and figure; the
table says how many runs each arm lost, a warning box names them, and an arm
whose every run diverged gets one row saying so and no numbers.

The store is opened read-only (a store in a read-only folder can be
reported), and the report never replaces the store, a protected input, or a
file noisewise did not write (:mod:`noisewise._core.files`); the page carries a
``generator`` mark so a later report may replace it.

The package's rooms: :mod:`~noisewise.study.report.content` reads the store
into plain data, :mod:`~noisewise.study.report.figures` draws it,
:mod:`~noisewise.study.report.page` renders the jinja2 templates in
``templates/`` (autoescaped: study, arm and metric names are user text).
Statistics come from :mod:`noisewise.study.stats`; a study with one seed per
arm gets the means and a plain statement that no interval or test is possible.

Example:
    >>> import os, tempfile
    >>> from noisewise.study import Study
    >>> from noisewise.study.report import write_report
    >>> folder = tempfile.mkdtemp()
    >>> outcome = Study({"study": {"name": "demo", "seeds": 2},
    ...                  "data": {"name": "circles"},
    ...                  "model": {"name": "mlp", "hidden": [8]},
    ...                  "train": {"epochs": 3},
    ...                  "arms": [{"name": "baseline"}]}).run(
    ...     store=os.path.join(folder, "demo.db"), quiet=True)
    >>> path = write_report(outcome.store, "demo", os.path.join(folder, "demo.html"))
    >>> path.name
    'demo.html'
"""

import datetime
import json
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from noisewise._core.files import OutputRefused, atomic_write, check_output, safe_name
from noisewise.study import stats
from noisewise.study.report import content, verdict
from noisewise.study.report import robustness as robust_terms
from noisewise.study.report.page import render
from noisewise.study.report.spec_toml import spec_to_toml
from noisewise.study.store import Store, StoreError

if TYPE_CHECKING:  # for the annotation only: the runner imports the training stack
    from noisewise.study.runner import StudyRun

__all__ = ["default_report_path", "open_store", "report_after_run", "spec_to_toml",
           "write_report"]

PathLike = str | os.PathLike


def open_store(path: PathLike) -> Store:
    """The store at ``path`` opened read-only: never created, never modified.

    Raises:
        StoreError: No such file, or it is not a noisewise store.
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise StoreError(f"{path}: no such store (run a study first, or pass --store)")
    return Store(path, readonly=True)


def default_report_path(store_path: PathLike, study_name: str) -> Path:
    """``<store folder>/<store stem>-<study>.html``, the study name made file-safe.

    The name part comes from :func:`noisewise._core.files.safe_name`: names that
    had to change carry a hash of the exact name, so two studies never share
    a report file, and long names are capped.
    """
    store_path = Path(os.fspath(store_path))
    stem = store_path.stem if len(store_path.stem) <= 100 else safe_name(store_path.stem, 100)
    return store_path.with_name(f"{stem}-{safe_name(study_name)}.html")


def write_report(store_path: PathLike, study_name: str | None = None,
                 out_path: PathLike | None = None, *, metric: str | None = None,
                 force: bool = False, protect: Iterable[PathLike] = ()) -> Path:
    """Write the HTML report of a stored study.

    Args:
        store_path: The study store (it must exist; it is opened, never created).
        study_name: Study name (default: the latest study in the store).
        out_path: HTML file to write (default :func:`default_report_path`,
            next to the store). Its folder is created if missing.
        metric: Final metric of the table and plots (default ``val_<first
            metric of the spec>``, e.g. ``val_accuracy``).
        force: Replace ``out_path`` even if noisewise did not write it (the
            store and ``protect`` are never replaced).
        protect: More files never to write onto (e.g. the spec file).

    Returns:
        The path of the report (:class:`pathlib.Path`).

    Raises:
        StoreError: The store is missing or not a store, or has no such study.
        UnknownMetric: The study holds no ``metric`` (a ValueError); checked
            before anything is written, so an existing report stays as it is.
        OutputRefused: ``out_path`` is the store, a protected file, or a file
            noisewise did not write (without ``force``).
    """
    store_path = Path(os.fspath(store_path))
    with open_store(store_path) as store:
        d = content.load(store, study_name, metric)  # None: the latest study
    info, metric = d["info"], d["metric"]
    out = Path(os.fspath(out_path)) if out_path else default_report_path(store_path, info["name"])
    # Before the figures are drawn: a refused target costs nothing.
    check_output(out, protect=[("store", store_path), *(("input", p) for p in protect)],
                 force=force)
    arms_all = [a["name"] for a in info["arms"]]
    summary, comparison, grids = {}, {}, {}
    reference = info.get("reference")
    if d["runs"]:
        summary = stats.summarize(d["runs"], metric)
        reference = reference if reference in summary else next(iter(summary))
        comparison = stats.compare(d["all"], reference, metric)  # notes name lost seeds
        grids = stats.grid_best(d["runs"], metric)
    arms = [a for a in arms_all if a in summary]
    seeds = d["spec"].get("study", {}).get("seeds") or 0
    environment = content.environment(d)
    rows, lost = content.table_rows(arms, summary, d["counts"])
    higher = stats.is_higher_better(metric)
    improving = verdict.still_improving(content.metric_curves(d["history"], arms, metric),
                                        metric, higher)
    compared = content.compared(arms, comparison)
    digits = verdict.decimals([(c.ci_high - c.ci_low) / 2 for c in compared
                               if verdict.finite(c.ci_low) and verdict.finite(c.ci_high)])
    text = render(
        info=info, spec=d["spec"], metric=metric, arms_all=arms_all, arms=arms,
        summary=summary, comparison=comparison, grids=grids, reference=reference,
        figures=content.figures(d, arms, summary, grids, reference, comparison),
        sentences=[(c.arm, verdict.verdict(c), verdict.sentence(c, metric, digits))
                   for c in compared],
        tests=dict(getattr(stats, "TESTS", None) or {}),
        verdicts={c.arm: verdict.verdict(c) for c in compared},
        reasons={c.arm: verdict.no_test_reason(c) for c in compared},
        wilcoxon_reasons={c.arm: verdict.no_test_reason(c, "wilcoxon") for c in compared},
        grid_texts=content.grid_texts(
            grids, summary[reference].mean if reference in summary else math.nan),
        rows=rows, lost=lost, notes=content.notes(arms, summary, comparison, reference),
        warnings=content.warnings(
            counts=d["counts"], reference=reference, stored_reference=info.get("reference"),
            n_done=len(d["runs"]), arms=arms, summary=summary, failed=d["failed"],
            environment=environment, expected=len(arms_all) * seeds, comparison=comparison,
            improving=improving),
        has_robustness=bool(d["spec"].get("robustness")),
        robustness=robust_terms.settings(d["runs"]),
        audit=content.audit_rows(d["audit"]),
        counts=d["counts"], n_done=len(d["runs"]), seeds=seeds, expected=len(arms_all) * seeds,
        environment=environment, store=str(store_path.resolve()),
        higher_is_better=higher,
        generated=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    return atomic_write(out, text)  # a reader never sees half a report


def report_after_run(outcome: "StudyRun", out_path: PathLike | None = None, *, metric: str | None = None,
                     stream: IO[str] | Literal[False] | None = None,
                     protect: Iterable[PathLike] = ()) -> Path | None:
    """Write the report of a study just run and print its path.

    Args:
        outcome: The :class:`~noisewise.study.runner.StudyRun` that
            :meth:`Study.run` returned (its ``store`` and ``name`` are used).
        out_path: HTML file (default next to the store, see :func:`default_report_path`).
        metric: As in :func:`write_report`.
        stream: Where the line ``report: <path>`` goes (default ``sys.stderr``;
            False prints nothing).
        protect: Files never to write onto (e.g. the spec file).

    Returns:
        The report path, or None when the target holds a file noisewise did
        not write: it is left alone, and one line on ``stream`` (on stderr when
        ``stream`` is False) says so and how to write the report elsewhere.
    """
    try:
        path = write_report(outcome.store, outcome.name, out_path, metric=metric,
                            protect=protect)
    except OutputRefused as e:
        store = json.dumps(str(outcome.store)) if " " in str(outcome.store) else outcome.store
        print(f"noisewise: report not written: {e.path} {e.reason}; it is left as it is. "
              f"Write the report elsewhere with `noisewise report {json.dumps(outcome.name)} "
              f"--store {store} -o FILE`", file=stream or sys.stderr)
        return None
    if stream is not False:
        print(f"report: {path}", file=stream or sys.stderr)
    return path
