"""The store's tables, and the ordered migrations from older schema versions.

Each migration is a step from ``version - 1`` to ``version``; the store
applies them in order, in one transaction, when it opens an older store for
writing. A migrated store has exactly the tables and columns of a new one.
"""

import json

from noisewise.study.store import identity
from noisewise.study.store.codec import _dumps

APPLICATION_ID = int.from_bytes(b"NWst", "big")
SCHEMA_VERSION = 6
MAGIC = b"SQLite format 3\x00"

_STATUS_CHECK = "status TEXT NOT NULL CHECK (status IN ('done', 'failed', 'diverged'))"
_RUNS_V2 = f"""CREATE TABLE {{name}}(
        id INTEGER PRIMARY KEY,
        study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
        arm TEXT NOT NULL, replica INTEGER NOT NULL, seed INTEGER,
        {_STATUS_CHECK},
        attempts INTEGER NOT NULL DEFAULT 1, backend TEXT, versions_json TEXT,
        started_at TEXT, finished_at TEXT, wall_s REAL, final_json TEXT, error TEXT,
        diverged_epoch INTEGER, UNIQUE(study_id, arm, replica))"""
# Version 3: a run is unique by its identity; one arm name may hold runs of
# several configurations (an arm changed under its name keeps its old runs).
_RUNS_V3 = f"""CREATE TABLE {{name}}(
        id INTEGER PRIMARY KEY,
        study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
        arm TEXT NOT NULL, replica INTEGER NOT NULL, seed INTEGER,
        {_STATUS_CHECK},
        attempts INTEGER NOT NULL DEFAULT 1, backend TEXT, versions_json TEXT,
        started_at TEXT, finished_at TEXT, wall_s REAL, final_json TEXT, error TEXT,
        diverged_epoch INTEGER, arm_hash TEXT NOT NULL, identity TEXT NOT NULL{{extra}},
        UNIQUE(study_id, arm, arm_hash, replica), UNIQUE(study_id, identity))"""
# Version 4: the terms of a run's [robustness] figures (runs.robustness_json), last,
# where ALTER TABLE puts it in a migrated store.
# Version 6: the reliability-diagram sums of an arm with `predict` (runs.calibration_json).
RUNS = _RUNS_V3.replace("{extra}", ",\n        robustness_json TEXT,\n        calibration_json TEXT")
_RUNS_V3 = _RUNS_V3.replace("{extra}", "")
_V1_RUN_COLUMNS = ("id, study_id, arm, replica, seed, status, attempts, backend, versions_json,"
                   " started_at, finished_at, wall_s, final_json, error")
_V2_RUN_COLUMNS = _V1_RUN_COLUMNS + ", diverged_epoch"
# Version 5: runs claimed before training, so processes sharing a store split the work
# (noisewise.study.store.claims). One row per arm name and replica: a study's current
# spec has one configuration per arm name.
CLAIMS = """CREATE TABLE claims(
        study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
        arm TEXT NOT NULL, replica INTEGER NOT NULL, owner TEXT NOT NULL, host TEXT NOT NULL,
        pid INTEGER NOT NULL, claimed_at REAL NOT NULL, heartbeat_at REAL NOT NULL,
        ttl_s REAL NOT NULL, PRIMARY KEY(study_id, arm, replica))"""

