"""Export a stored study: one record per run (CSV, JSON), TensorBoard event files, MLflow runs.

:func:`write_records` writes every run, whatever its status, with its
``status`` (``done``, ``diverged``, ``failed``), ``diverged_epoch`` and
``error``, so a diverged or failed run is never mistaken for a result.

TensorBoard and MLflow read the store alone and need an optional extra:

- ``pip install "noisewise[tensorboard]"``: event files written with
  TensorBoard's own record writer and protos (never importing TensorFlow, which
  ``tensorboard.summary.Writer`` does whenever it is installed: 7 s), one
  TensorBoard run per arm and seed, laid out and tagged as Keras'
  ``TensorBoard`` callback does (``tf.summary.scalar``: a float32 tensor with
  the scalars plugin's metadata):
  ``<logdir>/<arm>/seed_<replica>/train`` and ``.../validation``, scalar tags
  ``epoch_loss``, ``epoch_accuracy``, ... (validation values under the same
  tag, ``val_`` removed), so exported studies and a user's own Keras logs
  overlay in one TensorBoard.
- ``pip install "noisewise[mlflow]"``: one MLflow parent run per arm (the
  arm's parameters, and the mean and 95% CI of the final metrics over the
  seeds) with a child run per seed (arm parameters + seed; the learning curves
  as metric histories under Keras' names, ``loss``, ``val_accuracy``, ...).

Steps follow Keras' callbacks, which log epoch ``k`` (1-based, as the store
numbers epochs) at step ``k - 1``. Only finished (``done``) runs are exported.
Wall times are spread over each run's stored start and duration, so the
"relative time" axes show how long training took.

Example:
    >>> import os, tempfile
    >>> from noisewise.study import Study
    >>> from noisewise.study.exports import export_tensorboard
    >>> folder = tempfile.mkdtemp()
    >>> outcome = Study({"study": {"name": "demo", "seeds": 2},
    ...                  "data": {"name": "circles"},
    ...                  "model": {"name": "mlp", "hidden": [8]},
    ...                  "train": {"epochs": 3},
    ...                  "arms": [{"name": "baseline"}]}).run(
    ...     store=os.path.join(folder, "demo.db"), quiet=True)
    >>> logdir = export_tensorboard(outcome.store, "demo", os.path.join(folder, "tb"))
    >>> sorted(os.listdir(logdir / "baseline"))
    ['seed_0', 'seed_1']
"""

import copy
import csv
import datetime
import hashlib
import json
import logging
import math
import os
import re
import socket
import time
from pathlib import Path

import numpy as np

from noisewise._core.files import safe_name
from noisewise.study import stats
from noisewise.study.defaults import default_metric
from noisewise.study.report import open_store
from noisewise.study.results import order_columns, study_arms

FORMATS = ("tensorboard", "mlflow")
_GRID_KEY = re.compile(r"^(noise|augment)\[(\d+)\]\.(\w+)$")


def _need(module, extra):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"exporting to {extra} needs the optional dependency {extra!r}: "
                          f'pip install "noisewise[{extra}]" ({e})') from e


def _read(store_path, study):
    store_path = Path(os.fspath(store_path))
    with open_store(store_path) as store:
        info = store.study(study)  # None: the latest
        # Only finished runs: a diverged run's curves describe a broken model.
        runs = [r for r in store.runs(info["id"]) if stats.run_status(r) == "done"]
        curves = {h["run_id"]: h for h in store.history(info["id"])}
    return store_path, info, runs, curves


