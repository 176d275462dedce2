"""One pass over a spec dict: every error collected, or a normalised :class:`StudySpec`.

Independent parts are checked independently (the sweep for non-finite numbers,
each section, each arm), so a spec with a mistake in three places reports all
three, in the order the sections are written; a part whose numbers are not
finite is reported by the sweep alone, once.
"""

import copy
import dataclasses
import os
from pathlib import Path

from noisewise.study.config import sections
from noisewise.study.config.arms import expand_arm
from noisewise.study.config.errors import FAILED, Collector, fail, table, unknown
from noisewise.study.config.identity import spec_hash
from noisewise.study.config.sections import MAX_ARMS, SECTIONS


@dataclasses.dataclass(frozen=True, eq=False)
class StudySpec:
    """A validated, normalised study spec.

    Attributes:
        name, seeds, seed, store, reference: From ``[study]`` (defaults filled).
        data, model, train: The normalised tables.
        arms: The expanded arms (:class:`Arm`), grid points included.
        base_dir: Folder relative paths are resolved against (the spec file's
            folder; the current directory for dict specs).
        robustness: The ``[robustness]`` table or None: evaluations run on
            every trained model, their metrics stored with the run's final
            metrics (see :mod:`noisewise.robust._study`).
    """

    name: str
    seeds: int
    seed: int
    store: str
    reference: str
    data: dict
    model: dict
    train: dict
    arms: tuple
    base_dir: str
    _normalised: dict = dataclasses.field(repr=False)
    robustness: dict = None

    def to_dict(self):
        """The normalised spec as a plain dict (arms unexpanded, grids kept)."""
        return copy.deepcopy(self._normalised)

    @property
    def spec_hash(self):
        return spec_hash(self._normalised)

    hash = spec_hash

    def arm(self, name):
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(name)

    def store_path(self):
        """``study.store`` resolved against the spec folder, or None when unset."""
        if self.store is None:
            return None
        return str(Path(self.base_dir) / self.store)


def _leaves(raw, errors):
    """Sweep every section for non-finite numbers; returns the parts that failed."""
    failed = set()
    for section in SECTIONS:
        if section not in raw:
            continue
        value = raw[section]
        parts = ([(f"arms[{i}]", arm) for i, arm in enumerate(value)]
                 if section == "arms" and isinstance(value, list) else [(section, value)])
        for path, part in parts:
            if errors.run(sections.check_leaves, part, path, path) is FAILED:
                failed.add(path)
    return failed


def _required(raw, key, message):
    if key not in raw:
        fail(key, message)
    return raw[key]


def _arms(arms_raw, failed, errors):
    """``(normalised arm tables, expanded arms)``, or FAILED if any arm failed."""
    if not isinstance(arms_raw, list) or not arms_raw:
        fail("arms", "need at least one [[arms]] table (e.g. a baseline without noise)")
    if len(arms_raw) > MAX_ARMS:
        fail("arms", f"a study has at most {MAX_ARMS:,} arms. Received: {len(arms_raw):,}")
    normalised, arms, ok = [], [], True
    for i, arm in enumerate(arms_raw):
        path = f"arms[{i}]"
        if path in failed:
            ok = False
            continue
        result = errors.run(_expand, arm, path, len(arms))
        if result is FAILED:
            ok = False
            continue
        normalised.append(result[0])
        arms.extend(result[1])
        if len(arms) > MAX_ARMS:
            fail("arms", f"a study has at most {MAX_ARMS:,} arms; {path} brings them "
                 f"to {len(arms):,}")
    if not ok:
        return FAILED
    names = [a.name for a in arms]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        fail("arms", f"arm names must be unique. Repeated: {duplicated}")
    return normalised, arms


def _expand(arm, path, position):
    return expand_arm(table(arm, path), path, position)


def validate(raw, base_dir=None):
    """Validate and normalise a spec dict; returns a :class:`StudySpec`.

    Raises:
        SpecError: listing every error found, one per line, each with its key path.
    """
    raw = table(raw, "spec")
    errors = Collector()
    errors.run(unknown, raw, SECTIONS, "spec")
    failed = _leaves(raw, errors)
    raw = copy.deepcopy(raw)

    def part(name, check, *args):
        return FAILED if name in failed else errors.run(check, *args)

    study = part("study", sections.check_study, raw.get("study"))
    data = part("data", lambda: sections.check_data(_required(
        raw, "data", "missing section: say which dataset to train on, e.g. "
        "[data] name = \"circles\"")))
    model = part("model", lambda: sections.check_model(_required(
        raw, "model", "missing section, e.g. [model] name = \"mlp\"")))
    train = part("train", sections.check_train, raw.get("train"))
    arms = errors.run(_arms, raw.get("arms"), failed, errors)
    if study is not FAILED and arms not in (FAILED, None):
        names = [a.name for a in arms[1]]
        errors.run(_reference, study[4], names)
    robustness = part("robustness", sections.check_robustness, raw.get("robustness"))
    errors.raise_any()
    name, seeds, seed, store, reference = study
    reference = names[0] if reference is None else reference
    normalised = {
        "study": {"name": name, "seeds": seeds, "seed": seed, "reference": reference,
                  **({"store": store} if store is not None else {})},
        "data": data, "model": model, "train": train, "arms": arms[0],
        **({"robustness": robustness} if robustness is not None else {}),
    }
    return StudySpec(name, seeds, seed, store, reference, data, model, train, tuple(arms[1]),
                     str(base_dir or os.getcwd()), normalised, robustness=robustness)


def _reference(reference, names):
    if reference is not None and reference not in names:
        fail("study.reference", f"must name an arm: {', '.join(names)}. Received: {reference!r}")
