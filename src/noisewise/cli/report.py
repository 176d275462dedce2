"""``noisewise report [STUDY]``: a self-contained HTML report of a stored study."""

from noisewise.cli._args import STORE_HELP
from noisewise.cli._errors import EXIT_OK, UNWRITABLE, UsageError, os_error
from noisewise.cli._stores import resolve_study
from noisewise.study.defaults import DEFAULT_STORE


def add_parser(subparsers):
    p = subparsers.add_parser(
        "report", help="write a self-contained HTML report (tables, plots, spec) of a study")
    p.add_argument("study", nargs="?", help="study name (default: the latest in the store)")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("-o", "--output",
                   help="HTML file (default: <store folder>/<store name>-<study>.html)")
    p.add_argument("--metric", help="metric of the table and plots (default val_<first metric>)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing -o file that noisewise did not write (never the "
                        "store)")
    p.set_defaults(func=report)
    return p


def report(args):
    """Write the report and print its path."""
    from noisewise.study.report import write_report  # start-up time: matplotlib, SciPy

    resolve_study(args)  # no such study: exit 2, as show and export
    try:
        path = write_report(args.store or DEFAULT_STORE, args.study, args.output,
                            metric=args.metric, force=args.force)
    except OSError as e:
        if args.output or isinstance(e, FileExistsError) or e.errno not in UNWRITABLE:
            raise
        raise UsageError(f"noisewise: cannot write the report beside the store "
                         f"({os_error(e)}); write it elsewhere with -o FILE") from e
    print(path)
    return EXIT_OK