# -- CSV and JSON -------------------------------------------------------------
def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def records(store_path, study=None):
    """``(study name, run record, history)`` of every run of a study's current spec,
    any status.

    The record's ``status`` is :func:`noisewise.study.stats.run_status` (a
    done run of an older store whose loss is not finite reads ``diverged``)
    and it has ``diverged_epoch`` (None when not diverged or not known) and
    ``columns``, its arm's parameters (:func:`noisewise.study.results.arm_columns`);
    ``history`` is ``{metric: {"epoch": [...], "value": [...]}}``.
    """
    with open_store(store_path) as store:
        info = store.study(study)  # None: the latest
        curves = {r["run_id"]: r for r in store.history(info["id"], status=None)}
        runs = store.runs(info["id"], status=None)
        arms = study_arms(store, info)
    out = []
    for run in runs:
        curve = curves.get(run["id"], {"history": {}, "epochs": {}})
        run = {**run, "status": stats.run_status(run),
               "diverged_epoch": run.get("diverged_epoch"),
               "columns": arms.get(run["arm"], {}).get("columns", {})}
        out.append((info["name"], run, {
            metric: {"epoch": curve["epochs"][metric].tolist(), "value": values.tolist()}
            for metric, values in curve["history"].items()}))
    return out


def _cell(value):
    return "" if value is None else value


def write_records(store_path, study, out, fmt, *, history=False):
    """Write one record per run of ``study`` to the open text file ``out``.

    Args:
        store_path: The study store (opened read-only).
        study: Study name (None: the latest).
        out: A text file (open it with ``newline=""`` for CSV).
        fmt: ``"json"``: a list of records (study, arm, the arm's parameter
            columns, replica, seed, status, diverged_epoch, backend, versions,
            wall_s, final, history, error; non-finite numbers as null).
            ``"csv"``: one row per run with the arm's parameter columns, the
            final metrics as columns, ``status``, ``diverged_epoch`` and
            ``error``; with ``history=True`` the learning curves in long form
            (study, arm, replica, status, metric, epoch, value).

    The parameter columns (:func:`noisewise.study.results.arm_columns`) are
    ``noise`` (types joined by ``+``, or ``none``), ``noise{i}_type``,
    ``noise{i}_where`` and ``noise{i}_<argument>`` (``noise0_stddev``,
    ``noise1_rate``, ...) per noise entry ``i`` with grid points applied,
    ``augment`` and ``augment{i}_type``/``augment{i}_<argument>``, ``grid``
    (the grid an arm is a level of) and ``grid_<key>`` per grid key. A CSV
    has the union of every arm's columns, empty where an arm has none.
    """
    rows = records(store_path, study)
    if fmt == "json":
        keys = ("replica", "seed", "status", "diverged_epoch", "backend", "versions",
                "wall_s", "final")
        data = [{"study": name, "arm": r["arm"], **r["columns"], **{k: r[k] for k in keys},
                 "history": curves, "error": r["error"]} for name, r, curves in rows]
        json.dump(_json_safe(data), out, indent=1, allow_nan=False)
        out.write("\n")
        return
    if fmt != "csv":
        raise ValueError(f"`fmt` must be 'csv' or 'json'. Received: fmt={fmt!r}")
    writer = csv.writer(out)
    if history:
        writer.writerow(["study", "arm", "replica", "status", "metric", "epoch", "value"])
        for name, r, curves in rows:
            for metric, curve in sorted(curves.items()):
                for epoch, value in zip(curve["epoch"], curve["value"]):
                    writer.writerow([name, r["arm"], r["replica"], r["status"], metric, epoch,
                                     value])
        return
    finals = sorted({k for _, r, _ in rows for k in r["final"]})
    params = order_columns(k for _, r, _ in rows for k in r["columns"])
    writer.writerow(["study", "arm", *params, "replica", "seed", "status", "diverged_epoch",
                     "backend", "wall_s", *finals, "error"])
    for name, r, _ in rows:
        cells = [_cell(r["columns"].get(k)) for k in params]
        writer.writerow([name, r["arm"], *cells, r["replica"], r["seed"], r["status"],
                         "" if r["diverged_epoch"] is None else r["diverged_epoch"],
                         r["backend"], r["wall_s"], *(r["final"].get(k, "") for k in finals),
                         r["error"] or ""])


def _seconds(text):
    if not text:
        return None
    return datetime.datetime.fromisoformat(text).timestamp()


