"""The spec hash: the identity a store checks before it resumes a study."""

import copy
import hashlib
import json


def spec_hash(normalised):
    """sha256 of the canonical JSON (sorted keys) of a normalised spec, without ``study.store``.

    The store location is not part of the experiment, so moving a store keeps
    its hash; anything else that changes the normalised spec changes the hash.
    """
    d = copy.deepcopy(normalised)
    d["study"].pop("store", None)
    text = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
