"""Defaults shared by the runner, the command line, the report and the exports.

Each is written once here so that ``noisewise run``, ``show``, ``report`` and
``export`` can never disagree on which store, metric or study they mean, and
so that a metric name is checked in one place (:func:`check_metric`). The
module imports nothing heavy, so the command line can read it while it starts.
"""

from collections.abc import Mapping
from typing import Any

DEFAULT_STORE = "noisewise.db"
"""The store file when neither ``--store`` nor ``study.store`` names one (the current folder)."""


def default_metric(spec: Mapping[str, Any]) -> str:
    """The metric tables and reports show by default: ``val_<first train metric>``,
    or ``test_<first train metric>`` when a validation split is held out (the
    ``val_*`` curves then select models; the test split gives the figures).

    Args:
        spec: A normalised study spec dict (as stored): ``spec["train"]["metrics"]``
            and ``spec["train"]["validation_split"]`` are read; without metrics
            the default is ``val_loss`` (``test_loss``).

    Example:
        >>> default_metric({"train": {"metrics": ["accuracy"]}})
        'val_accuracy'
        >>> default_metric({"train": {"metrics": ["mse"], "validation_split": 0.2}})
        'test_mse'
        >>> default_metric({"train": {}})
        'val_loss'
    """
    train = spec.get("train") or {}
    metrics = train.get("metrics") or []
    prefix = "test" if train.get("validation_split") else "val"
    return f"{prefix}_{metrics[0]}" if metrics else f"{prefix}_loss"


def latest_study(store: Any) -> str | None:
    """The name of the study a store created last (what ``show`` and ``report`` pick), or None.

    Args:
        store: An open :class:`~noisewise.study.store.Store`; its ``studies()``
            are ordered by creation.
    """
    studies = store.studies()
    return studies[-1]["name"] if studies else None


# Final-dict fields that are not metrics of the model: the epoch the best
# validation value was reached is a position, and no arm is "better" for it.
_NOT_METRICS = ("best_epoch",)


class UnknownMetric(ValueError):
    """A metric name that the study's runs do not hold (the command line exits 2).

    Attributes:
        metric: The name received.
        study: The study's name.
        available: The metric names the study holds, sorted.
        suggestion: The closest available name, or None.
    """

    def __init__(self, metric: str, study: str, available: list[str]):
        import difflib  # standard library, loaded only when a name is wrong

        self.metric, self.study, self.available = metric, study, list(available)
        close = difflib.get_close_matches(str(metric), self.available, n=1, cutoff=0.6)
        self.suggestion = close[0] if close else None
        hint = f" Did you mean {self.suggestion!r}?" if self.suggestion else ""
        super().__init__(f"`metric` must be a metric stored for study {study!r}: "
                         f"{', '.join(self.available)}. Received: metric={metric!r}.{hint}")

    def cli_text(self) -> str:
        """The one line the command line prints (the option is ``--metric``)."""
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return (f"--metric: unknown metric {self.metric!r} for study {self.study!r}; "
                f"available: {', '.join(self.available)}{hint}")


def spec_metrics(spec: Mapping[str, Any]) -> list[str] | None:
    """The final metrics every run of ``spec`` stores, known before anything trains.

    They are the compiled Keras names: ``loss`` and each ``[train] metrics``
    name, each also with ``val_``, and ``best_val_<first metric>`` (or
    ``best_val_loss``). A ``[robustness]`` table adds metrics named after its
    evaluations, so for such a spec the names are not all known here: None.

    Args:
        spec: A normalised study spec dict (``StudySpec.to_dict()``, or as stored).

    Example:
        >>> spec_metrics({"train": {"metrics": ["accuracy"]}})
        ['accuracy', 'best_val_accuracy', 'loss', 'val_accuracy', 'val_loss']
    """
    if spec.get("robustness"):
        return None
    metrics = list((spec.get("train") or {}).get("metrics") or [])
    names = {"loss", "val_loss", f"best_{default_metric(spec)}"}
    names.update(n for m in metrics for n in (m, f"val_{m}"))
    return sorted(names)


def available_metrics(runs: list[Mapping[str, Any]], spec: Mapping[str, Any] | None = None
                      ) -> list[str] | None:
    """The metric names a study holds: the final metrics of its stored runs (any status).

    The final dict of a run holds the last value of every learning curve, so
    these are the history's names too. A study none of whose runs stored a
    metric (none ran, or every run failed) falls back to :func:`spec_metrics`.

    Args:
        runs: Run records (``Store.runs(..., status=None)``).
        spec: The study's spec dict, for the fallback.

    Returns:
        The sorted names, or None when nothing says which names exist.
    """
    names = {k for r in runs for k in (r.get("final") or {}) if k not in _NOT_METRICS}
    if names:
        return sorted(names)
    return spec_metrics(spec) if spec is not None else None


def check_metric(runs: list[Mapping[str, Any]], metric: str, study: str,
                 spec: Mapping[str, Any] | None = None) -> str:
    """``metric`` if study ``study`` holds it, else :class:`UnknownMetric`.

    Every command that reads a metric (``show``, ``report``, ``export``, ``run
    --metric``) calls this before it prints or writes anything: an unknown
    name would otherwise give an empty table, or replace a good report with
    an empty one.

    Args:
        runs: The study's run records, any status (see :func:`available_metrics`).
        metric: The metric name asked for.
        study: The study's name (for the message).
        spec: The study's spec dict (names when no run stored any).

    Raises:
        UnknownMetric: ``metric`` is none of the available names.

    Example:
        >>> runs = [{"final": {"loss": 0.3, "val_loss": 0.4, "best_epoch": 2}}]
        >>> check_metric(runs, "val_loss", "demo")
        'val_loss'
        >>> try:
        ...     check_metric(runs, "val_los", "demo")
        ... except UnknownMetric as e:
        ...     print(e.cli_text())
        --metric: unknown metric 'val_los' for study 'demo'; available: loss, val_loss (did you mean 'val_loss'?)
    """
    available = available_metrics(runs, spec)
    if available is not None and metric not in available:
        raise UnknownMetric(metric, study, available)
    return metric
