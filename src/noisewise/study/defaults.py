"""Defaults shared by the runner, the command line, the report and the exports.

Each is written once here so that ``noisewise run``, ``show``, ``report`` and
``export`` can never disagree on which store, metric or study they mean. The
module imports nothing, so the command line can read it while it starts.
"""

from collections.abc import Mapping
from typing import Any

DEFAULT_STORE = "noisewise.db"
"""The store file when neither ``--store`` nor ``study.store`` names one (the current folder)."""


def default_metric(spec: Mapping[str, Any]) -> str:
    """The metric tables and reports show by default: ``val_<first train metric>``.

    Args:
        spec: A normalised study spec dict (as stored): ``spec["train"]["metrics"]``
            is read; without metrics the default is ``val_loss``.

    Example:
        >>> default_metric({"train": {"metrics": ["accuracy"]}})
        'val_accuracy'
        >>> default_metric({"train": {}})
        'val_loss'
    """
    metrics = (spec.get("train") or {}).get("metrics") or []
    return f"val_{metrics[0]}" if metrics else "val_loss"


def latest_study(store: Any) -> str | None:
    """The name of the study a store created last (what ``show`` and ``report`` pick), or None.

    Args:
        store: An open :class:`~noisewise.study.store.Store`; its ``studies()``
            are ordered by creation.
    """
    studies = store.studies()
    return studies[-1]["name"] if studies else None
