"""Files noisewise writes: never onto its inputs, never half written.

Every command that writes a file (a report, an export, a preview image, a
metrics file) goes through :func:`check_output` and then :func:`atomic_open`
or :func:`atomic_write`:

- the store in use (with its ``-wal``/``-shm``/``-journal`` side files), the
  spec file, and any file that is a noisewise store or study spec (read from
  the file itself: the store's SQLite ``application_id``, a TOML file with
  ``[study]`` and ``[[arms]]``) are never written onto, whatever the options;
- any other existing file is replaced only when noisewise wrote it itself,
  which the file must show (an HTML report carries
  ``<meta name="generator" content="noisewise ...">`` near its top, a PNG
  a ``Software`` text chunk naming noisewise: see :func:`png_metadata`), or
  when the user passes ``--force`` (``force=True``): a CSV or JSON file cannot
  carry such a mark, so an existing one always needs ``--force``;
- the bytes go to a temporary file in the target's folder, are flushed to
  disk, and are renamed onto the target in one step (``os.replace``): a reader
  sees the old file or the new one, and a crash leaves the old file.

File names made from user text (study names) come from :func:`safe_name`.

Example:
    >>> import os, tempfile
    >>> from noisewise._core.files import atomic_write, check_output, safe_name
    >>> folder = tempfile.mkdtemp()
    >>> target = check_output(os.path.join(folder, "out.csv"))
    >>> atomic_write(target, "a,b\\n").read_text()
    'a,b\\n'
    >>> safe_name("circles"), safe_name("a/b") != safe_name("a_b")
    ('circles', True)
"""

import contextlib
import hashlib
import os
import re
from pathlib import Path

GENERATOR = "noisewise"
# Reports written before the generator tag carry this in their <title>.
_LEGACY_REPORT_MARK = b"&middot; noisewise study report</title>"
_MARK_BYTES = 4096  # how far into a file its mark is looked for
_SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's companions of a database file
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Names Windows reserves whatever the extension: a report must open there too.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
             *(f"lpt{i}" for i in range(10))}


class OutputRefused(FileExistsError):
    """Writing this path would destroy a file noisewise must not replace.

    ``path`` is the refused target, ``reason`` why (without the advice).
    """

    def __init__(self, path, reason, advice):
        super().__init__(f"{path}: {reason}; {advice}")
        self.path, self.reason = Path(path), reason


def generator_meta():
    """The ``<meta>`` tag that marks an HTML file as written by noisewise."""
    from noisewise import __version__

    return f'<meta name="generator" content="{GENERATOR} {__version__}">'


def png_metadata():
    """``savefig(metadata=...)`` for a PNG that :func:`written_by_noisewise` recognises."""
    from noisewise import __version__

    return {"Software": f"{GENERATOR} {__version__}"}


def written_by_noisewise(path):
    """True when ``path`` is an HTML or PNG file noisewise wrote (its mark is near the top)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_MARK_BYTES)
    except OSError:
        return False
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return f"tEXtSoftware\x00{GENERATOR} ".encode() in head
    return (f'<meta name="generator" content="{GENERATOR} '.encode() in head
            or _LEGACY_REPORT_MARK in head)


def _same(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: compare the resolved names
        return Path(a).resolve() == Path(b).resolve()


def _precious(path):
    """``"a noisewise store"`` / ``"a noisewise study spec"`` when the file is one, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
            if head.startswith(b"SQLite format 3\x00") and head[68:72] == b"NWst":
                return "a noisewise store"
            if path.suffix.lower() != ".toml" or os.fstat(f.fileno()).st_size > 1 << 20:
                return None
            f.seek(0)
            import tomllib

            table = tomllib.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):  # unreadable or not TOML: not a spec
        return None
    return "a noisewise study spec" if {"study", "arms"} <= set(table) else None


def _protected(path, protect):
    """``(input, what)`` when ``path`` is one of the ``protect`` files or its side file."""
    for item in protect:
        if item is None:
            continue
        what, source = item if isinstance(item, tuple) else ("input", item)
        source = Path(os.fspath(source))
        if _same(path, source):
            return source, what
        if what == "store" and any(_same(path, f"{source}{s}") for s in _SIDE_FILES):
            return source, what
    return None


