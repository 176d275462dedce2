"""The identity of each run, which a store reuses when a study grows.

A run's identity is what its result depends on: its arm (name and resolved
configuration: noise entries, augmentation, grid point applied, and any other
key of the normalised arm table), its replica and replica seed, and the
study's shared settings (the normalised ``data``, ``model``, ``train`` and
``robustness`` tables and the fingerprints of the data and the user's code).
Neither the arm's position nor the study's other arms or seed count enter it,
so adding seeds or arms, or reordering arms, leaves every stored run's
identity unchanged. The arm's name is part of it: two arms configured alike
are two arms, and renaming an arm trains it anew (its old runs are kept).

The module imports only the standard library, and lives with the store: a
store computes identities when it writes a run or migrates an older store,
in processes that never load the spec's vocabulary (and Keras with it).
:mod:`noisewise.study.config.identity` gives the same functions beside the
spec hash.

Example:
    >>> shared = shared_hash({"data": {"name": "circles"}, "model": {}, "train": {}}, None)
    >>> arm = arm_hash("input", arm_config({"name": "input", "noise": [
    ...     {"type": "gaussian", "where": "input", "stddev": 0.1}]}))
    >>> run_identity(arm, 0, 42, shared) == run_identity(arm, 0, 42, shared)
    True
    >>> run_identity(arm, 1, 43, shared) == run_identity(arm, 0, 42, shared)
    False
"""

import copy
import hashlib
import json
import re

# The sections every run of a study shares; a change in them is no growth.
SHARED_SECTIONS = ("data", "model", "train", "robustness")
# [study] keys a study may change and keep its runs: seeds and reference only
# change which runs are shown and compared; name and store do not describe runs.
GROWABLE_STUDY_KEYS = ("name", "seeds", "reference", "store")
# Sections that change nothing a run trains or measures ([audit]: checks of the
# data run before training): a study changes them and keeps every run.
UNSHARED_SECTIONS = ("audit",)
_GRID_KEY = re.compile(r"^(noise|augment)\[(\d+)\]\.(\w+)$")


def _sha256(value):
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def arm_config(table, params=None):
    """The resolved configuration of an arm: its normalised table without ``name``
    and ``grid``, with the grid point ``params`` (``{"noise[0].stddev": 0.1}``) applied.

    Args:
        table: The normalised ``[[arms]]`` table (for a grid arm, its parent's), or
            None for an arm the spec does not describe (then only ``params`` count).
        params: The grid point, or None.
    """
    config = {k: copy.deepcopy(v) for k, v in (table or {}).items() if k not in ("name", "grid")}
    for key, value in (params or {}).items():
        match = _GRID_KEY.match(key)
        entries = config.get(match.group(1)) if match else None
        if match and isinstance(entries, list) and int(match.group(2)) < len(entries) \
                and isinstance(entries[int(match.group(2))], dict):
            entries[int(match.group(2))][match.group(3)] = copy.deepcopy(value)
        else:  # not a key of the table: kept as given, so it still tells arms apart
            config.setdefault("params", {})[key] = copy.deepcopy(value)
    return config


def arm_hash(name, config):
    """sha256 of an arm's name and resolved configuration (:func:`arm_config`)."""
    return _sha256({"name": name, "config": config})


def shared_hash(normalised, fingerprint):
    """sha256 of the sections every run of a study shares and the fingerprints.

    Args:
        normalised: The normalised spec dict (absent sections count as absent).
        fingerprint: ``{"data": ..., "code": ...}`` or None.
    """
    shared = {k: normalised[k] for k in SHARED_SECTIONS if normalised.get(k) is not None}
    return _sha256({"shared": shared, "fingerprint": dict(fingerprint or {})})


def run_identity(arm, replica, seed, shared):
    """sha256 identity of one run from :func:`arm_hash`, replica, its seed and
    :func:`shared_hash`."""
    return _sha256({"arm": arm, "replica": int(replica),
                    "seed": None if seed is None else int(seed), "shared": shared})


def changed_keys(old, new):
    """Key paths of two normalised specs that differ outside what a study may grow in.

    ``arms``, ``study.seeds``, ``study.reference``, ``study.store`` (and the
    name) may change; any other difference (``study.seed``, ``data.*``,
    ``model.*``, ``train.*``, ``robustness``, ...) is listed, down to the
    first differing key, e.g. ``["train.epochs", "study.seed"]``.
    """
    out = []

    def walk(a, b, path):
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        elif a != b:
            out.append(path)

    for section in sorted((set(old) | set(new)) - {"arms", "study", *UNSHARED_SECTIONS}):
        walk(old.get(section), new.get(section), section)
    study_old, study_new = old.get("study") or {}, new.get("study") or {}
    for key in sorted((set(study_old) | set(study_new)) - set(GROWABLE_STUDY_KEYS)):
        walk(study_old.get(key), study_new.get(key), f"study.{key}")
    return out
