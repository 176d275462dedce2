"""What an arm's noise entry may say, checked without building a layer.

The names and bounds mirror the constructors of :mod:`noisewise.layers`, Keras'
dropout layers, :class:`noisewise.WeightNoise`, :class:`noisewise.GradientNoise`
and :class:`noisewise.robust.AdversarialModel`; a test compares the argument
lists with those constructors' signatures, so the two cannot drift apart. The
checks are the same plain functions the constructors call, so the messages are
the constructors' own (``stddev`` must be in [0.0, inf]. Received: stddev=-0.1).
"""

from noisewise._core.sampling import SAMPLERS
from noisewise._core.validation import (
    check_choice,
    check_int,
    check_non_negative,
    check_number,
    check_range,
)

WHERE = ("input", "pre_activation", "post_activation")
# type -> (level name, (low, high, low_open)) of the noise layers, in NOISE_LAYERS order.
LEVELS = {
    "gaussian": ("stddev", (0.0, None, False)),
    "multiplicative": ("stddev", (0.0, None, False)),
    "uniform": ("amplitude", (0.0, None, False)),
    "salt_and_pepper": ("rate", (0.0, 1.0, False)),
    "poisson": ("peak", (0.0, None, True)),
}
_BASE = ("clip", "active_at_inference", "sampler")
_ADDITIVE = ("relative", "value_range")
_EXTRA = {"gaussian": _ADDITIVE, "uniform": _ADDITIVE, "multiplicative": (),
          "salt_and_pepper": ("salt_ratio", "value_range"), "poisson": ("value_range",)}
DROPOUT = {"dropout": ("rate", "noise_shape"), "gaussian_dropout": ("rate",),
           "alpha_dropout": ("rate", "noise_shape")}
# The arguments a study arm's {type = "adversarial", ...} entry may set.
ADVERSARIAL_KEYS = ("attack", "eps", "norm", "steps", "step_size", "random_start", "ratio",
                    "noise_stddev", "clip", "from_logits")
# The arguments of a {type = "consistency", ...} entry (noisewise.consistency.PiModel).
CONSISTENCY_KEYS = ("weight", "rampup_epochs", "from_logits")
NOISE_TYPES = (*LEVELS, *DROPOUT, "weight", "gradient", "adversarial", "consistency", "mixup")
# Entries that act on the whole model or the optimizer, not at one place in it.
UNPLACED = ("weight", "gradient", "adversarial", "consistency", "mixup")
# Entries that wrap the arm's model in a training wrapper: one per arm.
WRAPPERS = ("adversarial", "consistency", "mixup")
RELATIVE = (None, "std", "range")
ATTACKS = ("fgsm", "pgd", None)
NORMS = {"linf": "linf", "inf": "linf", float("inf"): "linf", "l2": "l2", 2: "l2", "2": "l2"}
# Kept as written (not turned into floats): Keras wants integer shapes and counts.
INTEGER_ARGUMENTS = ("noise_shape", "steps", "rampup_epochs")
# Entries whose level is a variable, which an `adapt` table (an adaptive schedule,
# noisewise.schedules.adaptive) may drive: level name and (low, high, low_open).
ADAPTABLE = {**LEVELS, "weight": ("stddev", (0.0, None, False))}
AUGMENT_LEVEL = ("augment_probability", (0.0, 1.0, False))
ADAPT_KEYS = ("signal", "target", "gain", "bounds")
ADAPT_DEFAULTS = {"signal": "accuracy", "target": 0.0, "gain": 1.0, "bounds": [0.0, 1.0]}


def noise_arguments(kind):
    """``(required, allowed)`` argument names of a noise type (besides type/where)."""
    if kind in LEVELS:
        level = LEVELS[kind][0]
        # The constructors' signature order: own arguments, then the base's.
        return (level,), [level, *_EXTRA[kind], *_BASE]
    if kind in DROPOUT:
        return ("rate",), list(DROPOUT[kind])
    if kind == "weight":
        return ("stddev",), ["stddev", "targets", "relative", "active_at_inference", "sampler"]
    if kind == "gradient":
        return ("eta",), ["eta", "gamma"]
    if kind == "adversarial":
        return (), list(ADVERSARIAL_KEYS)
    if kind == "consistency":
        return ("weight",), list(CONSISTENCY_KEYS)
    if kind == "mixup":
        return ("alpha",), ["alpha"]
    raise ValueError(f"unknown noise type {kind!r}")


class ArgumentError(ValueError):
    """A bad noise argument; ``key`` names it (None when no single key is at fault)."""

    def __init__(self, key, message):
        super().__init__(message)
        self.key = key


def _arg(key, check, *args, **kwargs):
    try:
        return check(*args, **kwargs)
    except ValueError as e:
        raise ArgumentError(key, str(e)) from None


def _norm(norm):
    try:
        return NORMS[norm.lower() if isinstance(norm, str) else norm]
    except (KeyError, TypeError):
        raise ArgumentError("norm", "`norm` must be one of 'linf' (or np.inf) and 'l2' (or 2). "
                            f"Received: norm={norm!r}") from None