def check_output(path, *, protect=(), force=False, ours=written_by_noisewise):
    """The path to write, after refusing every write that would destroy an input.

    Args:
        path: The file about to be written.
        protect: Files never to write onto, even with ``force``: paths, or
            ``(what, path)`` pairs naming them (``("store", "s.db")``; a store's
            ``-wal``/``-shm``/``-journal`` side files are protected with it).
        force: Replace an existing file noisewise did not write.
        ours: ``callable(path) -> bool``: whether an existing file is one
            noisewise wrote and may replace (default: the HTML generator mark);
            None for formats that cannot carry a mark.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        OutputRefused: ``path`` is a protected input, a noisewise store or
            spec, a folder, or an existing file that is not noisewise's and
            ``force`` is not set.
    """
    path = Path(os.fspath(path))
    hit = _protected(path, protect)
    if hit is not None:
        source, what = hit
        reason = (f"is the {what} this command reads" if _same(path, source)
                  else f"is a side file of the {what} this command reads ({source})")
        raise OutputRefused(path, reason,
                            "refusing to write onto it, even with --force: choose another "
                            "output file")
    if path.is_dir():
        raise OutputRefused(path, "is a folder", "give a file name to write")
    what = _precious(path) if path.is_file() else None
    if what is not None:
        raise OutputRefused(path, f"is {what}", "refusing to write onto it, even with --force: "
                            "choose another output file")
    if path.exists() and not force and not (ours is not None and ours(path)):
        raise OutputRefused(path, "exists and was not written by noisewise",
                            "refusing to replace it: pass --force to replace it, or choose "
                            "another file")
    return path


def _temporary(path):
    """An exclusive new file beside ``path``; the umask applies as to a plain open.

    A folder that cannot be written is reported with the target's name, not
    the temporary one's.
    """
    for attempt in range(100):
        tmp = path.with_name(f".{path.name[:200]}.{os.getpid()}.{attempt}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from e
    raise FileExistsError(f"{path.parent}: cannot create a temporary file beside {path.name}")


def _make_folder(path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, f"cannot create its folder: {e.strerror}", str(path)) from e


def _sync_folder(folder):
    try:  # the rename itself reaches the disk; not possible on every system
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path, mode="w", *, encoding="utf-8", newline=None):
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one step.

    Args:
        path: The target (its folder is created if missing).
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding, newline: As for :func:`open` (text mode only).

    Yields:
        The open file. If the block raises, the temporary file is removed and
        ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"`mode` must be 'w' or 'wb'. Received: mode={mode!r}")
    path = Path(os.fspath(path))
    _make_folder(path)
    tmp, fd = _temporary(path)
    try:
        text = mode == "w"
        with open(fd, mode, encoding=encoding if text else None,
                  newline=newline if text else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


@contextlib.contextmanager
def atomic_path(path):
    """A temporary file name beside ``path``, for writers that take a name.

    Yields the temporary path (an empty file). When the block ends without
    an exception, that file is flushed to disk and renamed onto ``path``;
    otherwise it is removed and ``path`` is left as it was.
    """
    path = Path(os.fspath(path))
    _make_folder(path)
    tmp, fd = _temporary(path)
    os.close(fd)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def atomic_write(path, data, *, encoding="utf-8"):
    """Write ``data`` (str or bytes) to ``path`` through :func:`atomic_open`; returns the path."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", encoding=encoding,
                     newline="") as f:
        f.write(data)
    return Path(os.fspath(path))


def safe_name(name, max_length=80):
    """A file-name part made from user text, different for different texts.

    Letters, digits, ``.``, ``_`` and ``-`` are kept, every other run of
    characters becomes ``_``, leading dots and dashes are dropped (no hidden
    files, no options), and the result is capped at ``max_length``. Whenever
    this changed the text, an 8-character hash of the exact text is
    appended, so ``"a/b"`` and ``"a_b"`` never share a file.

    Raises:
        ValueError: ``name`` is not a non-empty string, or ``max_length`` is
            too small to hold a hash.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string to make a file name of. "
                         f"Received: name={name!r}")
    if max_length < 16:
        raise ValueError(f"`max_length` must be >= 16. Received: max_length={max_length}")
    safe = _UNSAFE.sub("_", name).lstrip(".-")
    if (safe == name and len(safe) <= max_length
            and safe.split(".")[0].lower() not in _RESERVED):
        return safe
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    safe = safe[:max_length - 9].rstrip(".")
    return f"{safe}-{digest}" if safe else digest