def _clock(run, epochs):
    """Wall time of each epoch: spread over the run's stored start and duration."""
    start = _seconds(run["started_at"])
    end = _seconds(run["finished_at"])
    if start is None:
        start = end if end is not None else datetime.datetime.now().timestamp()
    span = (run["wall_s"] or 0.0) if end is None else max(end - start, 0.0)
    last = max(int(np.max(epochs)) if len(epochs) else 1, 1)
    return start + span * np.asarray(epochs, dtype=float) / last


def _safe(name):
    """An arm's folder name: readable (TensorBoard shows it), never a path, never shared."""
    safe = re.sub(r"[\\/\x00-\x1f]+", "_", name).strip(".")[:120] or "_"
    if safe != name:
        safe += "-" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return safe


def default_export_path(store_path, study, kind):
    """``<store folder>/<store stem>-<study>-<kind>`` (``kind``: tensorboard, mlflow.db);
    the study name made file-safe by :func:`noisewise._core.files.safe_name`."""
    store_path = Path(os.fspath(store_path))
    stem = store_path.stem if len(store_path.stem) <= 100 else safe_name(store_path.stem, 100)
    return store_path.with_name(f"{stem}-{safe_name(study)}-{kind}")


# -- TensorBoard --------------------------------------------------------------
def export_tensorboard(store_path, study=None, logdir=None, *, overwrite=False):
    """Write a study's learning curves as TensorBoard event files, as Keras would.

    Args:
        store_path: The study store.
        study: Study name (default: the latest in the store).
        logdir: Folder for the event files (default
            ``<store folder>/<store stem>-<study>-tensorboard``). View with
            ``tensorboard --logdir LOGDIR``.
        overwrite: Replace event files a previous export left in the run
            folders; without it such files make this raise FileExistsError
            (TensorBoard would show both copies).

    Returns:
        The log folder (:class:`pathlib.Path`).
    """
    _need("tensorboard", "tensorboard")
    store_path, info, runs, curves = _read(store_path, study)
    logdir = Path(os.fspath(logdir)) if logdir else default_export_path(
        store_path, info["name"], "tensorboard")
    targets = []
    for run in runs:
        history = curves.get(run["id"], {"history": {}, "epochs": {}})
        base = logdir / _safe(run["arm"]) / f"seed_{run['replica']}"
        for split, dirname in (("train", "train"), ("val", "validation")):
            metrics = {m: (history["epochs"][m], v) for m, v in history["history"].items()
                       if m.startswith("val_") == (split == "val")}
            if metrics:
                targets.append((run, base / dirname, metrics))
    old = [p for _, d, _ in targets if d.is_dir() for p in d.glob("events.out.tfevents.*")]
    if old and not overwrite:
        raise FileExistsError(f"{old[0].parent} already holds TensorBoard event files from an "
                              "earlier export; pass overwrite=True (--overwrite) to replace them")
    for path in old:
        path.unlink()
    for run, folder, metrics in targets:
        with _EventFile(folder) as events:
            for metric, (epochs, values) in metrics.items():
                tag = "epoch_" + (metric[4:] if metric.startswith("val_") else metric)
                for epoch, value, wall in zip(epochs, values, _clock(run, epochs)):
                    events.scalar(tag, value, int(epoch) - 1, float(wall))
    return logdir


