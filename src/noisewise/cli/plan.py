"""``noisewise plan [STUDY]``: how many seeds a study needs, from its stored runs as a pilot."""

import argparse
import math

from noisewise.cli._args import METRIC_HELP, STORE_HELP
from noisewise.cli._errors import EXIT_OK, UsageError
from noisewise.cli._stores import open_existing, study_name


def _fraction(text):
    """argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1). Received: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1). Received: {value!r}")
    return value


def _difference(text):
    """argparse type: a finite non-zero number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number. Received: {text!r}") from None
    if value == 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite non-zero difference. Received: {text!r}")
    return value


def add_parser(subparsers):
    p = subparsers.add_parser(
        "plan", help="seeds needed to detect a difference, from a stored (pilot) study",
        description="Per arm against the reference: the smallest paired difference the paired "
                    "t-test detects at the given power with the stored seeds, and the seeds "
                    "needed for --effect (default: each arm's observed difference); also the "
                    "sign and Wilcoxon tests' seeds (Noether). Each test at alpha / arms.")
    p.add_argument("study", nargs="?", help="study name (default: the latest)")
    p.add_argument("--effect", type=_difference,
                   help="paired difference to detect, in the metric's units (default: observed)")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--metric", help=METRIC_HELP)
    p.add_argument("--power", type=_fraction, default=0.8, help="target power (default 0.8)")
    p.add_argument("--alpha", type=_fraction, default=0.05,
                   help="family level, divided by the number of arms compared (default 0.05)")
    p.set_defaults(func=plan)
    return p


def _seeds(value, cap):
    return "-" if value is None else (f">={cap}" if value >= cap else str(value))


def _num(value, digits=4):
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def plan(args):
    # start-up time: SciPy, rich and the study engine load only when the command runs
    from rich.table import Table

    from noisewise.cli._output import console, markup, printable
    from noisewise.study import planning
    from noisewise.study.defaults import check_metric, default_metric

    with open_existing(args.store) as store:
        info = store.study(study_name(store, args.study))
        records = store.runs(info["id"], status=None)
    metric = check_metric(records, args.metric or default_metric(info["spec"]), info["name"],
                          info["spec"])
    reference = info.get("reference")
    arms = {r["arm"] for r in records}
    try:
        plans = planning.plan(records, reference if reference in arms else None, metric,
                              args.effect, args.power, args.alpha)
    except ValueError as e:  # no done runs of the metric: nothing to plan from
        raise UsageError(f"noisewise: cannot plan study {info['name']!r}: {e}") from None
    if not plans:
        raise UsageError(f"noisewise: study {info['name']!r} has a single arm: nothing to compare")
    out = console()
    first = next(iter(plans.values()))
    table = Table(title=markup(
        f"{info['name']}: seeds to detect a paired difference in {metric} vs "
        f"{first.reference}, power {args.power:g}, alpha {args.alpha:g} / {len(plans)} arms "
        f"= {first.alpha:.3g} per test"), title_justify="left")
    for column in ("arm", "n", "diff", "sd diff", "detectable at n", "effect",
                   "seeds (t-test)", "P(better)", "seeds (sign)", "seeds (Wilcoxon)"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    cap = planning.MAX_SEEDS
    for p in plans.values():
        table.add_row(markup(p.arm), str(p.n), _num(p.mean_diff), _num(p.std_diff),
                      _num(p.detectable_diff), _num(p.effect), _seeds(p.seeds_ttest, cap),
                      _num(p.prob_better, 2), _seeds(p.seeds_sign, cap),
                      _seeds(p.seeds_wilcoxon, cap))
    out.print(table)
    notes = {}  # note -> arms, so a note every arm shares is printed once
    for p in plans.values():
        for part in (p.note or "").split("; "):
            if part:
                notes.setdefault(part, []).append(p.arm)
    for note, arms in notes.items():
        who = "all arms" if len(arms) == len(plans) else ", ".join(arms)
        out.print(printable(f"note ({who}): {note}"), style="dim", markup=False)
    out.print("detectable at n: smallest |difference| the paired t-test finds with this power "
              "at the stored seeds (noncentral t, observed sd); seeds (t-test): seeds to find "
              "--effect (default the observed difference); sign and Wilcoxon: Noether (1987), "
              "from P(better) and its Walsh-average analogue", style="dim", markup=False)
    return EXIT_OK
