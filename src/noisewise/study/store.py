"""The study store: one SQLite file holding studies, their runs and learning curves.

The store is the truth: statistics, reports and exports are computed from it,
never from the memory of the process that ran the study. Every finished run is
written in one transaction (its run row and all its curves), so killing a study
loses at most the runs in flight and never leaves half a run behind; rerunning
resumes from :meth:`Store.done_keys`.

A run is ``done``, ``failed`` (an error; retried by the next run of the study)
or ``diverged`` (its loss or a metric became non-finite, at ``diverged_epoch``;
final like a done run, since the same seed diverges again).

A file that is not a noisewise store is refused with :class:`StoreError` and
left byte for byte as it was: the header is read as plain bytes (SQLite magic,
``application_id``), then the file is opened read-only to check the schema, and
only then opened for writing. A missing (or empty) file becomes a new store.
``Store(path, readonly=True)`` never creates or modifies anything: it reads a
store in a read-only folder or file system too, and an old schema as it is.

The schema version is ``PRAGMA user_version`` (the ``schema_version`` row of
``noisewise_meta`` mirrors it for people; a store with user_version 0 and that
row at 1 is version 1). Opening an older store for writing applies
``_MIGRATIONS`` in order, in one transaction; a newer store is refused.

Tables (schema version 2)::

    noisewise_meta(key, value)        schema_version, created_with, created_at
    studies(id, name UNIQUE, spec_json, spec_hash, study_seed, reference, created_at,
            fingerprint_json)
    arms(study_id, name, position, parent, params_json)
    runs(id, study_id, arm, replica, seed, status, attempts, backend, versions_json,
         started_at, finished_at, wall_s, final_json, error, diverged_epoch)
         UNIQUE(study_id, arm, replica)
    curves(run_id, metric, n, first_epoch, epoch_step, epochs, vals)

Version 2 added ``runs.diverged_epoch``, the status ``diverged`` and
``studies.fingerprint_json`` (hashes of the data and code a study was trained
on, so a resume on changed data is refused; NULL for older studies).

A curve is one metric of one run: ``vals`` is a little-endian float64 array
(``numpy.frombuffer(vals, "<f8")``); its epoch numbers are
``first_epoch + k * epoch_step`` when ``epochs`` is NULL, else the little-endian
int32 array ``epochs``. One row per (run, metric) rather than per epoch: at 30
seeds x 14 arms x 4000 epochs x 4 metrics (6.7M values), writing the 420 runs
took 4-7 s, reading every curve back 0.6 s, and the file 54 MiB, against
77-130 s, 16-27 s and 148 MiB with one row per (run, metric, epoch) (2 busy
CPU cores). JSON columns (``spec_json``, ``final_json``, ``versions_json``,
``params_json``, ``fingerprint_json``) are strict JSON (non-finite numbers are
stored as null), so SQLite's ``json_extract`` can query them.

Example:
    >>> import tempfile, os
    >>> from noisewise.study.store import Store
    >>> path = os.path.join(tempfile.mkdtemp(), "noisewise.db")
    >>> with Store(path) as store:
    ...     sid = store.open_study({"study": {"name": "demo", "seed": 0}})
    ...     [s["name"] for s in store.studies()]
    ['demo']
    >>> with Store(path, readonly=True) as store:
    ...     store.study("demo")["fingerprint"] is None
    True
"""

import contextlib
import dataclasses
import datetime
import functools
import hashlib
import json
import math
import os
import sqlite3
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import numpy as np

APPLICATION_ID = int.from_bytes(b"NWst", "big")
SCHEMA_VERSION = 2
STATUSES = ("done", "failed", "diverged")
_FINAL = ("done", "diverged")  # never rewritten; failed runs are retried
_MAGIC = b"SQLite format 3\x00"

