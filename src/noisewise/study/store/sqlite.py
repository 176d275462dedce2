"""The store's studies, arms and runs: what :class:`Store` reads and writes."""

import datetime
import json
import sqlite3

from noisewise.study.store import identity
from noisewise.study.store.claims import ClaimsMixin
from noisewise.study.store.codec import (_decode_curve, _diverged_epoch, _dumps, _encode_history,
                                         _final, _fingerprint_arg, _now, _statuses, _timestamp)
from noisewise.study.store.file import FingerprintError, StoreError, StoreFile, _reading
from noisewise.study.store.schema import arm_tables, described_arm
from noisewise.study.store.specs import arm_fields, describe

_FINAL = ("done", "diverged")  # never rewritten; failed runs are retried
# A run is in the study's current spec when its arm is one of the spec's arms,
# with the configuration it has now, and its replica is below the spec's seeds.
_CURRENT = ("(a.current = 1 AND a.arm_hash = r.arm_hash"
            " AND (s.seeds IS NULL OR r.replica < s.seeds))")


def _shown(value, width=40):
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[:width - 3] + "..."


class Store(ClaimsMixin, StoreFile):
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

    Writing the same run (study, arm and its configuration, replica) twice: a
    ``done`` or ``diverged`` run is final and a second write is a no-op
    (``write_run`` returns False; the first finished result wins when two
    workers race); a ``failed`` run is replaced by the next attempt, and
    ``attempts`` counts the tries.

    Reading: :meth:`runs`, :meth:`history`, :meth:`arms` and :meth:`done_keys`
    give the study's current spec (its arms as configured now, replicas below
    its seeds) unless ``current=False``; runs kept from an earlier spec of a
    grown study are in the store, not in its statistics.

    Attributes:
        path: The file.
        readonly: Whether it was opened read-only.
        schema_version: The file's schema version (older than
            ``SCHEMA_VERSION`` only when read-only).
    """

    _shared_cache = None

    # -- studies -------------------------------------------------------------
    def open_study(self, spec, new=False, fingerprint=None):
        """Create the study of ``spec``, or grow or resume the stored one; returns its id.

        Args:
            spec: A validated study spec: an object with ``to_dict()`` (and
                optionally ``name``, ``seed``, ``seeds``, ``reference``,
                ``hash``/``spec_hash``, ``expanded_arms``/``arms``) or the spec
                as a dict (``{"study": {"name": ..., "seed": ...}, "arms": [...]}``).
                Without a hash attribute the hash is the sha256 of the canonical
                JSON of the dict without ``study.store``.
            new: Start a new study under ``name`` even if one exists: the old
                study keeps all its runs under the name ``"<name>@<UTC time>"``
                (listed and queryable like any study).
            fingerprint: Optional ``{key: hash}`` of what the runs depend on
                beyond the spec (e.g. ``{"data": ..., "code": ...}``). Resuming
                a study compares it, key by key, with the stored one and raises
                :class:`FingerprintError` naming what changed; keys not stored
                yet (or a study stored without one) are recorded.

        Without ``new``, a stored study of this name grows into ``spec`` when
        only its arms, ``study.seeds`` or ``study.reference`` differ: the
        stored spec becomes ``spec``, every stored run whose identity the spec
        still asks for is reused, and the runs of removed arms (or beyond
        fewer seeds) are kept but no longer shown. Any other difference
        (``study.seed``, ``data``, ``model``, ``train``, ``robustness``) is
        refused with a :class:`StoreError` naming the changed keys: every
        stored run would be retrained, which under the same name would hide
        that the old results are a different experiment.
        """
        self._writing("open a study")
        fingerprint = _fingerprint_arg(fingerprint)
        s = describe(spec)
        fp_json = None if fingerprint is None else _dumps(fingerprint)
        try:
            with self._transaction() as con:
                row = con.execute(
                    "SELECT id, spec_json, spec_hash, fingerprint_json FROM studies WHERE name = ?",
                    (s.name,)).fetchone()
                if row and not new:
                    study_id = row[0]
                    if row[2] != s.spec_hash:
                        self._refuse_change(s.name, json.loads(row[1]), s.spec)
                    self._resume_fingerprint(s.name, study_id, row[3], fingerprint)
                    if row[2] != s.spec_hash or row[1] != s.spec_json:
                        con.execute("UPDATE studies SET spec_json = ?, spec_hash = ?, reference"
                                    " = ?, seeds = ? WHERE id = ?",
                                    (s.spec_json, s.spec_hash, s.reference, s.seeds, study_id))
                        self._set_arms(study_id, s, grown=True)
                    else:
                        self._set_arms(study_id, s, grown=False)
                    return study_id
                if row:
                    con.execute("UPDATE studies SET name = ? WHERE id = ?",
                                (self._archive_name(s.name), row[0]))
                study_id = con.execute(
                    "INSERT INTO studies(name, spec_json, spec_hash, study_seed, reference,"
                    " created_at, fingerprint_json, seeds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (s.name, s.spec_json, s.spec_hash, s.seed, s.reference, _now(), fp_json,
                     s.seeds),
                ).lastrowid
                self._set_arms(study_id, s, grown=False)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot open study {s.name!r}: {e}") from e
        return study_id

    def _refuse_change(self, name, old, new):
        changed = identity.changed_keys(old, new)
        if not changed:
            return
        detail = "; ".join(f"{key} {_shown(_get(old, key))} -> {_shown(_get(new, key))}"
                           for key in changed[:5]) + ("; ..." if len(changed) > 5 else "")
        raise StoreError(
            f"study {name!r} exists in {self.path} with a different spec ({detail}): its runs "
            "were trained on other settings and none could be reused (a study grows only in "
            "its arms, study.seeds and study.reference); use --new (new=True) to start a new "
            f"study and keep the old one as {name!r}@<time>, or give the study another name")

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
            self._reidentify(study_id)

    def _reidentify(self, study_id):
        """Recompute the identities of a study's runs after its fingerprint gained keys
        (a study stored without one is resumed as trained on the data it is given)."""
        shared = self._shared(study_id)
        rows = self._con.execute("SELECT id, arm_hash, replica, seed FROM runs WHERE study_id = ?",
                                 (study_id,)).fetchall()
        self._con.executemany("UPDATE runs SET identity = ? WHERE id = ?", [
            (identity.run_identity(digest, replica, seed, shared), rid)
            for rid, digest, replica, seed in rows])

    def _shared(self, study_id):
        """(shared hash, stored spec) of a study, read once per change of the study row."""
        row = self._con.execute("SELECT spec_json, fingerprint_json FROM studies WHERE id = ?",
                                (study_id,)).fetchone()
        if row is None:
            raise StoreError(f"no study with id {study_id} in {self.path}")
        cached = self._shared_cache
        if cached is None or cached[0] != (study_id, *row):
            spec = json.loads(row[0])
            shared = identity.shared_hash(spec, json.loads(row[1]) if row[1] else None)
            self._shared_cache = cached = ((study_id, *row), shared, spec)
        return cached[1]

    def _archive_name(self, name):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        candidate, k = f"{name}@{stamp}", 1
        while self._con.execute("SELECT 1 FROM studies WHERE name = ?", (candidate,)).fetchone():
            k += 1
            candidate = f"{name}@{stamp}-{k}"
        return candidate

    def _set_arms(self, study_id, described, grown):
        """The spec's arms, in its order, as the study's current arms.

        When the study grew, the arms the spec no longer has stay stored (with
        their runs) as not current, except the levels of a grid the spec
        leaves unexpanded (they arrive with their runs) whose configuration
        is unchanged.
        """
        con, names = self._con, {a[0] for a in described.arms}
        if grown:
            tables = arm_tables(described.spec)
            for name, parent, params, digest in con.execute(
                    "SELECT name, parent, params_json, arm_hash FROM arms WHERE study_id = ?"
                    " AND current = 1 ORDER BY position", (study_id,)).fetchall():
                level = parent in tables and (tables[parent].get("grid") is not None)
                if name not in names and not (level and described_arm(
                        tables, name, parent, json.loads(params))[0] == digest):
                    con.execute("UPDATE arms SET current = 0 WHERE study_id = ? AND name = ?",
                                (study_id, name))
        for position, (name, parent, params, digest, config) in enumerate(described.arms):
            con.execute(
                "INSERT INTO arms(study_id, name, position, parent, params_json, arm_hash,"
                " config_json, current) VALUES (?, ?, ?, ?, ?, ?, ?, 1)"
                " ON CONFLICT(study_id, name) DO UPDATE SET position = excluded.position,"
                " parent = excluded.parent, params_json = excluded.params_json,"
                " arm_hash = excluded.arm_hash, config_json = excluded.config_json, current = 1",
                (study_id, name, position, parent, _dumps(params or {}), digest,
                 _dumps(config)))
        # Arms kept current beyond the spec's list (grid levels) follow it, in their order.
        extra = con.execute("SELECT name FROM arms WHERE study_id = ? AND current = 1 AND"
                            " position >= 0 ORDER BY position", (study_id,)).fetchall()
        extra = [n for (n,) in extra if n not in names]
        con.executemany("UPDATE arms SET position = ? WHERE study_id = ? AND name = ?",
                        [(len(names) + k, study_id, n) for k, n in enumerate(extra)])

    def _ensure_arm(self, study_id, name, parent, params):
        """The arm_hash of arm ``name``, registering it (current) when the study lacks it."""
        row = self._con.execute(
            "SELECT parent, params_json, arm_hash FROM arms WHERE study_id = ? AND name = ?",
            (study_id, name),
        ).fetchone()
        if row is not None:
            if (parent or params) and row[:2] == (None, "{}"):
                self._con.execute("UPDATE arms SET parent = ?, params_json = ? WHERE study_id = ?"
                                  " AND name = ?", (parent, _dumps(params or {}), study_id, name))
            return row[2]
        self._shared(study_id)
        spec = self._shared_cache[2]
        params = json.loads(_dumps(params or {}))
        digest, config = described_arm(arm_tables(spec), name, parent, params)
        (position,) = self._con.execute(
            "SELECT COALESCE(MAX(position) + 1, 0) FROM arms WHERE study_id = ? AND current = 1",
            (study_id,)).fetchone()
        self._con.execute(
            "INSERT INTO arms(study_id, name, position, parent, params_json, arm_hash,"
            " config_json, current) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
            (study_id, name, position, parent, _dumps(params), digest, _dumps(config)))
        return digest

    def _v2(self, column):
        """``column``, or NULL in a version 1 store read as it is."""
        return column if self.schema_version >= 2 else "NULL"

    @_reading
    def studies(self):
        """Every study: id, name, spec_hash, study_seed, reference, created_at,
        n_done, n_failed, n_diverged (runs of its current spec)."""
        current = _CURRENT if self.schema_version >= 3 else "1"
        join = ("LEFT JOIN arms a ON a.study_id = r.study_id AND a.name = r.arm"
                if self.schema_version >= 3 else "")
        rows = self._con.execute(
            "SELECT s.id, s.name, s.spec_hash, s.study_seed, s.reference, s.created_at,"
            f" COALESCE(SUM(r.status = 'done' AND {current}), 0),"
            f" COALESCE(SUM(r.status = 'failed' AND {current}), 0),"
            f" COALESCE(SUM(r.status = 'diverged' AND {current}), 0)"
            f" FROM studies s LEFT JOIN runs r ON r.study_id = s.id {join}"
            " GROUP BY s.id ORDER BY s.id"
        ).fetchall()
        keys = ("id", "name", "spec_hash", "study_seed", "reference", "created_at",
                "n_done", "n_failed", "n_diverged")
        return [dict(zip(keys, r)) for r in rows]

    @_reading
    def study(self, name=None):
        """One study by name (or id; None: the one created last): its spec (dict,
        the current one of a grown study), hash, seed, reference, arms (current),
        fingerprint (dict, or None if none was recorded), ...

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
    def arms(self, study_id, current=True):
        """Arms in spec order: name, position, parent (grid arms), params, is_reference,
        config (the resolved configuration; {} in stores older than schema 3) and
        current. ``current=False``: also the arms a grown study no longer has."""
        (reference,) = self._con.execute(
            "SELECT reference FROM studies WHERE id = ?", (study_id,)
        ).fetchone() or (None,)
        v3 = self.schema_version >= 3
        extra = ", config_json, current" if v3 else ", NULL, 1"
        where = " AND current = 1" if v3 and current else ""
        rows = self._con.execute(
            f"SELECT name, position, parent, params_json{extra} FROM arms WHERE study_id = ?"
            f"{where} ORDER BY {'current DESC, ' if v3 else ''}position", (study_id,)
        ).fetchall()
        return [{"name": n, "position": p, "parent": g, "params": json.loads(j),
                 "is_reference": n == reference, "config": json.loads(c) if c else {},
                 "current": bool(k)} for n, p, g, j, c, k in rows]

    # -- runs ----------------------------------------------------------------
    def _from(self, study_id, status, current):
        """``(FROM ... WHERE ..., args, current-flag expression)`` of a study's runs."""
        where, args = ["r.study_id = ?"], [study_id]
        self._status_filter("r.status", status, where, args)
        if self.schema_version < 3:  # read as it is: one spec per study
            return ("FROM runs r LEFT JOIN arms a ON a.study_id = r.study_id AND a.name = r.arm"
                    f" WHERE {' AND '.join(where)}", args, "1")
        if current:
            where.append(_CURRENT)
        return ("FROM runs r JOIN studies s ON s.id = r.study_id LEFT JOIN arms a ON"
                f" a.study_id = r.study_id AND a.name = r.arm WHERE {' AND '.join(where)}",
                args, _CURRENT)

    @_reading
    def done_keys(self, study_id):
        """``{(arm, replica)}`` of the current spec's final runs: done and diverged
        (failed runs are retried; a seed that diverged diverges again)."""
        sql, args, _ = self._from(study_id, list(_FINAL), True)
        return set(self._con.execute(f"SELECT r.arm, r.replica {sql}", args))

    @_reading
    def kept_count(self, study_id):
        """How many stored runs of a study its current spec does not show (removed or
        changed arms, replicas beyond its seeds)."""
        if self.schema_version < 3:
            return 0
        sql, args, flag = self._from(study_id, None, False)
        (n,) = self._con.execute(f"SELECT COALESCE(SUM(NOT {flag}), 0) {sql}", args).fetchone()
        return n

    # -- the data audit of a study (noisewise.study.audit) -----------------------
    # One JSON value per study in noisewise_meta, under "audit:<study id>": every
    # schema version has the table, so no migration; the latest audit replaces the last.
    def write_audit(self, study_id, audit):
        """Store ``audit`` (a JSON-able dict) as the latest audit of the study."""
        self._writing("store a data audit")
        with self._transaction() as con:
            con.execute("INSERT OR REPLACE INTO noisewise_meta VALUES (?, ?)",
                        (f"audit:{int(study_id)}", _dumps(audit)))

    @_reading
    def audit(self, study_id):
        """The latest stored audit of the study (a dict), or None."""
        row = self._con.execute("SELECT value FROM noisewise_meta WHERE key = ?",
                                (f"audit:{int(study_id)}",)).fetchone()
        return json.loads(row[0]) if row else None

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
                earlier), ``robustness`` (the terms of its ``[robustness]``
                figures, a JSON-ready dict, or None), ``calibration`` (the
                reliability-diagram sums of an arm with ``predict``, or None).

        The run's identity (:func:`~noisewise.study.store.identity.run_identity`)
        comes from its arm as the study describes it (an arm the study does not
        have yet is added to it), its replica and seed, and the study's shared
        settings and fingerprint. Writing a run (or finding it final already)
        removes its claim (:meth:`claim`), whoever holds it.

        Returns:
            True if written; False if a final (done or diverged) run of this
            arm, configuration and replica was already stored (it is kept unchanged).
        """
        arm, parent, params = arm_fields(result.arm)
        self._writing(f"write run {arm}/{result.replica}")
        status = result.status
        if status not in ("done", "failed", "diverged"):
            raise ValueError(f"`status` must be one of ('done', 'failed', 'diverged'). "
                             f"Received: status={status!r}")
        diverged_epoch = _diverged_epoch(result, status)
        wall_s = None if result.wall_s is None else float(result.wall_s)
        finished = _timestamp(getattr(result, "finished_at", None))
        started = _timestamp(getattr(result, "started_at", None))
        if finished is None:
            finished = datetime.datetime.now(datetime.timezone.utc)
        if started is None and wall_s is not None:
            started = finished - datetime.timedelta(seconds=wall_s)
        error = getattr(result, "error", None)
        replica, seed = int(result.replica), None if result.seed is None else int(result.seed)
        row = (status, result.backend, _dumps(result.versions or {}),
               started and started.isoformat(timespec="milliseconds"),
               finished.isoformat(timespec="milliseconds"), wall_s,
               _dumps(result.final or {}), None if error is None else str(error),
               diverged_epoch, _json_or_none(getattr(result, "robustness", None)),
               _json_or_none(getattr(result, "calibration", None)))
        curves = _encode_history(result.history)  # encoded before the transaction
        try:
            with self._transaction() as con:
                shared = self._shared(study_id)
                digest = self._ensure_arm(study_id, arm, parent, params)
                old = con.execute(
                    "SELECT id, status, attempts FROM runs WHERE study_id = ? AND arm = ?"
                    " AND arm_hash = ? AND replica = ?", (study_id, arm, digest, replica)
                ).fetchone()
                # Stored (or already final): whoever claimed the run has nothing left to train.
                con.execute("DELETE FROM claims WHERE study_id = ? AND arm = ? AND replica = ?",
                            (study_id, arm, replica))
                if old and old[1] in _FINAL:
                    return False
                if old:
                    con.execute("DELETE FROM runs WHERE id = ?", (old[0],))
                run_id = con.execute(
                    "INSERT INTO runs(study_id, arm, replica, seed, attempts, status, backend,"
                    " versions_json, started_at, finished_at, wall_s, final_json, error,"
                    " diverged_epoch, robustness_json, calibration_json, arm_hash, identity)"
                    f" VALUES ({', '.join('?' * 18)})",
                    (study_id, arm, replica, seed, (old[2] + 1) if old else 1, *row, digest,
                     identity.run_identity(digest, replica, seed, shared)),
                ).lastrowid
                self._insert_curves(run_id, curves)
        except (sqlite3.Error, StoreError) as e:
            raise StoreError(f"{self.path}: cannot write run {arm}/{replica} of study "
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
    def runs(self, study_id, status="done", current=True):
        """Runs as dicts, in arm then replica order.

        Args:
            study_id: The study.
            status: 'done', 'failed' or 'diverged', a list of them, or None
                for all.
            current: Only the runs of the study's current spec (default);
                False: every stored run of the study, current ones first.

        Keys: id, arm, replica, seed, status, attempts, backend, versions (dict),
        started_at, finished_at, wall_s, final (dict of final metrics; NaN where
        not finite), error, diverged_epoch (None unless diverged), identity
        (None in stores older than schema 3), robustness (the terms of the
        run's ``[robustness]`` figures: ``{"data": ..., "records": [...]}``;
        None without them, and in stores older than schema 4), calibration (the
        reliability-diagram sums of an arm with ``predict``; None without, and in
        stores older than schema 6), current, and
        the arm's arm_position, arm_parent, arm_params, is_reference.
        """
        sql, args, flag = self._from(study_id, status, current)
        arms = {a["name"]: a for a in self.arms(study_id, current=False)}
        ident = "r.identity" if self.schema_version >= 3 else "NULL"
        terms = "r.robustness_json" if self.schema_version >= 4 else "NULL"
        calibration = "r.calibration_json" if self.schema_version >= 6 else "NULL"
        order = f"{flag} DESC, a.position, r.replica" if not current else "a.position, r.replica"
        query = ("SELECT r.id, r.arm, r.replica, r.seed, r.status, r.attempts, r.backend,"
                 " r.versions_json, r.started_at, r.finished_at, r.wall_s, r.final_json, r.error,"
                 f" {self._v2('r.diverged_epoch')}, {ident}, {terms}, {calibration}, {flag} {sql}"
                 f" ORDER BY {order}")
        out = []
        for (rid, arm, rep, seed, st, att, backend, versions, started, finished, wall, final,
             error, diverged, ident, terms, calib, is_current) in self._con.execute(query, args):
            info = arms.get(arm, {})
            out.append({
                "id": rid, "arm": arm, "replica": rep, "seed": seed, "status": st,
                "attempts": att, "backend": backend, "versions": json.loads(versions or "{}"),
                "started_at": started, "finished_at": finished, "wall_s": wall,
                "final": _final(final), "error": error, "diverged_epoch": diverged,
                "identity": ident, "robustness": json.loads(terms) if terms else None,
                "calibration": json.loads(calib) if calib else None,
                "current": bool(is_current),
                "arm_position": info.get("position"), "arm_parent": info.get("parent"),
                "arm_params": info.get("params", {}),
                "is_reference": info.get("is_reference", False),
            })
        return out

    @_reading
    def history(self, study_id, status="done", metrics=None, arms=None, current=True):
        """Per-run learning curves.

        Args:
            study_id: The study.
            status: Only runs with this status, or one of a list of them
                (None: all).
            metrics: Optional list of metric names to read (default all).
            arms: Optional list of arm names to read (default all).
            current: Only the runs of the study's current spec (default).

        Returns:
            A list (arm then replica order) of dicts with run_id, arm, replica,
            seed, status, ``history`` ({metric: float64 array}) and ``epochs``
            ({metric: int array of the epoch numbers of those values}).
        """
        sql, args, _ = self._from(study_id, status, current)
        where = []
        for column, values in (("c.metric", metrics), ("r.arm", arms)):
            if values is not None:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                args.extend(values)
        # Rows come in primary-key order (no sort of the blobs); the small run
        # list is ordered afterwards.
        sql = sql.replace("FROM runs r", "FROM runs r JOIN curves c ON c.run_id = r.id", 1)
        query = ("SELECT r.id, r.arm, r.replica, r.seed, r.status, c.metric, c.n, c.first_epoch,"
                 f" c.epoch_step, c.epochs, c.vals {sql}" + "".join(f" AND {w}" for w in where))
        out = {}
        for rid, arm, rep, seed, st, metric, *curve in self._con.execute(query, args):
            rec = out.setdefault(rid, {"run_id": rid, "arm": arm, "replica": rep, "seed": seed,
                                       "status": st, "history": {}, "epochs": {}})
            rec["epochs"][metric], rec["history"][metric] = _decode_curve(*curve)
        position = {a["name"]: a["position"] for a in self.arms(study_id)}
        return sorted(out.values(), key=lambda r: (position.get(r["arm"], len(position)),
                                                   r["replica"]))


def _json_or_none(value):
    return None if value is None else _dumps(value)


def _get(spec, path):
    value = spec
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value
