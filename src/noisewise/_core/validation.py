"""Argument checks that name the parameter, the value received and what is allowed.

Numbers must be finite unless a check is told otherwise (``finite=False``): an
infinite noise level or learning rate only ever produces non-finite outputs, so
it is refused where it is given, not discovered after training. Where infinity
would mean "no bound", the API takes ``None`` instead.
"""

import math
import unicodedata
from numbers import Real


def _is_real(value):
    return isinstance(value, Real) and not isinstance(value, bool)


def _as_float(name, value, finite):
    """``float(value)``, refusing NaN (always) and +-inf (when ``finite``)."""
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float is not a usable number either
        digits = len(str(abs(value))) if abs(value).bit_length() < 14000 else "over 4,000"
        raise ValueError(f"`{name}` must be a finite number. Received: {name}=an integer "
                         f"of {digits} digits") from None
    if math.isnan(number) or (finite and math.isinf(number)):
        raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}")
    return number


def check_number(name, value, *, low=None, high=None, low_open=False, high_open=False,
                 finite=True):
    """Return ``value`` as a float if it lies in the interval, else raise ValueError.

    NaN is always refused; +-inf too unless ``finite=False``.
    """
    if not _is_real(value):
        raise ValueError(f"`{name}` must be a real number. Received: {name}={value!r}")
    value = _as_float(name, value, finite)
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


def is_finite_number(value):
    """True for a real number (not bool) that is neither NaN nor +-inf as a float."""
    if not _is_real(value):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond a float's range
        return False


def check_non_negative(name, value):
    return check_number(name, value, low=0.0)


def check_range(name, value, *, allow_none=True):
    """Validate a finite ``(low, high)`` pair with low < high; returns a tuple of floats or None."""
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
    try:
        low, high = (_as_float(name, v, True) for v in value)
    except ValueError:
        raise ValueError(
            f"`{name}` must be a pair (low, high) of finite numbers. "
            f"Received: {name}={tuple(value)!r}"
        ) from None
    if not low < high:
        raise ValueError(
            f"`{name}` must satisfy low < high. Received: {name}=({low}, {high})"
        )
    return (low, high)


def check_choice(name, value, allowed):
    try:
        ok = value in allowed
    except TypeError:  # an unhashable value (a list) against a dict or set
        ok = False
    if not ok:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"`{name}` must be one of {shown}. Received: {name}={value!r}")
    return value


def check_int(name, value, *, low=None, high=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if low is not None and value < low:
        raise ValueError(f"`{name}` must be >= {low}. Received: {name}={value!r}")
    if high is not None and value > high:
        raise ValueError(f"`{name}` must be <= {high:,}. Received: {name}={value!r}")
    return value


# Categories a name must not contain: C0/C1 controls (ESC starts a terminal
# escape, \n and \t break a line or a table), format characters (zero-width
# spaces and joiners, bidi overrides that reorder what a terminal shows),
# surrogates, and the Unicode line and paragraph separators.
_HIDDEN = {"Cc": "control", "Cf": "format", "Cs": "surrogate", "Zl": "line separator",
           "Zp": "paragraph separator"}


def shown(text, limit=60):
    """``repr`` of a string (escapes shown, not executed), cut to ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def check_name(name, value, *, max_length):
    """A name shown in terminals, reports and file names: non-empty, visible, bounded."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"`{name}` must be a non-empty string. Received: {name}={value!r}")
    for i, char in enumerate(value):
        kind = _HIDDEN.get(unicodedata.category(char))
        if kind is not None:
            raise ValueError(
                f"`{name}` must not contain control or invisible characters (terminal "
                f"escapes, tabs, line breaks, zero-width or bidi marks); it has the {kind} "
                f"character U+{ord(char):04X} at position {i}. Received: {name}={shown(value)}"
            )
    if value != value.strip():
        raise ValueError(f"`{name}` must not start or end with whitespace. "
                         f"Received: {name}={shown(value)}")
    if len(value) > max_length:
        raise ValueError(f"`{name}` must be at most {max_length} characters. "
                         f"Received: {name}={shown(value)}")
    return value