_RUNS = """CREATE TABLE {name}(
        id INTEGER PRIMARY KEY,
        study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
        arm TEXT NOT NULL, replica INTEGER NOT NULL, seed INTEGER,
        status TEXT NOT NULL CHECK (status IN ('done', 'failed', 'diverged')),
        attempts INTEGER NOT NULL DEFAULT 1, backend TEXT, versions_json TEXT,
        started_at TEXT, finished_at TEXT, wall_s REAL, final_json TEXT, error TEXT,
        diverged_epoch INTEGER, UNIQUE(study_id, arm, replica))"""
_V1_RUN_COLUMNS = ("id, study_id, arm, replica, seed, status, attempts, backend, versions_json,"
                   " started_at, finished_at, wall_s, final_json, error")

_SCHEMA = (
    "CREATE TABLE noisewise_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE studies(
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, spec_json TEXT NOT NULL,
        spec_hash TEXT NOT NULL, study_seed INTEGER, reference TEXT,
        created_at TEXT NOT NULL, fingerprint_json TEXT)""",
    """CREATE TABLE arms(
        study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
        name TEXT NOT NULL, position INTEGER NOT NULL, parent TEXT,
        params_json TEXT NOT NULL DEFAULT '{}', PRIMARY KEY(study_id, name))""",
    _RUNS.format(name="runs"),
    """CREATE TABLE curves(
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        metric TEXT NOT NULL, n INTEGER NOT NULL, first_epoch INTEGER,
        epoch_step INTEGER, epochs BLOB, vals BLOB NOT NULL,
        PRIMARY KEY(run_id, metric)) WITHOUT ROWID""",
)


def _to_v2(con):
    """Status 'diverged' and runs.diverged_epoch; studies.fingerprint_json.

    SQLite cannot change a CHECK constraint, so runs is rebuilt, keeping its
    ids (curves point at them). Foreign keys are off meanwhile: dropping the
    old table would otherwise cascade into curves.
    """
    con.execute(_RUNS.format(name="runs_v2"))
    con.execute(f"INSERT INTO runs_v2({_V1_RUN_COLUMNS}) SELECT {_V1_RUN_COLUMNS} FROM runs")
    con.execute("DROP TABLE runs")
    con.execute("ALTER TABLE runs_v2 RENAME TO runs")
    con.execute("ALTER TABLE studies ADD COLUMN fingerprint_json TEXT")


# version -> the step from version - 1, applied in order when opened for writing
_MIGRATIONS = {2: _to_v2}


class StoreError(Exception):
    """The store file cannot be used as asked (not a store, changed spec, ...)."""


class FingerprintError(StoreError):
    """A resumed study's data or code differs from what its stored runs were trained on."""


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


def _spec_dict(spec):
    for method in ("to_dict", "as_dict"):
        if callable(getattr(spec, method, None)):
            return dict(getattr(spec, method)())
    if isinstance(spec, Mapping):
        return dict(spec)
    if dataclasses.is_dataclass(spec):
        return dataclasses.asdict(spec)
    raise TypeError(f"`spec` must be a mapping or have to_dict(). Received: {spec!r}")


def _arm_fields(arm):
    """(name, parent, params) of an arm given as a name, a mapping or an object."""
    if isinstance(arm, str):
        return arm, None, {}
    name = _pick(arm, "name")
    parent = _pick(arm, "grid_parent", "parent")
    params = _pick(arm, "params", "grid_params", default={})
    return str(name), parent, dict(params)


def _spec_arms(spec, d):
    """Expanded arms of a spec; unexpanded grid parents are skipped (added on write)."""
    expanded = None if isinstance(spec, Mapping) else getattr(spec, "expanded_arms", None)
    if expanded is not None:
        return [_arm_fields(a) for a in (expanded() if callable(expanded) else expanded)]
    arms = None if isinstance(spec, Mapping) else getattr(spec, "arms", None)
    arms = (d.get("arms") or []) if arms is None else arms
    return [_arm_fields(a) for a in arms if isinstance(a, str) or not _pick(a, "grid")]


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


