"""SpecError and the small helpers every section check uses to name its key path."""

from noisewise._core.validation import check_name


def _printable(text):
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class SpecError(ValueError):
    """An invalid study spec: one line per error, each starting with its key path.

    Validation reports every error it finds in one pass, the first one first
    (``arms[2].noise[0].stddev: `stddev` must be in [0.0, inf]. Received:
    stddev=-0.1``); :attr:`errors` holds the lines. Each line is printable: a
    control or invisible character from the spec (a key, a name, a cell of the
    data) is shown escaped (``\\x1b``), so it never reaches a terminal raw.
    """

    def __init__(self, message="", errors=None):
        lines = [_printable(e) for e in (errors if errors else [message])]
        self.errors = tuple(lines)
        super().__init__("\n".join(lines))


def fail(path, message):
    raise SpecError(f"{path}: {message}")


def table(value, path, required=True):
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        fail(path, f"must be a table (dict). Received: {value!r}")
    return value


def unknown(entries, allowed, path):
    extra = sorted(set(entries) - set(allowed), key=str)
    if extra:
        fail(f"{path}.{extra[0]}", f"unknown key; allowed keys: {', '.join(sorted(allowed))}")


def checked(path, check, name, value):
    """Run a noisewise check (raises ValueError) and prefix its message with the path."""
    try:
        return check(name, value)
    except ValueError as e:
        fail(path, str(e))


def named(path, value, max_length):
    return checked(path, lambda n, v: check_name(n, v, max_length=max_length), "name", value)


FAILED = object()  # what Collector.run returns for a check that raised


class Collector:
    """Gathers the errors of independent checks, so one pass reports them all."""

    def __init__(self):
        self.errors = []

    def run(self, check, *args):
        """``check(*args)``, or FAILED when it raised a SpecError (whose lines are kept)."""
        try:
            return check(*args)
        except SpecError as e:
            self.errors.extend(e.errors)
            return FAILED

    def raise_any(self):
        if self.errors:
            raise SpecError(errors=self.errors)
