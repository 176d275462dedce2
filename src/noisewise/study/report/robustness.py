"""The terms behind a study's ``[robustness]`` figures, read from the stored runs.

Every run stores, beside its robustness metrics, the settings that produced
them (:class:`noisewise.robust.Evaluation`): the attack, norm, eps, steps,
step size and clip; sigma, n0, n, alpha and radius; the split, number and
range of the examples, and where the clip came from. This module turns them
into one plain row per metric and one line of the examples, for the report's
"Robustness settings" table and the terminal ``show``. Settings are the same
across the runs of a study (the spec fixes them); where they are not, the row
says so rather than pick one. Runs stored before the settings were kept have
none, and :func:`settings` counts them.

Example:
    >>> terms = {"data": {"split": "test", "examples": 2, "available": 5, "shape": [4],
    ...                   "model_shape": [4], "reshaped": False, "range": [0.0, 1.0],
    ...                   "range_source": "given", "clip": [0.0, 1.0],
    ...                   "clip_source": "the data's range: given", "seed": 1},
    ...          "records": [{"metric": "adv_acc@fgsm_linf=0.1", "evaluation": "attack",
    ...                       "attack": "fgsm", "norm": "linf", "eps": 0.1, "steps": 1,
    ...                       "step_size": 0.1, "clip": [0.0, 1.0], "examples": 2,
    ...                       "value": 0.5, "ci_low": 0.01, "ci_high": 0.99,
    ...                       "interval": "Clopper-Pearson 95% over examples"}]}
    >>> s = settings([{"robustness": terms}])
    >>> s["rows"][0]["settings"]
    'fgsm attack, norm linf, eps 0.1, steps 1, step size 0.1'
    >>> s["data"]
    'test split, 2 of 5 examples, shape (4,); range [0, 1] (given); attacks and noise clipped to that range'
"""

import json

# A record's figure and its interval: measured per run, not settings.
_FIGURE = ("metric", "evaluation", "value", "count", "ci_low", "ci_high")
# Stated in their own columns.
_OWN = ("clip", "examples", "interval")
_PER_RUN = ("seed",)  # the evaluation seed follows the replica
# Settings in the order a reader looks for them (the store keeps JSON keys sorted);
# any other key follows, alphabetically.
_ORDER = ("norm", "eps", "steps", "step_size", "random_start", "keep_best", "targeted", "level",
          "draws", "sigma", "n0", "n", "alpha", "radius", "corruption", "severity", "preset",
          "image_shape", "value_range")


