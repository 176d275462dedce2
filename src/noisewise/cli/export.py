"""``noisewise export STUDY --format csv|json|tensorboard|mlflow``: a stored study elsewhere.

CSV and JSON go to stdout or ``-o FILE`` (one record per run, any status);
TensorBoard writes event files into the ``-o`` log folder, MLflow into a
tracking URI. Nothing is ever written into the store the command reads.
"""

import os
import sys
from pathlib import Path

from noisewise._core.files import OutputRefused, atomic_open, check_output
from noisewise.cli import _choices
from noisewise.cli._args import STORE_HELP
from noisewise.cli._errors import EXIT_OK, UsageError
from noisewise.cli._stores import open_existing, resolve_study
from noisewise.study.defaults import DEFAULT_STORE, check_metric


def add_parser(subparsers):
    p = subparsers.add_parser("export", help="one record per run (CSV, JSON), or to TensorBoard "
                              "or MLflow")
    p.add_argument("study", help="study name")
    p.add_argument("--format", choices=_choices.RECORD_FORMATS + _choices.EXPORT_FORMATS,
                   required=True)
    p.add_argument("-o", "--output", help="file (default stdout); tensorboard: log folder")
    p.add_argument("--force", action="store_true",
                   help="csv/json: replace an existing -o file (never the store)")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--history", action="store_true",
                   help="CSV: learning curves in long form (study, arm, replica, metric, "
                        "epoch, value) instead of final metrics")
    p.add_argument("--tracking-uri", help="mlflow: tracking URI (default "
                   "$MLFLOW_TRACKING_URI, else sqlite next to the store)")
    p.add_argument("--experiment", help="mlflow: experiment name (default: the study)")
    p.add_argument("--metric", help="mlflow: the final metric whose mean and 95%% CI each "
                   "arm's run carries (default val_<first metric>)")
    p.add_argument("--overwrite", action="store_true",
                   help="tensorboard/mlflow: replace what an earlier export wrote")
    p.set_defaults(func=export)
    return p


def export(args):
    # Start-up time: the exports need the study package; TensorBoard and MLflow load later still.
    from noisewise.study import exports

    resolve_study(args)
    if args.metric is not None:
        _check_metric(args)
    store = args.store or DEFAULT_STORE
    if args.format == "tensorboard":
        if args.output:
            _check_target(args.output, store, "TensorBoard event files")
        logdir = exports.export_tensorboard(store, args.study, args.output,
                                            overwrite=args.overwrite)
        print(f"tensorboard --logdir {logdir}")
    elif args.format == "mlflow":
        uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
        if uri.startswith("sqlite:///"):  # MLflow would create its tables in that file
            _check_target(uri[len("sqlite:///"):], store, "MLflow tables")
        out = exports.export_mlflow(store, args.study, args.tracking_uri, args.experiment,
                                    metric=args.metric, overwrite=args.overwrite)
        print(f"mlflow: experiment {out['experiment_id']} at {out['tracking_uri']} "
              f"({len(out['parents'])} arm runs, {len(out['children'])} seed runs)")
    elif args.output:
        # CSV and JSON cannot carry a mark: an existing file is replaced only with --force.
        target = check_output(args.output, protect=[("store", store)], force=args.force,
                              ours=None)
        with atomic_open(target, "w", newline="") as out:
            exports.write_records(store, args.study, out, args.format, history=args.history)
    else:
        exports.write_records(store, args.study, sys.stdout, args.format, history=args.history)
    return EXIT_OK


def _check_metric(args):
    """``--metric`` names a metric of the study (read-only), and is one MLflow uses."""
    if args.format != "mlflow":
        raise UsageError(f"noisewise export: --metric applies to --format mlflow (csv, json "
                         f"and tensorboard carry every metric). Received: --metric "
                         f"{args.metric} --format {args.format}")
    with open_existing(args.store) as store:
        info = store.study(args.study)
        check_metric(store.runs(info["id"], status=None), args.metric, info["name"], info["spec"])


def _check_target(path, store, what):
    """Refuse an export target that is the store (or its side file) or an existing file."""
    path = Path(os.fspath(path))
    for source in (store, f"{store}-wal", f"{store}-shm", f"{store}-journal"):
        if path.resolve() == Path(source).resolve() or (
                path.exists() and os.path.exists(source) and os.path.samefile(path, source)):
            raise OutputRefused(path, "is the store this command reads",
                                f"refusing to write {what} into it: choose another target")
    if what == "TensorBoard event files" and path.exists() and not path.is_dir():
        raise OutputRefused(path, "exists and is not a folder",
                            "give a log folder for the event files")
