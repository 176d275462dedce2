"""Figures of the study report: matplotlib (Agg, no pyplot state), PNG data URIs.

Every figure is drawn on a bare :class:`matplotlib.figure.Figure`, so making a
report never changes the user's pyplot backend or open figures. Colours come
from the Okabe-Ito palette (Okabe & Ito, 2008, "Color Universal Design"), which
stays distinct for the common colour-vision deficiencies, and every pair of
lines that must be told apart also differs in line style or marker, so the
figures survive greyscale printing.

Curves are summarised per epoch over the seeds (mean and a t-based 95% band),
then thinned to at most ``MAX_POINTS`` epochs for drawing: 4000 epochs would
be 4000 segments per line and a band that no screen resolves. Thinning keeps
the first and last epoch and evenly spaced epochs between, so the plotted
values are the real per-epoch means, not smoothed ones.

Example:
    >>> import numpy as np
    >>> from noisewise.study.report.figures import band
    >>> mean, low, high, n = band(np.array([[0.5, 0.6], [0.7, 0.8]]))
    >>> [round(float(v), 2) for v in mean]
    [0.6, 0.7]
"""

import base64
import io
import math
import textwrap
import warnings

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats as _st

# Okabe-Ito, ordered so that neighbours stay distinct in greyscale too.
BLUE, VERMILLION, GREEN, ORANGE = "#0072B2", "#D55E00", "#009E73", "#E69F00"
PURPLE, SKY, BLACK, YELLOW = "#CC79A7", "#56B4E9", "#000000", "#F0E442"
GREY = "#7F7F7F"
CYCLE = (BLUE, VERMILLION, GREEN, PURPLE, ORANGE, SKY, BLACK)
STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
MAX_POINTS = 400
DPI = 100
# ``text.parse_math`` off: arm, grid and metric names are user text, shown as
# written; with it on, "$x$" in a name is drawn as math and "$_$" fails the report.
_RC = {"text.parse_math": False, "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9,
       "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
       "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3}


def to_data_uri(fig):
    """PNG bytes of ``fig`` as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def band(matrix, confidence=0.95):
    """Per-column mean and t-based CI over finite rows; NaN bounds where n < 2.

    Returns:
        ``(mean, low, high, n)`` arrays, one entry per column.
    """
    matrix = np.asarray(matrix, dtype=float)
    n = np.isfinite(matrix).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns, n = 1
        mean = np.nanmean(matrix, axis=0)
        std = np.nanstd(matrix, axis=0, ddof=1)
        half = _st.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)) * std / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return mean, mean - half, mean + half, n


def thin(n, max_points=MAX_POINTS):
    """Indices of at most ``max_points`` evenly spaced items of ``n``, first and last kept."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def _label(name, width=28):
    return "\n".join(textwrap.wrap(name, width)) or name


def _panels(n_arms, ncols=4, panel=(3.1, 2.3)):
    ncols = max(1, min(ncols, n_arms))
    nrows = math.ceil(n_arms / ncols)
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for k, ax in enumerate(axes):
        if k >= n_arms:
            ax.set_visible(False)
        elif k + ncols >= n_arms:  # nothing drawn below it: it carries the epoch axis
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, axes[:n_arms]


def _fit_ylim(ax, means):
    """Y limits from the mean lines (padded), not the bands: with few seeds a t band
    can be several times wider than the data and would flatten every curve."""
    values = np.concatenate([np.ravel(m) for m in means]) if means else np.zeros(0)
    values = values[np.isfinite(values)]
    if values.size:
        low, high = values.min(), values.max()
        pad = 0.08 * (high - low) if high > low else 0.05 * max(abs(high), 1.0)
        ax.set_ylim(low - pad, high + pad)


def _draw_band(ax, epochs, matrix, color, style, label, marker=None):
    mean, low, high, _ = band(matrix)
    keep = thin(epochs.size)
    x = epochs[keep]
    markevery = max(1, keep.size // 8)
    line = ax.plot(x, mean[keep], color=color, linestyle=style, linewidth=1.4, label=label,
                   marker=marker, markevery=markevery, markersize=3.5)[0]
    if np.isfinite(low[keep]).any():
        ax.fill_between(x, low[keep], high[keep], color=color, alpha=0.2, linewidth=0)
    return line, mean[keep]


def curves_figure(arms, series, metric, reference=None, ylabel=None):
    """Small multiples, one panel per arm: training and validation mean with 95% bands.

    Args:
        arms: Arm names, in panel order.
        series: ``{arm: {"train": (epochs, matrix), "val": (epochs, matrix)}}``
            (either key may be missing); matrix is runs x epochs.
        metric: Training metric name (``accuracy``, ``loss``); the validation
            one is ``val_<metric>``.
        reference: Arm whose validation mean is drawn (grey, dotted) in every
            other panel for comparison.
        ylabel: Y axis label (default the metric).
    """
    with rc_context(_RC):
        fig, axes = _panels(len(arms))
        ref_val = series.get(reference, {}).get("val") if reference else None
        ref_mean = band(ref_val[1])[0][thin(ref_val[0].size)] if ref_val is not None else None
        handles, means = {}, []
        for ax, arm in zip(axes, arms):
            s = series.get(arm, {})
            if "train" in s:
                handles["train"], m = _draw_band(ax, *s["train"], BLUE, "-", f"train {metric}")
                means.append(m)
            if "val" in s:
                handles["val"], m = _draw_band(ax, *s["val"], VERMILLION, "--",
                                               f"validation {metric} (val_{metric})",
                                               marker="s")
                means.append(m)
            if ref_val is not None and arm != reference:
                handles["ref"] = ax.plot(ref_val[0][thin(ref_val[0].size)], ref_mean,
                                         color=GREY, linestyle=":", linewidth=1.2,
                                         label=f"validation, reference ({reference})")[0]
            ax.set_title(_label(arm + (" (reference)" if arm == reference else "")))
            if ax.get_subplotspec().is_first_col():
                ax.set_ylabel(ylabel or metric)
        _fit_ylim(axes[0], means)
        fig.legend(handles=list(handles.values()), loc="outside upper center",
                   ncols=len(handles), frameon=False)
        return fig


def gap_figure(arms, series, train_metric, reference=None):
    """Small multiples of the train-test gap (``metric - val_metric``) per epoch.

    Args:
        arms: Arm names.
        series: ``{arm: (epochs, matrix)}`` of per-run gaps on validated epochs.
        train_metric: The metric (``accuracy``); the gap is training minus validation.
        reference: Arm whose mean gap is drawn (grey, dotted) in the other panels.
    """
    with rc_context(_RC):
        fig, axes = _panels(len(arms))
        handles, means = {}, []
        for ax, arm in zip(axes, arms):
            ax.axhline(0.0, color=BLACK, linewidth=0.8)
            if arm in series:
                handles["gap"], m = _draw_band(ax, *series[arm], PURPLE, "-",
                                               f"{train_metric} - val_{train_metric}")
                means.append(m)
            if reference in series and arm != reference:
                e, m = series[reference]
                keep = thin(e.size)
                handles["ref"] = ax.plot(e[keep], band(m)[0][keep], color=GREY, linestyle=":",
                                         linewidth=1.2, label=f"reference ({reference})")[0]
            ax.set_title(_label(arm + (" (reference)" if arm == reference else "")))
            if ax.get_subplotspec().is_first_col():
                ax.set_ylabel("train - validation")
        _fit_ylim(axes[0], means + [np.zeros(1)])  # keep the zero line in view
        fig.legend(handles=list(handles.values()), loc="outside upper center",
                   ncols=max(1, len(handles)), frameon=False)
        return fig


def final_figure(arms, values, estimates, metric, reference=None):
    """Final metric per arm: every seed a point, the mean and its 95% CI.

    Args:
        arms: Arm names, top to bottom.
        values: ``{arm: [final value per replica]}``.
        estimates: ``{arm: Estimate}`` (``mean``, ``ci_low``, ``ci_high``).
        metric: Metric name (x axis).
        reference: Arm whose mean is drawn as a vertical dashed line.
    """
    rng = np.random.default_rng(0)  # jitter only spreads overlapping points vertically
    with rc_context(_RC):
        fig = Figure(figsize=(7.5, 0.42 * len(arms) + 1.3), layout="constrained")
        ax = fig.add_subplot()
        for y, arm in enumerate(arms):
            v = np.asarray(values.get(arm, []), dtype=float)
            v = v[np.isfinite(v)]
            ax.scatter(v, y + rng.uniform(-0.17, 0.17, v.size), s=14, facecolors="none",
                       edgecolors=BLUE, linewidths=0.8, alpha=0.8,
                       label="one seed" if y == 0 else None, zorder=2)
            est = estimates.get(arm)
            if est is None or not math.isfinite(est.mean):
                continue
            if math.isfinite(est.ci_low):
                ax.errorbar(est.mean, y, xerr=[[est.mean - est.ci_low], [est.ci_high - est.mean]],
                            fmt="none", ecolor=VERMILLION, elinewidth=2, capsize=4, zorder=3,
                            label="95% CI of the mean" if y == 0 else None)
            ax.plot(est.mean, y, marker="D", color=VERMILLION, markersize=6, linestyle="none",
                    zorder=4, label="mean" if y == 0 else None)
        ref = estimates.get(reference)
        if ref is not None and math.isfinite(ref.mean):
            ax.axvline(ref.mean, color=GREY, linestyle="--", linewidth=1,
                       label=f"reference mean ({reference})")
        ax.set_yticks(range(len(arms)), [_label(a, 40) for a in arms])
        ax.set_ylim(len(arms) - 0.5, -0.5)
        ax.set_xlabel(f"final {metric}")
        fig.legend(loc="outside upper center", ncols=4, frameon=False)
        return fig


def level_axis(levels):
    """X scale for grid levels: 'log' when positive levels span a decade or more,
    'symlog' when zero is among them too, else 'linear'."""
    levels = np.asarray([v for v in levels if math.isfinite(v)], dtype=float)
    positive = levels[levels > 0]
    if positive.size < 2 or (levels < 0).any() or positive.max() / positive.min() < 10:
        return "linear"
    return "log" if positive.size == levels.size else "symlog"


def _numeric(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def grid_figure(grid, values, estimates, metric, reference=None):
    """Metric against noise level for one grid: per-seed points, mean, 95% band, best level.

    Args:
        grid: A :class:`~noisewise.study.stats.GridBest`.
        values: ``{arm: [final value per replica]}``.
        estimates: ``{arm: Estimate}``.
        metric: Metric name (y axis).
        reference: Reference arm, drawn as a horizontal line with its CI when it
            is not one of the levels.
    """
    levels = list(grid.levels)
    keys = list(dict.fromkeys(k for a in levels for k in grid.params[a]))
    varying = [k for k in keys if len({repr(grid.params[a].get(k)) for a in levels}) > 1]
    xkey = next((k for k in varying if all(_numeric(grid.params[a].get(k)) for a in levels)),
                None)
    others = [k for k in varying if k != xkey]
    groups = {}
    for a in levels:
        label = ", ".join(f"{k.split('.')[-1]}={grid.params[a].get(k)}" for k in others)
        groups.setdefault(label, []).append(a)
    if xkey is None:  # categorical levels: one position each, in spec order
        xs = {a: float(i) for i, a in enumerate(levels)}
        scale = "linear"
    else:
        xs = {a: float(grid.params[a][xkey]) for a in levels}
        scale = level_axis(xs.values())
    with rc_context(_RC):
        fig = Figure(figsize=(7.5, 3.8), layout="constrained")
        ax = fig.add_subplot()
        ref = estimates.get(reference)
        if reference not in levels and ref is not None and math.isfinite(ref.mean):
            ax.axhline(ref.mean, color=BLACK, linestyle="--", linewidth=1,
                       label=f"reference ({reference}) mean")
            if math.isfinite(ref.ci_low):
                ax.axhspan(ref.ci_low, ref.ci_high, color=GREY, alpha=0.15, linewidth=0,
                           label="reference 95% CI")
        for i, (label, arms) in enumerate(groups.items()):
            arms = sorted(arms, key=lambda a: xs[a])
            color, style, marker = CYCLE[i % len(CYCLE)], STYLES[i % 4], MARKERS[i % 7]
            x = np.array([xs[a] for a in arms])
            for a in arms:
                v = np.asarray(values.get(a, []), dtype=float)
                ax.scatter(np.full(v.size, xs[a]), v, s=10, color=GREY, alpha=0.6, zorder=2,
                           label="one seed" if (i == 0 and a == arms[0]) else None)
            mean = np.array([estimates[a].mean if a in estimates else np.nan for a in arms])
            low = np.array([estimates[a].ci_low if a in estimates else np.nan for a in arms])
            high = np.array([estimates[a].ci_high if a in estimates else np.nan for a in arms])
            ax.plot(x, mean, color=color, linestyle=style, marker=marker, markersize=5,
                    linewidth=1.5, zorder=3, label="mean" + (f" ({label})" if label else ""))
            if np.isfinite(low).any():
                ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0,
                                label="95% CI" + (f" ({label})" if label else ""))
        if grid.best is not None:
            ax.plot(xs[grid.best], grid.best_mean, marker="*", markersize=16, color=VERMILLION,
                    markeredgecolor=BLACK, linestyle="none", zorder=5,
                    label=f"best level: P(best) = {grid.p_best[grid.best]:.2f}")
        if scale == "symlog":
            positive = [v for v in xs.values() if v > 0]
            ax.set_xscale("symlog", linthresh=min(positive))
        elif scale != "linear":
            ax.set_xscale(scale)
        if xkey is None:
            ax.set_xticks(list(xs.values()), [_label(a, 18) for a in levels])
        else:
            ax.set_xticks(sorted(set(xs.values())), [f"{v:g}" for v in sorted(set(xs.values()))])
            ax.minorticks_off()
        ax.set_xlabel(f"{xkey} ({scale} scale)" if xkey else "level")
        ax.set_ylabel(f"final {metric}")
        ax.set_title(f"grid {grid.parent}")
        fig.legend(loc="outside right upper", frameon=False)
        return fig


# Verdict -> (colour, marker, filled): the three verdicts differ in marker and fill
# as well as colour, so they survive greyscale printing.
VERDICT_STYLE = {"helps": (GREEN, "^", True), "hurts": (VERMILLION, "v", True),
                 "no detectable difference": (GREY, "o", False), None: (BLUE, "s", False)}


def forest_figure(comparisons, metric, reference, verdicts=None, higher_is_better=True):
    """Each arm's paired difference to the reference with its 95% CI, and the zero line.

    Args:
        comparisons: ``[Comparison]`` (``arm``, ``n``, ``mean_diff``,
            ``ci_low``, ``ci_high``), top to bottom.
        metric: Metric name (x axis: arm minus reference).
        reference: The reference arm's name.
        verdicts: ``{arm: verdict or None}``: the marker of each arm.
        higher_is_better: The metric's direction, named on the x axis.
    """
    verdicts = verdicts or {}
    with rc_context(_RC):
        fig = Figure(figsize=(7.5, 0.42 * len(comparisons) + 1.5), layout="constrained")
        ax = fig.add_subplot()
        ax.axvline(0.0, color=BLACK, linewidth=1, label=f"no difference (= {reference})")
        seen = set()
        for y, c in enumerate(comparisons):
            if not (c.n and math.isfinite(c.mean_diff)):
                continue
            v = verdicts.get(c.arm)
            color, marker, filled = VERDICT_STYLE.get(v, VERDICT_STYLE[None])
            low, high = c.ci_low, c.ci_high
            if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
                ax.errorbar(c.mean_diff, y, xerr=[[c.mean_diff - low], [high - c.mean_diff]],
                            fmt="none", ecolor=color, elinewidth=2, capsize=4, zorder=2)
            label = (v or "no verdict") if v not in seen else None
            seen.add(v)
            ax.plot(c.mean_diff, y, marker=marker, markersize=8, linestyle="none", zorder=3,
                    color=color, markerfacecolor=color if filled else "white",
                    markeredgecolor=color, markeredgewidth=1.5, label=label)
        ax.set_yticks(range(len(comparisons)), [_label(c.arm, 40) for c in comparisons])
        ax.set_ylim(len(comparisons) - 0.5, -0.5)
        better = "right" if higher_is_better else "left"
        ax.set_xlabel(f"paired difference in {metric}: arm minus {reference}, 95% CI "
                      f"(better to the {better})")
        fig.legend(loc="outside upper center", ncols=4, frameon=False)
        return fig
