"""One robustness evaluation per study run, from a config dict, as flat metrics and the terms behind them.

Config (a dict, or the ``[robustness]`` table of a study spec); every section
is optional::

    {
      "clip": "data",                # clips noise and attacks: "data" (default), "none" or [low, high]
      "from_logits": None,           # None detects from the output activation
      "max_examples": 500,           # evaluate the first N test examples (default: all)
      "noise": [{"type": "gaussian", "levels": [0.1, 0.3], "draws": 5}],   # + layer kwargs
      "attacks": [{"type": "fgsm", "eps": [0.05, 0.1]},
                  {"type": "pgd", "eps": 0.1, "norm": "linf", "steps": 10}],
      "smoothing": {"sigma": 0.25, "n0": 100, "n": 1000, "alpha": 0.001,
                    "radii": [0.0, 0.25, 0.5], "max_examples": 200},
      "corruptions": {"names": ["gaussian_noise"], "severities": [1, 2, 3],
                      "image_shape": [8, 8, 1], "value_range": [0.0, 1.0], "preset": "cifar"},
    }

``clip = "data"`` clips to the data's value range: the one the caller knows
(a built-in dataset's, passed as ``value_range``) or else the observed minimum
and maximum of the test inputs; either way the terms say which. An attack
that may leave the range the data lives in measures inputs that cannot occur
(measured on digits: an MLP with 32 ReLU units trained 10 epochs keeps 0.46
accuracy on the 450 test images under PGD at L-infinity eps 0.1 clipped to
[0, 1], and 0.32 unclipped, where background pixels go below 0).
Randomized smoothing never clips: its certificate is for unclipped Gaussian
noise. Corruptions get the same data range as their
``value_range`` unless the entry gives one.

Metric names (levels and radii written with ``format(v, "g")``):
``clean_acc``; ``noise_acc@gaussian=0.3`` (mean over draws);
``adv_acc@fgsm_linf=0.1`` and ``adv_acc@pgd_l2=0.5``;
``certified_acc@r=0.25`` and ``smoothing_abstain_rate``;
``corruption_acc@gaussian_noise=3`` and ``corruption_acc_mean``. A study
compares arms on any of them; :func:`noisewise.robust.mce_from_metrics` turns
two arms' corruption metrics into mCE.

:func:`evaluate` also returns one record per metric with every setting behind
it (attack, norm, eps, steps, step size, clip; sigma, n0, n, alpha, radius;
the number of examples) and a 95% interval: Clopper-Pearson over examples for
an accuracy or a rate, t over draws for a noise level's mean.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from noisewise._core.validation import check_int, check_range
from noisewise.random import derive_seed
from noisewise.robust import _model, attacks, smoothing
from noisewise.robust import evaluate as tables
from noisewise.robust.config import check_clip, check_config

CONFIDENCE = 0.95
OVER_EXAMPLES = "Clopper-Pearson 95% over examples"


def _fmt(v):
    return format(float(v), "g")


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _finite(v):
    """JSON has no NaN: an interval that cannot be computed is None."""
    return None if v is None or not math.isfinite(v) else float(v)


def _pair(r):
    return None if r is None else [float(r[0]), float(r[1])]


@dataclass
class Evaluation:
    """What :func:`evaluate` measured and on which terms.

    Attributes:
        metrics: ``{name: value}``, the flat metrics a study stores.
        records: One dict per metric: ``metric``, ``value``, ``ci_low``,
            ``ci_high``, ``interval`` (how it was computed, or None), the
            ``evaluation`` kind and every setting behind it.
        data: The split and number of examples, their shape (and the model's,
            when reshaped), the data range and the clip with where each came from.
        details: The result objects behind the metrics (:class:`SweepResult`,
            :class:`Certificate`, :class:`CorruptionResult`).
    """

    metrics: dict
    records: list
    data: dict
    details: list = field(default_factory=list)

    def to_dict(self):
        """JSON-ready: ``{"data": ..., "metrics": ..., "records": [...]}``."""
        return {"data": self.data, "metrics": self.metrics, "records": self.records}


def data_range(x, value_range=None, source=None, split="test"):
    """``(range or None, where it came from)``: ``value_range`` if given, else the observed min and max of ``x``."""
    if value_range is not None:
        return check_range("value_range", value_range), source or "given"
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if not low < high:
        return None, f"none: the {len(x)} {split} examples are constant"
    return (low, high), f"observed min and max of the {len(x)} {split} examples"


def resolve_clip(clip, x, value_range=None, source=None, split="test"):
    """``(clip range or None, where it came from)`` for a config's ``clip`` ("data", "none" or a pair)."""
    clip = check_clip(clip)
    if clip == "none":
        return None, "none: attacks and noise are not clipped"
    if clip == "data":
        rng, where = data_range(x, value_range, source, split)
        return rng, (f"the data's range: {where}" if rng is not None else where)
    return clip, "given"