class _EventFile:
    """One TensorBoard event file, named and framed as TensorFlow's writer does."""

    _count = 0

    def __init__(self, folder):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.scalar import metadata
        from tensorboard.summary.writer.record_writer import RecordWriter
        from tensorboard.util import tensor_util

        self._event_pb2, self._tensor = event_pb2, tensor_util.make_tensor_proto
        self._metadata = metadata.create_summary_metadata(display_name=None, description=None)
        self._metadata.data_class = summary_pb2.DataClass.DATA_CLASS_SCALAR
        self._seen = set()
        folder.mkdir(parents=True, exist_ok=True)
        _EventFile._count += 1
        now = time.time()
        name = (f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{_EventFile._count}")
        self._file = open(folder / name, "wb")
        self._records = RecordWriter(self._file)
        self._write(event_pb2.Event(wall_time=now, file_version="brain.Event:2"))

    def _write(self, event):
        self._records.write(event.SerializeToString())

    def scalar(self, tag, value, step, wall_time):
        event = self._event_pb2.Event(wall_time=wall_time, step=step)
        value = event.summary.value.add(tag=tag, tensor=self._tensor(np.float32(value)))
        if tag not in self._seen:  # like tf.summary: the plugin metadata once per tag
            value.metadata.CopyFrom(self._metadata)
            self._seen.add(tag)
        self._write(event)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


# -- MLflow -------------------------------------------------------------------
def _arm_params(spec, arm):
    """Flat ``{name: value}`` params of an arm: its noise entries and augmentation
    transforms, grid point applied."""
    by_name = {a.get("name"): a for a in spec.get("arms", [])}
    entry = by_name.get(arm["arm_parent"] or arm["arm"], {})
    lists = {"noise": copy.deepcopy(entry.get("noise") or []),
             "augment": copy.deepcopy(entry.get("augment") or [])}
    for key, value in (arm["arm_params"] or {}).items():
        match = _GRID_KEY.match(key)
        if match and int(match.group(2)) < len(lists[match.group(1)]):
            lists[match.group(1)][int(match.group(2))][match.group(3)] = value
    noise = lists["noise"]
    params = {"arm": arm["arm"], "noise": "none" if not noise else str(len(noise))}
    if arm["arm_parent"]:
        params["grid"] = arm["arm_parent"]
        params.update({f"grid.{k}": v for k, v in arm["arm_params"].items()})
    for kind, items in lists.items():
        for i, item in enumerate(items):
            params.update({f"{kind}[{i}].{k}": v for k, v in item.items()})
    return params


def _flat(prefix, table):
    out = {}
    for key, value in (table or {}).items():
        if isinstance(value, dict):
            out.update(_flat(f"{prefix}.{key}", value))
        else:
            out[f"{prefix}.{key}"] = json.dumps(value) if isinstance(value, list) else value
    return out


def _chunks(items, size):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _ms(seconds):
    return int(round(seconds * 1000))


def export_mlflow(store_path, study=None, tracking_uri=None, experiment=None, *,
                  metric=None, overwrite=False):
    """Log a study to MLflow: a parent run per arm, a child run per seed.

    Args:
        store_path: The study store.
        study: Study name (default: the latest in the store).
        tracking_uri: MLflow tracking URI (default ``$MLFLOW_TRACKING_URI``, else
            ``sqlite:///<store folder>/<store stem>-<study>-mlflow.db``).
        experiment: Experiment name (default: the study name); created if missing.
        metric: Final metric summarised on the parent runs (default
            ``val_<first metric of the spec>``).
        overwrite: Delete runs an earlier export of this study (same spec hash)
            left in the experiment; without it they make this raise FileExistsError.

    Returns:
        ``{"tracking_uri", "experiment_id", "parents": {arm: run_id},
        "children": {(arm, replica): run_id}}``.
    """
    _need("mlflow", "mlflow")
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    store_path, info, runs, curves = _read(store_path, study)
    spec, name = info["spec"], info["name"]
    if tracking_uri is None:
        tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///" + str(
            default_export_path(store_path, name, "mlflow.db").resolve())
    metric = metric or default_metric(spec)
    # MLflow announces its schema migrations at INFO on first use of a database.
    quiet = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.WARNING)
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        exp = client.get_experiment_by_name(experiment or name)
        exp_id = exp.experiment_id if exp else client.create_experiment(experiment or name)
        old = [r for r in client.search_runs(
            [exp_id], f"tags.`noisewise.spec_hash` = '{info['spec_hash']}'", max_results=50000)
            if r.data.tags.get("noisewise.study") == name]
        if old and not overwrite:
            raise FileExistsError(
                f"experiment {experiment or name!r} already holds {len(old)} runs exported from "
                f"study {name!r}; pass overwrite=True (--overwrite) to replace them")
        for r in old:
            client.delete_run(r.info.run_id)
        tags = {"noisewise.study": name, "noisewise.spec_hash": info["spec_hash"],
                "noisewise.store": str(store_path.resolve())}
        summary = stats.summarize(runs, metric) if runs else {}
        parents, children = {}, {}
        for arm in dict.fromkeys(r["arm"] for r in runs):
            arm_runs = [r for r in runs if r["arm"] == arm]
            params = _arm_params(spec, arm_runs[0])
            starts = [_seconds(r["started_at"]) for r in arm_runs if r["started_at"]]
            ends = [_seconds(r["finished_at"]) for r in arm_runs if r["finished_at"]]
            parent = client.create_run(exp_id, start_time=_ms(min(starts)) if starts else None,
                                       tags={**tags, "noisewise.arm": arm}, run_name=arm)
            pid = parent.info.run_id
            parents[arm] = pid
            study_params = {**_flat("data", spec.get("data")), **_flat("model", spec.get("model")),
                            **_flat("train", spec.get("train")),
                            **_flat("robustness", spec.get("robustness")),
                            "study.seed": info["study_seed"], "study.reference": info["reference"]}
            _log(client, pid, Param, {**params, **study_params})
            s = summary.get(arm)
            if s is not None:
                last = max(ends) if ends else None
                when = _ms(last) if last else None
                values = {f"{metric}_mean": s.mean, f"{metric}_ci_low": s.ci_low,
                          f"{metric}_ci_high": s.ci_high, f"{metric}_std": s.std,
                          "n_seeds": s.n}
                client.log_batch(pid, metrics=[Metric(k, float(v), when or 0, 0)
                                               for k, v in values.items()])
            for run in arm_runs:
                children[(arm, run["replica"])] = _child(client, exp_id, pid, run, params,
                                                         curves.get(run["id"]), tags,
                                                         Metric, Param, RunTag)
            client.set_terminated(pid, "FINISHED", end_time=_ms(max(ends)) if ends else None)
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    return {"tracking_uri": tracking_uri, "experiment_id": exp_id, "parents": parents,
            "children": children}


