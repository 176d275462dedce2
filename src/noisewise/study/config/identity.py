"""Identities: the spec hash, and each run's identity (computed by the store when a study grows).

The run identity functions live in :mod:`noisewise.study.store.identity`
(standard library only, so a store computes them without loading Keras) and
are named here beside the spec hash, the study-level identity.
"""

import copy
import hashlib
import json

from noisewise.study.store.identity import (
    GROWABLE_STUDY_KEYS,
    SHARED_SECTIONS,
    arm_config,
    arm_hash,
    changed_keys,
    run_identity,
    shared_hash,
)

__all__ = ["GROWABLE_STUDY_KEYS", "SHARED_SECTIONS", "arm_config", "arm_hash", "changed_keys",
           "run_identity", "shared_hash", "spec_hash"]


def spec_hash(normalised):
    """sha256 of the canonical JSON (sorted keys) of a normalised spec, without ``study.store``.

    The store location is not part of the experiment, so moving a store keeps
    its hash; anything else that changes the normalised spec changes the hash.
    """
    d = copy.deepcopy(normalised)
    d["study"].pop("store", None)
    text = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