def _proportion(metric, hits, evaluation, **terms):
    """A record of a proportion over examples (``hits``: one bool per example, or ``(count, n)``)."""
    k, n = hits if isinstance(hits, tuple) else (int(np.sum(hits)), len(hits))
    low, high = smoothing.clopper_pearson(k, n, CONFIDENCE)
    return {"metric": metric, "evaluation": evaluation, **terms, "examples": n, "count": k,
            "value": k / n if n else float("nan"), "ci_low": _finite(low), "ci_high": _finite(high),
            "interval": OVER_EXAMPLES}


def _noise(model, x, y, entries, clip, from_logits, seed, out):
    for i, entry in enumerate(_as_list(entries)):
        kwargs = {k: v for k, v in entry.items() if k not in ("type", "levels", "draws")}
        kwargs.setdefault("clip", clip)
        result = tables.noise_sweep(
            model, x, y, entry["type"], _as_list(entry["levels"]), draws=entry.get("draws", 5),
            seed=derive_seed(seed, "robust", "noise", i), from_logits=from_logits, **kwargs)
        out.details.append(result)
        extra = {k: v for k, v in kwargs.items() if k != "clip"}
        for row in result.rows(CONFIDENCE):
            metric = f"noise_acc@{entry['type']}={_fmt(row['level'])}"
            out.metrics[metric] = float(row["mean"])
            out.records.append({
                "metric": metric, "evaluation": "noise", "noise": entry["type"], "level": float(row["level"]),
                **extra, "draws": row["draws"], "clip": _pair(result.clip), "examples": len(x),
                "value": float(row["mean"]), "ci_low": _finite(row["ci_low"]), "ci_high": _finite(row["ci_high"]),
                "interval": f"t 95% over {row['draws']} draws" if row["draws"] > 1 else None})


def _attack_terms(kind, eps, kwargs):
    if kind == "fgsm":
        return {"steps": 1, "step_size": float(eps), "random_start": False}
    steps = kwargs.get("steps", 10)
    step = kwargs.get("step_size")
    return {"steps": steps, "step_size": float(2.5 * eps / steps if step is None else step),
            "random_start": bool(kwargs.get("random_start", True)), "keep_best": bool(kwargs.get("keep_best", True))}


def _attacks(model, x, y, entries, clip, from_logits, seed, spec, out):
    for i, entry in enumerate(_as_list(entries)):
        kind = entry["type"]
        kwargs = {k: v for k, v in entry.items() if k not in ("type", "eps")}
        norm = attacks.check_norm(kwargs.get("norm", "linf"))
        for eps in _as_list(entry.get("eps", 0.1)):
            if kind == "fgsm":
                x_adv = attacks.fgsm(model, x, y, eps, clip=clip, from_logits=from_logits, **kwargs)
            else:
                x_adv = attacks.pgd(model, x, y, eps, clip=clip, from_logits=from_logits,
                                    seed=derive_seed(seed, "robust", "attack", i), **kwargs)
            pred = _model.classes_from_outputs(spec, _model.predict(model, x_adv))
            metric = f"adv_acc@{kind}_{norm}={_fmt(eps)}"
            record = _proportion(metric, pred == y, "attack", attack=kind, norm=norm, eps=float(eps),
                                 **_attack_terms(kind, eps, kwargs), targeted=bool(kwargs.get("targeted", False)),
                                 clip=_pair(clip))
            out.metrics[metric] = record["value"]
            out.records.append(record)


def _smoothing(model, x, y, entry, from_logits, seed, out):
    m = entry.get("max_examples")
    xs, ys = (x, y) if m is None else (x[:m], y[:m])
    n0, n, alpha = entry.get("n0", 100), entry.get("n", 1000), entry.get("alpha", 0.001)
    smooth = smoothing.SmoothedClassifier(model, entry["sigma"], from_logits=from_logits,
                                          batch_size=entry.get("batch_size", 1000))
    cert = smooth.certify(xs, n0, n, alpha, seed=derive_seed(seed, "robust", "smoothing"))
    out.details.append(cert)
    terms = {"sigma": float(entry["sigma"]), "n0": n0, "n": n, "alpha": float(alpha), "clip": None}
    for r in _as_list(entry.get("radii", [0.0, entry["sigma"]])):
        metric = f"certified_acc@r={_fmt(r)}"
        record = _proportion(metric, (cert.prediction == ys) & (cert.radius >= r), "smoothing",
                             **terms, radius=float(r))
        out.metrics[metric] = record["value"]
        out.records.append(record)
    record = _proportion("smoothing_abstain_rate", cert.prediction == smoothing.ABSTAIN, "smoothing", **terms)
    out.metrics[record["metric"]] = record["value"]
    out.records.append(record)


