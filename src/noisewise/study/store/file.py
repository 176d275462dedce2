"""Opening a store file: refusing foreign files untouched, read-only opening, migrations.

:class:`StoreFile` is the connection half of :class:`~noisewise.study.store.Store`;
what the store holds (studies, arms, runs, curves) is read and written by the
subclass.
"""

import contextlib
import functools
import os
import sqlite3
import time
import urllib.parse
from pathlib import Path

from noisewise.study.store.codec import _now
from noisewise.study.store.schema import APPLICATION_ID, MAGIC, MIGRATIONS, SCHEMA, SCHEMA_VERSION


class StoreError(Exception):
    """The store file cannot be used as asked (not a store, changed spec, ...)."""


class FingerprintError(StoreError):
    """A resumed study's data or code differs from what its stored runs were trained on."""


def _reading(method):
    """SQLite errors while reading (a damaged or vanished file) as StoreError."""
    @functools.wraps(method)
    def read(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot read the store: {e}") from e
    return read




class StoreFile:
    """A noisewise store file opened for reading or writing (see :class:`Store`)."""

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
            self._retry_locked("PRAGMA journal_mode = WAL")
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

    def _retry_locked(self, sql):
        """Run ``sql``, retrying while another process holds the lock, up to the timeout.

        Why: switching to WAL needs an exclusive lock, and SQLite answers
        "database is locked" at once, without its busy handler, while another
        process migrates the same store.
        """
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return self._con.execute(sql)
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

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
        if len(header) < 100 or not header.startswith(MAGIC):
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
            for statement in SCHEMA:
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
                MIGRATIONS[target](con)
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
