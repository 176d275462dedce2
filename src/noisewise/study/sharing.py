"""Many processes, one store: runs are claimed in the store before they train.

Every ``noisewise run`` (or ``Study.run``) claims a run in the store's
``claims`` table just before training it (:meth:`Store.claim
<noisewise.study.store.Store.claim>`), so several processes started on one
store split its runs instead of each training all of them, and a second
process started later takes only what is left. A process keeps its claims
alive with a heartbeat from a thread of its own; a claim whose heartbeat is
older than its time to live, or whose process is gone (same host), is taken
over by the next process that asks. When nothing is left to claim but other
processes still hold live claims, a process waits for them: the study it
reports on is complete when it returns.

A run stored as failed by another process while this one was running is
not retried here (it is retried by the next run of the study, as a failed
run always is), so two processes never retry one failing run in turn.

SQLite locking needs a local file system: on a network file system (NFS,
SMB) a store shared by processes on several hosts can be corrupted. There,
run one driver with a cluster (``--cluster``) instead: only the driver
writes the store.
"""

import threading
from collections.abc import Sequence

from noisewise.study.execute import RunPlan
from noisewise.study.store import Store
from noisewise.study.store.claims import DEFAULT_TTL, new_owner

_FINAL = ("done", "diverged")


class Sharing:
    """This process's claims on the runs of one study, and the heartbeat that keeps them.

    Args:
        db: The open (writable) store.
        study_id: The study's id in it.
        ttl: Seconds a claim lives without a heartbeat (default
            :data:`~noisewise.study.store.claims.DEFAULT_TTL`); the heartbeat
            beats every quarter of it.

    Use as a context manager: leaving it stops the heartbeat and releases
    the claims of runs this process did not finish.
    """

    def __init__(self, db: Store, study_id: int, ttl: float | None = None):
        self.db, self.study_id = db, study_id
        self.ttl = DEFAULT_TTL if ttl is None else ttl
        self.owner = new_owner()
        self.tried: set[tuple[str, int]] = set()  # keys this process claimed
        self._start = db.run_attempts(study_id)  # (status, attempts) when this run began
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="noisewise-heartbeat",
                                      daemon=True)

    def __enter__(self):
        self._beat.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._beat.join(timeout=10)
        try:
            self.db.release(self.study_id, self.owner)
        except Exception:  # noqa: BLE001 -- a lost release only waits out the ttl
            if exc[0] is None:
                raise

    def _heartbeat(self):
        # Its own connection: an SQLite connection belongs to the thread that made it.
        try:
            with Store(self.db.path) as store:
                while not self._stop.wait(self.ttl / 4):
                    try:
                        store.heartbeat(self.study_id, self.owner)
                    except Exception:  # noqa: BLE001 -- busy store: the next beat retries
                        pass
        except Exception:  # noqa: BLE001 -- the claims then expire, and others take over
            pass

    def claim(self, plans: Sequence[RunPlan]) -> list[RunPlan]:
        """The plans of ``plans`` this process now holds claims on (:attr:`RunHooks.claim
        <noisewise.study.execute.RunHooks.claim>`); a run is claimed once per process."""
        keys = [plan.key for plan in plans if plan.key not in self.tried]
        granted = self.db.claim(self.study_id, keys, self.owner, self.ttl) if keys else set()
        self.tried |= granted
        return [plan for plan in plans if plan.key in granted]

    def remaining(self, plans: Sequence[RunPlan]) -> list[RunPlan]:
        """The plans of ``plans`` still to train: not claimed by this process, not
        stored as final, and not tried (and failed) by another process since this
        one began."""
        states = self.db.run_attempts(self.study_id)
        out = []
        for plan in plans:
            key = plan.key
            status, attempts = states.get(key, (None, 0))
            if key in self.tried or status in _FINAL or attempts > self._start.get(key, (None, 0))[1]:
                continue
            out.append(plan)
        return out

    def claimable(self, plans: Sequence[RunPlan]) -> list[RunPlan]:
        """The plans of ``plans`` no other process holds a live claim on (a read:
        a process waiting for others does not take the write lock every poll)."""
        held = {(c.arm, c.replica) for c in self.db.claims(self.study_id)
                if c.live and c.owner != self.owner}
        return [plan for plan in plans if plan.key not in held]
