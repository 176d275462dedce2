"""Claims: a run is taken in the store before it trains, so processes sharing a store split the work.

Several ``noisewise run`` processes on one store (on one machine, or drivers
sharing its file) each claim the runs they are about to train. A claim is a
row of the ``claims`` table (schema version 5) keyed by study, arm name and
replica; :meth:`ClaimsMixin.claim` grants, in one write transaction, every
asked run that is neither stored as final (done or diverged, in the study's
current spec) nor held by a live claim of another owner, so two processes
never both get a run.

A claim is live until ``heartbeat_at + ttl_s`` has passed (its owner calls
:meth:`~ClaimsMixin.heartbeat` more often than that while it trains), or, on
this host, as soon as the process that made it has ended: a killed run is
taken over at once on its own machine, after its ``ttl`` elsewhere. A claim
that is not live is taken over by the next process that asks for its run.
Writing the run (:meth:`Store.write_run`) removes its claim, whoever holds it.

Assumptions, and what happens where they fail:

- Host names tell machines apart. Two machines sharing a host name and a
  store would each see the other's processes as ended and take over their
  claims, and those runs would train twice; each run is still stored once (the
  first final result wins).
- A process id reused by a new process, or an ended process its parent has
  not reaped yet (a zombie), keeps a dead claim looking live until its ``ttl``
  passes: a run waits, never trains twice.
- On Windows, ``os.kill(pid, 0)`` would stop the process rather than probe it,
  so claims there expire by their heartbeat alone.
- Times are each machine's clock (``time.time()``); across machines ``ttl``
  must exceed their clocks' difference.

Example:
    >>> import tempfile, os
    >>> from noisewise.study.store import Store
    >>> from noisewise.study.store.claims import new_owner
    >>> path = os.path.join(tempfile.mkdtemp(), "noisewise.db")
    >>> with Store(path) as store:
    ...     sid = store.open_study({"study": {"name": "demo", "seed": 0}})
    ...     me, other = new_owner(), new_owner()
    ...     sorted(store.claim(sid, [("a", 0), ("a", 1)], me)), store.claim(sid, [("a", 1)], other)
    ([('a', 0), ('a', 1)], set())
"""

import dataclasses
import math
import os
import secrets
import socket
import sqlite3
import time

from noisewise.study.store.file import StoreError, _reading

DEFAULT_TTL = 60.0  # seconds without a heartbeat after which a claim has expired

_COLUMNS = "arm, replica, owner, host, pid, claimed_at, heartbeat_at, ttl_s"


@dataclasses.dataclass(frozen=True)
class Claim:
    """One row of the claims table.

    Attributes:
        arm, replica: The claimed run (arm name and replica).
        owner: Who holds it (:func:`new_owner`).
        host, pid: The machine and process that claimed it last.
        claimed_at, heartbeat_at: POSIX seconds of the claim and its last heartbeat.
        ttl_s: Seconds after ``heartbeat_at`` at which it expires.
        live: Whether it still holds its run (computed when read).
    """

    arm: str
    replica: int
    owner: str
    host: str
    pid: int
    claimed_at: float
    heartbeat_at: float
    ttl_s: float
    live: bool


def new_owner():
    """A claim owner unique per process and call: ``"<host name>:<pid>:<16 hex digits>"``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


def _running(pid):
    """Whether process ``pid`` of this machine exists (PermissionError: another user's, alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):  # a pid this system cannot have
        return False
    return True


class _Liveness:
    """Decides whether claims are live at one instant, probing each local pid once."""

    def __init__(self):
        self.now, self.host, self._pids = time.time(), socket.gethostname(), {}

    def __call__(self, host, pid, heartbeat_at, ttl_s):
        if self.now > heartbeat_at + ttl_s:
            return False
        if host != self.host or os.name == "nt":
            return True
        if pid not in self._pids:
            self._pids[pid] = pid == os.getpid() or _running(pid)
        return self._pids[pid]


def _ttl(ttl):
    ok = isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and math.isfinite(ttl)
    if not ok or ttl <= 0:
        raise ValueError(f"`ttl` must be a positive finite number of seconds. Received: ttl={ttl!r}")
    return float(ttl)


def _owner(owner):
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"`owner` must be a non-empty string (see new_owner()). Received: "
                         f"owner={owner!r}")
    return owner


def _keys(keys, name="keys"):
    """``keys`` as a list of distinct (arm name, replica) pairs, in their order."""
    if isinstance(keys, (str, bytes)):
        raise ValueError(f"`{name}` must be an iterable of (arm name, replica) pairs. Received: "
                         f"{name}={keys!r}")
    out = {}
    for key in keys:
        try:
            arm, replica = key
        except (TypeError, ValueError):
            arm = replica = None
        if not isinstance(arm, str) or isinstance(replica, bool) or not isinstance(replica, int):
            raise ValueError(f"`{name}` must hold (arm name, replica) pairs of a str and an int. "
                             f"Received: key={key!r} in {name}")
        out[(arm, int(replica))] = None
    return list(out)


