"""A self-contained HTML report of a stored study: tables, plots, and how to rerun it.

The report is made from the store alone (the store is the truth): a finished
study can be reported years later, from another process or machine. The HTML
file needs no network to open: CSS and the small scripts are inline and every
figure is an embedded PNG (matplotlib, Agg). It holds:

- the summary table (n, mean, 95% CI, paired difference to the reference with
  its CI, Holm-adjusted paired t-test and Wilcoxon p-values, P(better), the
  train-test gap), sortable by clicking a column header;
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
file noisewise did not write (:mod:`noisewise._files`); the page carries a
``generator`` mark so a later report may replace it.

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
import html
import inspect
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from noisewise._files import OutputRefused, atomic_write, check_output, safe_name
from noisewise.study import report_plots as plots
from noisewise.study import stats
from noisewise.study.report_html import page, spec_to_toml
from noisewise.study.store import Store, StoreError

DEFAULT_STORE = "noisewise.db"

__all__ = ["add_cli", "cmd_report", "default_report_path", "open_store", "report_after_run",
           "spec_to_toml", "write_report"]


def open_store(path):
    """The store at ``path`` opened read-only: never created, never modified.

    Raises:
        StoreError: No such file, or it is not a noisewise store.
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise StoreError(f"{path}: no such store (run a study first, or pass --store)")
    if "readonly" in inspect.signature(Store).parameters:
        return Store(path, readonly=True)
    # A Store without read-only opening would write a schema into an empty file.
    if path.stat().st_size == 0:
        raise StoreError(f"{path}: not a noisewise store (empty file); refusing to modify it")
    return Store(path)


def default_report_path(store_path, study_name):
    """``<store folder>/<store stem>-<study>.html``, the study name made file-safe.

    The name part comes from :func:`noisewise._files.safe_name`: names that
    had to change carry a hash of the exact name, so two studies never share
    a report file, and long names are capped.
    """
    store_path = Path(os.fspath(store_path))
    stem = store_path.stem if len(store_path.stem) <= 100 else safe_name(store_path.stem, 100)
    return store_path.with_name(f"{stem}-{safe_name(study_name)}.html")


def _latest(store):
    studies = store.studies()
    if not studies:
        raise StoreError(f"{store.path}: holds no studies")
    return studies[-1]["name"]


def _default_metric(spec):
    metrics = (spec.get("train") or {}).get("metrics") or []
    return f"val_{metrics[0]}" if metrics else "val_loss"


def _load(store, name, metric):
    """Everything the report shows, read from the store."""
    info = store.study(name)
    spec = info["spec"]
    metric = metric or _default_metric(spec)
    train = metric[4:] if metric.startswith("val_") else metric
    val = f"val_{train}"
    names = [train, val] + (["loss", "val_loss"] if train != "loss" else [])
    records = store.runs(info["id"], status=None)
    by_status = {s: [r for r in records if stats.run_status(r) == s]
                 for s in ("done", "diverged", "failed")}
    done = {r["id"] for r in by_status["done"]}
    history = store.history(info["id"], metrics=list(dict.fromkeys(names)))
    return {
        "info": info, "spec": spec, "metric": metric, "train": train,
        "runs": by_status["done"], "failed": by_status["failed"],
        "diverged": by_status["diverged"], "all": records,
        "counts": stats.run_counts(records),
        # Older stores hold diverged runs as done: their curves stay out too.
        "history": [h for h in history if h["run_id"] in done],
    }


def _series(history, arms, train, val):
    """``{arm: {"train": (epochs, matrix), "val": ...}}`` and ``{arm: (epochs, gap)}``."""
    curves, gaps = {}, {}
    for arm in arms:
        records = [r for r in history if r["arm"] == arm]
        out = {}
        for key, m in (("train", train), ("val", val)):
            got = [(r["epochs"][m], r["history"][m]) for r in records if m in r["history"]]
            if got:
                out[key] = plots.align(got)
        if out:
            curves[arm] = out
        pairs = []
        for r in records:
            if train in r["history"] and val in r["history"]:
                te, tv = r["epochs"][train], r["history"][train]
                ve, vv = r["epochs"][val], r["history"][val]
                common, ti, vi = np.intersect1d(te, ve, return_indices=True)
                pairs.append((common, tv[ti] - vv[vi]))
        if pairs:
            gaps[arm] = plots.align(pairs)
    return curves, gaps


def _figure(fig, alt, caption, figure_id):
    return {"uri": plots.to_data_uri(fig), "alt": alt, "caption": caption, "id": figure_id}


