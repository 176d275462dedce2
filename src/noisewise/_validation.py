"""Argument checks that name the parameter, the value received and what is allowed."""

import math
from numbers import Real


def _is_real(value):
    return isinstance(value, Real) and not isinstance(value, bool)


def check_number(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """Return ``value`` as a float if it lies in the interval, else raise ValueError."""
    if not _is_real(value) or math.isnan(float(value)):
        raise ValueError(f"`{name}` must be a real number. Received: {name}={value!r}")
    value = float(value)
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(
            f"`{name}` must be in {left}{lo}, {hi}{right}. Received: {name}={value!r}"
        )
    return value


def check_non_negative(name, value):
    return check_number(name, value, low=0.0)


def check_range(name, value, *, allow_none=True):
    """Validate a ``(low, high)`` pair with low < high; returns a tuple of floats or None."""
    if value is None and allow_none:
        return None
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(_is_real(v) for v in value)
    ):
        raise ValueError(
            f"`{name}` must be a pair (low, high) of numbers. Received: {name}={value!r}"
        )
    low, high = float(value[0]), float(value[1])
    if not low < high:
        raise ValueError(
            f"`{name}` must satisfy low < high. Received: {name}=({low}, {high})"
        )
    return (low, high)


def check_choice(name, value, allowed):
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"`{name}` must be one of {shown}. Received: {name}={value!r}")
    return value


def check_int(name, value, *, low=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if low is not None and value < low:
        raise ValueError(f"`{name}` must be >= {low}. Received: {name}={value!r}")
    return value