def _param_key(key):
    """Portable MLflow key (letters, digits, _-. /): ``noise[0].stddev`` -> ``noise.0.stddev``."""
    return re.sub(r"[^\w\-. /]", "_", re.sub(r"\[(\d+)\]", r".\1", key))


def _log(client, run_id, Param, params):
    items = [Param(_param_key(k), str(v)) for k, v in params.items() if v is not None]
    for chunk in _chunks(items, 100):  # MLflow's limit of params per batch
        client.log_batch(run_id, params=chunk)


def _child(client, exp_id, parent_id, run, params, curve, tags, Metric, Param, RunTag):
    start = _seconds(run["started_at"])
    child = client.create_run(
        exp_id, start_time=_ms(start) if start else None,
        tags={**tags, "noisewise.arm": run["arm"], "mlflow.parentRunId": parent_id,
              "noisewise.backend": str(run["backend"]),
              "noisewise.versions": json.dumps(run["versions"], sort_keys=True)},
        run_name=f"{run['arm']}/seed_{run['replica']}")
    cid = child.info.run_id
    _log(client, cid, Param, {**params, "replica": run["replica"], "seed": run["seed"]})
    points = []
    curve = curve or {"history": {}, "epochs": {}}
    for metric, values in curve["history"].items():
        epochs = curve["epochs"][metric]
        for epoch, value, wall in zip(epochs, values, _clock(run, epochs)):
            points.append(Metric(metric, float(value), _ms(wall), int(epoch) - 1))
    last_step = max((int(e[-1]) - 1 for e in curve["epochs"].values() if len(e)), default=0)
    end = _seconds(run["finished_at"])
    for key, value in run["final"].items():  # best_val_*, best_epoch: not in the curves
        if key not in curve["history"] and isinstance(value, (int, float)):
            points.append(Metric(key, float(value), _ms(end) if end else 0, last_step))
    for chunk in _chunks(points, 1000):  # MLflow's limit of metrics per batch
        client.log_batch(cid, metrics=chunk)
    client.set_terminated(cid, "FINISHED", end_time=_ms(end) if end else None)
    return cid
