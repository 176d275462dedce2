"""What an audit found: one :class:`CheckResult` per check, the :class:`AuditResult`
of them all, the fail-on thresholds (:func:`parse_thresholds`) and the table rows.

A threshold is a count (an integer: fail when more than that many rows, features
or classes are found) or a fraction (a float below 1: fail when more than that
share of the check's total is found): ``leakage=0`` fails on any leaked row,
``label=0.05`` on more than 5% of the audited training rows flagged.

Example:
    >>> parse_thresholds("leakage=0,label=0.05")
    {'leakage': 0, 'label': 0.05}
    >>> CheckResult("leakage", "found", count=3, total=100).exceeds(0)
    True
"""

import dataclasses
import math

# The checks in the order the table shows them: NumPy ones, then the learned ones.
EXACT_CHECKS = ("nonfinite", "constant", "duplicate", "leakage", "imbalance", "label_type")
LEARNED_CHECKS = ("label", "outlier", "near_duplicate")
CHECKS = EXACT_CHECKS + LEARNED_CHECKS
STATUSES = ("ok", "found", "skipped")


class AuditFailed(Exception):
    """Thresholds exceeded: the data fails its audit (``noisewise`` exits 4).

    Attributes:
        result: The :class:`AuditResult`.
    """

    def __init__(self, result):
        self.result = result
        lines = [f"{c.name}: {c.count} found > {_shown(t)}" + (
            f" ({t:.0%} of {c.total} is {t * c.total:g})" if isinstance(t, float) else "")
            for c, t in result.exceeded()]
        super().__init__("data audit failed, nothing trained: " + "; ".join(lines))


def _shown(threshold):
    return f"threshold {threshold:g}" if isinstance(threshold, float) else f"threshold {threshold}"


@dataclasses.dataclass
class CheckResult:
    """One check's outcome.

    Attributes:
        name: One of :data:`CHECKS`.
        status: ``"ok"``, ``"found"`` or ``"skipped"``.
        count: What was found (rows, features or classes; 0 when ok or skipped).
        total: What ``count`` is a share of (rows audited, features, classes).
        detail: One line saying what was found, or why the check was skipped.
        indices: ``{split: [row indices]}`` of what was found (features for
            ``constant``; class codes for ``imbalance``), sorted.
        groups: ``duplicate``: ``{split: [[rows equal to each other], ...]}``.
        score: The learned checks: Datalab's score of the issue type (1 is clean).
        extra: Anything else the check measured (class counts, the ratio).
    """

    name: str
    status: str
    count: int = 0
    total: int = 0
    detail: str = ""
    indices: dict = dataclasses.field(default_factory=dict)
    groups: dict = dataclasses.field(default_factory=dict)
    score: float | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    def exceeds(self, threshold):
        """Whether ``count`` is above ``threshold`` (a count, or a fraction of ``total``)."""
        if self.status == "skipped" or threshold is None:
            return False
        if isinstance(threshold, float):
            return self.count > threshold * self.total
        return self.count > threshold

    @property
    def shown_status(self):
        """``ok``, ``found N`` or ``skipped: reason``, as the table shows it."""
        if self.status == "skipped":
            return f"skipped: {self.detail}"
        return "ok" if self.status == "ok" else f"found {self.count}"

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class AuditResult:
    """Every check of one audit, and the thresholds it was held to.

    Attributes:
        checks: ``{name: CheckResult}`` in :data:`CHECKS` order.
        thresholds: ``{name: count or fraction}``.
        splits: ``{split: rows}`` audited.
        settings: How the learned checks ran (folds, epochs, seed, model).
        wall_s: Seconds the audit took.
    """

    checks: dict
    thresholds: dict = dataclasses.field(default_factory=dict)
    splits: dict = dataclasses.field(default_factory=dict)
    settings: dict = dataclasses.field(default_factory=dict)
    wall_s: float = 0.0

    def __getitem__(self, name):
        return self.checks[name]

    def exceeded(self):
        """``[(CheckResult, threshold)]`` of the thresholds exceeded."""
        return [(self.checks[n], t) for n, t in self.thresholds.items()
                if n in self.checks and self.checks[n].exceeds(t)]

    @property
    def passed(self):
        return not self.exceeded()

    @property
    def skipped(self):
        """``{name: reason}`` of the checks that did not run."""
        return {n: c.detail for n, c in self.checks.items() if c.status == "skipped"}

    def rows(self):
        """``[(check, status, threshold, detail)]``: the table, one row per check."""
        out = []
        for name, c in self.checks.items():
            t = self.thresholds.get(name)
            verdict = "" if t is None else (f"{t:g}" if isinstance(t, float) else str(t))
            if t is not None and c.exceeds(t):
                verdict += " EXCEEDED"
            out.append((name, c.shown_status, verdict, "" if c.status == "skipped" else c.detail))
        return out

    def to_dict(self):
        return {"passed": self.passed, "checks": {n: c.to_dict() for n, c in self.checks.items()},
                "thresholds": dict(self.thresholds), "splits": dict(self.splits),
                "settings": dict(self.settings), "wall_s": self.wall_s,
                "exceeded": [c.name for c, _ in self.exceeded()]}

    @classmethod
    def from_dict(cls, d):
        # A stored audit's keys come back sorted: the table keeps the checks' order.
        names = sorted(d["checks"], key=lambda n: (CHECKS.index(n) if n in CHECKS else len(CHECKS), n))
        checks = {n: CheckResult(**d["checks"][n]) for n in names}
        return cls(checks, d.get("thresholds", {}), d.get("splits", {}), d.get("settings", {}),
                   d.get("wall_s", 0.0))


def _threshold(key, value, path):
    where = f"{path}.{key}" if path else key
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`{where}` must be a count (an integer >= 0) or a fraction (a number "
                         f"in [0, 1)). Received: {key}={value!r}")
    if isinstance(value, float):
        if not (math.isfinite(value) and 0 <= value < 1):
            raise ValueError(f"`{where}` must be a count (an integer >= 0) or a fraction in "
                             f"[0, 1); a float of 1 or more is no fraction. Received: "
                             f"{key}={value!r}")
        return value
    if value < 0:
        raise ValueError(f"`{where}` must be >= 0. Received: {key}={value!r}")
    return int(value)


def check_thresholds(thresholds, path=""):
    """``{name: count or fraction}`` checked; ValueError naming the key and value.

    Args:
        thresholds: A dict (or None: no thresholds).
        path: Key path prefix for messages (``"audit.fail_on"``).
    """
    if thresholds is None:
        return {}
    if not isinstance(thresholds, dict):
        raise ValueError(f"`{path or 'fail_on'}` must be a table of check = threshold. "
                         f"Received: {thresholds!r}")
    out = {}
    for key, value in thresholds.items():
        if key not in CHECKS:
            raise ValueError(f"`{path + '.' if path else ''}{key}` is no check; allowed: "
                             f"{', '.join(CHECKS)}. Received: {key}={value!r}")
        out[key] = _threshold(key, value, path)
    return out


def parse_thresholds(text):
    """``"leakage=0,label=0.05"`` -> ``{"leakage": 0, "label": 0.05}`` (ValueError if malformed)."""
    out = {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not key or not value:
            raise ValueError(f"--fail-on takes NAME=THRESHOLD pairs separated by commas, names: "
                             f"{', '.join(CHECKS)}. Received: {part!r}")
        try:
            number = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"`{key}` must be a count (an integer >= 0) or a fraction in "
                                 f"[0, 1). Received: {key}={value!r}") from None
        out[key] = number
    return check_thresholds(out)
