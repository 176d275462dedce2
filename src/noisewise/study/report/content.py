"""What the study report shows, read from the store: plain data for the page templates.

Nothing here writes HTML: values stay plain Python (user text included) and the
templates escape them. Figures are PNG data URIs with the facts their captions
need; matplotlib is imported only when they are drawn.
"""

import json
import math

import numpy as np

from noisewise.study import stats
from noisewise.study.defaults import check_metric, default_metric
from noisewise.study.report import verdict


def load(store, name, metric):
    """Everything the report shows of study ``name``, read from an open store.

    Raises:
        UnknownMetric: The study holds no ``metric``
            (:func:`~noisewise.study.defaults.check_metric`); nothing is drawn
            or written then.
    """
    info = store.study(name)
    spec = info["spec"]
    records = store.runs(info["id"], status=None)
    metric = check_metric(records, metric or default_metric(spec), info["name"], spec)
    train = metric.removeprefix("val_")
    names = [train, f"val_{train}", metric] + (["loss", "val_loss"] if train != "loss" else [])
    by_status = {s: [r for r in records if stats.run_status(r) == s]
                 for s in ("done", "diverged", "failed")}
    done = {r["id"] for r in by_status["done"]}
    history = store.history(info["id"], metrics=list(dict.fromkeys(names)))
    return {
        "info": info, "spec": spec, "metric": metric, "train": train,
        "runs": by_status["done"], "failed": by_status["failed"],
        "diverged": by_status["diverged"], "all": records,
        "counts": stats.run_counts(records),
        # Older stores hold diverged runs as done: their curves stay out too.
        "history": [h for h in history if h["run_id"] in done],
        "audit": store.audit(info["id"]),
    }


def audit_rows(audit):
    """The stored data audit (``Store.audit``) as the report's table, or None without one:
    ``{"rows": [(check, status, threshold, detail)], "splits": text, "settings": text,
    "passed": bool}``."""
    if audit is None:
        return None
    from noisewise.study.audit.result import AuditResult  # plain dataclasses, no Keras

    result = AuditResult.from_dict(audit)
    s = result.settings
    learned = [n for n in ("label", "outlier", "near_duplicate")
               if n in result.checks and result.checks[n].status != "skipped"]
    settings = (f"{s.get('folds')} stratified folds, {s.get('epochs')} epoch(s) each, seed "
                f"{s.get('seed')}, model {s.get('model')} of arm {s.get('arm')!r} without noise"
                if learned else "learned checks not run")
    return {"rows": result.rows(), "passed": result.passed, "settings": settings,
            "splits": ", ".join(f"{k} {v} rows" for k, v in result.splits.items()),
            "wall_s": result.wall_s}


def align(curves):
    """Runs x epochs matrix (NaN where a run has no value) from ``[(epochs, values)]``."""
    curves = [(np.asarray(e, dtype=np.int64), np.asarray(v, dtype=float)) for e, v in curves]
    if not curves:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
    epochs = np.unique(np.concatenate([e for e, _ in curves]))
    matrix = np.full((len(curves), epochs.size), np.nan)
    for i, (e, v) in enumerate(curves):
        matrix[i, np.searchsorted(epochs, e)] = v
    return epochs, matrix


def series(history, arms, train, val):
    """``{arm: {"train": (epochs, matrix), "val": ...}}`` and ``{arm: (epochs, gap)}``."""
    curves, gaps = {}, {}
    for arm in arms:
        records = [r for r in history if r["arm"] == arm]
        out = {}
        for key, m in (("train", train), ("val", val)):
            got = [(r["epochs"][m], r["history"][m]) for r in records if m in r["history"]]
            if got:
                out[key] = align(got)
        if out:
            curves[arm] = out
        pairs = []
        for r in records:
            if train in r["history"] and val in r["history"]:
                te, tv = r["epochs"][train], r["history"][train]
                ve, vv = r["epochs"][val], r["history"][val]
                common, ti, vi = np.intersect1d(te, ve, return_indices=True)
                pairs.append((common, tv[ti] - vv[vi]))
        if pairs:
            gaps[arm] = align(pairs)
    return curves, gaps


