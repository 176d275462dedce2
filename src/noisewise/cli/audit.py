"""``noisewise audit SPEC``: check a study's data before training.

One row per check: ``ok``, ``found N`` or ``skipped: reason``, with its
threshold. Exit 0 when no ``--fail-on`` threshold (or the spec's ``[audit]
fail_on``) is exceeded, 4 when one is, 2 for a bad spec or ``--fail-on``.
``--json`` prints the whole result (indices, groups, scores) as JSON on stdout.
"""

import json

from noisewise.cli._args import integer, positive
from noisewise.cli._errors import EXIT_AUDIT, EXIT_OK, UsageError

_HELP = """Check a study's data before training: non-finite values, constant features,
exact duplicates within a split, duplicates across splits (leakage), class balance and
label type; with noisewise[audit] (cleanlab), wrong labels, outliers and near duplicates
from out-of-fold predictions of the study's own model (its first arm, without noise).
Exit 0 when no threshold is exceeded, 4 when one is."""


_EPILOG = """exit codes: 0 no threshold exceeded, 2 bad usage or spec (a bad --fail-on
included), 4 a threshold exceeded (also `noisewise run` with an [audit] table)"""


_folds = integer(2)
_seed = integer(0)


def add_parser(subparsers):
    p = subparsers.add_parser("audit", description=_HELP, epilog=_EPILOG,
                              help="check a study's data before training (exit 4: a threshold "
                                   "is exceeded)")
    p.add_argument("spec", help="study spec (TOML)")
    p.add_argument("--folds", type=_folds, help="folds of the learned checks (default: the "
                   "spec's [audit] folds, else 5)")
    p.add_argument("--epochs", type=positive, help="epochs per fold (default: [audit] epochs, "
                   "else train.epochs)")
    p.add_argument("--fail-on", metavar="NAME=T,...",
                   help="thresholds: a count (integer) or a fraction of the split (< 1), e.g. "
                        "leakage=0,label=0.05 (default: the spec's [audit] fail_on)")
    p.add_argument("--checks", help="comma-separated checks to run (default all)")
    p.add_argument("--seed", type=_seed, help="seed of the folds and models (default study.seed)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=audit)
    return p


def _table(result, name):
    from rich.table import Table  # start-up time: rich loads only to print

    from noisewise.cli._output import markup

    rows = {s: n for s, n in result.splits.items()}
    title = markup(f"{name}: data audit of " + ", ".join(f"{s} {n}" for s, n in rows.items())
                   + f" rows, {result.wall_s:.1f} s")
    table = Table(title=title, title_justify="left")
    for column in ("check", "status", "fail on", "detail"):
        table.add_column(column, justify="left")
    for check, status, threshold, detail in result.rows():
        style = "red" if threshold.endswith("EXCEEDED") else None
        table.add_row(markup(check), markup(status), markup(threshold), markup(detail),
                      style=style)
    return table


def audit(args):
    from noisewise.study import Study, load_spec  # start-up time: Keras loads to audit
    from noisewise.study.audit import CHECKS, parse_thresholds

    try:
        fail_on = None if args.fail_on is None else parse_thresholds(args.fail_on)
    except ValueError as e:
        names = "" if "allowed:" in str(e) else f" (names: {', '.join(CHECKS)})"
        raise UsageError(f"noisewise audit: --fail-on: {e}{names}") from None
    checks = None
    if args.checks is not None:
        checks = [c.strip() for c in args.checks.split(",") if c.strip()]
        bad = [c for c in checks if c not in CHECKS]
        if bad or not checks:
            raise UsageError(f"noisewise audit: --checks must name checks among "
                             f"{', '.join(CHECKS)}. Received: --checks {args.checks!r}")
    study = Study(load_spec(args.spec))
    result = study.audit(folds=args.folds, epochs=args.epochs, checks=checks, seed=args.seed,
                         fail_on=fail_on)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        from noisewise.cli._output import console, printable

        out = console()
        out.print(_table(result, study.spec.name))
        for c, t in result.exceeded():
            console(stderr=True).print(printable(
                f"noisewise: audit: {c.name}: {c.count} found, threshold {t:g}"
                + (f" of {c.total}" if isinstance(t, float) else "")), markup=False)
    return EXIT_OK if result.passed else EXIT_AUDIT
