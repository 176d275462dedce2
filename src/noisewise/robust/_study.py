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

from noisewise._validation import check_choice, check_int, check_number, check_range
from noisewise.random import derive_seed
from noisewise.robust import _model, attacks, smoothing
from noisewise.robust import evaluate as tables

SECTIONS = ("clip", "from_logits", "max_examples", "noise", "attacks", "smoothing", "corruptions")
_ATTACK_KEYS = ("type", "eps", "norm", "steps", "step_size", "random_start", "targeted", "keep_best")
_SMOOTHING_KEYS = ("sigma", "n0", "n", "alpha", "radii", "max_examples", "batch_size")
_CORRUPTION_KEYS = ("names", "severities", "image_shape", "value_range", "preset")


def _fmt(v):
    return format(float(v), "g")


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _check_keys(where, entry, allowed):
    if not isinstance(entry, dict):
        raise ValueError(f"`{where}` must be a table (dict). Received: {where}={entry!r}")
    for key in entry:
        if key not in allowed:
            raise ValueError(f"`{where}.{key}` is not a known key; allowed: {', '.join(allowed)}. "
                             f"Received: {key}={entry[key]!r}")


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


def check_config(config, where="robustness"):
    """Validate a config before anything is evaluated (or trained); returns it.

    Checks what can be checked without a model: known keys, and the values a
    run would otherwise refuse only after training (attack budgets, smoothing
    sample counts and level, severities, noise levels). Errors name the key
    path under ``where`` (``robustness.smoothing.alpha``).
    """
    _check_keys(where, config, SECTIONS)
    check_range(f"{where}.clip", config.get("clip"))
    if config.get("max_examples") is not None:
        check_int(f"{where}.max_examples", config["max_examples"], low=1)
    for i, entry in enumerate(_as_list(config.get("noise") or [])):
        path = f"{where}.noise[{i}]"
        if not isinstance(entry, dict) or "type" not in entry or "levels" not in entry:
            raise ValueError(f"`{path}` needs `type` and `levels`. Received: {entry!r}")
        from noisewise.layers import NOISE_LAYERS

        check_choice(f"{path}.type", entry["type"], tuple(NOISE_LAYERS))
        for level in _as_list(entry["levels"]):
            check_number(f"{path}.levels", level, low=0.0)
        check_int(f"{path}.draws", entry.get("draws", 5), low=1)
    for i, entry in enumerate(_as_list(config.get("attacks") or [])):
        path = f"{where}.attacks[{i}]"
        _check_keys(path, entry, _ATTACK_KEYS)
        check_choice(f"{path}.type", entry.get("type"), ("fgsm", "pgd"))
        attacks.check_norm(entry.get("norm", "linf"))
        for eps in _as_list(entry.get("eps", 0.1)):
            check_number(f"{path}.eps", eps, low=0.0)
        if "steps" in entry:
            check_int(f"{path}.steps", entry["steps"], low=1)
    if config.get("smoothing"):
        entry = config["smoothing"]
        _check_keys(f"{where}.smoothing", entry, _SMOOTHING_KEYS)
        if "sigma" not in entry:
            raise ValueError(f"`{where}.smoothing.sigma` is required. Received: {entry!r}")
        check_number(f"{where}.smoothing.sigma", entry["sigma"], low=0.0, low_open=True)
        n0 = check_int(f"{where}.smoothing.n0", entry.get("n0", 100), low=1)
        n = check_int(f"{where}.smoothing.n", entry.get("n", 1000), low=1)
        if n0 > n:
            raise ValueError(f"`{where}.smoothing.n0` must be <= `n` ({n}). Received: n0={n0}")
        check_number(f"{where}.smoothing.alpha", entry.get("alpha", 0.001), low=0.0, high=1.0,
                     low_open=True, high_open=True)
        for r in _as_list(entry.get("radii", [])):
            check_number(f"{where}.smoothing.radii", r, low=0.0)
        if entry.get("max_examples") is not None:
            check_int(f"{where}.smoothing.max_examples", entry["max_examples"], low=1)
    if config.get("corruptions"):
        entry = config["corruptions"]
        _check_keys(f"{where}.corruptions", entry, _CORRUPTION_KEYS)
        for s in _as_list(entry.get("severities", [1])):
            check_int(f"{where}.corruptions.severities", s, low=1)
            check_number(f"{where}.corruptions.severities", s, high=5)
    return config


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
