"""The ``noisewise`` command line.

Subcommands::

    noisewise run SPEC [--store PATH] [--seeds N] [--epochs N] [--new] [--quiet] [--metric M]
                  [--executor auto|vmap|fit] [--workers N] [--no-report]
    noisewise show [STUDY] [--store PATH] [--metric M]
    noisewise list [--store PATH]
    noisewise export STUDY --format csv|json|tensorboard|mlflow [-o FILE] [--store PATH] [--history]
    noisewise report [STUDY] [--store PATH] [-o FILE]
    noisewise robustness MODEL.keras --data NAME|FILE.npz ...
    noisewise augment preview SPEC --image FILE|--dataset NAME -o grid.png

The store defaults to ``study.store`` of the spec (``run`` only, relative to
the spec file) or ``./noisewise.db``. ``--seeds``/``--epochs`` override the
spec for a quick run; the study is then stored under its own name, e.g.
``circles:seeds=2,epochs=50``, and never mixes with the full study.

Exit codes: 0 success, 1 runtime failure (some runs failed, or an unexpected
error), 2 bad usage or invalid spec, 3 store error (not a noisewise store, or
the study exists with a different spec). Messages go to stderr, results to
stdout.

Each subcommand is a small ``cmd_<name>(args)`` function registered in
:func:`build_parser`, so more (report, augment, robustness) slot in beside them.
"""

import argparse
import csv
import json
import math
import os
import sys

# TensorFlow's C++ start-up chatter would bury the table; the user can still set it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE = 0, 1, 2, 3
DEFAULT_STORE = "noisewise.db"


class UsageError(Exception):
    """Bad arguments (exit code 2)."""


def _console(stderr=False):
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:  # files and pipes: do not squeeze tables to 80 columns
        console = Console(stderr=stderr, width=200)
    return console


def _open_existing(path):
    from noisewise.study.store import Store, StoreError

    path = path or DEFAULT_STORE
    if not os.path.exists(path):
        raise StoreError(f"{path}: no such store (run a study first, or pass --store)")
    return Store(path)


def _default_metric(spec):
    metrics = (spec.get("train") or {}).get("metrics") or []
    return f"val_{metrics[0]}" if metrics else "val_loss"


def _fmt(value, digits=4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _p(value):
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.2g}" if value >= 0.001 else "<0.001"


