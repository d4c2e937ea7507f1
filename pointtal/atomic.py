"""Atomic file writes: a reader, or a run that is killed mid-write, sees the old file or the new one, never a
torn one. The one helper every checkpoint, prediction, metrics log, report and point file goes through."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(handle)` on a temp file in `path`'s directory, fsync it, rename it onto `path`, fsync the
    directory. On any failure (including KeyboardInterrupt) the temp file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never another writer's temp file; mode 0666 minus the umask, as `open(path, "w")` would give
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
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
