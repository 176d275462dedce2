"""``noisewise --help``, ``--version`` and every subcommand's ``--help`` start without Keras.

Parsers are built from static data (noisewise/cli/_choices.py); the checks
below run in a fresh interpreter, since this one imported Keras long ago.
"""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import noisewise
from noisewise.cli import _choices, build_parser

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("keras", "jax", "tensorflow", "torch", "rich", "matplotlib", "scipy", "sklearn",
         "pydantic", "numpy")
COMMANDS = (["--help"], ["--version"], ["run", "--help"], ["show", "--help"], ["plan", "--help"], ["list", "--help"],
            ["export", "--help"], ["report", "--help"], ["robustness", "--help"],
            ["augment", "--help"], ["augment", "preview", "--help"], ["schema", "--help"])
PROBE = """
import json, sys
from noisewise.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    results.append(code)
print(json.dumps({"codes": results, "modules": [m for m in json.loads(sys.argv[2])
                                                if m in sys.modules]}), file=sys.stderr)
"""


def _python(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                          env=env, **kwargs)


def test_help_version_and_every_subcommand_help_import_no_heavy_module():
    done = _python("-c", PROBE, json.dumps(COMMANDS), json.dumps(HEAVY))
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["codes"] == [0] * len(COMMANDS), done.stderr
    assert report["modules"] == [], f"imported by --help: {report['modules']}"
    for command in ("run", "show", "plan", "list", "export", "report", "robustness", "augment",
                    "schema"):
        assert command in done.stdout


def test_version_prints_the_package_version():
    done = _python("-m", "noisewise.cli", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"noisewise {noisewise.__version__}\n"
    assert noisewise.__version__ == importlib.metadata.version("noisewise")


def test_help_into_a_closed_pipe_is_quiet():
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{sys.executable} -m noisewise.cli --help | head -1"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0 and done.stdout.startswith("usage: noisewise"), done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def _choices_of(parser, *path):
    for name in path[:-1]:
        parser = next(a for a in parser._actions if a.dest in ("command", "augment_command")
                      ).choices[name]
    return next(a for a in parser._actions if a.dest == path[-1]).choices


def test_static_choices_equal_the_library_lists():
    from noisewise.augment import corruptions, preview
    from noisewise.layers import NOISE_LAYERS
    from noisewise.robust import attacks
    from noisewise.study import datasets, exports

    assert _choices.EXPORT_FORMATS == exports.FORMATS
    assert _choices.STUDY_DATASETS == tuple(datasets.BUILTIN)
    assert _choices.NOISE_TYPES == tuple(NOISE_LAYERS)
    assert _choices.NORMS == attacks.NORMS
    assert all(callable(getattr(attacks, a)) for a in _choices.ATTACKS)
    assert _choices.PREVIEW_DATASETS == preview.DATASETS
    assert _choices.CORRUPTION_PRESETS == corruptions.PRESETS
    parser = build_parser()
    assert tuple(_choices_of(parser, "export", "format")) == (
        _choices.RECORD_FORMATS + _choices.EXPORT_FORMATS)
    assert tuple(_choices_of(parser, "augment", "preview", "preset")) == corruptions.PRESETS


def test_executors_are_the_ones_the_runner_takes(tmp_path):
    """The runner's refusal of an unknown executor lists exactly the parser's choices."""
    from noisewise.study import Study

    study = Study({"study": {"name": "c", "seeds": 1}, "data": {"name": "circles"},
                   "model": {"name": "mlp", "hidden": [2]}, "train": {"epochs": 1},
                   "arms": [{"name": "baseline"}]})
    with pytest.raises(ValueError) as refused:
        study.run(store=tmp_path / "c.db", quiet=True, executor="dask")
    assert f"must be one of {_choices.EXECUTORS}" in str(refused.value)
    assert _choices_of(build_parser(), "run", "executor") == _choices.EXECUTORS
