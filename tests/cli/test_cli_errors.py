"""The one exception -> exit code map of the command line, class by class."""

import errno
import sqlite3

import pytest

from noisewise._core.files import OutputRefused
from noisewise.cli import main
from noisewise.cli._errors import UsageError, outcome
from noisewise.study import FingerprintError, SpecError, StoreError


def _decode_error():
    try:
        b"\xff".decode("utf-8")
    except UnicodeDecodeError as e:
        return e


@pytest.mark.parametrize("error, code, start", [
    (UsageError("noisewise run: bad"), 2, "noisewise run: bad"),
    (UsageError("bad"), 2, "noisewise: bad"),
    (SpecError("train.epochs: must be >= 1. Received: epochs=0"), 2,
     "noisewise: invalid spec: train.epochs"),
    (OutputRefused("r.html", "exists", "pass --force"), 2, "noisewise: r.html"),
    (StoreError("x.db: not a noisewise store"), 3, "noisewise: store error: x.db"),
    (FingerprintError("data differ"), 3, "noisewise: store error: data differ"),
    (sqlite3.OperationalError("database is locked"), 3,
     "noisewise: store error: OperationalError: database is locked"),
    (KeyboardInterrupt(), 130, "noisewise: interrupted"),
    (_decode_error(), 2, "noisewise: a file is not text"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "s.toml"), 2,
     "noisewise: s.toml: No such file or directory"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/r.html"), 2,
     "noisewise: /ro/r.html: Read-only file system"),
    (OSError(errno.EIO, "Input/output error"), 1, "noisewise: error: Input/output error"),
    (RuntimeError("first line\nsecond line"), 1,
     "noisewise: error: RuntimeError: first line (more with --debug)"),
])
def test_each_exception_class_has_one_code_and_one_line(error, code, start):
    got, line = outcome(error)
    assert got == code
    assert line.startswith(start) and "\n" not in line, line


def test_system_exit_is_not_ours_to_map():
    assert outcome(SystemExit(0)) == (None, None)


def test_usage_errors_exit_2_with_one_line_on_stderr(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: noisewise") and "invalid choice: 'no-such-command'" in err
    assert main(["run", "s.toml", "--seeds", "0"]) == 2
    assert "--seeds: must be >= 1. Received: 0" in capsys.readouterr().err
    assert main(["augment"]) == 2  # a sub-subcommand is required
    assert "required: augment_command" in capsys.readouterr().err


def test_debug_is_accepted_before_and_after_a_subcommand(tmp_path, capsys):
    missing = tmp_path / "none.db"
    for argv in (["--debug", "list", "--store", missing], ["list", "--store", missing, "--debug"]):
        assert main(argv) == 3
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err
        assert err.strip().splitlines()[-1].startswith("noisewise: store error:")
    assert main(["list", "--store", missing]) == 3
    assert "Traceback" not in capsys.readouterr().err
