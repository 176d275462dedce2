"""The ``noisewise`` command line.

Subcommands::

    noisewise run SPEC [--store PATH] [--seeds N] [--epochs N] [--new] [--quiet] [--metric M]
                  [--executor auto|vmap|fit] [--workers N] [--no-report]
    noisewise show [STUDY] [--store PATH] [--metric M]
    noisewise list [--store PATH]
    noisewise export STUDY --format csv|json|tensorboard|mlflow [-o FILE] [--force]
                     [--store PATH] [--history]
    noisewise report [STUDY] [--store PATH] [-o FILE] [--force]
    noisewise robustness MODEL.keras --data NAME|FILE.npz ... [--json FILE] [--force]
    noisewise augment preview SPEC --image FILE|--dataset NAME -o grid.png [--force]

The store defaults to ``study.store`` of the spec (``run`` only, relative to
the spec file) or ``./noisewise.db``. ``--seeds``/``--epochs`` override the
spec for a quick run; the study is then stored under its own name, e.g.
``circles:seeds=2,epochs=50``, and never mixes with the full study.

``show``, ``list``, ``export`` and ``report`` open the store read-only: they
never create or change one, and work on a store in a read-only folder.

Outputs never destroy inputs (:mod:`noisewise._files`): no command writes onto
the store, the spec, or any noisewise store or spec file, even with
``--force``; an existing file is replaced only if noisewise wrote it (an HTML
report or PNG preview carries a mark) or with ``--force``; every file is
written to a temporary file beside it and renamed into place. The report
``run`` writes beside the store is skipped, with one line saying so, when
that path holds someone else's file.

Diverged runs (the loss or a metric became NaN or infinite) are stored as
such and left out of every statistic; tables, reports and exports say how
many each arm lost, and ``run`` fails (exit 1) when every run of an arm
diverged.

Exit codes: 0 success, 1 runtime failure (some runs failed, every run of an
arm diverged, or an unexpected error), 2 bad usage, invalid spec or data, no
such study, or a refused output file, 3 store error (not a noisewise store,
unwritable, or the study exists with a different spec, data or code), 130
interrupted. Every failure is one line on stderr; ``noisewise --debug ...``
adds the traceback. Messages go to stderr, results to stdout; output piped
into a reader that stops early (``| head``) ends quietly.

Each subcommand is a small ``cmd_<name>(args)`` function registered in
:func:`build_parser`, so more (report, augment, robustness) slot in beside them.
"""

import argparse
import errno
import math
import os
import sys
import unicodedata

from noisewise._files import OutputRefused, atomic_open, check_output

# TensorFlow's C++ start-up chatter would bury the table; the user can still set it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130
DEFAULT_STORE = "noisewise.db"


class UsageError(Exception):
    """Bad arguments (exit code 2)."""


_HIDDEN = ("Cc", "Cf", "Zl", "Zp")  # control, format (bidi, zero-width), line breaks


