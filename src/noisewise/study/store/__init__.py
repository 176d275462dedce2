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

A study grows: its spec may change in its arms, ``study.seeds`` and
``study.reference`` (:meth:`Store.open_study`). Each run is stored with its
identity (:mod:`noisewise.study.store.identity`): its arm's name and
resolved configuration, replica, seed, the study's shared settings and
fingerprint. A grown study reuses every stored run its new spec still asks
for; runs of arms it no longer has (or of an arm whose configuration
changed, or beyond fewer seeds) stay in the store, out of its statistics.

The schema version is ``PRAGMA user_version`` (the ``schema_version`` row of
``noisewise_meta`` mirrors it for people; a store with user_version 0 and that
row at 1 is version 1). Opening an older store for writing applies
``_MIGRATIONS`` in order, in one transaction; a newer store is refused.

Tables (schema version 6)::

    noisewise_meta(key, value)        schema_version, created_with, created_at
    studies(id, name UNIQUE, spec_json, spec_hash, study_seed, reference, created_at,
            fingerprint_json, seeds)
    arms(study_id, name, position, parent, params_json, arm_hash, config_json, current)
    runs(id, study_id, arm, replica, seed, status, attempts, backend, versions_json,
         started_at, finished_at, wall_s, final_json, error, diverged_epoch,
         arm_hash, identity, robustness_json, calibration_json)
         UNIQUE(study_id, arm, arm_hash, replica), UNIQUE(study_id, identity)
    curves(run_id, metric, n, first_epoch, epoch_step, epochs, vals)
    claims(study_id, arm, replica, owner, host, pid, claimed_at, heartbeat_at, ttl_s)
           PRIMARY KEY(study_id, arm, replica)

Version 2 added ``runs.diverged_epoch``, the status ``diverged`` and
``studies.fingerprint_json`` (hashes of the data and code a study was trained
on, so a resume on changed data is refused; NULL for older studies).
Version 3 added run identities (``runs.arm_hash``, ``runs.identity``, computed
for the runs of older stores from their study's stored spec when migrating),
``arms.config_json`` (an arm's resolved configuration), ``arms.current`` (0:
an arm the study's current spec no longer has) and ``studies.seeds``.
Version 4 added ``runs.robustness_json`` (the settings behind a run's
``[robustness]`` figures; NULL for runs stored before).
Version 5 added ``claims``: the runs processes sharing a store have taken to
train (:mod:`noisewise.study.store.claims`: :meth:`Store.claim`,
:meth:`Store.heartbeat`, :meth:`Store.release`; a claim expires after its
``ttl_s`` without a heartbeat, or when its process on this host has ended).
Version 6 added ``runs.calibration_json`` (the reliability-diagram sums of a
run whose arm has ``predict``; NULL for runs stored before).

A curve is one metric of one run: ``vals`` is a little-endian float64 array
(``numpy.frombuffer(vals, "<f8")``); its epoch numbers are
``first_epoch + k * epoch_step`` when ``epochs`` is NULL, else the little-endian
int32 array ``epochs``. One row per (run, metric) rather than per epoch: at 30
seeds x 14 arms x 4000 epochs x 4 metrics (6.7M values), writing the 420 runs
took 4-7 s, reading every curve back 0.6 s, and the file 54 MiB, against
77-130 s, 16-27 s and 148 MiB with one row per (run, metric, epoch) (2 busy
CPU cores). JSON columns (``spec_json``, ``final_json``, ``versions_json``,
``params_json``, ``fingerprint_json``, ``config_json``) are strict JSON
(non-finite numbers are stored as null), so SQLite's ``json_extract`` can
query them.

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

from noisewise.study.store.claims import DEFAULT_TTL, Claim, new_owner
from noisewise.study.store.codec import STATUSES
from noisewise.study.store.file import FingerprintError, StoreError
from noisewise.study.store.schema import APPLICATION_ID, SCHEMA_VERSION
from noisewise.study.store.schema import MIGRATIONS as _MIGRATIONS
from noisewise.study.store.sqlite import Store

__all__ = ["APPLICATION_ID", "DEFAULT_TTL", "SCHEMA_VERSION", "STATUSES", "Claim",
           "FingerprintError", "Store", "StoreError", "_MIGRATIONS", "new_owner"]
