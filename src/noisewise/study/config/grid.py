"""Grid keys (``noise[0].stddev``, ``augment[1].factor``) parsed once, and grid arm labels."""

import re
from typing import NamedTuple

from noisewise.study.config import vocabulary
from noisewise.study.config.errors import fail, table

_KEY = re.compile(r"^(noise|augment)\[(\d+)\]\.([A-Za-z_]\w*)$")


class GridKey(NamedTuple):
    """One grid axis: ``key`` as written, the entry it addresses and its values."""

    key: str
    section: str  # "noise" or "augment"
    index: int
    leaf: str
    values: list


def points(arm, path, augment_arguments):
    """The arm's grid axes; each key must address an argument of an existing entry."""
    entries_of = table(arm.get("grid"), f"{path}.grid", required=False)
    keys = []
    for key, values in entries_of.items():
        match = _KEY.match(key)
        section = match.group(1) if match else "noise"
        entries = arm.get(section) or []
        if not match or int(match.group(2)) >= len(entries):
            fail(f"{path}.grid.{key}", f"no such key in arm {arm.get('name')!r}: a grid key "
                 f"must be noise[i].<argument> with i < {len(arm.get('noise') or [])} or "
                 f"augment[i].<argument> with i < {len(arm.get('augment') or [])}")
        index, leaf = int(match.group(2)), match.group(3)
        kind = entries[index].get("type")
        if section == "noise":
            _, allowed = vocabulary.noise_arguments(kind)
        else:
            allowed = augment_arguments(kind)
        if leaf not in allowed:
            fail(f"{path}.grid.{key}", f"no such key: {kind!r} {section} "
                 f"has arguments {', '.join(allowed)}")
        if not isinstance(values, list) or not values:
            fail(f"{path}.grid.{key}", f"must be a non-empty list of values. Received: {values!r}")
        keys.append(GridKey(key, section, index, leaf, values))
    return keys


def label(keys, combo):
    """``stddev=0.1,rate=0.2``: the leaf names, or the full key where two leaves clash."""
    leaves = [k.leaf for k in keys]
    return ",".join(f"{k.leaf if leaves.count(k.leaf) == 1 else k.key}={value}"
                    for k, value in zip(keys, combo))