def _reading(method):
    """SQLite errors while reading (a damaged or vanished file) as StoreError."""
    @functools.wraps(method)
    def read(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot read the store: {e}") from e
    return read


class Store:
    """A noisewise study store (SQLite file; created when missing).

    Args:
        path: File path. A missing or empty file is created (with its parent
            folders); an existing file must be a noisewise store, else
            :class:`StoreError` is raised and the file is left untouched.
            An older store is migrated to this schema.
        timeout: Seconds to wait for another process holding the write lock.
        readonly: Only read: a missing, empty or foreign file is refused, the
            file is never created, migrated or modified (any write raises
            :class:`StoreError`), and a store in a read-only folder or file
            system is read too.

    Writing the same (study, arm, replica) twice: a ``done`` or ``diverged``
    run is final and a second write is a no-op (``write_run`` returns False;
    the first finished result wins when two workers race); a ``failed`` run is
    replaced by the next attempt, and ``attempts`` counts the tries.

    Attributes:
        path: The file.
        readonly: Whether it was opened read-only.
        schema_version: The file's schema version (older than
            ``SCHEMA_VERSION`` only when read-only).
    """

    def __init__(self, path, *, timeout=30.0, readonly=False):
        self.path = Path(os.fspath(path))
        self.readonly = bool(readonly)
        self._timeout, self._sides, self._con = timeout, [], None
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder, not a noisewise store file")
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if self.readonly:
            if not self.path.exists():
                raise StoreError(f"{self.path}: no such store (run a study first, or pass "
                                 "--store)")
            if fresh:
                raise StoreError(f"{self.path}: not a noisewise store (empty file)")
            self._check_header()
            self._con, self.schema_version, self._sides = self._peek()
            return
        if fresh:
            self._check_creatable()
        else:
            self._check_header()
            self._check_writable()
            self._peek()[0].close()
        try:
            self._con = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            if fresh:
                self._create()
            self._migrate()
            self._con.execute("PRAGMA foreign_keys = ON")
            self._con.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed run survives power loss, not just a killed process;
            # one fsync per finished run is negligible next to training it.
            self._con.execute("PRAGMA synchronous = FULL")
        except BaseException as e:
            if self._con is not None:
                self._con.close()
            if isinstance(e, (sqlite3.Error, OSError)):
                raise StoreError(f"{self.path}: cannot open the store for writing: {e}") from e
            raise
        self.schema_version = SCHEMA_VERSION

    # -- opening -------------------------------------------------------------
    def _refuse(self, why):
        raise StoreError(f"{self.path}: not a noisewise store ({why}); refusing to modify it")

    def _check_header(self):
        """The first 100 bytes, read as plain bytes: SQLite magic and our application_id."""
        try:
            with open(self.path, "rb") as f:
                header = f.read(100)
        except OSError as e:
            raise StoreError(f"{self.path}: cannot read the store: {e.strerror or e}") from e
        if len(header) < 100 or not header.startswith(_MAGIC):
            self._refuse("not a SQLite database")
        app_id = int.from_bytes(header[68:72], "big", signed=True)
        if app_id != APPLICATION_ID:
            self._refuse(f"SQLite application_id {app_id:#x}, expected {APPLICATION_ID:#x}")

    def _peek(self):
        """(read-only connection, schema version, side files it created) of a store.

        Refuses a store newer than this code or without a schema, removing the
        -wal/-shm files the look created.
        """
        sides = [Path(f"{self.path}{s}") for s in ("-wal", "-shm")]
        ours = [s for s in sides if not s.exists()]
        con = None
        try:
            con = self._connect_ro(sides[0])
            version = self._version(con)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: written by a newer noisewise (store schema {version}); "
                    f"this version reads schema <= {SCHEMA_VERSION}. Upgrade noisewise."
                )
        except (sqlite3.DatabaseError, StoreError) as e:
            if con is not None:
                con.close()
            for side in ours:
                if side.exists():  # unlink says EROFS even for a missing file
                    side.unlink()
            if isinstance(e, StoreError):
                raise
            self._refuse(f"unreadable: {e}")
        return con, version, [s for s in ours if s.exists()]

    def _connect_ro(self, wal):
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        con = None
        try:
            con = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=self._timeout,
                                  isolation_level=None)
            con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return con
        except sqlite3.OperationalError:
            if con is not None:
                con.close()
            if os.access(self.path.parent, os.W_OK):
                raise
        # A WAL store in a read-only folder or file system: mode=ro must create
        # -shm there. Nobody can write there either, so "immutable" reads it
        # safely, unless a log of unmerged commits exists, which it would ignore.
        if wal.exists() and wal.stat().st_size > 0:
            raise StoreError(
                f"{self.path}: its write-ahead log {wal.name} holds commits that cannot be "
                "read in a read-only folder; open the store once where it is writable")
        con = sqlite3.connect(uri + "?immutable=1", uri=True, isolation_level=None)
        try:
            con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except BaseException:
            con.close()
            raise
        return con

    def _version(self, con):
        (version,) = con.execute("PRAGMA user_version").fetchone()
        row = con.execute(
            "SELECT value FROM noisewise_meta WHERE key = 'schema_version'").fetchone()
        if not version and row and str(row[0]).isdigit():
            version = int(row[0])  # user_version was not set by the first stores
        if not version:
            self._refuse("no schema version")
        return version

    def _check_writable(self):
        folder = self.path.parent
        if not os.access(folder, os.W_OK | os.X_OK):
            what = f"its folder {folder} is not writable (SQLite writes its journal there)"
        elif not os.access(self.path, os.W_OK):
            what = "the file is read-only"
        else:
            return
        raise StoreError(f"{self.path}: cannot write the store: {what}; make it writable or "
                         "pass --store with a writable path (show, list, report and export "
                         "read it as it is)")

    def _check_creatable(self):
        if self.path.exists():  # an empty file
            return self._check_writable()
        folder = self.path.parent
        existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
        if not existing.is_dir():
            why = f"{existing} is a file, not a folder"
        elif not os.access(existing, os.W_OK | os.X_OK):
            why = f"folder {existing} is not writable"
        else:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                return
            except OSError as e:
                why = f"cannot create folder {folder}: {e.strerror or e}"
        raise StoreError(f"{self.path}: cannot create the store: {why}; pass --store with a "
                         "writable path")

    def _create(self):
        # Created in rollback-journal mode so the header (application_id) lands in
        # the main file at commit, before WAL is switched on.
        with self._transaction("EXCLUSIVE") as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            if "noisewise_meta" in tables:  # another process created it meanwhile
                return
            if tables:
                self._refuse("another program's tables appeared while creating it")
            con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            for statement in _SCHEMA:
                con.execute(statement)
            try:
                from importlib.metadata import version

                created_with = version("noisewise")
            except Exception:  # not installed as a distribution (e.g. source tree)
                created_with = "unknown"
            con.executemany(
                "INSERT INTO noisewise_meta VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)),
                 ("created_with", f"noisewise {created_with}"),
                 ("created_at", _now())],
            )

    def _migrate(self):
        if self._version(self._con) >= SCHEMA_VERSION:
            return
        self._con.execute("PRAGMA foreign_keys = OFF")  # only outside a transaction
        with self._transaction("EXCLUSIVE") as con:
            version = self._version(con)
            if version >= SCHEMA_VERSION:  # another process migrated it meanwhile
                return
            for target in range(version + 1, SCHEMA_VERSION + 1):
                _MIGRATIONS[target](con)
            if con.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise StoreError(f"{self.path}: migrating to schema {SCHEMA_VERSION} broke "
                                 "a reference between tables; the store is left as it was")
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            con.execute("INSERT OR REPLACE INTO noisewise_meta VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),))

    @contextlib.contextmanager
    def _transaction(self, mode="IMMEDIATE"):
        self._con.execute(f"BEGIN {mode}")
        try:
            yield self._con
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    def _writing(self, what):
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only; cannot {what}")

    def close(self):
        con, self._con = self._con, None
        if con is None:
            return
        con.close()
        sides, self._sides = self._sides, []
        wal = Path(f"{self.path}-wal")
        if sides and wal.exists() and wal.stat().st_size == 0:
            # Reading a WAL store made its (empty) -wal and -shm; only a writable
            # connection closing last removes them, and with an empty log it
            # writes nothing to the store. Left as they are if anyone else has it open.
            with contextlib.suppress(sqlite3.Error, OSError):
                probe = sqlite3.connect(self.path, timeout=0)
                try:
                    probe.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                finally:
                    probe.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        flag = ", readonly=True" if self.readonly else ""
        return f"Store({str(self.path)!r}{flag})"

    # -- studies -------------------------------------------------------------
    def open_study(self, spec, new=False, fingerprint=None):
        """Create the study of ``spec`` or return the id of the existing one.

        Args:
            spec: A validated study spec: an object with ``to_dict()`` (and
                optionally ``name``, ``seed``, ``reference``, ``hash``/
                ``spec_hash``, ``expanded_arms``/``arms``) or the spec as a dict
                (``{"study": {"name": ..., "seed": ...}, "arms": [...]}``).
                Without a hash attribute the hash is the sha256 of the canonical
                JSON of the dict without ``study.store``.
            new: Start a new study under ``name`` even if one exists: the old
                study keeps all its runs under the name ``"<name>@<UTC time>"``
                (listed and queryable like any study). Without it, an existing
                study with the same spec is resumed and a changed spec refused.
            fingerprint: Optional ``{key: hash}`` of what the runs depend on
                beyond the spec (e.g. ``{"data": ..., "code": ...}``). Resuming
                a study compares it, key by key, with the stored one and raises
                :class:`FingerprintError` naming what changed; keys not stored
                yet (or a study stored without one) are recorded.

        Returns:
            The study id.
        """
        self._writing("open a study")
        fingerprint = _fingerprint_arg(fingerprint)
        d = _spec_dict(spec)
        study = d.get("study", {}) if isinstance(d.get("study"), Mapping) else {}
        name = _pick(spec, "name") if not isinstance(spec, Mapping) else None
        name = name or study.get("name") or d.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"The spec has no study name. Received: spec={d!r}")
        hashed = {**d, "study": {k: v for k, v in study.items() if k != "store"}}
        spec_json = _dumps(d)
        spec_hash = None if isinstance(spec, Mapping) else _pick(spec, "hash", "spec_hash")
        if not isinstance(spec_hash, str):
            spec_hash = hashlib.sha256(_dumps(hashed).encode()).hexdigest()
        seed = None if isinstance(spec, Mapping) else _pick(spec, "seed")
        seed = seed if seed is not None else study.get("seed", 0)
        arms = _spec_arms(spec, d)
        reference = None if isinstance(spec, Mapping) else _pick(spec, "reference")
        reference = reference or study.get("reference") or (arms[0][0] if arms else None)
        if not isinstance(reference, (str, type(None))):
            reference = _arm_fields(reference)[0]
        fp_json = None if fingerprint is None else _dumps(fingerprint)

        try:
            with self._transaction() as con:
                row = con.execute(
                    "SELECT id, spec_hash, fingerprint_json FROM studies WHERE name = ?",
                    (name,)
                ).fetchone()
                if row and row[1] == spec_hash and not new:
                    study_id = row[0]
                    self._resume_fingerprint(name, study_id, row[2], fingerprint)
                else:
                    if row and not new:
                        raise StoreError(
                            f"study {name!r} exists in {self.path} with a different spec "
                            f"(stored hash {row[1][:12]}, this spec {spec_hash[:12]}); use "
                            "--new (new=True) to start a new study and keep the old one "
                            f"as {name!r}@<time>, or give the study another name"
                        )
                    if row:
                        con.execute("UPDATE studies SET name = ? WHERE id = ?",
                                    (self._archive_name(name), row[0]))
                    study_id = con.execute(
                        "INSERT INTO studies(name, spec_json, spec_hash, study_seed,"
                        " reference, created_at, fingerprint_json)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (name, spec_json, spec_hash, seed, reference, _now(), fp_json),
                    ).lastrowid
                for arm_name, parent, params in arms:
                    self._ensure_arm(study_id, arm_name, parent, params)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot open study {name!r}: {e}") from e
        return study_id

    def _resume_fingerprint(self, name, study_id, stored_json, given):
        if given is None:
            return
        stored = json.loads(stored_json) if stored_json else {}
        changed = [k for k in sorted(given) if k in stored and stored[k] != given[k]]
        if changed:
            detail = "; ".join(f"{k} fingerprint stored {stored[k][:12]}, now {given[k][:12]}"
                               for k in changed)
            raise FingerprintError(
                f"study {name!r} in {self.path} was trained on other {' and '.join(changed)}: "
                f"{detail}; use --new (new=True) to start a new study and keep the old one "
                f"as {name!r}@<time>"
            )
        if any(k not in stored for k in given):
            self._con.execute("UPDATE studies SET fingerprint_json = ? WHERE id = ?",
                              (_dumps({**stored, **given}), study_id))

    def _archive_name(self, name):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        candidate, k = f"{name}@{stamp}", 1
        while self._con.execute("SELECT 1 FROM studies WHERE name = ?", (candidate,)).fetchone():
            k += 1
            candidate = f"{name}@{stamp}-{k}"
        return candidate

    def _ensure_arm(self, study_id, name, parent, params):
        row = self._con.execute(
            "SELECT parent, params_json FROM arms WHERE study_id = ? AND name = ?",
            (study_id, name),
        ).fetchone()
        if row is None:
            (position,) = self._con.execute(
                "SELECT COUNT(*) FROM arms WHERE study_id = ?", (study_id,)
            ).fetchone()
            self._con.execute(
                "INSERT INTO arms VALUES (?, ?, ?, ?, ?)",
                (study_id, name, position, parent, _dumps(params or {})),
            )
        elif (parent or params) and row == (None, "{}"):
            self._con.execute(
                "UPDATE arms SET parent = ?, params_json = ? WHERE study_id = ? AND name = ?",
                (parent, _dumps(params or {}), study_id, name),
            )

    def _v2(self, column):
        """``column``, or NULL in a version 1 store read as it is."""
        return column if self.schema_version >= 2 else "NULL"

    @_reading
    def studies(self):
        """Every study: id, name, spec_hash, study_seed, reference, created_at,
        n_done, n_failed, n_diverged."""
        rows = self._con.execute(
            "SELECT s.id, s.name, s.spec_hash, s.study_seed, s.reference, s.created_at,"
            " COALESCE(SUM(r.status = 'done'), 0), COALESCE(SUM(r.status = 'failed'), 0),"
            " COALESCE(SUM(r.status = 'diverged'), 0)"
            " FROM studies s LEFT JOIN runs r ON r.study_id = s.id GROUP BY s.id ORDER BY s.id"
        ).fetchall()
        keys = ("id", "name", "spec_hash", "study_seed", "reference", "created_at",
                "n_done", "n_failed", "n_diverged")
        return [dict(zip(keys, r)) for r in rows]

    @_reading
    def study(self, name=None):
        """One study by name (or id; None: the one created last): its spec (dict),
        hash, seed, reference, arms, fingerprint (dict, or None if none was
        recorded), ...

        Raises:
            StoreError: No such study, or (``name=None``) the store holds none.
        """
        if name is None:
            studies = self.studies()
            if not studies:
                raise StoreError(f"{self.path}: holds no studies")
            name = studies[-1]["id"]
        column = "id" if isinstance(name, int) else "name"
        row = self._con.execute(
            "SELECT id, name, spec_json, spec_hash, study_seed, reference, created_at, "
            f"{self._v2('fingerprint_json')} FROM studies WHERE {column} = ?", (name,)
        ).fetchone()
        if row is None:
            known = ", ".join(repr(s["name"]) for s in self.studies()) or "none"
            raise StoreError(f"no study {name!r} in {self.path} (studies: {known})")
        keys = ("id", "name", "spec_json", "spec_hash", "study_seed", "reference", "created_at")
        out = dict(zip(keys, row))
        out["spec"] = json.loads(out["spec_json"])
        out["fingerprint"] = json.loads(row[-1]) if row[-1] else None
        out["arms"] = self.arms(out["id"])
        return out

    @_reading
    def arms(self, study_id):
        """Arms in spec order: name, position, parent (grid arms), params, is_reference."""
        (reference,) = self._con.execute(
            "SELECT reference FROM studies WHERE id = ?", (study_id,)
        ).fetchone() or (None,)
        rows = self._con.execute(
            "SELECT name, position, parent, params_json FROM arms WHERE study_id = ?"
            " ORDER BY position", (study_id,)
        ).fetchall()
        return [{"name": n, "position": p, "parent": g, "params": json.loads(j),
                 "is_reference": n == reference} for n, p, g, j in rows]

    # -- runs ----------------------------------------------------------------
    @_reading
    def done_keys(self, study_id):
        """``{(arm, replica)}`` of the final runs: done and diverged (failed runs
        are retried; a seed that diverged diverges again)."""
        return set(self._con.execute(
            "SELECT arm, replica FROM runs WHERE study_id = ? AND status IN ('done', 'diverged')",
            (study_id,)
        ))

    def write_run(self, study_id, result):
        """Write one run (run row + all its curves) in one transaction.

        Args:
            study_id: From :meth:`open_study`.
            result: Any object with ``arm`` (name or arm object), ``replica``,
                ``seed``, ``status`` ('done', 'failed' or 'diverged'),
                ``history``, ``final``, ``wall_s``, ``backend``, ``versions``,
                and optionally ``error``, ``diverged_epoch`` (1-based epoch
                where a loss or metric first became non-finite; diverged runs
                only), ``started_at``, ``finished_at`` (datetime, ISO text or
                POSIX seconds; default: finished now, started ``wall_s``
                earlier).

        Returns:
            True if written; False if a final (done or diverged) run with this
            key was already stored (it is kept unchanged).
        """
        arm, parent, params = _arm_fields(result.arm)
        self._writing(f"write run {arm}/{result.replica}")
        status = result.status
        if status not in STATUSES:
            raise ValueError(f"`status` must be one of {STATUSES}. Received: status={status!r}")
        diverged_epoch = _diverged_epoch(result, status)
        wall_s = None if result.wall_s is None else float(result.wall_s)
        finished = _timestamp(getattr(result, "finished_at", None))
        started = _timestamp(getattr(result, "started_at", None))
        if finished is None:
            finished = datetime.datetime.now(datetime.timezone.utc)
        if started is None and wall_s is not None:
            started = finished - datetime.timedelta(seconds=wall_s)
        error = getattr(result, "error", None)
        row = (int(result.replica), None if result.seed is None else int(result.seed),
               status, result.backend, _dumps(result.versions or {}),
               started and started.isoformat(timespec="milliseconds"),
               finished.isoformat(timespec="milliseconds"), wall_s,
               _dumps(result.final or {}), None if error is None else str(error),
               diverged_epoch)
        curves = _encode_history(result.history)  # encoded before the transaction
        try:
            with self._transaction() as con:
                old = con.execute(
                    "SELECT id, status, attempts FROM runs WHERE study_id = ? AND arm = ?"
                    " AND replica = ?", (study_id, arm, row[0])
                ).fetchone()
                if old and old[1] in _FINAL:
                    return False
                if old:
                    con.execute("DELETE FROM runs WHERE id = ?", (old[0],))
                self._ensure_arm(study_id, arm, parent, params)
                run_id = con.execute(
                    "INSERT INTO runs(study_id, arm, replica, seed, status, attempts, backend,"
                    " versions_json, started_at, finished_at, wall_s, final_json, error,"
                    " diverged_epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (study_id, arm, row[0], row[1], row[2], (old[2] + 1) if old else 1,
                     *row[3:]),
                ).lastrowid
                self._insert_curves(run_id, curves)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot write run {arm}/{row[0]} of study "
                             f"{study_id}: {e}") from e
        return True

    def _insert_curves(self, run_id, curves):
        self._con.executemany(
            "INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(run_id, *curve) for curve in curves],
        )

    @staticmethod
    def _status_filter(column, status, where, args):
        statuses = _statuses(status)
        if statuses is not None:
            where.append(f"{column} IN ({', '.join('?' * len(statuses))})")
            args.extend(statuses)

    @_reading
    def runs(self, study_id, status="done"):
        """Runs as dicts, in arm then replica order.

        Args:
            study_id: The study.
            status: 'done', 'failed' or 'diverged', a list of them, or None
                for all.

        Keys: id, arm, replica, seed, status, attempts, backend, versions (dict),
        started_at, finished_at, wall_s, final (dict of final metrics; NaN where
        not finite), error, diverged_epoch (None unless diverged), and the arm's
        arm_position, arm_parent, arm_params, is_reference.
        """
        where, args = ["r.study_id = ?"], [study_id]
        self._status_filter("r.status", status, where, args)
        arms = {a["name"]: a for a in self.arms(study_id)}
        sql = ("SELECT r.id, r.arm, r.replica, r.seed, r.status, r.attempts, r.backend,"
               " r.versions_json, r.started_at, r.finished_at, r.wall_s, r.final_json, r.error,"
               f" {self._v2('r.diverged_epoch')}"
               " FROM runs r LEFT JOIN arms a ON a.study_id = r.study_id AND a.name = r.arm"
               f" WHERE {' AND '.join(where)} ORDER BY a.position, r.replica")
        out = []
        for (rid, arm, rep, seed, st, att, backend, versions, started, finished, wall,
             final, error, diverged) in self._con.execute(sql, args):
            info = arms.get(arm, {})
            out.append({
                "id": rid, "arm": arm, "replica": rep, "seed": seed, "status": st,
                "attempts": att, "backend": backend, "versions": json.loads(versions or "{}"),
                "started_at": started, "finished_at": finished, "wall_s": wall,
                "final": _final(final), "error": error, "diverged_epoch": diverged,
                "arm_position": info.get("position"), "arm_parent": info.get("parent"),
                "arm_params": info.get("params", {}),
                "is_reference": info.get("is_reference", False),
            })
        return out

    @_reading
    def history(self, study_id, status="done", metrics=None, arms=None):
        """Per-run learning curves.

        Args:
            study_id: The study.
            status: Only runs with this status, or one of a list of them
                (None: all).
            metrics: Optional list of metric names to read (default all).
            arms: Optional list of arm names to read (default all).

        Returns:
            A list (arm then replica order) of dicts with run_id, arm, replica,
            seed, status, ``history`` ({metric: float64 array}) and ``epochs``
            ({metric: int array of the epoch numbers of those values}).
        """
        where, args = ["r.study_id = ?"], [study_id]
        self._status_filter("r.status", status, where, args)
        for column, values in (("c.metric", metrics), ("r.arm", arms)):
            if values is not None:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                args.extend(values)
        # Rows come in primary-key order (no sort of the blobs); the small run
        # list is ordered afterwards.
        sql = ("SELECT r.id, r.arm, r.replica, r.seed, r.status, c.metric, c.n, c.first_epoch,"
               " c.epoch_step, c.epochs, c.vals FROM runs r JOIN curves c ON c.run_id = r.id"
               f" WHERE {' AND '.join(where)}")
        out = {}
        for rid, arm, rep, seed, st, metric, *curve in self._con.execute(sql, args):
            rec = out.setdefault(rid, {"run_id": rid, "arm": arm, "replica": rep, "seed": seed,
                                       "status": st, "history": {}, "epochs": {}})
            rec["epochs"][metric], rec["history"][metric] = _decode_curve(*curve)
        position = {a["name"]: a["position"] for a in self.arms(study_id)}
        return sorted(out.values(), key=lambda r: (position.get(r["arm"], len(position)),
                                                   r["replica"]))


def _timestamp(value):
    if value is None or isinstance(value, datetime.datetime):
        return value
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    return datetime.datetime.fromisoformat(str(value))
