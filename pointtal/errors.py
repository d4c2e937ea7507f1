"""The one exception type for bad user input (the CLI prints it as a single line), and the limits of sane input."""

MAX_DURATION_SEC = 1e9  # 31 years: a longer video is a corrupt file (keeps snippet counts finite integers)
MAX_FPS = 1e6  # frames per second


class InputError(ValueError):
    """Bad user input: the message names the file, record and value, and what to do."""


class TrainingDiverged(InputError, FloatingPointError):
    """The loss or the weights became NaN/inf (too high a learning rate, broken features): one line, not a
    traceback; the run's last checkpoint holds finite weights."""


class DuplicateKey(ValueError):
    """A JSON object names the same key twice (json.loads would silently keep the last one)."""


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


def refuse_estimate(estimate: float, limit: float, what: str, remedy: str, unit: str = "bytes") -> None:
    """Refuse, before doing any of it, work or output whose estimated size is beyond `limit`.

    Used where an extreme option (a feature width, a window, a crop length) would fill the disk or memory or
    run for hours with no output: one line saying what was estimated, the limit, and how to change or force it.
    """
    if estimate > limit:
        raise InputError(f"{what} would need about {amount(estimate, unit)}, more than {amount(limit, unit)}; {remedy}")


def amount(value: float, unit: str = "bytes") -> str:
    """'1.2 GB' for bytes (decimal units), '3.4e+09 windows' for counts."""
    if unit != "bytes":
        return f"{value:.3g} {unit}"
    for scale, name in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB")):
        if value >= scale:
            return f"{value / scale:.1f} {name}"
    return f"{value:.0f} bytes"


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