class ClaimsMixin:
    """The claims half of :class:`~noisewise.study.store.Store` (see the module docstring)."""

    def claim(self, study_id, keys, owner, ttl=DEFAULT_TTL):
        """Claim runs for ``owner``; returns the granted ``{(arm, replica)}``.

        Args:
            study_id: From :meth:`open_study`.
            keys: Iterable of ``(arm name, replica)`` pairs.
            owner: The claimant (:func:`new_owner`).
            ttl: Seconds without a heartbeat after which the claims expire.

        In one write transaction, a key is granted unless a final (done or
        diverged) run of it is stored in the study's current spec, or another
        owner holds a live claim of it; a claim that is no longer live is taken
        over. Keys ``owner`` holds already are granted again, their heartbeat
        (and ``ttl``) renewed.
        """
        self._writing("claim runs")
        ttl, owner, keys = _ttl(ttl), _owner(owner), _keys(keys)
        host, pid = socket.gethostname(), os.getpid()
        try:
            with self._transaction() as con:
                self._claimed_study(study_id)
                done = self.done_keys(study_id)
                live, held = _Liveness(), {}
                for arm, replica, *row in con.execute(
                        "SELECT arm, replica, owner, host, pid, heartbeat_at, ttl_s FROM claims"
                        " WHERE study_id = ?", (study_id,)):
                    held[(arm, replica)] = row
                granted = set()
                for key in keys:
                    row = held.get(key)
                    if key in done or (row and row[0] != owner and live(*row[1:])):
                        continue
                    if row and row[0] == owner:
                        con.execute("UPDATE claims SET host = ?, pid = ?, heartbeat_at = ?,"
                                    " ttl_s = ? WHERE study_id = ? AND arm = ? AND replica = ?",
                                    (host, pid, live.now, ttl, study_id, *key))
                    else:
                        con.execute(f"INSERT OR REPLACE INTO claims(study_id, {_COLUMNS}) VALUES"
                                    " (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                    (study_id, *key, owner, host, pid, live.now, live.now, ttl))
                    granted.add(key)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot claim runs of study {study_id}: {e}") from e
        return granted

    def heartbeat(self, study_id, owner):
        """Renew ``heartbeat_at`` of every claim ``owner`` holds in the study; returns how many.

        A claim taken over by another owner after it expired is not renewed
        (and not counted): its run is no longer ``owner``'s to train.
        """
        self._writing("renew claims")
        owner = _owner(owner)
        try:
            with self._transaction() as con:
                return con.execute("UPDATE claims SET heartbeat_at = ? WHERE study_id = ? AND"
                                   " owner = ?", (time.time(), study_id, owner)).rowcount
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot renew the claims of {owner!r} in study "
                             f"{study_id}: {e}") from e

    def release(self, study_id, owner, keys=None):
        """Delete ``owner``'s claims in the study (only those of ``keys`` when given); returns how many."""
        self._writing("release claims")
        owner = _owner(owner)
        keys = None if keys is None else _keys(keys)
        try:
            with self._transaction() as con:
                if keys is None:
                    return con.execute("DELETE FROM claims WHERE study_id = ? AND owner = ?",
                                       (study_id, owner)).rowcount
                return sum(con.execute("DELETE FROM claims WHERE study_id = ? AND owner = ? AND"
                                       " arm = ? AND replica = ?",
                                       (study_id, owner, *key)).rowcount for key in keys)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot release the claims of {owner!r} in study "
                             f"{study_id}: {e}") from e

    @_reading
    def claims(self, study_id):
        """Every claim of the study, as :class:`Claim` (``live`` computed now), by arm and replica.

        A store older than schema 5 read as it is has none.
        """
        if self.schema_version < 5:
            return []
        live = _Liveness()
        rows = self._con.execute(f"SELECT {_COLUMNS} FROM claims WHERE study_id = ?"
                                 " ORDER BY arm, replica", (study_id,)).fetchall()
        return [Claim(arm, replica, owner, host, pid, claimed, beat, ttl_s,
                      live=live(host, pid, beat, ttl_s))
                for arm, replica, owner, host, pid, claimed, beat, ttl_s in rows]

    @_reading
    def run_attempts(self, study_id):
        """``{(arm, replica): (status, attempts)}`` of the runs stored in the study's current spec."""
        sql, args, _ = self._from(study_id, None, True)
        return {(arm, replica): (status, attempts) for arm, replica, status, attempts in
                self._con.execute(f"SELECT r.arm, r.replica, r.status, r.attempts {sql}", args)}

    def _claimed_study(self, study_id):
        if self._con.execute("SELECT 1 FROM studies WHERE id = ?", (study_id,)).fetchone() is None:
            raise StoreError(f"no study with id {study_id} in {self.path}")
