"""Study specs: read from TOML or a dict, validated before any training, hashed.

A spec has the sections ``[study]``, ``[data]``, ``[model]``, ``[train]`` and a
list of ``[[arms]]``; see ``examples/circles.toml``. Every error is a
:class:`SpecError` with one line per error found, each starting with its key
path, e.g. ``arms[2].noise[0].stddev: `stddev` must be in [0.0, inf].
Received: stddev=-0.1``; one pass reports them all. Validation builds no Keras
model, layer or optimizer (the augmentation transforms excepted: their checks
are Keras' own constructors).

Defaults (filled in, so that spelling one out does not change the hash):
``study.seeds = 30``, ``study.seed = 0``, ``study.reference`` = the first arm;
``train``: ``epochs = 100``, ``batch_size = 32``, ``optimizer = "adam"``,
``learning_rate = 0.001``, ``optimizer_options = {}``, ``loss = "auto"``
(binary cross-entropy for one sigmoid output, else sparse categorical),
``metrics = ["accuracy"]``, ``validate_every = 1``. The model and dataset
options default as documented in :mod:`~noisewise.study.models` and
:mod:`~noisewise.study.datasets`.

An arm may also augment its training inputs: ``augment`` is a list of
transforms in the format of :func:`noisewise.augment.from_spec` (e.g.
``{ type = "rotate", factor = 10, unit = "degrees" }``), placed at the model's
input before any input noise; ``augment_value_range = [low, high]`` sets the
data range the transforms assume (default: the training data's min and max).

A grid (``grid = { "noise[0].stddev" = [0.01, 0.1] }``) expands an arm into one
arm per combination, named ``hidden[stddev=0.01]`` (the full key path is used
when two grid keys end in the same name). A grid key must address an argument
of an existing noise entry (``noise[i].<argument>``) or augmentation transform
(``augment[i].<argument>``).

An optional ``[robustness]`` table evaluates every trained model under noise,
attacks, randomized smoothing or corruptions (format and metric names in
:mod:`noisewise.robust._study`, checks in :mod:`noisewise.robust.config`).

User data (``path`` or ``loader``) may set ``[data] nonfinite = "drop"`` to
drop the rows whose features are NaN or infinite instead of refusing the data
(the default, ``"refuse"``, is not written into the normalised spec).

Checked before anything runs: every number anywhere in the spec is finite and
integers fit TOML's 64 bits; names are non-empty, trimmed, at most 100
characters (expanded grid names 300), without control or invisible characters;
``study.seeds <= 10,000``, ``train.epochs <= 1,000,000``, ``train.batch_size <=
1,000,000`` and at most 1,000 arms after grid expansion. A spec file must be a
UTF-8 text file of at most 10 MiB. :func:`json_schema` gives the spec's JSON
Schema.

The spec hash is the sha256 of the canonical JSON (sorted keys) of the
normalised spec without ``study.store``: the store uses it to refuse resuming
a study whose spec changed.

Example:
    >>> from noisewise.study import load_spec
    >>> spec = load_spec({
    ...     "study": {"name": "demo", "seeds": 3},
    ...     "data": {"name": "circles"},
    ...     "model": {"name": "mlp", "hidden": [16]},
    ...     "arms": [{"name": "baseline"},
    ...              {"name": "pre", "noise": [{"type": "gaussian",
    ...               "where": "pre_activation", "stddev": 0.1}],
    ...               "grid": {"noise[0].stddev": [0.1, 1.0]}}],
    ... })
    >>> [arm.name for arm in spec.arms]
    ['baseline', 'pre[stddev=0.1]', 'pre[stddev=1.0]']
"""

from noisewise.study.config.arms import Arm
from noisewise.study.config.errors import SpecError
from noisewise.study.config.identity import spec_hash
from noisewise.study.config.load import MAX_SPEC_BYTES, load_spec
from noisewise.study.config.schema import json_schema
from noisewise.study.config.sections import (
    MAX_ARMS,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_GRID_NAME,
    MAX_NAME,
    MAX_SEEDS,
)
from noisewise.study.config.validate import StudySpec, validate

__all__ = [
    "MAX_ARMS", "MAX_BATCH_SIZE", "MAX_EPOCHS", "MAX_GRID_NAME", "MAX_NAME", "MAX_SEEDS",
    "MAX_SPEC_BYTES", "Arm", "SpecError", "StudySpec", "json_schema", "load_spec", "spec_hash",
    "validate",
]