def print_study(store, name, metric=None, console=None):
    """Print the summary table of one study from the store (the store is the truth)."""
    from rich.markup import escape
    from rich.table import Table

    from noisewise.study import stats

    console = console or _console()
    info = store.study(name)
    spec = info["spec"]
    metric = metric or _default_metric(spec)
    runs = store.runs(info["id"])
    arms = [a["name"] for a in info["arms"]]
    seeds = spec.get("study", {}).get("seeds")
    failed = len(store.runs(info["id"], status="failed"))
    title = f"{info['name']}: {metric} over {len(runs)} of {len(arms) * (seeds or 0)} runs"
    if failed:
        title += f" ({failed} failed)"
    if not runs:
        console.print(f"{title}: no finished runs yet", markup=False)
        return
    summary = stats.summarize(runs, metric)
    reference = info.get("reference")
    done_arms = [a for a in arms if a in summary]
    comparison = stats.compare(runs, reference if reference in summary else None, metric)
    table = Table(title=escape(title), title_justify="left")
    for column in ("arm", "n", "mean", "95% CI", "diff vs ref", "diff 95% CI",
                   "p (t, Holm)", "p (Wilcoxon, Holm)", "P(better)"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    notes = {}  # note -> arms, so a note shared by every arm is printed once
    for arm in done_arms:
        s = summary[arm]
        ci = escape(f"[{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]") if not math.isnan(s.ci_low) else "-"
        c = comparison.get(arm)
        if c is None:
            table.add_row(escape(arm), str(s.n), _fmt(s.mean), ci, "reference", "", "", "", "")
        else:
            dci = (escape(f"[{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]")
                   if not math.isnan(c.ci_low) else "-")
            table.add_row(escape(arm), str(s.n), _fmt(s.mean), ci, f"{c.mean_diff:+.4f}", dci,
                          _p(c.p_ttest_holm), _p(c.p_wilcoxon_holm), _fmt(c.prob_better, 2))
        for note in (c.note if c else None, s.note):
            for part in (note or "").split("; "):
                if part:
                    notes.setdefault(part, []).append(arm)
    console.print(table)
    for parent, g in stats.grid_best(runs, metric).items():
        if g.best is not None:
            ci = f"[{_fmt(g.ci_low)}, {_fmt(g.ci_high)}]" if not math.isnan(g.ci_low) else ""
            console.print(f"grid {parent}: best level {g.best}, mean {_fmt(g.best_mean)} {ci}; "
                          f"P(best) = {g.p_best[g.best]:.2f} over {g.n_boot} bootstrap "
                          "resamples of replicas (the best of several means is optimistic)",
                          markup=False)
    compared = [a for a in done_arms if a in comparison]
    for note, noted in notes.items():
        who = ("all arms" if len(noted) == len(done_arms) else
               "every arm vs the reference" if noted == compared else ", ".join(noted))
        console.print(f"note ({who}): {note}", style="dim", markup=False)


# -- subcommands --------------------------------------------------------------
def cmd_run(args):
    from noisewise.study import Store, Study, load_spec

    spec = load_spec(args.spec, seeds=args.seeds, epochs=args.epochs)
    outcome = Study(spec).run(store=args.store, new=args.new, quiet=args.quiet,
                              executor=args.executor, workers=args.workers)
    err = _console(stderr=True)
    if not args.quiet:
        err.print(f"{outcome.ran} run(s) trained, {outcome.skipped} already stored, "
                  f"{outcome.wall_s:.1f} s; store {outcome.store}", markup=False)
    with Store(outcome.store) as store:
        print_study(store, spec.name, args.metric)
    if not args.no_report:
        from noisewise.study.report import report_after_run

        report_after_run(outcome, metric=args.metric, stream=False if args.quiet else None)
    if outcome.failed:
        err.print(f"noisewise: {outcome.failed} run(s) failed; their errors are in the store "
                  f"(`noisewise export {spec.name} --format json`). Rerun to retry them.",
                  markup=False)
        return EXIT_FAILED
    return EXIT_OK


def _study_name(store, name):
    """``name`` if the store has it (default: the latest study), else a usage error."""
    names = [s["name"] for s in store.studies()]
    if not names:
        raise UsageError(f"{store.path}: holds no studies")
    if name is None:
        return names[-1]
    if name not in names:
        raise UsageError(f"no study {name!r} in {store.path}; studies: {', '.join(names)}")
    return name


def cmd_show(args):
    with _open_existing(args.store) as store:
        print_study(store, _study_name(store, args.study), args.metric)
    return EXIT_OK


def cmd_list(args):
    from rich.markup import escape
    from rich.table import Table

    with _open_existing(args.store) as store:
        table = Table(title=escape(str(store.path)), title_justify="left")
        for column in ("study", "arms", "done", "failed", "expected", "hash", "created"):
            table.add_column(column, justify="left" if column in ("study", "created") else "right")
        for s in store.studies():
            info = store.study(s["id"])
            seeds = info["spec"].get("study", {}).get("seeds") or 0
            table.add_row(escape(s["name"]), str(len(info["arms"])), str(s["n_done"]),
                          str(s["n_failed"]), str(len(info["arms"]) * seeds),
                          s["spec_hash"][:12], s["created_at"])
        _console().print(table)
    return EXIT_OK


def _records(store, name):
    info = store.study(name)
    curves = {r["run_id"]: r for r in store.history(info["id"], status=None)}
    for run in store.runs(info["id"], status=None):
        curve = curves.get(run["id"], {"history": {}, "epochs": {}})
        yield info["name"], run, {
            metric: {"epoch": curve["epochs"][metric].tolist(), "value": values.tolist()}
            for metric, values in curve["history"].items()
        }


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def cmd_export(args):
    from noisewise.study import exports

    if args.format in exports.FORMATS:
        return exports.cmd_export(args)
    with _open_existing(args.store) as store:
        records = list(_records(store, _study_name(store, args.study)))
    out = open(args.output, "w", newline="") if args.output else sys.stdout
    try:
        if args.format == "json":
            rows = [{"study": study, "arm": r["arm"], "replica": r["replica"], "seed": r["seed"],
                     "status": r["status"], "backend": r["backend"], "versions": r["versions"],
                     "wall_s": r["wall_s"], "final": r["final"], "history": history,
                     "error": r["error"]} for study, r, history in records]
            json.dump(_json_safe(rows), out, indent=1, allow_nan=False)
            out.write("\n")
        elif args.history:
            writer = csv.writer(out)
            writer.writerow(["study", "arm", "replica", "metric", "epoch", "value"])
            for study, r, history in records:
                for metric, curve in sorted(history.items()):
                    for epoch, value in zip(curve["epoch"], curve["value"]):
                        writer.writerow([study, r["arm"], r["replica"], metric, epoch, value])
        else:
            finals = sorted({k for _, r, _ in records for k in r["final"]})
            writer = csv.writer(out)
            writer.writerow(["study", "arm", "replica", "seed", "status", "backend", "wall_s",
                             *finals])
            for study, r, _ in records:
                writer.writerow([study, r["arm"], r["replica"], r["seed"], r["status"],
                                 r["backend"], r["wall_s"], *(r["final"].get(k, "")
                                                              for k in finals)])
    finally:
        if args.output:
            out.close()
    return EXIT_OK


# -- parser ---------------------------------------------------------------------
_EXPORT_FORMATS = ("tensorboard", "mlflow")  # noisewise.study.exports.FORMATS, without importing it


def _add_export_arguments(parser):
    from noisewise.study.exports import add_cli_arguments

    add_cli_arguments(parser)

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 itself; keep the message on stderr
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer. Received: {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1. Received: {value}")
    return value


def build_parser():
    parser = _Parser(prog="noisewise", description="Noise studies for Keras 3 models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run (or resume) a study and print its summary")
    run.add_argument("spec", help="study spec (TOML)")
    run.add_argument("--store", help="store file (default: study.store or ./noisewise.db)")
    run.add_argument("--seeds", type=_positive, help="override study.seeds (quick runs)")
    run.add_argument("--epochs", type=_positive, help="override train.epochs (quick runs)")
    run.add_argument("--new", action="store_true",
                     help="the spec changed: keep the old study under another name, start anew")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--executor", choices=("auto", "vmap", "fit"), default="auto",
                     help="auto: train the replicas of an arm together in one compiled "
                          "program on JAX when every layer allows it, else one fit per run "
                          "(default); vmap: insist on that; fit: one fit per run")
    run.add_argument("--workers", type=_positive,
                     help="processes the vectorised executor trains in, one core each "
                          "(default 1; for machines with many cores)")
    run.add_argument("--metric", help="metric of the table (default val_<first metric>)")
    run.add_argument("--no-report", action="store_true",
                     help="do not write the HTML report next to the store")
    run.set_defaults(func=cmd_run)

    show = sub.add_parser("show", help="summary table of a stored study")
    show.add_argument("study", nargs="?", help="study name (default: the latest)")
    show.add_argument("--store", help="store file (default ./noisewise.db)")
    show.add_argument("--metric", help="metric of the table (default val_<first metric>)")
    show.set_defaults(func=cmd_show)

    lst = sub.add_parser("list", help="studies in a store")
    lst.add_argument("--store", help="store file (default ./noisewise.db)")
    lst.set_defaults(func=cmd_list)

    export = sub.add_parser("export", help="one record per run (CSV, JSON), or to TensorBoard "
                            "or MLflow")
    export.add_argument("study", help="study name")
    export.add_argument("--format", choices=("csv", "json", *_EXPORT_FORMATS), required=True)
    export.add_argument("-o", "--output", help="file (default stdout); tensorboard: log folder")
    export.add_argument("--store", help="store file (default ./noisewise.db)")
    export.add_argument("--history", action="store_true",
                        help="CSV: learning curves in long form (study, arm, replica, metric, "
                             "epoch, value) instead of final metrics")
    export.set_defaults(func=cmd_export)
    _add_export_arguments(export)

    from noisewise.augment.preview import add_cli as add_augment
    from noisewise.robust.evaluate import add_cli as add_robustness
    from noisewise.study.report import add_cli as add_report

    add_report(sub)
    add_robustness(sub)
    add_augment(sub)
    return parser


def main(argv=None):
    """Entry point of the ``noisewise`` console script; returns the exit code."""
    from noisewise.study.spec import SpecError
    from noisewise.study.store import StoreError

    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UsageError as e:
        print(f"{e}", file=sys.stderr)
        return EXIT_USAGE
    except SpecError as e:
        print(f"noisewise: invalid spec: {e}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as e:
        print(f"noisewise: store error: {e}", file=sys.stderr)
        return EXIT_STORE
    except KeyboardInterrupt:
        print("noisewise: interrupted; finished runs are stored, rerun to resume",
              file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 -- exit code 1 with the message, not a traceback
        print(f"noisewise: error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