SCHEMA = (
    "CREATE TABLE noisewise_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE studies(
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, spec_json TEXT NOT NULL,
        spec_hash TEXT NOT NULL, study_seed INTEGER, reference TEXT,
        created_at TEXT NOT NULL, fingerprint_json TEXT, seeds INTEGER)""",
    """CREATE TABLE arms(
        study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
        name TEXT NOT NULL, position INTEGER NOT NULL, parent TEXT,
        params_json TEXT NOT NULL DEFAULT '{}', arm_hash TEXT, config_json TEXT,
        current INTEGER NOT NULL DEFAULT 1, PRIMARY KEY(study_id, name))""",
    RUNS.format(name="runs"),
    """CREATE TABLE curves(
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        metric TEXT NOT NULL, n INTEGER NOT NULL, first_epoch INTEGER,
        epoch_step INTEGER, epochs BLOB, vals BLOB NOT NULL,
        PRIMARY KEY(run_id, metric)) WITHOUT ROWID""",
    CLAIMS,
)


def _to_v2(con):
    """Status 'diverged' and runs.diverged_epoch; studies.fingerprint_json.

    SQLite cannot change a CHECK constraint, so runs is rebuilt, keeping its
    ids (curves point at them). Foreign keys are off meanwhile: dropping the
    old table would otherwise cascade into curves.
    """
    con.execute(_RUNS_V2.format(name="runs_v2"))
    con.execute(f"INSERT INTO runs_v2({_V1_RUN_COLUMNS}) SELECT {_V1_RUN_COLUMNS} FROM runs")
    con.execute("DROP TABLE runs")
    con.execute("ALTER TABLE runs_v2 RENAME TO runs")
    con.execute("ALTER TABLE studies ADD COLUMN fingerprint_json TEXT")


def arm_tables(spec):
    """``{name: normalised [[arms]] table}`` of a stored spec."""
    return {t["name"]: t for t in spec.get("arms") or []
            if isinstance(t, dict) and isinstance(t.get("name"), str)}


def described_arm(tables, name, parent, params):
    """``(arm_hash, config)`` of an arm from the spec's tables (its parent's for a grid arm)."""
    config = identity.arm_config(tables.get(parent or name), params)
    return identity.arm_hash(name, config), config


def study_seeds(spec):
    """``study.seeds`` of a stored spec, or None (a spec without it shows every replica)."""
    seeds = (spec.get("study") or {}).get("seeds") if isinstance(spec.get("study"), dict) else None
    return seeds if isinstance(seeds, int) and not isinstance(seeds, bool) else None


def _to_v3(con):
    """Run identities: runs.arm_hash and runs.identity, unique per study; arms.arm_hash,
    arms.config_json and arms.current; studies.seeds.

    The identities of stored runs are computed from their study's stored spec
    and fingerprint exactly as a new run's are, so a migrated study grows like
    a new one: its runs are reused wherever the grown spec asks for them.
    """
    for column in ("arm_hash TEXT", "config_json TEXT", "current INTEGER NOT NULL DEFAULT 1"):
        con.execute(f"ALTER TABLE arms ADD COLUMN {column}")
    con.execute("ALTER TABLE studies ADD COLUMN seeds INTEGER")
    con.execute(_RUNS_V3.format(name="runs_v3"))
    studies = con.execute("SELECT id, spec_json, fingerprint_json FROM studies").fetchall()
    for study_id, spec_json, fp_json in studies:
        spec = json.loads(spec_json)
        tables, shared = arm_tables(spec), identity.shared_hash(
            spec, json.loads(fp_json) if fp_json else None)
        con.execute("UPDATE studies SET seeds = ? WHERE id = ?", (study_seeds(spec), study_id))
        hashes = {}
        arms = con.execute("SELECT name, parent, params_json FROM arms WHERE study_id = ?",
                           (study_id,)).fetchall()
        for name, parent, params in arms:
            digest, config = described_arm(tables, name, parent, json.loads(params))
            hashes[name] = digest
            con.execute("UPDATE arms SET arm_hash = ?, config_json = ? WHERE study_id = ? AND"
                        " name = ?", (digest, _dumps(config), study_id, name))
        rows = con.execute(f"SELECT {_V2_RUN_COLUMNS} FROM runs WHERE study_id = ?",
                           (study_id,)).fetchall()
        for row in rows:
            arm, replica, seed = row[2], row[3], row[4]
            digest = hashes.get(arm) or described_arm(tables, arm, None, None)[0]
            con.execute(f"INSERT INTO runs_v3({_V2_RUN_COLUMNS}, arm_hash, identity) VALUES"
                        f" ({', '.join('?' * (len(row) + 2))})",
                        (*row, digest, identity.run_identity(digest, replica, seed, shared)))
    con.execute("DROP TABLE runs")
    con.execute("ALTER TABLE runs_v3 RENAME TO runs")


def _to_v4(con):
    """runs.robustness_json: the settings behind a run's [robustness] figures.

    Runs stored before have none (NULL): their figures were computed, but the
    attack, budget, clip and examples behind them were not recorded, and the
    report says so rather than guess them from the spec.
    """
    con.execute("ALTER TABLE runs ADD COLUMN robustness_json TEXT")


def _to_v5(con):
    """The claims table: runs taken by a process before it trains them (none yet)."""
    con.execute(CLAIMS)


def _to_v6(con):
    """runs.calibration_json: the reliability-diagram sums of a run whose arm has
    ``predict`` (NULL for every run stored before: none had the key)."""
    con.execute("ALTER TABLE runs ADD COLUMN calibration_json TEXT")


# version -> the step from version - 1, applied in order when opened for writing
MIGRATIONS = {2: _to_v2, 3: _to_v3, 4: _to_v4, 5: _to_v5, 6: _to_v6}
