"""Printing shared by the subcommands: safe text, the console, the summary table of a study.

Tables go to stdout, messages to stderr. Names come from specs and stores,
so every one passes through :func:`printable` before it reaches a terminal.
The summary table and the lines under it fit in 80 columns (:data:`WIDTH`),
on a terminal or a pipe.
"""

import math
import unicodedata

from noisewise.study.defaults import check_metric, default_metric

WIDTH = 80  # the summary's width: a classic terminal, and readable in a wider one

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


def _finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _p(value):
    if not _finite(value):
        return "-"
    return f"{value:.2g}" if value >= 0.001 else "<0.001"


def _num(value, digits, sign=False):
    if not _finite(value):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _ci(value, low, high, digits, sign=False):
    """``+0.039 [+0.031, +0.047]``: a value and its 95% interval (not always centred:
    a bounded metric's interval is a logit one), or the value alone without one."""
    text = _num(value, digits, sign)
    if text == "-" or not (_finite(low) and _finite(high)):
        return text
    return f"{text} [{_num(low, digits, sign)}, {_num(high, digits, sign)}]"


def _title(info, metric, counts, arms, seeds):
    done = sum(c.done for c in counts.values())
    title = f"{info['name']}: {metric} over {done} of {len(arms) * (seeds or 0)} runs"
    lost = [f"{n} {what}" for n, what in (
        (sum(c.diverged for c in counts.values()), "diverged"),
        (sum(c.failed for c in counts.values()), "failed")) if n]
    return title + (f" ({', '.join(lost)})" if lost else "")


def _labels(arms, records):
    """``{arm: label}`` and ``{arm: grid parent}``: a grid level is shown under a row
    naming its grid, as ``  [stddev=0.1]``, so long grid names fit the table."""
    parents = {r["arm"]: r.get("arm_parent") for r in records}
    labels, groups = {}, {}
    for arm in arms:
        parent = parents.get(arm)
        if parent and arm.startswith(f"{parent}[") and arm.endswith("]"):
            labels[arm], groups[arm] = "  " + arm[len(parent):], parent
        else:
            labels[arm] = arm
    return labels, groups


def _line(out, text, style=None):
    out.print(printable(text), style=style, markup=False, width=min(out.width, WIDTH))


def print_study(store, name, metric=None, out=None):
    """Print the summary table of one study from the store (the store is the truth).

    One row per arm: n, the mean, the paired difference to the reference with
    its 95% CI, the Holm-adjusted paired t-test (or "no test" and, below the
    table, why), the share of seeds on which the arm did better, and the
    verdict (the report adds the mean's CI and the Wilcoxon test); under a
    robustness metric's table, the settings behind it. Diverged and failed runs are left out of
    the statistics; a ``lost`` column counts them, and an arm whose every run
    diverged gets a row saying so and no numbers. Under the table: the best
    level of each grid, the notes and warnings of the statistics, and a
    warning when the metric is still improving at the end of training
    (:func:`noisewise.study.report.verdict.trend`).

    Args:
        store: An open store.
        name: The study's name.
        metric: Final metric of the table (default ``val_<first metric>``).
        out: The rich Console to print on (default stdout).

    Returns:
        ``{arm: RunCounts}`` (:func:`noisewise.study.stats.run_counts`).

    Raises:
        UnknownMetric: The study holds no such metric (before anything is printed).
    """
    from noisewise.study import stats  # start-up time: SciPy

    out = out or console()
    info = store.study(name)
    spec = info["spec"]
    records = store.runs(info["id"], status=None)
    metric = check_metric(records, metric or default_metric(spec), info["name"], spec)
    counts = stats.run_counts(records)
    runs = [r for r in records if stats.run_status(r) == "done"]
    arms = [a["name"] for a in info["arms"]]
    title = _title(info, metric, counts, arms, spec.get("study", {}).get("seeds"))
    if not runs:
        _line(out, f"{title}: no finished runs" + (
            "" if any(c.diverged for c in counts.values()) else " yet"))
        _print_lost(out, counts)
        return counts
    summary = stats.summarize(runs, metric)
    reference = info.get("reference")
    comparison = stats.compare(records, reference if reference in summary else None, metric)
    from noisewise.study.report.verdict import decimals  # start-up time: SciPy

    # One number of decimals for every mean and difference: the metric's scale,
    # read from the narrowest interval.
    digits = decimals([(o.ci_high - o.ci_low) / 2 for o in (*summary.values(), *comparison.values())
                       if _finite(o.ci_low) and _finite(o.ci_high)])
    _print_table(out, title, arms, records, counts, summary, comparison, digits)
    _print_robustness(out, runs, metric)
    _print_after(out, store, info, metric, runs, arms, counts, summary, comparison, digits)
    return counts


_VERDICT_STYLE = {"helps": "green", "hurts": "red"}


