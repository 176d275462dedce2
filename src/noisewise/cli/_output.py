"""Printing shared by the subcommands: safe text, the console, the summary table of a study.

Tables go to stdout, messages to stderr. Names come from specs and stores,
so every one passes through :func:`printable` before it reaches a terminal.
"""

import math
import unicodedata

from noisewise.study.defaults import default_metric

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


def markup(text):
    """``text`` made printable and escaped for rich markup (a ``[red]`` in a name stays text)."""
    from rich.markup import escape  # start-up time: rich loads only when a table is printed

    return escape(printable(text))


def console(stderr=False):
    """A rich Console; on files and pipes 200 columns wide, so tables are not squeezed to 80."""
    from rich.console import Console  # start-up time, as in markup

    out = Console(stderr=stderr)
    if not out.is_terminal:
        out = Console(stderr=stderr, width=200)
    return out


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


def print_study(store, name, metric=None, out=None):
    """Print the summary table of one study from the store (the store is the truth).

    Diverged and failed runs are left out of the statistics; a ``lost`` column
    says how many each arm lost, and an arm whose every run diverged gets a row
    saying so and no numbers.

    Args:
        store: An open store.
        name: The study's name.
        metric: Final metric of the table (default ``val_<first metric>``).
        out: The rich Console to print on (default stdout).

    Returns:
        ``{arm: RunCounts}`` (:func:`noisewise.study.stats.run_counts`).
    """
    from rich.table import Table  # start-up time, as in markup

    from noisewise.study import stats  # start-up time: SciPy

    out = out or console()
    info = store.study(name)
    spec = info["spec"]
    metric = metric or default_metric(spec)
    records = store.runs(info["id"], status=None)
    counts = stats.run_counts(records)
    runs = [r for r in records if stats.run_status(r) == "done"]
    arms = [a["name"] for a in info["arms"]]
    title = _title(info, metric, counts, arms, spec.get("study", {}).get("seeds"))
    if not runs:
        out.print(printable(f"{title}: no finished runs" + (
            "" if any(c.diverged for c in counts.values()) else " yet")), markup=False)
        _print_lost(out, counts)
        return counts
    summary = stats.summarize(runs, metric)
    reference = info.get("reference")
    comparison = stats.compare(records, reference if reference in summary else None, metric)
    lost = any(c.lost for c in counts.values())
    table = Table(title=markup(title), title_justify="left")
    for column in ("arm", "n", "mean", "95% CI", "diff vs ref", "diff 95% CI",
                   "p (t, Holm)", "p (Wilcoxon, Holm)", "P(better)") + ("lost",) * lost:
        table.add_column(column, justify="left" if column in ("arm", "lost") else "right")
    notes = {}  # note -> arms, so a note shared by every arm is printed once
    done_arms = [a for a in arms if a in summary]
    for arm in arms:
        c_arm = counts.get(arm)
        extra = [markup(c_arm.text()) if c_arm else ""] * lost
        if arm not in summary:
            if c_arm is not None and c_arm.all_diverged:
                table.add_row(markup(arm), "0", *["-"] * 7,
                              markup(f"all {c_arm.diverged} diverged"))
            continue
        s = summary[arm]
        ci = markup(f"[{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]") if not math.isnan(s.ci_low) else "-"
        c = comparison.get(arm)
        if c is None:
            table.add_row(markup(arm), str(s.n), _fmt(s.mean), ci, "reference", "", "", "", "",
                          *extra)
        else:
            dci = (markup(f"[{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]")
                   if not math.isnan(c.ci_low) else "-")
            table.add_row(markup(arm), str(s.n), _fmt(s.mean), ci, f"{c.mean_diff:+.4f}", dci,
                          _p(c.p_ttest_holm), _p(c.p_wilcoxon_holm), _fmt(c.prob_better, 2),
                          *extra)
        for note in (c.note if c else None, s.note):
            for part in (note or "").split("; "):
                if part:
                    notes.setdefault(part, []).append(arm)
    out.print(table)
    for parent, g in stats.grid_best(runs, metric).items():
        if g.best is not None:
            ci = f"[{_fmt(g.ci_low)}, {_fmt(g.ci_high)}]" if not math.isnan(g.ci_low) else ""
            out.print(printable(
                f"grid {parent}: best level {g.best}, mean {_fmt(g.best_mean)} {ci}; "
                f"P(best) = {g.p_best[g.best]:.2f} over {g.n_boot} bootstrap "
                "resamples of replicas (the best of several means is optimistic)"), markup=False)
    compared = [a for a in done_arms if a in comparison]
    for note, noted in notes.items():
        who = ("all arms" if len(noted) == len(done_arms) else
               "every arm vs the reference" if noted == compared else ", ".join(noted))
        out.print(printable(f"note ({who}): {note}"), style="dim", markup=False)
    if reference and reference not in summary and reference in counts:
        used = next(a for a in done_arms if a not in comparison)
        out.print(printable(f"note: the reference {reference!r} has no finished runs; "
                            f"arms are compared with {used!r}"), style="dim", markup=False)
    _print_lost(out, counts)
    return counts


def _print_lost(out, counts):
    for c in counts.values():
        if c.all_diverged:
            out.print(printable(f"arm {c.arm!r}: {c.all_diverged_text()}: no statistics"),
                      style="bold red", markup=False)
