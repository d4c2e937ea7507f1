"""Atomic file writes: a reader, or a run that is killed mid-write, sees the old file or the new one, never a
torn one. The one helper every checkpoint, prediction, metrics log, report and point file goes through."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it) and restored at once
os.umask(_UMASK)


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(handle)` on a temp file in `path`'s directory, fsync it, rename it onto `path`, fsync the
    directory. On any failure (including KeyboardInterrupt) the temp file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; the file gets the mode `open` would give it
                os.fchmod(handle.fileno(), 0o666 & ~_UMASK)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """`write_atomic` of UTF-8 text, written byte for byte (no newline translation)."""
    data = text.encode("utf-8")
    return write_atomic(path, lambda handle: handle.write(data))


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; a platform without directory fsync (Windows) only loses that guarantee."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