def printable(text, keep_newlines=False):
    """``text`` with control and format characters written as escapes (``\\x1b``).

    Names come from specs and stores: an ANSI escape or a bidi override in a
    study name must be shown, never sent to the terminal to act.
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(
        ch if (ch == "\n" and keep_newlines) or unicodedata.category(ch) not in _HIDDEN
        else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _markup(text):
    from rich.markup import escape

    return escape(printable(text))


def _console(stderr=False):
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:  # files and pipes: do not squeeze tables to 80 columns
        console = Console(stderr=stderr, width=200)
    return console


def _open_existing(path):
    """The store, read-only: show, list, export and report never create or change one."""
    from noisewise.study.report import open_store

    return open_store(path or DEFAULT_STORE)


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


def _title(info, metric, counts, arms, seeds):
    done = sum(c.done for c in counts.values())
    title = f"{info['name']}: {metric} over {done} of {len(arms) * (seeds or 0)} runs"
    lost = [f"{n} {what}" for n, what in (
        (sum(c.diverged for c in counts.values()), "diverged"),
        (sum(c.failed for c in counts.values()), "failed")) if n]
    return title + (f" ({', '.join(lost)})" if lost else "")


def print_study(store, name, metric=None, console=None):
    """Print the summary table of one study from the store (the store is the truth).

    Diverged and failed runs are left out of the statistics; a ``lost`` column
    says how many each arm lost, and an arm whose every run diverged gets a row
    saying so and no numbers.

    Returns:
        ``{arm: RunCounts}`` (:func:`noisewise.study.stats.run_counts`).
    """
    from rich.table import Table

    from noisewise.study import stats

    console = console or _console()
    info = store.study(name)
    spec = info["spec"]
    metric = metric or _default_metric(spec)
    records = store.runs(info["id"], status=None)
    counts = stats.run_counts(records)
    runs = [r for r in records if stats.run_status(r) == "done"]
    arms = [a["name"] for a in info["arms"]]
    title = _title(info, metric, counts, arms, spec.get("study", {}).get("seeds"))
    if not runs:
        console.print(printable(f"{title}: no finished runs" + (
            "" if any(c.diverged for c in counts.values()) else " yet")), markup=False)
        _print_lost(console, counts)
        return counts
    summary = stats.summarize(runs, metric)
    reference = info.get("reference")
    comparison = stats.compare(records, reference if reference in summary else None, metric)
    lost = any(c.lost for c in counts.values())
    table = Table(title=_markup(title), title_justify="left")
    for column in ("arm", "n", "mean", "95% CI", "diff vs ref", "diff 95% CI",
                   "p (t, Holm)", "p (Wilcoxon, Holm)", "P(better)") + ("lost",) * lost:
        table.add_column(column, justify="left" if column in ("arm", "lost") else "right")
    notes = {}  # note -> arms, so a note shared by every arm is printed once
    done_arms = [a for a in arms if a in summary]
    for arm in arms:
        c_arm = counts.get(arm)
        extra = [_markup(c_arm.text()) if c_arm else ""] * lost
        if arm not in summary:
            if c_arm is not None and c_arm.all_diverged:
                table.add_row(_markup(arm), "0", *["-"] * 7,
                              _markup(f"all {c_arm.diverged} diverged"))
            continue
        s = summary[arm]
        ci = _markup(f"[{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]") if not math.isnan(s.ci_low) else "-"
        c = comparison.get(arm)
        if c is None:
            table.add_row(_markup(arm), str(s.n), _fmt(s.mean), ci, "reference", "", "", "", "",
                          *extra)
        else:
            dci = (_markup(f"[{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]")
                   if not math.isnan(c.ci_low) else "-")
            table.add_row(_markup(arm), str(s.n), _fmt(s.mean), ci, f"{c.mean_diff:+.4f}", dci,
                          _p(c.p_ttest_holm), _p(c.p_wilcoxon_holm), _fmt(c.prob_better, 2),
                          *extra)
        for note in (c.note if c else None, s.note):
            for part in (note or "").split("; "):
                if part:
                    notes.setdefault(part, []).append(arm)
    console.print(table)
    for parent, g in stats.grid_best(runs, metric).items():
        if g.best is not None:
            ci = f"[{_fmt(g.ci_low)}, {_fmt(g.ci_high)}]" if not math.isnan(g.ci_low) else ""
            console.print(printable(
                f"grid {parent}: best level {g.best}, mean {_fmt(g.best_mean)} {ci}; "
                f"P(best) = {g.p_best[g.best]:.2f} over {g.n_boot} bootstrap "
                "resamples of replicas (the best of several means is optimistic)"), markup=False)
    compared = [a for a in done_arms if a in comparison]
    for note, noted in notes.items():
        who = ("all arms" if len(noted) == len(done_arms) else
               "every arm vs the reference" if noted == compared else ", ".join(noted))
        console.print(printable(f"note ({who}): {note}"), style="dim", markup=False)
    if reference and reference not in summary and reference in counts:
        used = next(a for a in done_arms if a not in comparison)
        console.print(printable(f"note: the reference {reference!r} has no finished runs; "
                                f"arms are compared with {used!r}"), style="dim", markup=False)
    _print_lost(console, counts)
    return counts


def _print_lost(console, counts):
    for c in counts.values():
        if c.all_diverged:
            console.print(printable(f"arm {c.arm!r}: {c.all_diverged_text()}: no statistics"),
                          style="bold red", markup=False)


# -- subcommands --------------------------------------------------------------
def _every_run_diverged(c):
    at = f", first at epoch {c.first_diverged_epoch}" if c.first_diverged_epoch else ""
    return (f"noisewise: every run of arm {c.arm!r} diverged ({c.diverged} runs{at}): "
            "its results are not comparable")


def cmd_run(args):
    from noisewise.study import Study, load_spec

    if args.executor == "fit" and args.workers not in (None, 1):
        raise UsageError(f"noisewise run: --workers applies to the vectorised executor; "
                         f"--executor fit trains one run at a time in this process. Received: "
                         f"--workers {args.workers} --executor fit (drop --workers, or use "
                         "--executor auto or vmap)")
    spec = load_spec(args.spec, seeds=args.seeds, epochs=args.epochs)
    outcome = Study(spec).run(store=args.store, new=args.new, quiet=args.quiet,
                              executor=args.executor, workers=args.workers)
    err = _console(stderr=True)
    if not args.quiet:
        diverged = getattr(outcome, "diverged", 0)
        err.print(printable(f"{outcome.ran} run(s) trained"
                            + (f" ({diverged} diverged)" if diverged else "")
                            + f", {outcome.skipped} already stored, {outcome.wall_s:.1f} s; "
                            f"store {outcome.store}"), markup=False)
    with _open_existing(outcome.store) as store:
        counts = print_study(store, spec.name, args.metric)
    if not args.no_report:
        _report_after_run(outcome, args)
    code = EXIT_OK
    if outcome.failed:
        err.print(printable(f"noisewise: {outcome.failed} run(s) failed; their errors are in the "
                            f"store (`noisewise export {spec.name} --format json`). Rerun to "
                            "retry them."), markup=False)
        code = EXIT_FAILED
    for c in counts.values():
        if c.all_diverged:
            err.print(printable(_every_run_diverged(c)), markup=False)
            code = EXIT_FAILED
    return code


def _report_after_run(outcome, args):
    """The report beside the store; a failure to write it never fails the stored runs."""
    from noisewise.study.report import report_after_run

    try:
        report_after_run(outcome, metric=args.metric, stream=False if args.quiet else None,
                         protect=[args.spec])
    except OSError as e:
        print(printable(f"noisewise: report not written ({_os_error(e)}); the runs are stored: "
                        f"write it with `noisewise report --store {outcome.store} -o FILE`"),
              file=sys.stderr)


def _study_name(store, name):
    """``name`` if the store has it (default: the latest study), else a usage error."""
    names = [s["name"] for s in store.studies()]
    if not names:
        raise UsageError(f"noisewise: {store.path}: holds no studies")
    if name is None:
        return names[-1]
    if name not in names:
        raise UsageError(f"noisewise: no study {name!r} in {store.path}; studies: "
                         + ", ".join(map(repr, names)))
    return name


def _resolve_study(args):
    """Check the store and study of ``args`` (read-only), filling in the default study."""
    with _open_existing(args.store) as store:
        args.study = _study_name(store, args.study)
    return args.study


def cmd_show(args):
    with _open_existing(args.store) as store:
        print_study(store, _study_name(store, args.study), args.metric)
    return EXIT_OK


def cmd_list(args):
    from rich.table import Table

    from noisewise.study import stats

    with _open_existing(args.store) as store:
        table = Table(title=_markup(store.path), title_justify="left")
        for column in ("study", "arms", "done", "diverged", "failed", "expected", "hash",
                       "created"):
            table.add_column(column, justify="left" if column in ("study", "created") else "right")
        for s in store.studies():
            info = store.study(s["id"])
            counts = stats.run_counts(store.runs(s["id"], status=None)).values()
            seeds = info["spec"].get("study", {}).get("seeds") or 0
            table.add_row(_markup(s["name"]), str(len(info["arms"])),
                          *(str(sum(getattr(c, k) for c in counts))
                            for k in ("done", "diverged", "failed")),
                          str(len(info["arms"]) * seeds), s["spec_hash"][:12],
                          _markup(s["created_at"]))
        _console().print(table)
    return EXIT_OK


def cmd_export(args):
    from noisewise.study import exports

    _resolve_study(args)
    if args.format in exports.FORMATS:
        return exports.cmd_export(args)
    store = args.store or DEFAULT_STORE
    if args.output:
        # CSV and JSON cannot carry a mark: an existing file is replaced only with --force.
        target = check_output(args.output, protect=[("store", store)], force=args.force,
                              ours=None)
        with atomic_open(target, "w", newline="") as out:
            exports.write_records(store, args.study, out, args.format, history=args.history)
    else:
        exports.write_records(store, args.study, sys.stdout, args.format, history=args.history)
    return EXIT_OK


def cmd_report(args):
    from noisewise.study.report import cmd_report as report

    _resolve_study(args)  # no such study: exit 2, as show and export
    try:
        return report(args)
    except OSError as e:
        if args.output or isinstance(e, FileExistsError) or e.errno not in _UNWRITABLE:
            raise
        raise UsageError(f"noisewise: cannot write the report beside the store "
                         f"({_os_error(e)}); write it elsewhere with -o FILE") from e


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
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the traceback as well as the one-line message")
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
    export.add_argument("--force", action="store_true",
                        help="csv/json: replace an existing -o file (never the store)")
    export.add_argument("--store", help="store file (default ./noisewise.db)")
    export.add_argument("--history", action="store_true",
                        help="CSV: learning curves in long form (study, arm, replica, metric, "
                             "epoch, value) instead of final metrics")
    export.set_defaults(func=cmd_export)
    _add_export_arguments(export)

    from noisewise.augment.preview import add_cli as add_augment
    from noisewise.robust.evaluate import add_cli as add_robustness
    from noisewise.study.report import add_cli as add_report

    add_report(sub).set_defaults(func=cmd_report)
    add_robustness(sub)
    add_augment(sub)
    _debug_everywhere(parser)
    return parser


def _debug_everywhere(parser):
    """``--debug`` after a subcommand too (``noisewise show --debug``), not only before it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if not any("--debug" in a.option_strings for a in child._actions):
                    child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                       help=argparse.SUPPRESS)
                _debug_everywhere(child)