def _corruptions(model, x, y, entry, from_logits, seed, value_range, image_shape, out):
    value_range = entry.get("value_range", value_range or (0.0, 1.0))
    image_shape = entry.get("image_shape", image_shape)
    result = tables.corruption_table(
        model, x, y, entry.get("names"), entry.get("severities", (1, 2, 3, 4, 5)),
        seed=derive_seed(seed, "robust", "corruptions"), value_range=value_range,
        image_shape=image_shape, preset=entry.get("preset"), from_logits=from_logits)
    out.details.append(result)
    terms = {"value_range": _pair(value_range), "preset": entry.get("preset"),
             "image_shape": None if image_shape is None else list(image_shape)}
    for c, accs in result.accuracy.items():
        for s, a in zip(result.severities, accs):
            count = (round(a * len(x)), len(x))  # an accuracy over len(x) examples is count / len(x)
            record = _proportion(f"corruption_acc@{c}={_fmt(s)}", count, "corruption", corruption=c,
                                 severity=s, **terms)
            out.metrics[record["metric"]] = record["value"]
            out.records.append(record)
    mean = float(np.mean([a for accs in result.accuracy.values() for a in accs]))
    out.metrics["corruption_acc_mean"] = mean
    # Accuracies of one set of examples under several corruptions are not
    # independent: no interval is claimed for their mean.
    out.records.append({"metric": "corruption_acc_mean", "evaluation": "corruption", **terms,
                        "examples": len(x), "value": mean, "ci_low": None, "ci_high": None, "interval": None})


def evaluate(model, x_test, y_test, config, seed, *, value_range=None, range_source=None,
             split="test") -> Evaluation:
    """Run the evaluations named in ``config``; return an :class:`Evaluation` that states its terms.

    Args:
        model: Keras classifier. Examples whose size matches its input (flat
            64 against 8x8x1) are reshaped to it; any other shape is refused
            in one line naming both.
        x_test, y_test: Evaluation inputs and labels.
        config: See this module's docstring.
        seed: Non-negative integer; every draw (noise, PGD start, smoothing) derives from it.
        value_range: The data's known ``(low, high)`` range, the default clip;
            None uses the observed min and max of ``x_test``.
        range_source: Where ``value_range`` comes from, in words (stated in ``data``).
        split: Which split ``x_test`` is, in words ("test").
    """
    check_config(config, "config")
    seed = check_int("seed", seed, low=0)
    x = np.asarray(x_test, dtype="float32")
    available = len(x)
    clip, clip_source = resolve_clip(config.get("clip", "data"), x, value_range, range_source, split)
    rng, rng_source = data_range(x, value_range, range_source, split)
    from_logits = config.get("from_logits")
    if config.get("max_examples") is not None:
        m = config["max_examples"]
        x, y_test = x[:m], np.asarray(y_test)[:m]
    shape = tuple(x.shape[1:])
    x = _model.check_input(model, x, "x_test", reshape=True)
    spec = _model.inspect_output(model, from_logits, probe=x[:2])
    y = _model.labels(y_test, spec, "y_test")
    data = {"split": split, "examples": len(x), "available": available, "shape": list(shape),
            "model_shape": list(x.shape[1:]), "reshaped": tuple(x.shape[1:]) != shape,
            "range": _pair(rng), "range_source": rng_source, "clip": _pair(clip), "clip_source": clip_source,
            "seed": seed}
    out = Evaluation({}, [], data)
    pred = _model.classes_from_outputs(spec, _model.predict(model, x))
    record = _proportion("clean_acc", pred == y, "clean")
    out.metrics["clean_acc"] = record["value"]
    out.records.append(record)
    if config.get("noise"):
        _noise(model, x, y, config["noise"], clip, from_logits, seed, out)
    if config.get("attacks"):
        _attacks(model, x, y, config["attacks"], clip, from_logits, seed, spec, out)
    if config.get("smoothing"):
        _smoothing(model, x, y, config["smoothing"], from_logits, seed, out)
    if config.get("corruptions"):
        image_shape = shape if data["reshaped"] and len(shape) == 3 else None
        _corruptions(model, x, y, config["corruptions"], from_logits, seed, rng, image_shape, out)
    return out


def evaluate_for_study(model, x_test, y_test, config, seed, *, value_range=None):
    """Run the robustness evaluations named in ``config``; return flat metrics.

    See this module's docstring for the config format and metric names;
    :func:`evaluate` also returns the terms and intervals behind them.
    """
    return evaluate(model, x_test, y_test, config, seed, value_range=value_range).metrics