def value_text(v):
    """A setting as text: numbers with ``g`` (eps 0.1, alpha 0.001), a range as
    ``[low, high]``, None as none, booleans lower case."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value_text(e) for e in v) + "]"
    return "none" if v is None else str(v)


def _kind(record):
    kind = record.get("evaluation")
    if kind == "attack":
        return f"{record.get('attack')} attack"
    if kind == "noise":
        return f"{record.get('noise')} noise"
    return {"smoothing": "randomized smoothing", "corruption": "corruption",
            "clean": "no perturbation"}.get(kind, str(kind))


def _setting_text(record):
    skip = _FIGURE + _OWN + ("attack", "noise")
    keys = sorted((k for k in record if k not in skip),
                  key=lambda k: (_ORDER.index(k) if k in _ORDER else len(_ORDER), k))
    return ", ".join([_kind(record)] + [f"{k.replace('_', ' ')} {value_text(record[k])}" for k in keys])


def _clip_text(record):
    if record.get("evaluation") == "smoothing":
        return "none (the certificate is for unclipped noise)"
    if record.get("evaluation") not in ("attack", "noise"):
        return "-"
    return value_text(record.get("clip"))


def data_text(data):
    """One line: the split, number, shape and range of the examples, and the clip with its source."""
    shape = f"shape {tuple(data.get('shape') or ())}"
    if data.get("reshaped"):
        shape += f", reshaped to {tuple(data.get('model_shape') or ())} for the model"
    text = (f"{data.get('split')} split, {data.get('examples')} of {data.get('available')} examples, "
            f"{shape}; range {value_text(data.get('range'))} ({data.get('range_source')}); ")
    if data.get("clip") is None:  # its source says why: "none: ..."
        return text + f"clip {data.get('clip_source')}"
    if data.get("clip") == data.get("range") and \
            data.get("clip_source") == f"the data's range: {data.get('range_source')}":
        return text + "attacks and noise clipped to that range"
    return text + f"attacks and noise clipped to {value_text(data.get('clip'))} ({data.get('clip_source')})"


def _key(value):
    return json.dumps(value, sort_keys=True)


def settings(runs):
    """The robustness settings of ``runs`` (dicts of :meth:`Store.runs`), or None when
    none of them has any.

    Returns:
        ``{"rows": [...], "data": str or None, "data_varies": int, "runs": n,
        "missing": k}``: one row per metric in evaluation order, each with
        ``metric``, ``settings`` (text), ``clip`` (text; where it came from
        is in ``data``), ``examples``, ``interval`` (how each run's interval over
        examples was computed), ``variants`` (distinct settings across runs,
        1 when they agree) and ``runs`` (how many runs state it); ``data`` is
        the examples' line when every run agrees (else None and
        ``data_varies`` counts the variants); ``missing`` counts the runs
        stored without settings (before the store kept them).
    """
    stated = [r for r in runs if r.get("robustness")]
    if not stated:
        return None
    rows, datas = {}, {}
    for run in stated:
        terms = run["robustness"]
        data = {k: v for k, v in (terms.get("data") or {}).items() if k not in _PER_RUN}
        datas.setdefault(_key(data), data)
        for record in terms.get("records") or []:
            row = {"metric": record["metric"], "settings": _setting_text(record),
                   "clip": _clip_text(record), "examples": record.get("examples"),
                   "interval": record.get("interval") or "none"}
            entry = rows.setdefault(record["metric"], {"variants": {}, "runs": 0})
            entry["variants"].setdefault(_key(row), row)
            entry["runs"] += 1
    out = []
    for entry in rows.values():
        first = next(iter(entry["variants"].values()))
        out.append({**first, "variants": len(entry["variants"]), "runs": entry["runs"]})
    one = len(datas) == 1
    return {"rows": out, "data": data_text(next(iter(datas.values()))) if one else None,
            "data_varies": 0 if one else len(datas), "runs": len(runs),
            "missing": len(runs) - len(stated)}


# The names robust.evaluate gives its metrics (see noisewise.robust._study).
_PREFIXES = ("clean_acc", "noise_acc@", "adv_acc@", "certified_acc@", "smoothing_abstain_rate",
             "corruption_acc@", "corruption_acc_mean")


def is_robustness_metric(name):
    """Whether ``name`` is one of the metrics a ``[robustness]`` table makes."""
    return isinstance(name, str) and name.startswith(_PREFIXES)


def metric_lines(s, metric):
    """Lines the terminal prints under a table of ``metric`` when it is a robustness
    metric: its settings, clip and examples from ``s`` (:func:`settings`), or a note
    that its runs did not store them."""
    if not is_robustness_metric(metric):
        return []
    row = None if s is None else next((r for r in s["rows"] if r["metric"] == metric), None)
    if row is None:
        return [f"note: the settings behind {metric} were not stored with its runs "
                "(stored by an older noisewise); the spec's [robustness] table states them"]
    lines = [f"{metric}: {row['settings']}; clip {row['clip']}; {row['examples']} examples; "
             f"per-run interval: {row['interval']}"]
    if row["variants"] > 1:
        lines.append(f"warning: the settings of {metric} differ across its {row['runs']} runs "
                     f"({row['variants']} variants; the first is shown)")
    if s["data"]:
        lines.append(f"examples: {s['data']}")
    if s["missing"]:
        lines.append(f"note: {s['missing']} of {s['runs']} runs were stored without their "
                     "robustness settings (by an older noisewise)")
    return lines
