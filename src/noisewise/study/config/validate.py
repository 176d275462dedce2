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

from noisewise.study import sources
from noisewise.study.config import sections
from noisewise.study.config.arms import check_adapt_signals, expand_arm
from noisewise.study.config.errors import FAILED, Collector, SpecError, fail, table, unknown
from noisewise.study.config.identity import spec_hash
from noisewise.study.config.sections import MAX_ARMS, SECTIONS


@dataclasses.dataclass(frozen=True, eq=False)
class StudySpec:
    """A validated, normalised study spec.

    Attributes:
        name, seeds, seed, store, reference: From ``[study]`` (defaults filled).
        data, model, train: The normalised tables, with the Python objects
            of a dict spec (arrays, datasets, callables) in place of their
            descriptions: what the study loads and builds from. The
            normalised spec (:meth:`to_dict`, the hash, the store and every
            identity) holds the descriptions (see :mod:`~noisewise.study.sources`).
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
    audit: dict = None  # the [audit] table: checked before training, in no run's identity

    def to_dict(self):
        """The normalised spec as a plain dict (arms unexpanded, grids kept)."""
        return copy.deepcopy(self._normalised)

    def live_dict(self):
        """:meth:`to_dict` with the Python objects of ``data`` and ``model`` in place
        of their descriptions: validating it again gives this spec."""
        return {**self.to_dict(), "data": dict(self.data), "model": dict(self.model)}

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
    raw = sources.copy_spec(raw)

    def part(name, check, *args):
        return FAILED if name in failed else errors.run(check, *args)

    study = part("study", sections.check_study, raw.get("study"))
    data = part("data", lambda: sections.check_data(_required(
        raw, "data", "missing section: say which dataset to train on, e.g. "
        "[data] name = \"circles\"")))
    model = part("model", lambda: sections.check_model(_required(
        raw, "model", "missing section, e.g. [model] name = \"mlp\"")))
    task = data.get("task", "classification") if isinstance(data, dict) else None
    train = part("train", sections.check_train, raw.get("train"), task)
    arms = errors.run(_arms, raw.get("arms"), failed, errors)
    if study is not FAILED and arms not in (FAILED, None):
        names = [a.name for a in arms[1]]
        errors.run(_reference, study[4], names)
    if train is not FAILED and arms not in (FAILED, None):
        errors.run(check_adapt_signals, arms[0], train)
    robustness = part("robustness", sections.check_robustness, raw.get("robustness"))
    audit = part("audit", sections.check_audit, raw.get("audit"))
    if isinstance(data, dict) and sources.is_streaming(data):
        errors.run(_streaming, data, train, arms, robustness)
    errors.raise_any()
    name, seeds, seed, store, reference = study
    reference = names[0] if reference is None else reference
    normalised = {
        "study": {"name": name, "seeds": seeds, "seed": seed, "reference": reference,
                  **({"store": store} if store is not None else {})},
        "data": data, "model": model, "train": train, "arms": arms[0],
        **({"robustness": robustness} if robustness is not None else {}),
        **({"audit": audit} if audit is not None else {}),
    }
    return StudySpec(name, seeds, seed, store, reference, _live(raw["data"], data),
                     _live(raw["model"], model), train, tuple(arms[1]),
                     str(base_dir or os.getcwd()), normalised, robustness=robustness,
                     audit=audit)


def _live(raw, normalised):
    """The normalised table with the raw table's Python objects back in their keys
    (each key of a Python object is normalised under the same name)."""
    return {**copy.deepcopy(normalised),
            **{k: v for k, v in raw.items() if k in normalised and not sources.is_plain(v)}}


def _streaming(data, train, arms, robustness):
    """What needs the data as arrays, refused for streaming sources (one error each)."""
    errors = []
    if data.get("standardize"):
        errors.append("data.standardize: needs the training features' mean and std, and a "
                      "streaming source is not read whole; standardise in the source")
    if train is not FAILED and "validation_split" in train:
        errors.append("train.validation_split: a streaming source cannot be split; the "
                      "validation curves are on data.test")
    if train is not FAILED and train.get("class_weight") == "balanced":
        errors.append("train.class_weight: 'balanced' counts the training labels, and a "
                      "streaming source is not read whole; give the weights as a table")
    if robustness is not None and robustness is not FAILED:
        errors.append("robustness: evaluates on the test split as arrays; a streaming test "
                      "source is not loaded whole")
    for arm in (arms[1] if arms not in (FAILED, None) else ()):
        if any(e["type"] == "augment" and e.get("value_range") is None for e in arm.noise):
            errors.append(f"arms: arm {arm.name!r} augments its inputs without "
                          "augment_value_range, which defaults to the training data's range; "
                          "a streaming source is not read whole: set augment_value_range")
            break
    if errors:
        raise SpecError(errors=errors)


def _reference(reference, names):
    if reference is not None and reference not in names:
        fail("study.reference", f"must name an arm: {', '.join(names)}. Received: {reference!r}")
