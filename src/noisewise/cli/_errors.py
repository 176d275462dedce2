"""The one map from exceptions to exit codes and one-line messages.

Exit codes: 0 success; 1 runtime failure (some runs failed, every run of an
arm diverged, or an unexpected error); 2 bad usage, invalid spec or data, no
such study, an unknown metric, or a refused output file; 3 store error; 4 the
data audit failed (a ``fail_on`` threshold exceeded: ``noisewise audit``, or
``noisewise run`` with an ``[audit]`` table, before anything trains); 130
interrupted.
"""

import errno
import sqlite3

from noisewise._core.backends import BackendNotInstalled
from noisewise._core.files import OutputRefused
from noisewise.study.defaults import UnknownMetric

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE = 0, 1, 2, 3
EXIT_AUDIT = 4
EXIT_INTERRUPTED = 130

# A path the user named cannot be written: their mistake (2), not noisewise's (1).
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class UsageError(Exception):
    """Bad arguments, or an input the user named that cannot be used (exit code 2).

    A message that starts with ``noisewise`` is printed as it is; any other
    gets the ``noisewise: `` prefix.
    """


def os_error(e: OSError) -> str:
    """``filename: reason`` of an OSError, without Python's ``[Errno N]``."""
    where = f"{e.filename}: " if getattr(e, "filename", None) else ""
    return where + (e.strerror or str(e))


def outcome(e: BaseException) -> tuple[int | None, str | None]:
    """``(exit code, line)`` for an exception; ``(None, None)`` for one not ours to map.

    The first matching class wins. SystemExit and other non-``Exception``
    classes (except KeyboardInterrupt) are left to Python.
    """
    if isinstance(e, UsageError):
        text = str(e)
        return EXIT_USAGE, text if text.startswith("noisewise") else f"noisewise: {text}"
    if isinstance(e, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "noisewise: interrupted; finished runs are stored, rerun to resume"
    if not isinstance(e, Exception):
        return None, None
    if isinstance(e, OutputRefused):
        return EXIT_USAGE, f"noisewise: {e}"
    if isinstance(e, UnknownMetric):  # a name the user typed: say which names exist
        return EXIT_USAGE, f"noisewise: {e.cli_text()}"
    if isinstance(e, BackendNotInstalled):
        return EXIT_USAGE, f"noisewise: {e}"
    # Start-up time: the study package (and Keras behind it) loads only when an
    # error may have come from it, never for a usage error or --help.
    from noisewise.study import SpecError, StoreError
    from noisewise.study.audit.result import AuditFailed

    if isinstance(e, AuditFailed):
        return EXIT_AUDIT, f"noisewise: {e}"
    if isinstance(e, SpecError):
        return EXIT_USAGE, f"noisewise: invalid spec: {e}"
    if isinstance(e, StoreError):
        return EXIT_STORE, f"noisewise: store error: {e}"
    if isinstance(e, UnicodeDecodeError):
        return EXIT_USAGE, f"noisewise: a file is not text ({e})"
    if isinstance(e, sqlite3.Error):
        return EXIT_STORE, f"noisewise: store error: {type(e).__name__}: {e}"
    if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
                      FileExistsError)) or getattr(e, "errno", None) in UNWRITABLE:
        return EXIT_USAGE, f"noisewise: {os_error(e)}"  # a path the user named
    if isinstance(e, OSError):
        return EXIT_FAILED, f"noisewise: error: {os_error(e)}"
    lines = str(e).strip().splitlines() or [""]
    more = " (more with --debug)" if len(lines) > 1 else ""
    return EXIT_FAILED, f"noisewise: error: {type(e).__name__}: {lines[0]}{more}"
