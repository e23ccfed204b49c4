"""Writing files safely: a reader never sees half a file, a crash never leaves one."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from codefocus.errors import InvalidArgumentError, OutputError


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``os.umask`` can only
    be read by setting it, which would race with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode(path: str | Path) -> int:
    """The permissions a file written at ``path`` gets: those of the file it replaces, else
    what ``open()`` would give a new file (0666 less the umask: 0644 under the usual 022).
    ``tempfile.mkstemp`` creates its file 0600, so an atomic write must set this itself."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same directory, flushed to
    disk and renamed over ``path`` (a rename within a file system is atomic). The file gets the
    permissions a plain write would give it (``file_mode``), not the temporary file's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            os.fchmod(stream.fileno(), file_mode(path))
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def check_writable(path: str | Path, force: bool = False) -> Path:
    """Fail early (``InvalidArgumentError``) unless ``path`` can be written: not a directory, not
    an existing file unless ``force``, its nearest existing folder a writable directory."""
    path = Path(path)
    if path.is_dir():
        raise InvalidArgumentError(f"{path} is a directory, not a file")
    if path.exists() and not force:
        raise InvalidArgumentError(f"{path} exists: use --force to replace it")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidArgumentError(f"cannot write {path}: {parent} is not a writable directory")
    return path


def write_or_keep(path: str | Path, text: str) -> Path:
    """Write atomically; if that fails, keep the text in a fallback file (the current folder,
    else the temporary folder) and raise ``OutputError`` naming both paths."""
    path = Path(path)
    try:
        return write_text_atomic(path, text)
    except OSError as error:
        reason = error.strerror or str(error)
    name = f"codefocus-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}{path.suffix or '.txt'}"
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            kept = write_text_atomic(folder / name, text)
        except OSError:
            continue
        raise OutputError(f"cannot write {path} ({reason}); the result is kept in {kept}")
    raise OutputError(f"cannot write {path} ({reason}), nor a fallback file")
