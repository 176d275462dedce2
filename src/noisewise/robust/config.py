"""The robustness config (a dict, or a study's ``[robustness]`` table), checked without a model.

See :mod:`noisewise.robust._study` for the format and the metric names.
:func:`check_config` builds nothing (no model, no layer), so a study can refuse
a bad table before it trains; every error is a :class:`ConfigError` whose
``path`` is the key path of the offending value (``robustness.smoothing.alpha``).
"""

from noisewise._core.validation import check_choice, check_int, check_number, check_range
from noisewise.layers import NOISE_LAYERS
from noisewise.robust.attacks import check_norm

SECTIONS = ("clip", "from_logits", "max_examples", "noise", "attacks", "smoothing", "corruptions")
ATTACK_KEYS = ("type", "eps", "norm", "steps", "step_size", "random_start", "targeted",
               "keep_best")
SMOOTHING_KEYS = ("sigma", "n0", "n", "alpha", "radii", "max_examples", "batch_size")
CORRUPTION_KEYS = ("names", "severities", "image_shape", "value_range", "preset")


CLIP_WORDS = ("data", "none")


def check_clip(value, where="clip"):
    """``"data"`` (the data's range), ``"none"`` (None too) or a checked ``(low, high)`` pair."""
    if value is None:
        return "none"
    if isinstance(value, str):
        if value.lower() in CLIP_WORDS:
            return value.lower()
        raise ValueError(f"`{where}` must be 'data' (the data's range, the default), 'none' or a pair "
                         f"[low, high]. Received: {where}={value!r}")
    return check_range(where, value)


class ConfigError(ValueError):
    """An invalid robustness config; ``path`` is the key path it is about."""

    def __init__(self, path, message):
        super().__init__(message)
        self.path = path


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _at(path, check, *args, **kwargs):
    try:
        return check(*args, **kwargs)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(path, str(e)) from None


def _check_keys(where, entry, allowed):
    if not isinstance(entry, dict):
        raise ConfigError(where, f"`{where}` must be a table (dict). Received: {where}={entry!r}")
    for key in entry:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}", f"`{where}.{key}` is not a known key; allowed: "
                              f"{', '.join(allowed)}. Received: {key}={entry[key]!r}")


def _number(path, value, **bounds):
    return _at(path, check_number, path, value, **bounds)


def _int(path, value, **bounds):
    return _at(path, check_int, path, value, **bounds)


def check_config(config, where="robustness"):
    """Validate a config before anything is evaluated (or trained); returns it.

    Checks what can be checked without a model: known keys, and the values a
    run would otherwise refuse only after training (attack budgets, smoothing
    sample counts and level, severities, noise levels).

    Raises:
        ConfigError: naming the key path under ``where`` (``robustness.smoothing.alpha``).
    """
    _check_keys(where, config, SECTIONS)
    _at(f"{where}.clip", check_clip, config.get("clip", "data"), f"{where}.clip")
    if config.get("max_examples") is not None:
        _int(f"{where}.max_examples", config["max_examples"], low=1)
    for i, entry in enumerate(_as_list(config.get("noise") or [])):
        path = f"{where}.noise[{i}]"
        if not isinstance(entry, dict) or "type" not in entry or "levels" not in entry:
            raise ConfigError(path, f"`{path}` needs `type` and `levels`. Received: {entry!r}")
        _at(f"{path}.type", check_choice, f"{path}.type", entry["type"], tuple(NOISE_LAYERS))
        for level in _as_list(entry["levels"]):
            _number(f"{path}.levels", level, low=0.0)
        _int(f"{path}.draws", entry.get("draws", 5), low=1)
    for i, entry in enumerate(_as_list(config.get("attacks") or [])):
        path = f"{where}.attacks[{i}]"
        _check_keys(path, entry, ATTACK_KEYS)
        _at(f"{path}.type", check_choice, f"{path}.type", entry.get("type"), ("fgsm", "pgd"))
        _at(where, check_norm, entry.get("norm", "linf"))  # its message names no path
        for eps in _as_list(entry.get("eps", 0.1)):
            _number(f"{path}.eps", eps, low=0.0)
        if "steps" in entry:
            _int(f"{path}.steps", entry["steps"], low=1)
    if config.get("smoothing"):
        _check_smoothing(f"{where}.smoothing", config["smoothing"])
    if config.get("corruptions"):
        entry = config["corruptions"]
        _check_keys(f"{where}.corruptions", entry, CORRUPTION_KEYS)
        for s in _as_list(entry.get("severities", [1])):
            _int(f"{where}.corruptions.severities", s, low=1)
            _number(f"{where}.corruptions.severities", s, high=5)
    return config


def _check_smoothing(where, entry):
    _check_keys(where, entry, SMOOTHING_KEYS)
    if "sigma" not in entry:
        raise ConfigError(f"{where}.sigma", f"`{where}.sigma` is required. Received: {entry!r}")
    _number(f"{where}.sigma", entry["sigma"], low=0.0, low_open=True)
    n0 = _int(f"{where}.n0", entry.get("n0", 100), low=1)
    n = _int(f"{where}.n", entry.get("n", 1000), low=1)
    if n0 > n:
        raise ConfigError(f"{where}.n0", f"`{where}.n0` must be <= `n` ({n}). Received: n0={n0}")
    _number(f"{where}.alpha", entry.get("alpha", 0.001), low=0.0, high=1.0, low_open=True,
            high_open=True)
    for r in _as_list(entry.get("radii", [])):
        _number(f"{where}.radii", r, low=0.0)
    if entry.get("max_examples") is not None:
        _int(f"{where}.max_examples", entry["max_examples"], low=1)