def metric_curves(history, arms, metric):
    """``{arm: (epochs, runs x epochs matrix)}`` of ``metric``'s learning curves
    (arms without a curve of it are left out)."""
    out = {}
    for arm in arms:
        got = [(r["epochs"][metric], r["history"][metric]) for r in history
               if r["arm"] == arm and metric in r["history"]]
        if got:
            out[arm] = align(got)
    return out


def compared(arms, comparison):
    """The comparisons of ``arms`` in arm order (the reference has none)."""
    return [comparison[a] for a in arms if a in comparison]


def figures(d, arms, summary, grids, reference, comparison=None):
    """``{"grids": [...], "main": [...]}``: each figure a dict with its ``id``, PNG
    ``uri``, ``alt`` text, and the names its caption uses (plain text)."""
    # Deferred: matplotlib loads only when a report is drawn (start-up time of
    # everything else that imports the report package).
    from noisewise.study.report import figures as plots

    metric, train = d["metric"], d["train"]
    val = f"val_{train}"
    values = {a: [r["final"].get(metric, math.nan) for r in d["runs"] if r["arm"] == a]
              for a in arms}
    estimates = {a: s.final for a, s in summary.items()}
    # One seed per arm: every caption that promises a band or an interval says so.
    single = bool(summary) and max(s.n for s in summary.values()) == 1
    names = {"metric": metric, "train": train, "val": val, "single": single}
    out = {"grids": [], "main": []}

    def add(group, fig, figure_id, alt, **extra):
        out[group].append({"id": figure_id, "uri": plots.to_data_uri(fig), "alt": alt,
                           **names, **extra})

    for parent, g in grids.items():
        add("grids", plots.grid_figure(g, values, estimates, metric, reference),
            f"grid-{len(out['grids'])}",
            f"Final {metric} against the noise level of grid {parent}", parent=parent)
    if not arms:
        return out
    drawn = [c for c in compared(arms, comparison or {}) if c.n]
    if drawn:
        add("main", plots.forest_figure(drawn, metric, reference,
                                        {c.arm: verdict.verdict(c) for c in drawn},
                                        stats.is_higher_better(metric)),
            "forest", f"Paired difference in {metric} of each arm to {reference}, with its 95% CI",
            reference=reference)
    add("main", plots.final_figure(arms, values, estimates, metric, reference), "final",
        f"Final {metric} of every seed per arm, with the mean and its 95% CI")
    curves, gaps = series(d["history"], arms, train, val)
    if curves:
        add("main", plots.curves_figure(arms, curves, train, reference), "curves",
            f"Learning curves of {train} and {val} per arm")
    if train != "loss":
        loss, _ = series(d["history"], arms, "loss", "val_loss")
        if loss:
            add("main", plots.curves_figure(arms, loss, "loss", reference), "loss",
                "Learning curves of loss and val_loss per arm")
    if gaps:
        add("main", plots.gap_figure(arms, gaps, train, reference), "gap",
            f"Train-test gap ({train} minus {val}) per arm over epochs")
    from noisewise.study.report import calibration  # matplotlib, as above

    pooled = calibration.pool([r for r in d["runs"] if r["arm"] in arms])
    if pooled:
        add("main", calibration.calibration_figure(pooled), "calibration",
            "Reliability diagram per arm with predict: accuracy against confidence",
            bins=next(iter(pooled.values()))["bins"],
            pooled="; ".join(calibration.caption_rows(pooled)))
    return out