def _figures(d, arms, summary, grids, reference):
    metric, train = d["metric"], d["train"]
    values = {a: [r["final"].get(metric, math.nan) for r in d["runs"] if r["arm"] == a]
              for a in arms}
    estimates = {a: s.final for a, s in summary.items()}
    figures = {"grids": [], "main": []}
    # One seed per arm: say so in every caption that promises a band or an interval.
    single = " With one seed per arm there is no band and no interval." if summary and max(
        s.n for s in summary.values()) == 1 else ""
    for parent, g in grids.items():
        figures["grids"].append(_figure(
            plots.grid_figure(g, values, estimates, metric, reference),
            f"Final {metric} against the noise level of grid {parent}",
            f"Grid <b>{html.escape(parent)}</b>: final {metric} per seed (grey points), mean "
            "per level with its 95% CI band, the best level starred. Levels that span a "
            "decade or more are on a log axis." + single, f"grid-{len(figures['grids'])}"))
    if not arms:
        return figures
    figures["main"].append(_figure(
        plots.final_figure(arms, values, estimates, metric, reference),
        f"Final {metric} of every seed per arm, with the mean and its 95% CI",
        f"Final {metric}: every seed is a point (jittered vertically), the diamond is the "
        "mean and the bar its 95% CI (t distribution); the dashed line is the reference "
        "mean." + single, "final"))
    val = f"val_{train}"
    curves, gaps = _series(d["history"], arms, train, val)
    if curves:
        figures["main"].append(_figure(
            plots.curves_figure(arms, curves, train, reference),
            f"Learning curves of {train} and {val} per arm",
            f"Learning curves: mean {train} on the training split (solid) and {val} on the "
            "held-out split (dashed) over the seeds, with 95% bands; the dotted grey line "
            "is the reference's validation mean." + single, "curves"))
    if train != "loss":
        loss, _ = _series(d["history"], arms, "loss", "val_loss")
        if loss:
            figures["main"].append(_figure(
                plots.curves_figure(arms, loss, "loss", reference),
                "Learning curves of loss and val_loss per arm",
                "Loss curves: training loss (solid) and validation loss (dashed), mean and "
                "95% band over seeds. A validation loss that climbs while the training loss "
                "falls is overfitting." + single, "loss"))
    if gaps:
        figures["main"].append(_figure(
            plots.gap_figure(arms, gaps, train, reference),
            f"Train-test gap ({train} minus {val}) per arm over epochs",
            f"Train-test gap: {train} minus {val} on the validated epochs, mean and 95% "
            "band over seeds. Above zero the model does better on the data it trained on; "
            "a gap that keeps growing is the overfitting picture." + single, "gap"))
    return figures


def _environment(d):
    runs = d["all"]
    combos = {}
    for r in runs:
        key = json.dumps({"backend": r["backend"], **(r["versions"] or {})}, sort_keys=True)
        combos[key] = combos.get(key, 0) + 1
    seeds = sorted({(r["replica"], r["seed"]) for r in runs})
    walls = [r["wall_s"] for r in runs if r["wall_s"] is not None]
    started = [r["started_at"] for r in runs if r["started_at"]]
    finished = [r["finished_at"] for r in runs if r["finished_at"]]
    return {"combos": [(json.loads(k), n) for k, n in combos.items()], "seeds": seeds,
            "wall_s": sum(walls), "n_wall": len(walls),
            "first": min(started) if started else None,
            "last": max(finished) if finished else None}


def write_report(store_path, study_name=None, out_path=None, *, metric=None, force=False,
                 protect=()):
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
        OutputRefused: ``out_path`` is the store, a protected file, or a file
            noisewise did not write (without ``force``).
    """
    store_path = Path(os.fspath(store_path))
    with open_store(store_path) as store:
        name = study_name or _latest(store)
        d = _load(store, name, metric)
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
    figures = _figures(d, arms, summary, grids, reference)
    text = page(
        info=info, spec=d["spec"], metric=metric, arms_all=arms_all, arms=arms,
        summary=summary, comparison=comparison, grids=grids, reference=reference,
        figures=figures, failed=d["failed"], n_done=len(d["runs"]), counts=d["counts"],
        stored_reference=info.get("reference"),
        environment=_environment(d), store=str(store_path.resolve()),
        higher_is_better=stats.is_higher_better(metric),
        generated=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    return atomic_write(out, text)  # a reader never sees half a report


def report_after_run(outcome, out_path=None, *, metric=None, stream=None, protect=()):
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


def cmd_report(args):
    """``noisewise report [STUDY] [--store PATH] [-o FILE] [--metric M] [--force]``;
    prints the path."""
    path = write_report(args.store or DEFAULT_STORE, args.study, args.output, metric=args.metric,
                        force=getattr(args, "force", False))
    print(path)
    return 0


def add_cli(subparsers):
    """Add the ``report`` subcommand to the ``noisewise`` argparse subparsers."""
    p = subparsers.add_parser(
        "report", help="write a self-contained HTML report (tables, plots, spec) of a study")
    p.add_argument("study", nargs="?", help="study name (default: the latest in the store)")
    p.add_argument("--store", help=f"store file (default ./{DEFAULT_STORE})")
    p.add_argument("-o", "--output",
                   help="HTML file (default: <store folder>/<store name>-<study>.html)")
    p.add_argument("--metric", help="metric of the table and plots (default val_<first metric>)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing -o file that noisewise did not write (never the "
                        "store)")
    p.set_defaults(func=cmd_report)
    return p
