"""Loading a spec: a TOML file, a dict or a StudySpec, with the command line's overrides.

A dict spec may hold Python objects in ``[data]`` and ``[model]`` (arrays,
datasets, callables; see :mod:`~noisewise.study.sources`): they are kept by
reference, never copied.
"""

import os
import stat
import tomllib
from pathlib import Path

from noisewise.study.config.errors import SpecError
from noisewise.study.config.sections import TRAIN_DEFAULTS
from noisewise.study.config.validate import StudySpec, validate
from noisewise.study.sources import copy_spec

MAX_SPEC_BYTES = 10 * 2**20


def _override(raw, seeds, epochs):
    """Apply CLI overrides; a changed value also renames the study (see load_spec)."""
    raw = copy_spec(raw)
    study = raw.setdefault("study", {})
    parts = []
    if seeds is not None and seeds != study.get("seeds", 30):
        study["seeds"] = seeds
        parts.append(f"seeds={seeds}")
    train = raw.setdefault("train", {}) if isinstance(raw.get("train", {}), dict) else {}
    if epochs is not None and epochs != train.get("epochs", TRAIN_DEFAULTS["epochs"]):
        train["epochs"] = epochs
        parts.append(f"epochs={epochs}")
    if parts and isinstance(study.get("name"), str):
        study["name"] = f"{study['name']}:{','.join(parts)}"
    return raw


def load_spec(source, *, seeds=None, epochs=None, base_dir=None, data=None, model=None):
    """Load and validate a study spec.

    Args:
        source: Path to a TOML file, a dict with the same structure, or a
            :class:`StudySpec` (returned as is when no override is given).
        seeds: Optional override of ``study.seeds``.
        epochs: Optional override of ``train.epochs``. Overrides are part of
            the spec (and of its hash), and a study run with an override that
            changes a value is stored under its own name,
            ``"<name>:seeds=2,epochs=50"``, so a quick run never collides with
            (or mixes into) the full study.
        base_dir: Folder for relative paths; default the TOML file's folder,
            or the current directory for a dict.
        data, model: Optional tables replacing the spec's ``[data]`` and
            ``[model]`` (see :func:`shorthand` for the short forms).

    Returns:
        A :class:`StudySpec`.

    Raises:
        SpecError: On any invalid key or value (message starts with its path).
    """
    if isinstance(source, StudySpec):
        if seeds is None and epochs is None and data is None and model is None:
            return source
        raw, base_dir = source.live_dict(), base_dir or source.base_dir
    elif isinstance(source, dict):
        raw = source
    else:
        path = Path(os.fspath(source))
        raw = _read_toml(path)
        base_dir = base_dir or path.resolve().parent
    if data is not None or model is not None:
        raw = dict(raw)
        raw.update({k: shorthand(k, v) for k, v in (("data", data), ("model", model))
                    if v is not None})
    return validate(_override(raw, seeds, epochs), base_dir)


def shorthand(section, value):
    """The ``[data]`` or ``[model]`` table of a short form, or ``value`` itself.

    ``data``: a table, or ``(x_train, y_train, x_test, y_test)`` (``{"arrays":
    ...}``). ``model``: a table, a callable (``{"builder": ...}``), or a path
    to a ``.keras`` file (``{"path": ...}``).
    """
    if isinstance(value, dict):
        return value
    if section == "data" and isinstance(value, (tuple, list)):
        return {"arrays": value}
    if section == "model" and isinstance(value, (str, os.PathLike)):
        return {"path": os.fspath(value)}
    if section == "model" and callable(value):
        return {"builder": value}
    allowed = ("a table or (x_train, y_train, x_test, y_test)" if section == "data" else
               "a table, a builder callable or a .keras path")
    raise SpecError(f"{section}: must be {allowed}. Received: {type(value).__name__}")


def _read_toml(path):
    """The TOML file's tables; every way a path can fail to be a spec is a SpecError."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise SpecError(f"{path}: is a folder, not a spec file")
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device could block or never end
            raise SpecError(f"{path}: not a regular file, so not a spec file")
        if info.st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: {info.st_size:,} bytes is too large for a spec file "
                            f"(at most {MAX_SPEC_BYTES:,})")
        data = path.read_bytes()
    except SpecError:
        raise
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (OSError, ValueError) as e:  # permissions, a name too long, a NUL in the path
        detail = getattr(e, "strerror", None) or e
        raise SpecError(f"{path}: cannot read the spec file ({detail})") from None
    if b"\x00" in data:
        raise SpecError(f"{path}: not a text file (it holds NUL bytes); a spec is a TOML file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not a text file (byte {e.start} is not UTF-8); a spec is "
                        "a UTF-8 TOML file") from None
    try:
        return tomllib.loads(text.removeprefix("\ufeff"))  # an editor's byte-order mark
    except (ValueError, RecursionError) as e:  # TOMLDecodeError, or nesting past the stack
        detail = e if isinstance(e, ValueError) else "nested too deeply"
        raise SpecError(f"{path}: not valid TOML ({detail})") from None