def environment(d):
    """Backends and versions (with run counts), replica seeds, run times, training time."""
    runs = d["all"]
    combos = {}
    for r in runs:
        key = json.dumps({"backend": r["backend"], **(r["versions"] or {})}, sort_keys=True)
        combos[key] = combos.get(key, 0) + 1
    walls = [r["wall_s"] for r in runs if r["wall_s"] is not None]
    started = [r["started_at"] for r in runs if r["started_at"]]
    finished = [r["finished_at"] for r in runs if r["finished_at"]]
    return {"combos": [(json.loads(k), n) for k, n in combos.items()],
            "seeds": sorted({(r["replica"], r["seed"]) for r in runs}),
            "wall_s": sum(walls), "n_wall": len(walls),
            "first": min(started) if started else None,
            "last": max(finished) if finished else None}


def table_rows(arms, summary, counts):
    """Arms with a row in the summary table: those with finished runs, and those whose
    every run diverged (a row saying so, no numbers); whether any arm lost runs."""
    rows = [a for a in counts if a in summary or counts[a].all_diverged]
    rows += [a for a in arms if a not in rows]
    return rows, any(counts[a].lost for a in rows if a in counts)


def notes(arms, summary, comparison, reference):
    """``[(note, which arms)]``: each statistical caveat once, with the arms it concerns."""
    found = {}
    for arm in arms:
        c = comparison.get(arm)
        for note in (c.note if c else None, summary[arm].note):
            for part in (note or "").split("; "):
                if part:
                    found.setdefault(part, []).append(arm)
    out = []
    for note, who in found.items():
        if len(who) == len(arms):
            scope = "all arms"
        elif len(who) == len(arms) - 1 and reference not in who and len(who) > 2:
            scope = "every arm compared with the reference"
        else:
            scope = ", ".join(who)
        out.append((note, scope))
    return out


def grid_texts(grids, ref_mean):
    """The sentence under each grid figure, as data: the best level and how sure it is."""
    out = []
    for g in grids.values():
        level = None if g.best is None else ", ".join(
            f"{k} = {v}" for k, v in g.params[g.best].items())
        out.append({"grid": g, "level": level, "ref_mean": ref_mean,
                    "p_best": None if g.best is None else g.p_best[g.best]})
    return out


def small_n(arms, summary, comparison):
    """``[(warning, arms)]``: the few-seeds warnings of the statistics, each once."""
    found = {}
    for arm in arms:
        for obj in (summary.get(arm), comparison.get(arm)):
            text = getattr(obj, "warning", None)
            if text:
                found.setdefault(text, [])
                if arm not in found[text]:
                    found[text].append(arm)
    return list(found.items())


def warnings(*, counts, reference, stored_reference, n_done, arms, summary, failed,
             environment, expected, comparison=None, improving=()):
    """``[(kind, details)]`` of every warning box, in page order (see ``warnings.html``).

    ``improving`` is the :func:`~noisewise.study.report.verdict.still_improving`
    list of the report's metric.
    """
    out = [("all_diverged", {"arm": k.arm, "text": k.all_diverged_text()})
           for k in counts.values() if k.all_diverged]
    diverged = [k for k in counts.values() if k.diverged and not k.all_diverged]
    if diverged:
        out.append(("diverged", {"arms": [(k.arm, k.text()) for k in diverged],
                                 "n": sum(k.diverged for k in diverged)}))
    if stored_reference and reference != stored_reference and stored_reference in counts:
        out.append(("reference", {"stored": stored_reference, "used": reference}))
    n_diverged = sum(k.diverged for k in counts.values())
    if not n_done:
        out.append(("nothing", {"yet": not n_diverged}))
    if arms and max(summary[a].n for a in arms) == 1:
        out.append(("single", {}))
    for text, who in small_n(arms, summary, comparison or {}):
        out.append(("small_n", {"text": text, "arms": who, "all": len(who) == len(arms)}))
    if improving:
        out.append(("improving", {"metric": improving[0].metric, "trends": list(improving),
                                  "digits": verdict.trend_digits(improving)}))
    if failed:
        out.append(("failed", {"n": len(failed)}))
    if len(environment["combos"]) > 1:
        out.append(("mixed", {}))
    if n_done and n_done + n_diverged < expected:  # diverged runs are final, not pending
        out.append(("pending", {"n": n_done, "expected": expected}))
    return out
