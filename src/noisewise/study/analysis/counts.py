"""What became of each run: its status, the runs each arm lost, the table of done runs.

A ``diverged`` run (its loss or a metric became NaN or infinite; so is a
``done`` run of an older store whose final loss is not finite, see
:func:`run_status`) or a ``failed`` one is left out of every estimate and
test; :func:`run_counts` says how many each arm lost.
"""

import math
from dataclasses import dataclass


def _value(run, metric):
    final = run.get("final")
    value = final.get(metric) if isinstance(final, dict) else run.get(metric)
    return math.nan if value is None else float(value)


def run_status(run):
    """``"done"``, ``"diverged"`` or ``"failed"``: the stored status, except that a
    ``done`` run whose final ``loss`` or ``val_loss`` is not finite counts as
    diverged (stores written before divergence was a status hold such runs).

    Example:
        >>> run_status({"status": "done", "final": {"loss": float("nan")}})
        'diverged'
    """
    status = run.get("status", "done")
    if status == "done":
        final = run.get("final")
        final = final if isinstance(final, dict) else {}
        for key in ("loss", "val_loss"):
            value = final.get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                return "diverged"
    return status


@dataclass(frozen=True)
class RunCounts:
    """What became of an arm's runs: finished, diverged, failed.

    ``first_diverged_epoch`` is the earliest 1-based epoch at which one of its
    runs diverged (None when unknown or none diverged).
    """

    arm: str
    done: int
    diverged: int
    failed: int
    first_diverged_epoch: int | None = None

    lost = property(lambda self: self.diverged + self.failed)
    all_diverged = property(lambda self: self.done == 0 and self.diverged > 0)

    def text(self):
        """``"2 diverged (first at epoch 3), 1 failed"``, or ``""`` when none was lost."""
        parts = []
        if self.diverged:
            at = (f" (first at epoch {self.first_diverged_epoch})"
                  if self.first_diverged_epoch is not None else "")
            parts.append(f"{self.diverged} diverged{at}")
        if self.failed:
            parts.append(f"{self.failed} failed")
        return ", ".join(parts)

    def all_diverged_text(self):
        """``"all 4 runs diverged (first at epoch 3)"`` for an arm with no finished run."""
        at = (f" (first at epoch {self.first_diverged_epoch})"
              if self.first_diverged_epoch is not None else "")
        return f"all {self.diverged} runs diverged{at}"


def _ordered(runs):
    if runs and all(r.get("arm_position") is not None for r in runs):
        return sorted(runs, key=lambda r: r["arm_position"])
    return list(runs)


def run_counts(runs):
    """``{arm: RunCounts}`` of run records of any status, arms in spec order."""
    counts = {}
    for r in _ordered(runs):
        c = counts.setdefault(r["arm"], {"done": 0, "diverged": 0, "failed": 0, "epoch": None})
        status = run_status(r)
        if status in ("done", "diverged", "failed"):
            c[status] += 1
        epoch = r.get("diverged_epoch")
        if status == "diverged" and epoch is not None:
            c["epoch"] = epoch if c["epoch"] is None else min(c["epoch"], epoch)
    return {arm: RunCounts(arm, c["done"], c["diverged"], c["failed"], c["epoch"])
            for arm, c in counts.items()}


def _table(runs, metric):
    """``{arm: {replica: value}}`` of done runs, arms in spec (or first-seen) order."""
    runs = [r for r in runs if run_status(r) == "done"]
    table = {}
    for r in _ordered(runs):
        row = table.setdefault(r["arm"], {})
        if r["replica"] in row:
            raise ValueError(f"Two runs for arm {r['arm']!r}, replica {r['replica']}.")
        row[r["replica"]] = _value(r, metric)
    return table
