"""``noisewise run SPEC``: run (or resume) a study, print its summary, write its report."""

import sys

from noisewise.cli import _choices
from noisewise.cli._args import METRIC_HELP, positive, seconds
from noisewise.cli._errors import EXIT_FAILED, EXIT_OK, UsageError, os_error
from noisewise.cli._output import console, print_study, printable
from noisewise.study.defaults import DEFAULT_STORE, check_metric


def add_parser(subparsers):
    p = subparsers.add_parser("run", help="run (or resume) a study and print its summary")
    p.add_argument("spec", help="study spec (TOML)")
    p.add_argument("--store", help=f"store file (default: study.store or ./{DEFAULT_STORE})")
    p.add_argument("--seeds", type=positive, help="override study.seeds (quick runs)")
    p.add_argument("--epochs", type=positive, help="override train.epochs (quick runs)")
    p.add_argument("--new", action="store_true",
                   help="keep the stored study under another name and start anew (without "
                        "it, a study grows: stored runs the spec still asks for are reused)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--executor", choices=_choices.EXECUTORS, default="auto",
                   help="auto: train the replicas of an arm together in one compiled "
                        "program on JAX when every layer allows it, else one fit per run "
                        "(default); vmap: insist on that; fit: one fit per run")
    p.add_argument("--workers", type=positive,
                   help="processes the vectorised executor trains in, one core each "
                        "(default 1; for machines with many cores)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="train on Dask distributed: local:N (a local cluster of N worker "
                        "processes), tcp://HOST:PORT (a running scheduler) or a scheduler "
                        "file (scheduler.json); needs noisewise[distributed]")
    p.add_argument("--claim-ttl", type=seconds, metavar="SECONDS",
                   help="seconds a claim on a run lives without a heartbeat (default 60): "
                        "processes sharing a store claim each run before training it and "
                        "take over a claim whose process stopped")
    p.add_argument("--metric", help=METRIC_HELP)
    p.add_argument("--no-report", action="store_true",
                   help="do not write the HTML report next to the store")
    p.set_defaults(func=run)
    return p


def _executor(args):
    """The executor the arguments ask for: ``args.executor``, or a Dask executor for --cluster."""
    if args.cluster is None:
        return args.executor
    for flag, given in (("--executor", args.executor != "auto"), ("--workers", args.workers)):
        if given:
            raise UsageError(f"noisewise run: {flag} does not apply with --cluster (the cluster's "
                             f"workers train, vectorised when the study allows it). Received: "
                             f"--cluster {args.cluster} {flag} "
                             f"{args.executor if flag == '--executor' else args.workers}")
    from noisewise.study.execute.dask import DaskExecutor

    try:
        return DaskExecutor(args.cluster, log=None if args.quiet else _log)
    except ValueError as e:
        raise UsageError(f"noisewise run: --cluster: {e}") from None


def _log(line):
    print(printable(f"noisewise: {line}"), file=sys.stderr)


def _every_run_diverged(c):
    at = f", first at epoch {c.first_diverged_epoch}" if c.first_diverged_epoch else ""
    return (f"noisewise: every run of arm {c.arm!r} diverged ({c.diverged} runs{at}): "
            "its results are not comparable")


def run(args):
    # Start-up time: the study engine (Keras and the backend) loads only to run a study.
    from noisewise.study import Study, load_spec
    from noisewise.study.report import open_store

    if args.executor == "fit" and args.workers not in (None, 1):
        raise UsageError(f"noisewise run: --workers applies to the vectorised executor; "
                         f"--executor fit trains one run at a time in this process. Received: "
                         f"--workers {args.workers} --executor fit (drop --workers, or use "
                         "--executor auto or vmap)")
    spec = load_spec(args.spec, seeds=args.seeds, epochs=args.epochs)
    if args.metric:
        # Before training: the compiled metric names follow from the spec, so an
        # unknown name costs no training (with a [robustness] table the names are
        # not all known yet; the table checks it against the stored runs).
        check_metric([], args.metric, spec.name, spec.to_dict())
    executor = _executor(args)
    try:
        outcome = Study(spec).run(store=args.store, new=args.new, quiet=args.quiet,
                                  executor=executor, workers=args.workers,
                                  claim_ttl=args.claim_ttl)
    finally:
        if hasattr(executor, "close"):
            executor.close()
    err = console(stderr=True)
    if not args.quiet:
        diverged = getattr(outcome, "diverged", 0)
        kept = getattr(outcome, "kept", 0)
        elsewhere = getattr(outcome, "elsewhere", 0)
        err.print(printable(f"{outcome.ran} run(s) trained"
                            + (f" ({diverged} diverged)" if diverged else "")
                            + (f", {elsewhere} by other processes sharing the store"
                               if elsewhere else "")
                            + f", {outcome.skipped} reused from the store"
                            + (f" ({kept} more stored, not in this spec)" if kept else "")
                            + f", {outcome.wall_s:.1f} s; store {outcome.store}"), markup=False)
    with open_store(outcome.store) as store:
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
    from noisewise.study.report import report_after_run  # start-up time, as in run

    try:
        report_after_run(outcome, metric=args.metric, stream=False if args.quiet else None,
                         protect=[args.spec])
    except OSError as e:
        print(printable(f"noisewise: report not written ({os_error(e)}); the runs are stored: "
                        f"write it with `noisewise report --store {outcome.store} -o FILE`"),
              file=sys.stderr)
