"""One robustness evaluation per study run, from a config dict, as flat metrics.

Config (a dict, or the ``[robustness]`` table of a study spec); every section
is optional::

    {
      "clip": [0.0, 1.0],            # data range: clips noise and attacks (default: none)
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

Metric names (levels and radii written with ``format(v, "g")``):
``clean_acc``; ``noise_acc@gaussian=0.3`` (mean over draws);
``adv_acc@fgsm_linf=0.1`` and ``adv_acc@pgd_l2=0.5``;
``certified_acc@r=0.25`` and ``smoothing_abstain_rate``;
``corruption_acc@gaussian_noise=3`` and ``corruption_acc_mean``. A study
compares arms on any of them; :func:`noisewise.robust.mce_from_metrics` turns
two arms' corruption metrics into mCE.
"""

import numpy as np

from noisewise._core.validation import check_int, check_range
from noisewise.random import derive_seed
from noisewise.robust import _model, attacks, smoothing
from noisewise.robust import evaluate as tables
from noisewise.robust.config import check_config


def _fmt(v):
    return format(float(v), "g")


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _noise(model, x, y, entries, clip, from_logits, seed, details):
    out = {}
    for i, entry in enumerate(_as_list(entries)):
        kwargs = {k: v for k, v in entry.items() if k not in ("type", "levels", "draws")}
        kwargs.setdefault("clip", clip)
        result = tables.noise_sweep(
            model, x, y, entry["type"], _as_list(entry["levels"]), draws=entry.get("draws", 5),
            seed=derive_seed(seed, "robust", "noise", i), from_logits=from_logits, **kwargs)
        details.append(result)
        for level, mean in zip(result.levels, result.mean):
            out[f"noise_acc@{entry['type']}={_fmt(level)}"] = float(mean)
    return out


def _attacks(model, x, y, entries, clip, from_logits, seed, spec):
    out = {}
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
            out[f"adv_acc@{kind}_{norm}={_fmt(eps)}"] = float(np.mean(pred == y))
    return out


def _smoothing(model, x, y, entry, from_logits, seed, details):
    m = entry.get("max_examples")
    xs, ys = (x, y) if m is None else (x[:m], y[:m])
    smooth = smoothing.SmoothedClassifier(model, entry["sigma"], from_logits=from_logits,
                                          batch_size=entry.get("batch_size", 1000))
    cert = smooth.certify(xs, entry.get("n0", 100), entry.get("n", 1000), entry.get("alpha", 0.001),
                          seed=derive_seed(seed, "robust", "smoothing"))
    details.append(cert)
    out = {f"certified_acc@r={_fmt(r)}": cert.certified_accuracy(ys, r)
           for r in _as_list(entry.get("radii", [0.0, entry["sigma"]]))}
    out["smoothing_abstain_rate"] = cert.abstain_rate
    return out


def _corruptions(model, x, y, entry, from_logits, seed, details):
    result = tables.corruption_table(
        model, x, y, entry.get("names"), entry.get("severities", (1, 2, 3, 4, 5)),
        seed=derive_seed(seed, "robust", "corruptions"), value_range=entry.get("value_range", (0.0, 1.0)),
        image_shape=entry.get("image_shape"), preset=entry.get("preset"), from_logits=from_logits)
    details.append(result)
    out = {f"corruption_acc@{c}={_fmt(s)}": float(a)
           for c, accs in result.accuracy.items() for s, a in zip(result.severities, accs)}
    out["corruption_acc_mean"] = float(np.mean([a for accs in result.accuracy.values() for a in accs]))
    return out


def evaluate(model, x_test, y_test, config, seed):
    """Return ``(metrics, details)``: the flat metrics and the result objects behind them."""
    check_config(config, "config")
    seed = check_int("seed", seed, low=0)
    clip = check_range("clip", config.get("clip"))
    from_logits = config.get("from_logits")
    x = np.asarray(x_test, dtype="float32")
    if config.get("max_examples") is not None:
        m = config["max_examples"]
        x, y_test = x[:m], np.asarray(y_test)[:m]
    spec = _model.inspect_output(model, from_logits, probe=x[:2])
    y = _model.labels(y_test, spec, "y_test")
    pred = _model.classes_from_outputs(spec, _model.predict(model, x))
    metrics = {"clean_acc": float(np.mean(pred == y))}
    details = []
    if config.get("noise"):
        metrics.update(_noise(model, x, y, config["noise"], clip, from_logits, seed, details))
    if config.get("attacks"):
        metrics.update(_attacks(model, x, y, config["attacks"], clip, from_logits, seed, spec))
    if config.get("smoothing"):
        metrics.update(_smoothing(model, x, y, config["smoothing"], from_logits, seed, details))
    if config.get("corruptions"):
        metrics.update(_corruptions(model, x, y, config["corruptions"], from_logits, seed, details))
    return metrics, details


def evaluate_for_study(model, x_test, y_test, config, seed):
    """Run the robustness evaluations named in ``config``; return flat metrics.

    See this module's docstring for the config format and metric names;
    :func:`evaluate` also returns the result objects behind them.
    """
    return evaluate(model, x_test, y_test, config, seed)[0]
