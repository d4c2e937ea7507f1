"""Atomic file writes: a reader, or a run that is killed mid-write, sees the old file or the new one, never a
torn one. The one helper every checkpoint, prediction, metrics log, report and point file goes through.

With them the package's other small file utilities, one copy each: `write_json` (atomic), `read_json` (the
unique-key JSON reader whose every failure is one InputError naming the file; `unique_keys` and the faster
`loads_unique` parse with duplicate keys refused), `show` (a user value in a
message, cut short), `finite_number` (a JSON number checked) and `file_sha256`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from pointtal.errors import DuplicateKey, InputError


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


def write_json(path: str | Path, payload: dict) -> None:
    """Predictions and run specs: atomic, so a killed run never leaves a half-written JSON behind."""
    write_text_atomic(path, json.dumps(payload))


def read_json(path: str | Path, what: str = "JSON file", loads: Callable[[bytes], Any] | None = None) -> Any:
    """Read a JSON file; a missing, non-UTF-8, malformed or ambiguous (duplicate keys) file is one
    InputError naming it. `loads` parses the file's bytes (default, None: the standard library with duplicate keys
    refused, integers kept exact; `loads_unique` is the faster orjson parser with the same refusal)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        raw = path.read_bytes()
        return json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys) if loads is None else loads(raw)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except DuplicateKey as err:
        raise InputError(
            f"{path}: key {show(err.args[0])} appears twice in one JSON object (a video or field listed "
            "twice); keep one"
        ) from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to be a {what}") from None
    except ValueError as err:  # e.g. an integer literal with more than 4300 digits
        raise InputError(f"{path}: unreadable JSON: {err}") from None


def show(value: Any, limit: int = 60) -> str:
    """repr of a user value, cut short (a JSON integer may have thousands of digits)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def finite_number(value: Any, where: str) -> float:
    """A JSON number (int or float, not bool) as a finite float; anything else is one InputError at `where`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: expected a finite number, got {show(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise InputError(f"{where}: expected a finite number, got {show(value)}")
    return number


def file_sha256(path: str | Path) -> str:
    """Hash of a file (weights recorded in extract.json, outputs in the output guard's manifest)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unique_keys(pairs: list) -> dict:
    """`json.loads` object_pairs_hook: a dict, refusing duplicate keys (a video listed twice must not vanish)."""
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return mapping


def loads_unique(raw: bytes):
    """JSON bytes -> Python objects, refusing duplicate keys (`DuplicateKey`), as
    `json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)` but about twice as fast (BENCHMARKS.md).

    orjson parses first; its result is kept when it provably dropped no duplicate key (see
    `_kept_every_key`). Otherwise — a duplicate key, or anything orjson refuses that the standard library
    reads (NaN, 1e400, lone surrogates) or rejects (then with the standard library's message) — the slow
    duplicate-checking parse decides. orjson's floats are correctly rounded, like `float()`.
    """
    import orjson  # imported here: the CLI's `evaluate` path is the one that needs it

    try:
        data = orjson.loads(raw)
        if _kept_every_key(raw, data, orjson.dumps):
            return data
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass
    import json

    return json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)


def _kept_every_key(raw: bytes, data, dumps) -> bool:
    """Whether parsing `raw` into `data` kept every object member (no duplicate key was dropped).

    In valid JSON a ':' byte is either the separator of one object member or a literal ':' inside a
    string; a string can also spell ':' as the escape \\u003a. Serialising `data` again writes one ':'
    per member it holds plus every ':' of its strings. Without that escape in `raw`, both counts are equal
    exactly when no member was dropped: a dropped member takes its separator and its strings' colons
    with it, and nothing adds colons.
    """
    if b"\\u003a" in raw or b"\\u003A" in raw:
        return False  # a colon that the count cannot see: let the slow parse decide
    return raw.count(b":") == dumps(data).count(b":")
