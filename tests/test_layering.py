"""The layering contract of pyproject.toml holds, and an import against it breaks it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which(
    "lint-imports")

pytestmark = pytest.mark.skipif(LINT is None, reason="import-linter is not installed "
                                "(`pip install -e .[dev]`)")


def lint(root):
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([LINT, "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_package_keeps_its_layers():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "noisewise layers KEPT" in done.stdout


@pytest.mark.parametrize("module, upward", [
    ("layers/noise.py", "noisewise.study.store"),   # a layer reaching up to the study
    ("robust/attacks.py", "noisewise.cli"),          # the library importing the CLI
    ("augment/tabular.py", "noisewise.robust"),      # augment reaching up to robust
])
def test_an_import_against_the_contract_breaks_it(tmp_path, module, upward):
    shutil.copytree(ROOT / "src", tmp_path / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "noisewise" / module
    target.write_text(target.read_text() + f"\nimport {upward}  # noqa: E402, F401\n")
    done = lint(tmp_path)
    assert done.returncode != 0
    assert "noisewise layers BROKEN" in done.stdout
    assert upward in done.stdout
