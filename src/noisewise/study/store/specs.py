"""A study spec as the store records it: name, hash, seeds, reference, and its arms with
their identities (:mod:`noisewise.study.store.identity`)."""

import dataclasses
import hashlib
import json
from collections.abc import Mapping

from noisewise.study.store.codec import _dumps, _pick
from noisewise.study.store.schema import arm_tables, described_arm, study_seeds


@dataclasses.dataclass(frozen=True)
class Described:
    """What :meth:`Store.open_study` stores of a spec.

    Attributes:
        name, seed, seeds, reference: The study's; ``seeds`` None when the spec
            has no ``study.seeds`` (then every stored replica is shown).
        spec: The spec as strict JSON reads it back (so a live spec and the
            stored one hash alike), ``spec_json`` that text, ``spec_hash`` its hash.
        arms: ``[(name, parent, params, arm_hash, config)]``, expanded, in order.
    """

    name: str
    spec: dict
    spec_json: str
    spec_hash: str
    seed: int
    seeds: int | None
    reference: str | None
    arms: list


def spec_dict(spec):
    for method in ("to_dict", "as_dict"):
        if callable(getattr(spec, method, None)):
            return dict(getattr(spec, method)())
    if isinstance(spec, Mapping):
        return dict(spec)
    if dataclasses.is_dataclass(spec):
        return dataclasses.asdict(spec)
    raise TypeError(f"`spec` must be a mapping or have to_dict(). Received: {spec!r}")


def arm_fields(arm):
    """(name, parent, params) of an arm given as a name, a mapping or an object."""
    if isinstance(arm, str):
        return arm, None, {}
    name = _pick(arm, "name")
    parent = _pick(arm, "grid_parent", "parent")
    params = _pick(arm, "params", "grid_params", default={})
    return str(name), parent, dict(params)


def _spec_arms(spec, d):
    """Expanded arms of a spec; unexpanded grid parents are skipped (added on write)."""
    expanded = None if isinstance(spec, Mapping) else getattr(spec, "expanded_arms", None)
    if expanded is not None:
        return [arm_fields(a) for a in (expanded() if callable(expanded) else expanded)]
    arms = None if isinstance(spec, Mapping) else getattr(spec, "arms", None)
    arms = (d.get("arms") or []) if arms is None else arms
    return [arm_fields(a) for a in arms if isinstance(a, str) or not _pick(a, "grid")]


def describe(spec):
    """The :class:`Described` of a spec object or dict (see :meth:`Store.open_study`)."""
    d = spec_dict(spec)
    study = d.get("study", {}) if isinstance(d.get("study"), Mapping) else {}
    name = _pick(spec, "name") if not isinstance(spec, Mapping) else None
    name = name or study.get("name") or d.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"The spec has no study name. Received: spec={d!r}")
    spec_json = _dumps(d)
    plain = json.loads(spec_json)
    spec_hash = None if isinstance(spec, Mapping) else _pick(spec, "hash", "spec_hash")
    if not isinstance(spec_hash, str):
        hashed = {**d, "study": {k: v for k, v in study.items() if k != "store"}}
        spec_hash = hashlib.sha256(_dumps(hashed).encode()).hexdigest()
    seed = None if isinstance(spec, Mapping) else _pick(spec, "seed")
    seed = seed if seed is not None else study.get("seed", 0)
    tables = arm_tables(plain)
    arms = []
    for arm_name, parent, params in _spec_arms(spec, d):
        params = json.loads(_dumps(params))
        arms.append((arm_name, parent, params, *described_arm(tables, arm_name, parent, params)))
    reference = None if isinstance(spec, Mapping) else _pick(spec, "reference")
    reference = reference or study.get("reference") or (arms[0][0] if arms else None)
    if not isinstance(reference, (str, type(None))):
        reference = arm_fields(reference)[0]
    seeds = _pick(spec, "seeds") if not isinstance(spec, Mapping) else None
    seeds = seeds if isinstance(seeds, int) else study_seeds(plain)
    return Described(name, plain, spec_json, spec_hash, seed, seeds, reference, arms)
