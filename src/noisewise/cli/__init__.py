"""The ``noisewise`` command line.

Subcommands::

    noisewise run SPEC [--store PATH] [--seeds N] [--epochs N] [--new] [--quiet] [--metric M]
                  [--executor auto|vmap|fit] [--workers N] [--no-report]
    noisewise show [STUDY] [--store PATH] [--metric M]
    noisewise plan [STUDY] [--effect D] [--power P] [--alpha A] [--store PATH] [--metric M]
    noisewise list [--store PATH]
    noisewise export STUDY --format csv|json|tensorboard|mlflow [-o FILE] [--force]
                     [--store PATH] [--history]
    noisewise report [STUDY] [--store PATH] [-o FILE] [--force]
    noisewise robustness MODEL.keras --data NAME|FILE.npz ... [--json FILE] [--force]
    noisewise augment preview SPEC --image FILE|--dataset NAME -o grid.png [--force]
    noisewise audit SPEC [--folds K] [--epochs N] [--fail-on leakage=0,label=0.05] [--json]
                    [--seed S] [--checks NAME,...]
    noisewise schema
    noisewise --version

The store defaults to ``study.store`` of the spec (``run`` only, relative to
the spec file) or ``./noisewise.db``. ``--seeds``/``--epochs`` override the
spec for a quick run; the study is then stored under its own name, e.g.
``circles:seeds=2,epochs=50``, and never mixes with the full study.

``show``, ``list``, ``export`` and ``report`` open the store read-only: they
never create or change one, and work on a store in a read-only folder.

Outputs never destroy inputs (:mod:`noisewise._core.files`): no command writes onto
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

Exit codes (:mod:`noisewise.cli._errors`): 0 success, 1 runtime failure (some
runs failed, every run of an arm diverged, or an unexpected error), 2 bad
usage, invalid spec or data, no such study, or a refused output file, 3 store
error (not a noisewise store, unwritable, or the study exists with a different
spec, data or code), 4 data audit failed (``audit``, or ``run`` with an
``[audit]`` table: a ``fail_on`` threshold exceeded, nothing trained), 130
interrupted. Every failure is one line on stderr;
``noisewise --debug ...`` adds the traceback. Messages go to stderr, results
to stdout; output piped into a reader that stops early (``| head``) ends
quietly.

Each subcommand is one module with ``add_parser(subparsers)`` and its
handler. Parsers are built from static data and handlers import the study
engine when they run, so ``--help`` and ``--version`` never load Keras.
"""

import argparse
import os
import sys

from noisewise import __version__
from noisewise.cli import audit, augment, export, listing, plan, report, robustness, run, schema, show
from noisewise.cli._args import Parser
from noisewise.cli._errors import EXIT_OK, outcome
from noisewise.cli._output import printable

# TensorFlow's C++ start-up chatter would bury the table; the user can still set it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SUBCOMMANDS = (run, show, plan, listing, export, report, robustness, augment, audit, schema)

__all__ = ["build_parser", "main"]


def build_parser():
    """The ``noisewise`` argparse parser, every subcommand registered; each sets ``func``."""
    parser = Parser(prog="noisewise", description="Noise studies for Keras 3 models.")
    parser.add_argument("--version", action="version", version=f"noisewise {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the traceback as well as the one-line message")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
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
    spec, data or output path; 3 store error; 4 data audit failed; 1 runs
    failed or an unexpected error; 130 interrupted. ``noisewise --debug ...`` prints the traceback too.
    """
    argv = sys.argv[1:] if argv is None else [os.fspath(a) for a in argv]
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not as noise when Python exits
        return code
    except BrokenPipeError:  # the reader went away: nothing more to say, to anyone
        _quiet_stdout()
        return EXIT_OK
    except BaseException as e:  # noqa: BLE001 -- one exception -> exit code map
        code, line = outcome(e)
        if code is None:
            raise
        if debug:
            import traceback  # start-up time: needed only on an error with --debug

            traceback.print_exc()
        try:
            print(printable(line, keep_newlines=True), file=sys.stderr)
        except OSError:
            pass
        return code