def _os_error(e):
    where = f"{e.filename}: " if getattr(e, "filename", None) else ""
    return where + (e.strerror or str(e))


_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


# Exceptions -> (exit code, line). The first matching class wins.
def _outcome(e):
    from noisewise.study.spec import SpecError
    from noisewise.study.store import StoreError

    if isinstance(e, UsageError):
        text = str(e)
        return EXIT_USAGE, text if text.startswith("noisewise") else f"noisewise: {text}"
    if isinstance(e, SpecError):
        return EXIT_USAGE, f"noisewise: invalid spec: {e}"
    if isinstance(e, OutputRefused):
        return EXIT_USAGE, f"noisewise: {e}"
    if isinstance(e, StoreError):
        return EXIT_STORE, f"noisewise: store error: {e}"
    if isinstance(e, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "noisewise: interrupted; finished runs are stored, rerun to resume"
    if isinstance(e, UnicodeDecodeError):
        return EXIT_USAGE, f"noisewise: a file is not text ({e})"
    import sqlite3

    if isinstance(e, sqlite3.Error):
        return EXIT_STORE, f"noisewise: store error: {type(e).__name__}: {e}"
    if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
                      FileExistsError)) or getattr(e, "errno", None) in _UNWRITABLE:
        return EXIT_USAGE, f"noisewise: {_os_error(e)}"  # a path the user named
    if isinstance(e, OSError):
        return EXIT_FAILED, f"noisewise: error: {_os_error(e)}"
    if isinstance(e, Exception):
        lines = str(e).strip().splitlines() or [""]
        more = " (more with --debug)" if len(lines) > 1 else ""
        return EXIT_FAILED, f"noisewise: error: {type(e).__name__}: {lines[0]}{more}"
    return None, None  # SystemExit and the like: not ours to map


def _quiet_stdout():
    """After a closed pipe (``noisewise show | head``), send what is left nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests)
        pass


def main(argv=None):
    """Entry point of the ``noisewise`` console script; returns the exit code.

    Every failure becomes one line on stderr and an exit code: 2 bad usage,
    spec, data or output path; 3 store error; 1 runs failed or an unexpected
    error; 130 interrupted. ``noisewise --debug ...`` prints the traceback too.
    """
    argv = sys.argv[1:] if argv is None else [os.fspath(a) for a in argv]
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except BrokenPipeError:  # the reader went away: nothing more to say, to anyone
        _quiet_stdout()
        return EXIT_OK
    except BaseException as e:  # noqa: BLE001 -- one exception -> exit code map
        code, line = _outcome(e)
        if code is None:
            raise
        if debug:
            import traceback

            traceback.print_exc()
        try:
            print(printable(line, keep_newlines=True), file=sys.stderr)
        except OSError:
            pass
        return code


if __name__ == "__main__":
    sys.exit(main())