def check_noise(entry):
    """Raise :class:`ArgumentError` (naming the argument) if the entry's values are invalid.

    In the order the layer's constructor checks them, so the first error is the
    one building the layer would raise.
    """
    kind = entry["type"]
    args = {k: v for k, v in entry.items() if k not in ("type", "where")}
    get = args.get
    if kind == "gradient":
        _arg("eta", check_non_negative, "eta", args["eta"])
        _arg("gamma", check_non_negative, "gamma", get("gamma", 0.55))
    elif kind in DROPOUT:
        _arg("rate", check_number, "rate", get("rate"), low=0.0, high=1.0, high_open=True)
    elif kind == "weight":
        _arg("sampler", check_choice, "sampler", get("sampler", "auto"), SAMPLERS)
        _arg("stddev", check_non_negative, "stddev", args["stddev"])
        targets = get("targets", ("kernel",))
        if isinstance(targets, str) or not targets or not all(isinstance(t, str) for t in targets):
            raise ArgumentError("targets", "`targets` must be a non-empty list of weight "
                                f"attribute names. Received: targets={targets!r}")
    elif kind == "adversarial":
        attack = _arg("attack", check_choice, "attack", get("attack", "pgd"), ATTACKS)
        _arg("eps", check_non_negative, "eps", get("eps", 0.1))
        _norm(get("norm", "linf"))
        if attack != "fgsm":
            _arg("steps", check_int, "steps", get("steps", 7), low=1)
        if get("step_size") is not None:
            _arg("step_size", check_number, "step_size", args["step_size"], low=0.0,
                 low_open=True)
        _arg("ratio", check_number, "ratio", get("ratio", 1.0), low=0.0, high=1.0)
        _arg("noise_stddev", check_non_negative, "noise_stddev", get("noise_stddev", 0.0))
        _arg("clip", check_range, "clip", get("clip"))
        if get("from_logits") not in (None, True, False):
            raise ArgumentError("from_logits", "`from_logits` must be None, True or False. "
                                f"Received: from_logits={get('from_logits')!r}")
    elif kind == "mixup":
        _arg("alpha", check_number, "alpha", args["alpha"], low=0.0, low_open=True)
    elif kind == "consistency":
        _arg("weight", check_non_negative, "weight", args["weight"])
        _arg("rampup_epochs", check_int, "rampup_epochs", get("rampup_epochs", 0), low=0)
        if get("from_logits") not in (None, True, False):
            raise ArgumentError("from_logits", "`from_logits` must be None, True or False. "
                                f"Received: from_logits={get('from_logits')!r}")
    else:
        _check_layer_noise(kind, args)
    if args.get("adapt") is not None:
        level, bounds = ADAPTABLE[kind]
        check_adapt_start(level, args[level], args["adapt"])


def check_adapt_start(level, value, adapt):
    """Raise :class:`ArgumentError` on ``level`` when its starting ``value`` lies
    outside the normalised ``adapt`` table's bounds."""
    low, high = adapt["bounds"]
    if not low <= value <= high:
        raise ArgumentError(level, f"the starting level {value!r} lies outside adapt.bounds "
                            f"[{low}, {high}]. Received: {level}={value!r}")


def check_adapt_bounds(bounds, level, level_bounds):
    """Raise :class:`ArgumentError` on ``bounds`` when they leave the level's own range."""
    low, high, low_open = level_bounds
    below = bounds[0] <= low if low_open else bounds[0] < low
    if below or (high is not None and bounds[1] > high):
        allowed = f"{'(' if low_open else '['}{low}, {'inf' if high is None else high}]"
        raise ArgumentError("bounds", f"`bounds` must lie within the range of `{level}`, "
                            f"{allowed}. Received: bounds={list(bounds)!r}")


def _check_layer_noise(kind, args):
    level, (low, high, low_open) = LEVELS[kind]
    get = args.get
    _arg("sampler", check_choice, "sampler", get("sampler", "auto"), SAMPLERS)
    _arg(level, check_number, level, args[level], low=low, high=high, low_open=low_open)
    clip = _arg("clip", check_range, "clip", get("clip"))
    if kind in ("gaussian", "uniform"):
        relative = _arg("relative", check_choice, "relative", get("relative"), RELATIVE)
        value_range = _arg("value_range", check_range, "value_range", get("value_range"))
        if relative == "range" and value_range is None and clip is None:
            raise ArgumentError(None, "`relative='range'` needs `value_range` (or `clip`) to "
                                "know the data's range. Received: value_range=None, clip=None")
    if kind == "salt_and_pepper":
        _arg("salt_ratio", check_number, "salt_ratio", get("salt_ratio", 0.5), low=0.0, high=1.0)
    if kind in ("salt_and_pepper", "poisson"):
        _arg("value_range", check_range, "value_range", get("value_range", (0.0, 1.0)),
             allow_none=False)
