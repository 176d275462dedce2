"""``noisewise show [STUDY]``: the summary table of a stored study."""

from noisewise.cli._args import METRIC_HELP, STORE_HELP
from noisewise.cli._errors import EXIT_OK
from noisewise.cli._output import print_study
from noisewise.cli._stores import open_existing, study_name


def add_parser(subparsers):
    p = subparsers.add_parser("show", help="summary table of a stored study")
    p.add_argument("study", nargs="?", help="study name (default: the latest)")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--metric", help=METRIC_HELP)
    p.set_defaults(func=show)
    return p


def show(args):
    with open_existing(args.store) as store:
        print_study(store, study_name(store, args.study), args.metric)
    return EXIT_OK
