"""A study's results as tables: records (lists of dicts), pandas DataFrames and Jupyter HTML.

:func:`load` reads a study from its store (the store is the truth: nothing
comes from the memory of the process that trained it); :meth:`Study.run
<noisewise.study.Study.run>` returns a :class:`~noisewise.study.StudyRun`
with the same tables. The statistics are those of
:mod:`noisewise.study.stats` (``summarize``, ``compare``, ``grid_best``),
flattened into one record per arm or comparison, so any field those
dataclasses gain appears as a column.

Every record of an arm carries its parameters as columns (:func:`arm_columns`),
the same columns the CSV and JSON exports have: ``noise`` (the noise types
joined by ``+``, or ``none``), then per noise entry ``i`` ``noise{i}_type``,
``noise{i}_where`` and one column per argument (``noise{i}_stddev``,
``noise{i}_rate``, ...; grid points applied), ``augment`` and per transform
``augment{i}_type`` and its arguments, ``grid`` (the grid an arm is a level
of, else empty) and ``grid_<key>`` per grid key (``grid_noise[0].stddev``).

pandas is optional: ``pip install "noisewise[pandas]"``.

Example:
    >>> import os, tempfile
    >>> from noisewise.study import Study, load
    >>> path = os.path.join(tempfile.mkdtemp(), "s.db")
    >>> outcome = Study({"study": {"name": "demo", "seeds": 2},
    ...                  "data": {"name": "circles"},
    ...                  "model": {"name": "mlp", "hidden": [8]},
    ...                  "train": {"epochs": 2},
    ...                  "arms": [{"name": "baseline"},
    ...                           {"name": "input", "noise": [
    ...                               {"type": "gaussian", "where": "input", "stddev": 0.1}]}]}
    ...                 ).run(store=path, quiet=True)
    >>> results = load(path, "demo")
    >>> [(r["arm"], r["n"], r["noise0_stddev"]) for r in results.summary()]
    [('baseline', 2, None), ('input', 2, 0.1)]
    >>> [r["arm"] for r in results.comparisons()]
    ['input']
"""

import dataclasses
import html
import json
import math
import os
import re
from pathlib import Path

from noisewise.study import stats
from noisewise.study.defaults import default_metric
from noisewise.study.store import Store, StoreError
from noisewise.study.store.identity import arm_config

WHATS = ("summary", "comparisons", "runs", "grids")


def _scalar(value):
    """A cell: numbers and text as they are, lists and tables as JSON text."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def arm_columns(config, parent=None, params=None):
    """One column per parameter of an arm (layout in the module docstring).

    Args:
        config: The arm's resolved configuration (``Store.arms()[i]["config"]``).
        parent: The grid it is a level of, or None.
        params: Its grid point ``{key: value}``.
    """
    noise = [e for e in config.get("noise") or [] if isinstance(e, dict)]
    augment = [e for e in config.get("augment") or [] if isinstance(e, dict)]
    out = {"noise": "+".join(str(e.get("type")) for e in noise) or "none"}
    for i, entry in enumerate(noise):
        out.update({f"noise{i}_{k}": _scalar(v) for k, v in _typed_first(entry)})
    out["augment"] = "+".join(str(e.get("type")) for e in augment) or "none"
    for i, entry in enumerate(augment):
        out.update({f"augment{i}_{k}": _scalar(v) for k, v in _typed_first(entry)})
    for key, value in config.items():  # augment_value_range, per-arm settings
        if key in ("noise", "augment", "params"):
            continue
        if isinstance(value, dict):
            out.update({f"{key}_{k}": _scalar(v) for k, v in value.items()})
        else:
            out[key] = _scalar(value)
    out["grid"] = parent or ""
    out.update({f"grid_{k}": _scalar(v) for k, v in (params or {}).items()})
    return out


def _typed_first(entry):
    """An entry's items: ``type`` and ``where`` first, then its arguments in their order."""
    first = [k for k in ("type", "where") if k in entry]
    return [(k, entry[k]) for k in first + [k for k in entry if k not in first]]


_COLUMN = re.compile(r"^(noise|augment)(\d+)_")


def order_columns(keys):
    """Parameter column names of several arms in one order: ``noise`` and its entries by
    number, ``augment`` and its transforms, other settings, then ``grid`` and its keys;
    first seen first within each."""
    def rank(item):
        position, key = item
        match = _COLUMN.match(key)
        if match:
            group = (1 if match.group(1) == "noise" else 3, int(match.group(2)))
        elif key in ("noise", "augment", "grid"):
            group = ({"noise": 0, "augment": 2, "grid": 5}[key], 0)
        else:
            group = (6 if key.startswith("grid_") else 4, 0)
        return group, position

    return [k for _, k in sorted(enumerate(dict.fromkeys(keys)), key=rank)]


