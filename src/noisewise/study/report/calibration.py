"""Reliability diagrams of the arms with ``predict``, pooled over their stored runs.

Each such run stores, per confidence bin, its test rows, their summed
confidence and its correct rows, for the deterministic prediction and the
Monte Carlo one (:mod:`noisewise.study.execute.uncertainty_eval`). Summed over
runs, the bins give the arm's diagram exactly: a bin's accuracy is its correct
rows over its rows across every seed, not a mean of per-seed ratios that
empty or tiny bins would skew.

Example:
    >>> run = {"arm": "mc", "calibration": {"bins": 2, "mode": "mc", "samples": 5,
    ...        "deterministic": {"count": [1, 3], "confidence": [0.4, 2.7], "correct": [0, 3]},
    ...        "mc": {"count": [2, 2], "confidence": [0.9, 1.7], "correct": [1, 2]}}}
    >>> pooled = pool([run, run])
    >>> pooled["mc"]["deterministic"]["accuracy"]
    [0.0, 1.0]
    >>> pooled["mc"]["mc"]["confidence"]
    [0.45, 0.85]
"""

import math

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

from noisewise.study.report.figures import _RC, BLUE, GREY, VERMILLION, _label

_KINDS = ("deterministic", "mc")


def pool(runs):
    """``{arm: {"bins", "mode", "samples", "runs", "deterministic": ..., "mc": ...}}``
    over the runs holding calibration sums; each kind ``{"count", "confidence",
    "accuracy"}`` per bin (NaN where no row fell)."""
    sums = {}
    for run in runs:
        terms = run.get("calibration")
        if not terms:
            continue
        arm = sums.setdefault(run["arm"], {"bins": terms["bins"], "mode": terms["mode"],
                                           "samples": terms["samples"], "runs": 0})
        if arm["bins"] != terms["bins"]:
            continue  # a run of another binning: its sums do not add to these
        arm["runs"] += 1
        for kind in _KINDS:
            into = arm.setdefault(kind, {k: np.zeros(terms["bins"]) for k in terms[kind]})
            for key, values in terms[kind].items():
                into[key] = into[key] + np.asarray(values, dtype=float)
    out = {}
    for name, arm in sums.items():
        out[name] = {k: arm[k] for k in ("bins", "mode", "samples", "runs")}
        for kind in _KINDS:
            s = arm[kind]
            with np.errstate(invalid="ignore", divide="ignore"):
                conf, acc = s["confidence"] / s["count"], s["correct"] / s["count"]
            out[name][kind] = {"count": s["count"].astype(int).tolist(),
                               "confidence": [round(float(v), 6) for v in conf],
                               "accuracy": [round(float(v), 6) for v in acc]}
    return out


def calibration_figure(pooled):
    """One reliability diagram per arm: accuracy against mean confidence per bin,
    deterministic and Monte Carlo, with the diagonal of perfect calibration."""
    arms = list(pooled)
    ncols = max(1, min(4, len(arms)))
    nrows = math.ceil(len(arms) / ncols)
    with rc_context(_RC):
        fig = Figure(figsize=(2.7 * ncols, 2.6 * nrows + 0.5), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[len(arms):]:
            ax.set_visible(False)
        for k, (ax, arm) in enumerate(zip(axes, arms)):
            p = pooled[arm]
            ax.plot([0, 1], [0, 1], color=GREY, linestyle="--", linewidth=1,
                    label="perfect calibration" if k == 0 else None)
            for kind, color, marker, name in (("deterministic", BLUE, "o", "deterministic"),
                                              ("mc", VERMILLION, "s", "Monte Carlo")):
                conf = np.asarray(p[kind]["confidence"], dtype=float)
                acc = np.asarray(p[kind]["accuracy"], dtype=float)
                ok = np.isfinite(conf) & np.isfinite(acc)
                ax.plot(conf[ok], acc[ok], color=color, marker=marker, markersize=3.5,
                        linewidth=1.2, label=name if k == 0 else None)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("confidence")
            ax.set_ylabel("accuracy")
            ax.set_title(_label(f"{arm}: {p['mode']}, {p['samples']} draws, {p['runs']} seed(s)",
                                34))
        fig.legend(loc="outside upper center", ncols=3, frameon=False)
        return fig


def caption_rows(pooled):
    """One plain line per arm for the figure's caption: rows per seed and bins."""
    out = []
    for arm, p in pooled.items():
        rows = sum(p["deterministic"]["count"])
        per = rows / p["runs"] if p["runs"] else math.nan
        out.append(f"{arm}: {p['runs']} seed(s), {per:.0f} test rows each, {p['bins']} bins")
    return out
