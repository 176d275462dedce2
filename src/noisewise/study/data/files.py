"""User data files: ``.npz`` archives and ``.csv`` tables (their options,
reading, and the per-cell checks of CSV features and labels).
"""

import csv
import zipfile
import zlib

import numpy as np

from noisewise.study.data.checks import _DROP_HELP, _SHOWN, _check_discrete, _plural, _rows
from noisewise.study.data.dataset import _KEYS, _SPLIT, _reorder, _split, _text


FILE_OPTIONS = {
    ".npz": {},
    ".csv": {"target": ("label", _text), "split_column": ("split", _text), **_SPLIT},
}
_NPZ_HELP = "save one with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"


def _npz(path):
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x93NUMPY"):
        raise ValueError(f"{path.name}: not a NumPy .npz archive (it is a single .npy array); "
                         f"{_NPZ_HELP}")
    if not head.startswith(b"PK"):  # a .npz is a zip file; np.load would call it pickled data
        raise ValueError(f"{path.name}: not a NumPy .npz archive (it starts with {head!r}, "
                         f"not a zip file's b'PK'); {_NPZ_HELP}")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in _KEYS if k not in f]
            if missing:
                raise ValueError(
                    f"{path.name} lacks arrays {missing}; a study .npz needs x_train, "
                    f"y_train, x_test, y_test. Found: {sorted(f.files)}"
                )
            return tuple(_npz_array(path, f, key) for key in _KEYS)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise ValueError(f"{path.name}: not a readable .npz archive ({e})") from None


def _npz_array(path, archive, key):
    try:
        return archive[key]
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise ValueError(f"{path.name}: array {key!r} cannot be read ({e})") from None
        raise ValueError(f"{path.name}: array {key!r} holds Python objects, which are not "
                         "loaded (unpickling can run code); save numbers or strings") from None


def _read_csv(path):
    """``[(line number, cells), ...]`` of the non-blank records, the header first."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            return [(reader.line_num, cells) for cells in reader if cells]
    except UnicodeDecodeError as e:
        raise ValueError(f"{path.name}: not a UTF-8 text file (byte {e.start} is not UTF-8); "
                         "save the CSV as UTF-8") from None
    except csv.Error as e:
        raise ValueError(f"{path.name}: not a readable CSV file ({e})") from None


def _csv_features(path, header, body, features, others):
    """float64 features; an empty cell is a missing value (NaN), any other text is refused."""
    x = np.empty((len(body), len(features)))
    for r, (line, cells) in enumerate(body):
        for c, i in enumerate(features):
            cell = cells[i].strip()
            try:
                x[r, c] = float(cell) if cell else np.nan
            except ValueError:
                raise ValueError(
                    f"{path.name}: row {line}, column {header[i]!r}: not a number: {cells[i]!r} "
                    f"(every column but {others} is a numeric feature)") from None
    return x


def _csv_nonfinite(path, header, body, features, x, nonfinite, notes):
    """Keep the rows whose features are finite in float32; refuse others unless dropping."""
    with np.errstate(over="ignore"):
        bad = ~np.isfinite(x.astype("float32"))
    if not bad.any():
        return body, x
    rows = np.flatnonzero(bad.any(axis=1))
    lines = [body[r][0] for r in rows]
    if nonfinite == "drop":
        notes.append(f"{path.name}: dropped {len(rows)} of {_plural(len(body), 'row')} with "
                     f"missing or non-finite feature values ({_rows(lines)})")
        keep = ~bad.any(axis=1)
        return [b for b, k in zip(body, keep) if k], x[keep]
    where = []
    for r, c in np.argwhere(bad)[:_SHOWN]:
        cell = body[r][1][features[c]].strip()
        if not cell:
            what = "empty"
        else:  # finite in float64 but not in float32: too large for the model's inputs
            what = cell if not np.isfinite(x[r, c]) else f"{cell} (beyond float32)"
        where.append(f"{what} at row {body[r][0]} column {header[features[c]]!r}")
    more = ", ..." if bad.sum() > _SHOWN else ""
    count = _plural(int(bad.sum()), "missing or non-finite feature value")
    raise ValueError(f"{path.name}: {count} ({', '.join(where)}{more}); {_DROP_HELP}")


def _csv_labels(path, target, body, t, task="classification"):
    """The label cells; empty, NaN and continuous labels are refused with their rows
    (regression: the targets as numbers, text refused with its row)."""
    y = [cells[t] for _, cells in body]
    empty = [line for (line, _), v in zip(body, y) if not v.strip()]
    if empty:
        raise ValueError(f"{path.name}: {_plural(len(empty), 'empty label')} in column "
                         f"{target!r} at {_rows(empty)}; every row needs its "
                         + ("target" if task == "regression" else "class"))
    numbers = []
    for (line, _), v in zip(body, y):
        try:
            numbers.append(float(v))
        except ValueError:
            if task == "regression":
                raise ValueError(f"{path.name}: row {line}, column {target!r}: a regression "
                                 f"target must be a number. Received: {v!r}") from None
            return np.array(y)  # text labels: classes, whatever they look like
    if task == "regression":
        return np.array(numbers)
    numbers = np.array(numbers)
    missing = [line for (line, _), v in zip(body, numbers) if not np.isfinite(v)]
    if missing:
        raise ValueError(f"{path.name}: {_plural(len(missing), 'missing or non-finite label')} "
                         f"(nan or inf) in column {target!r} at {_rows(missing)}")
    _check_discrete(f"{path.name}: column {target!r}", numbers)
    return np.array(y)


def _csv(path, target, split_column, test_size, split_seed, nonfinite="refuse", notes=None,
         task="classification"):
    records = _read_csv(path)
    if len(records) < 2:
        raise ValueError(f"{path.name} needs a header row and at least one data row")
    (_, header), body = records[0], records[1:]
    if target not in header:
        raise ValueError(
            f"{path.name} has no label column {target!r} (set `target`). Columns: {header}"
        )
    for column in (target, split_column):
        if header.count(column) > 1:
            raise ValueError(f"{path.name}: the header has {header.count(column)} columns "
                             f"named {column!r}; which one is meant cannot be told")
    for line, cells in body:
        if len(cells) != len(header):
            raise ValueError(f"{path.name}: row {line} has {len(cells)} cells, the header "
                             f"has {len(header)}")
    t = header.index(target)
    s = header.index(split_column) if split_column in header else None
    features = [i for i in range(len(header)) if i not in (t, s)]
    others = " and ".join(repr(header[i]) for i in (t, s) if i is not None)
    x = _csv_features(path, header, body, features, others)
    body, x = _csv_nonfinite(path, header, body, features, x, nonfinite,
                             [] if notes is None else notes)
    if not body:
        raise ValueError(f"{path.name}: no row is left once the rows with missing or "
                         "non-finite features are dropped")
    y = _csv_labels(path, target, body, t, task)
    if s is None:  # stratified for classes; a regression target has none
        return _reorder(_split(x, y, test_size, split_seed, stratify=task != "regression"))
    split = np.array([cells[s].strip().lower() for _, cells in body])
    bad = sorted(set(split) - {"train", "test"})
    if bad:
        raise ValueError(
            f"{path.name}: column {split_column!r} must hold 'train' or 'test'. Received: {bad}"
        )
    train = split == "train"
    return x[train], y[train], x[~train], y[~train]


def _data_file(base, relative):
    path = base / relative
    if not path.exists():
        raise ValueError(f"{relative}: no such data file (looked in {base.resolve()})")
    if path.is_dir():
        raise ValueError(f"{relative}: is a folder, not a .npz or .csv data file")
    return path