def _flat(record):
    """``asdict`` of a stats dataclass, its nested estimates flattened (``final`` unprefixed)."""
    out = {}
    for key, value in dataclasses.asdict(record).items():
        if isinstance(value, dict) and key in ("final", "best", "gap"):
            prefix = "" if key == "final" else f"{key}_"
            out.update({f"{prefix}{k}": v for k, v in value.items()})
        else:
            out[key] = _scalar(value) if isinstance(value, (list, tuple)) else value
    return out


def study_arms(store, info):
    """``{name: arm dict with "columns"}`` of every arm of a stored study, removed ones too."""
    tables = {t["name"]: t for t in info["spec"].get("arms") or []
              if isinstance(t, dict) and "name" in t}
    arms = {}
    for arm in store.arms(info["id"], current=False):
        config = arm["config"] or arm_config(tables.get(arm["parent"] or arm["name"]),
                                             arm["params"])  # stores older than schema 3
        arms[arm["name"]] = {**arm, "config": config,
                             "columns": arm_columns(config, arm["parent"], arm["params"])}
    return arms


@dataclasses.dataclass(frozen=True)
class StudyResults:
    """A stored study's runs and its statistics as tables.

    Attributes:
        name: The study. store: Its store file. metric: The default metric.
        reference: The reference arm. spec: The study's (current) spec.
        arms: ``{name: arm}`` of the current spec, in order (with ``columns``).
        runs: Run records of the current spec, every status (``Store.runs``).
    """

    name: str
    store: str
    metric: str
    reference: str | None
    spec: dict
    arms: dict
    runs: tuple

    @property
    def columns(self):
        """The parameter columns of the current arms, in :func:`order_columns` order."""
        return order_columns(k for a in self.arms.values() for k in a["columns"])

    def _columns(self, arm):
        """The arm's parameter columns, None where another arm has a column it lacks."""
        mine = self.arms[arm]["columns"] if arm in self.arms else {}
        return {k: mine.get(k) for k in self.columns}

    def summary(self, metric=None):
        """One record per arm (spec order): ``study``, ``arm``, ``is_reference``, the
        arm's parameter columns, the run counts (``done``, ``diverged``, ``failed``)
        and the fields of :class:`~noisewise.study.stats.ArmSummary` (``n``, ``mean``,
        ``std``, ``sem``, ``ci_low``, ``ci_high``, ``note``; ``best_*`` and ``gap_*``
        estimates). An arm with no finished run has ``n`` 0 and NaN figures."""
        metric = metric or self.metric
        done = [r for r in self.runs if stats.run_status(r) == "done"]
        summary = stats.summarize(done, metric) if done else {}
        counts = stats.run_counts(list(self.runs))
        out = []
        for arm in self.arms:
            c = counts.get(arm)
            row = {"study": self.name, "arm": arm, "is_reference": arm == self.reference,
                   **self._columns(arm), "done": c.done if c else 0,
                   "diverged": c.diverged if c else 0, "failed": c.failed if c else 0}
            if arm in summary:
                row.update(_flat(summary[arm]))
            else:
                nan = math.nan
                row.update({"metric": metric, "n": 0, "mean": nan, "std": nan, "sem": nan,
                            "ci_low": nan, "ci_high": nan, "note": "no finished runs"})
            row["arm"] = arm
            out.append(row)
        return out

    def comparisons(self, metric=None):
        """One record per arm compared with the reference on their paired replicas:
        ``study``, the arm's parameter columns and the fields of
        :class:`~noisewise.study.stats.Comparison` (``mean_diff``, ``ci_low``,
        ``ci_high``, ``p_ttest_holm``, ``p_wilcoxon_holm``, ``prob_better``, ...)."""
        metric = metric or self.metric
        done = {r["arm"] for r in self.runs if stats.run_status(r) == "done"}
        if self.reference not in done:
            return []
        compared = stats.compare(list(self.runs), self.reference, metric)
        return [{"study": self.name, **self._columns(arm), **_flat(c)}
                for arm, c in compared.items()]

    def grids(self, metric=None):
        """One record per level of each grid (:func:`~noisewise.study.stats.grid_best`):
        ``grid``, ``arm``, ``mean``, ``p_best`` (bootstrap probability of being the best
        level), ``is_best``, the grid's ``best``, ``ci_low``/``ci_high`` of the chosen
        level, ``n_replicas`` and ``note``, and the level's parameter columns."""
        metric = metric or self.metric
        done = [r for r in self.runs if stats.run_status(r) == "done"]
        if not any(r.get("arm_parent") for r in done):
            return []
        out = []
        for parent, g in stats.grid_best(done, metric).items():
            rec = _flat(g)
            shared = {k: v for k, v in rec.items()
                      if k not in ("levels", "params", "means", "p_best", "parent")}
            for arm in g.levels:
                out.append({"study": self.name, **self._columns(arm), "grid": parent,
                            "arm": arm, "mean": g.means.get(arm), "p_best": g.p_best.get(arm),
                            "is_best": arm == g.best, **shared})
        return out

    def records(self):
        """One record per run of the current spec, any status: ``study``, ``arm``,
        ``replica``, ``seed``, ``status`` (:func:`~noisewise.study.stats.run_status`),
        ``diverged_epoch``, the arm's parameter columns, the final metrics,
        ``wall_s``, ``backend``, ``error`` and ``identity``."""
        out = []
        for r in self.runs:
            out.append({"study": self.name, "arm": r["arm"], "replica": r["replica"],
                        "seed": r["seed"], "status": stats.run_status(r),
                        "diverged_epoch": r.get("diverged_epoch"), **self._columns(r["arm"]),
                        **r["final"], "wall_s": r["wall_s"], "backend": r["backend"],
                        "error": r["error"], "identity": r.get("identity")})
        return out

    def to_pandas(self, what="summary", metric=None):
        """A :class:`pandas.DataFrame` of ``what``: "summary", "comparisons", "grids"
        or "runs" (:meth:`records`). Needs ``pip install "noisewise[pandas]"``."""
        if what not in WHATS:
            raise ValueError(f"`what` must be one of {WHATS}. Received: what={what!r}")
        try:
            import pandas  # optional extra
        except ImportError as e:
            raise ImportError('to_pandas() needs pandas: pip install "noisewise[pandas]" '
                              f"({e})") from e
        rows = self.records() if what == "runs" else getattr(self, what)(metric)
        return pandas.DataFrame.from_records(rows)

    def _repr_html_(self):
        """The summary and comparisons as one small HTML table (no scripts), for Jupyter."""
        return html_table(self)


