"""Encoding of what the store holds: strict JSON columns, curves as little-endian blobs,
run fields checked on write."""

import datetime
import json
import math
from collections.abc import Mapping

import numpy as np

STATUSES = ("done", "failed", "diverged")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _plain(obj):
    """JSON-ready copy: numpy scalars/arrays to Python, non-finite floats to None."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def _dumps(obj):
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _pick(obj, *names, default=None):
    """First present attribute (objects) or key (mappings) among ``names``."""
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return default



def _encode_curve(metric, values):
    """(metric, n, first, step, epochs_blob, vals_blob); epochs are 1-based by default."""
    if isinstance(values, Mapping):
        epochs, vals = list(values.keys()), list(values.values())
    else:
        epochs, vals = None, list(values)
    vals = np.asarray([np.nan if v is None else v for v in vals], dtype="<f8")
    if epochs is None:
        return metric, vals.size, 1, 1, None, vals.tobytes()
    epochs = np.asarray(epochs, dtype=np.int64)
    if epochs.size != vals.size:
        raise ValueError(f"history[{metric!r}]: {epochs.size} epochs for {vals.size} values")
    steps = np.diff(epochs)
    if steps.size == 0 or (steps[0] > 0 and np.all(steps == steps[0])):
        first = int(epochs[0]) if epochs.size else 1
        step = int(steps[0]) if steps.size else 1
        return metric, vals.size, first, step, None, vals.tobytes()
    return metric, vals.size, None, None, epochs.astype("<i4").tobytes(), vals.tobytes()


def _encode_history(history):
    """Curves of a Keras-style history.

    A metric's values are a sequence (one per epoch, epochs 1..n) or a mapping
    ``{epoch: value}``. Epoch numbers may also be given Keras-style as
    ``history["epoch"]`` (for training metrics) and ``history["val_epoch"]``
    (for ``val_*`` metrics), stored as given. A ``val_*`` list shorter than the
    training lists, without ``val_epoch``, is taken as validated every k-th
    epoch (what ``validation_freq=k`` does) when exactly one k fits its length,
    and refused otherwise.
    """
    history = dict(history or {})
    epoch_keys = {"epoch": history.pop("epoch", None), "val_epoch": history.pop("val_epoch", None)}
    n_train = max((len(v) for k, v in history.items()
                   if not k.startswith("val_") and not isinstance(v, Mapping)), default=0)
    curves = []
    for metric, values in history.items():
        key = "val_epoch" if metric.startswith("val_") else "epoch"
        if not isinstance(values, Mapping):
            values = list(values)
            if epoch_keys[key] is not None:
                epochs = list(epoch_keys[key])
                if len(epochs) != len(values):
                    raise ValueError(
                        f"history[{key!r}] has {len(epochs)} entries but history"
                        f"[{metric!r}] has {len(values)}; they must match."
                    )
                values = dict(zip(epochs, values))
            elif key == "val_epoch" and values and n_train and len(values) < n_train:
                # Keras' validation_freq=k validates epochs k, 2k, ...: accept the
                # shorter list only when exactly one k gives its length.
                steps = [k for k in range(2, n_train + 1) if n_train // k == len(values)]
                if len(steps) != 1:
                    raise ValueError(
                        f"history[{metric!r}] has {len(values)} values for {n_train} "
                        "epochs; give their epoch numbers in history['val_epoch']."
                    )
                values = dict(zip(range(steps[0], n_train + 1, steps[0]), values))
        curves.append(_encode_curve(str(metric), values))
    return curves


def _decode_curve(n, first, step, epochs, vals):
    values = np.frombuffer(vals, dtype="<f8", count=n)
    if epochs is None:
        return first + step * np.arange(n, dtype=np.int64), values
    return np.frombuffer(epochs, dtype="<i4", count=n).astype(np.int64), values


def _final(text):
    final = json.loads(text) if text else {}
    return {k: (math.nan if v is None else v) for k, v in final.items()}


def _statuses(status):
    """``status`` of :meth:`Store.runs`: None (all), one status or a list of them."""
    values = [status] if isinstance(status, str) else status
    if status is None:
        return None
    if not isinstance(values, (list, tuple, set, frozenset)) or any(
            v not in STATUSES for v in values):
        raise ValueError(f"`status` must be one of {STATUSES}, a list of them, or None. "
                         f"Received: status={status!r}")
    return list(values)


def _fingerprint_arg(fingerprint):
    if fingerprint is None:
        return None
    if not isinstance(fingerprint, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in fingerprint.items()):
        raise ValueError("`fingerprint` must be a dict of str to str (e.g. {'data': "
                         f"'<sha256>'}}) or None. Received: fingerprint={fingerprint!r}")
    return dict(fingerprint)


def _diverged_epoch(result, status):
    epoch = getattr(result, "diverged_epoch", None)
    if epoch is None:
        return None
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 1:
        raise ValueError("`diverged_epoch` must be a 1-based epoch number (int >= 1) or "
                         f"None. Received: diverged_epoch={epoch!r}")
    if status != "diverged":
        raise ValueError(f"`diverged_epoch` is only for status 'diverged'. Received: "
                         f"status={status!r}, diverged_epoch={epoch!r}")
    return int(epoch)



def _timestamp(value):
    if value is None or isinstance(value, datetime.datetime):
        return value
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    return datetime.datetime.fromisoformat(str(value))