def _print_table(out, title, arms, records, counts, summary, comparison, digits):
    from rich import box  # start-up time, as in markup
    from rich.table import Table

    from noisewise.study.report import verdict  # start-up time: SciPy

    lost = any(c.lost for c in counts.values())
    verdicts = {a: verdict.verdict(c) for a, c in comparison.items()}
    table = Table(title=markup(title), title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, collapse_padding=True)
    columns = ["arm", "n", "mean", "diff [95% CI]", "p (Holm)", "better"]
    columns += ["verdict"] + ["lost"] * lost
    for column in columns:
        table.add_column(column, justify="left" if column in ("arm", "verdict") else "right")
    labels, groups = _labels([a for a in arms if a in summary or a in counts], records)
    shown = set()
    for arm in arms:
        c_arm = counts.get(arm)
        if arm not in summary and not (c_arm is not None and c_arm.all_diverged):
            continue
        if arm in groups and groups[arm] not in shown:  # the grid's name, once
            shown.add(groups[arm])
            table.add_row(markup(groups[arm]), *[""] * (len(columns) - 1))
        extra = [str(c_arm.lost) if c_arm and c_arm.lost else ""] * lost
        if arm not in summary:
            cells = ["0", "-", "-", "-", "-", "diverged"]
            table.add_row(markup(labels[arm]), *cells, *[f"all {c_arm.diverged}"] * lost)
            continue
        s, c = summary[arm], comparison.get(arm)
        cells = [str(s.n), _num(s.mean, digits)]
        if c is None:
            cells += ["reference", "", "", ""]
        else:
            no_test = verdict.no_test_reason(c) and c.p_ttest_holm is None
            cells += [_ci(c.mean_diff, c.ci_low, c.ci_high, digits, sign=True),
                      "no test" if no_test else _p(c.p_ttest_holm),
                      f"{c.prob_better:.0%}" if _finite(c.prob_better) else "-"]
            v = verdicts.get(arm)
            style = _VERDICT_STYLE.get(v)
            text = verdict.SHORT.get(v, v) or "-"
            cells.append(f"[{style}]{text}[/]" if style else text)
        table.add_row(markup(labels[arm]), *cells, *extra)
    out.print(table, width=min(out.width, WIDTH))
    legend = ("diff: arm minus reference, paired on the seeds both finished; p: paired t-test, "
              "Holm-adjusted across the arms; better: share of paired seeds on which the arm "
              "beat the reference, ties half")
    if any(v == verdict.NO_DIFFERENCE for v in verdicts.values()):
        legend += "; no diff: no detectable difference"
    _line(out, legend, style="dim")


def _print_robustness(out, runs, metric):
    """Under a robustness metric's table: the settings its runs stored (attack, eps,
    steps, step size, clip; sigma, n0, n, alpha, radius), the examples and the clip."""
    from noisewise.study.report import robustness  # start-up time, as in _print_after

    if not robustness.is_robustness_metric(metric):
        return
    for text in robustness.metric_lines(robustness.settings(runs), metric):
        _line(out, text, style="yellow" if text.startswith("warning") else "dim")


def _print_after(out, store, info, metric, runs, arms, counts, summary, comparison, digits):
    """What follows the table: grids, notes, warnings, lost runs."""
    from noisewise.study import stats  # start-up time, as in print_study
    from noisewise.study.report import content, verdict

    for parent, g in stats.grid_best(runs, metric).items():
        if g.best is not None:
            _line(out, f"grid {parent}: best level {g.best}, mean "
                       f"{_ci(g.best_mean, g.ci_low, g.ci_high, digits)}; "
                       f"P(best) = {g.p_best[g.best]:.2f} over {g.n_boot} bootstrap resamples "
                       "of replicas (the best of several means is optimistic)")
    done_arms = [a for a in arms if a in summary]
    compared = [a for a in done_arms if a in comparison]
    notes, warns = {}, {}  # text -> arms, so a line shared by every arm is printed once
    for arm in done_arms:
        s, c = summary[arm], comparison.get(arm)
        reason = verdict.no_test_reason(c) if c is not None else None
        for note in (c.note if c else None, s.note, reason and f"no test: {reason}"):
            for part in (note or "").split("; "):
                if part:
                    notes.setdefault(part, []).append(arm)
        # "only 2 paired seeds" repeats "only 2 seeds" when every seed is paired.
        same_n = c is not None and s.warning and getattr(c, "n", None) == getattr(s, "n", None)
        for obj in (s,) if same_n else (s, c):
            text = getattr(obj, "warning", None)
            if text and arm not in warns.setdefault(text, []):
                warns[text].append(arm)

    def who(noted):
        return ("all arms" if len(noted) == len(done_arms) else
                "every arm vs the reference" if noted == compared else ", ".join(noted))

    for text, noted in warns.items():
        _line(out, f"warning ({who(noted)}): {text}", style="yellow")
    for note, noted in notes.items():
        _line(out, f"note ({who(noted)}): {note}", style="dim")
    reference = info.get("reference")
    if reference and reference not in summary and reference in counts:
        used = next(a for a in done_arms if a not in comparison)
        _line(out, f"note: the reference {reference!r} has no finished runs; arms are "
                   f"compared with {used!r}", style="dim")
    done = {r["id"] for r in runs}
    history = [h for h in store.history(info["id"], metrics=[metric]) if h["run_id"] in done]
    trends = verdict.still_improving(content.metric_curves(history, done_arms, metric), metric,
                                     stats.is_higher_better(metric))
    if trends:
        _line(out, f"warning: {metric} is still improving at the end of training in "
                   f"{len(trends)} arm(s): train longer before concluding. Gain over the last "
                   f"tenth of the epochs, mean over seeds [95% CI]: "
                   f"{verdict.improving_text(trends)}", style="yellow")
    _print_lost(out, counts)


def _print_lost(out, counts):
    for c in counts.values():
        if c.all_diverged:
            _line(out, f"arm {c.arm!r}: {c.all_diverged_text()}: no statistics",
                  style="bold red")
        elif c.lost:
            _line(out, f"arm {c.arm!r}: {c.text()}: left out of the statistics", style="red")