def _fmt(value, digits=4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def html_table(results, metric=None):
    """The HTML a notebook shows for ``results``: per arm n, mean, 95% CI, the paired
    difference with the reference, its CI, Holm-adjusted p-values and P(better)."""
    metric = metric or results.metric
    compared = {c["arm"]: c for c in results.comparisons(metric)}
    head = ("arm", "n", "mean", "95% CI", "diff vs ref", "diff 95% CI", "p (t, Holm)",
            "p (Wilcoxon, Holm)", "P(better)")
    rows = []
    for s in results.summary(metric):
        c = compared.get(s["arm"], {})
        ci = f"[{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}]" if s["n"] else "-"
        diff_ci = f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]" if c else "-"
        cells = (s["arm"] + (" (reference)" if s["is_reference"] else ""), s["n"], s["mean"],
                 ci, c.get("mean_diff"), diff_ci, c.get("p_ttest_holm"),
                 c.get("p_wilcoxon_holm"), c.get("prob_better"))
        rows.append("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in cells) + "</tr>")
    n_runs = sum(stats.run_status(r) == "done" for r in results.runs)
    caption = (f"{results.name}: {metric}, {n_runs} finished run(s) of {len(results.arms)} "
               "arm(s); comparisons paired on seeds")
    return ("<table><caption>" + html.escape(caption) + "</caption><thead><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def load(store, name=None, metric=None):
    """A study read from its store, as :class:`StudyResults`.

    Args:
        store: A store path (opened read-only) or an open :class:`Store`.
        name: Study name or id (default: the latest study in the store).
        metric: Default metric of the tables (default: the spec's, e.g.
            ``val_accuracy``).

    Raises:
        StoreError: No such store or study.
    """
    if isinstance(store, Store):
        return _load(store, name, metric)
    path = Path(os.fspath(store))
    if not path.is_file():
        raise StoreError(f"{path}: no such store (run a study first, or pass --store)")
    with Store(path, readonly=True) as opened:
        return _load(opened, name, metric)


def _load(store, name, metric):
    info = store.study(name)
    arms = study_arms(store, info)
    current = {a["name"]: arms[a["name"]] for a in info["arms"]}
    return StudyResults(info["name"], str(store.path), metric or default_metric(info["spec"]),
                        info["reference"], info["spec"], current,
                        tuple(store.runs(info["id"], status=None)))
