"""Readers for evaluation inputs: ActivityNet results JSON (segments or single frames), ambiguous segments.

Every malformed input raises `InputError` naming the file, the video, the entry and the offending value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import NoReturn

import numpy as np

from pointtal.atomic import finite_number as _number
from pointtal.atomic import loads_unique, read_json
from pointtal.errors import InputError
from pointtal.evaluation.tables import PointTable, SegmentTable


def read_results(path: str | Path, exact: bool = False) -> dict:
    """The `results` mapping (video id -> list of entries) of an ActivityNet results JSON file.

    Parsed by orjson (`loads_unique`); `exact=True` uses the standard library alone, which keeps integers
    beyond 64 bits as ints (orjson makes them floats): error messages then show the value as written.
    """
    data = read_json(path, "predictions file", None if exact else loads_unique)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise InputError(
            f"{path}: expected an object with a 'results' mapping video ids to lists of "
            "predictions (ActivityNet results format)"
        )
    return data["results"]


_NUMBER_TYPES = {int, float}  # bool is an int subclass but `type(True) is bool`: rejected


def load_segment_predictions(path: str | Path, classes: Sequence[str]) -> SegmentTable:
    """Segment predictions `{"label", "score", "segment": [start, end]}` of a results JSON file."""
    table = _segment_table(path, classes, labelled=True)
    if table is None:
        known = set(classes)
        _strict_scan(path, lambda entry, where: _segment_entry(entry, where, known))
    return table


def load_proposals(path: str | Path, classes: Sequence[str]) -> SegmentTable:
    """Class-agnostic proposals `{"score", "segment": [start, end]}` (a "label", if any, is ignored): a
    SegmentTable over `classes` whose label column is all 0, for `average_recall`."""
    table = _segment_table(path, classes, labelled=False)
    if table is None:
        _strict_scan(path, _proposal_entry)
    return table


def _segment_table(path, classes: Sequence[str], labelled: bool) -> SegmentTable | None:
    """The table of a file of well-formed segment entries; None when any entry is not."""
    columns = _columns(read_results(path), classes if labelled else None, "segment")
    if columns is None:
        return None
    video_ids, video, label, score, segments = columns
    bounds = _numbers(segments, 2)  # (N, 2) or None
    if bounds is None or not (np.all(bounds[:, 0] < bounds[:, 1]) and np.all(np.isfinite(bounds))):
        return None
    return SegmentTable(video_ids, tuple(classes), video, bounds[:, 0].copy(), bounds[:, 1].copy(), label, score)


def load_frame_predictions(path: str | Path, classes: Sequence[str]) -> PointTable:
    """Single-frame predictions `{"label", "score", "frame": seconds}` of a results JSON file."""
    columns = _columns(read_results(path), classes, "frame")
    if columns is not None:
        video_ids, video, label, score, frames = columns
        time = _numbers(frames, None)  # (N,) or None
        if time is not None and np.all(np.isfinite(time)):
            return PointTable(video_ids, tuple(classes), video, time, label, score)
    known = set(classes)
    _strict_scan(path, lambda entry, where: _frame_entry(entry, where, known))


def _columns(results: dict, classes: Sequence[str] | None, position: str):
    """The columns of well-formed predictions, without a Python loop over them; None when anything is off
    (the caller then runs the strict per-entry check, which names the first bad entry). `classes=None`:
    labels are not read (label index 0).

    Returns (video ids with predictions, (N,) video index, (N,) label index, (N,) finite scores, the N
    `position` values unchecked), rows in file order: video by video, entries in order.
    """
    lists = list(results.values())
    if not set(map(type, lists)) <= {list}:
        return None
    counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))  # (V,)
    entries = list(chain.from_iterable(lists))  # (N,) in file order
    try:
        scores = list(map(itemgetter("score"), entries))
        positions = list(map(itemgetter(position), entries))
        if classes is None:
            label = np.zeros(len(entries), dtype=np.int64)
        else:
            class_index = {name: i for i, name in enumerate(classes)}
            labels = map(itemgetter("label"), entries)
            label = np.fromiter(map(class_index.__getitem__, labels), dtype=np.int64, count=len(entries))
    except (KeyError, TypeError):  # not an object, a missing key, an unknown or unhashable label
        return None
    score = _numbers(scores, None)
    if score is None or not np.all(np.isfinite(score)):
        return None
    used = counts > 0  # a video listed without predictions is not in the table's vocabulary
    video_ids = tuple(v for v, keep in zip(results, used.tolist(), strict=True) if keep)
    video = np.repeat(np.arange(len(video_ids)), counts[used])  # (N,)
    return video_ids, video, label, score, positions


def _numbers(values: list, width: int | None) -> np.ndarray | None:
    """float64 array of JSON numbers (int or float, not bool): (N,) for width None, else (N, width) of
    lists of that length; None when any value is of another type or out of the float range."""
    if width is not None:
        if not set(map(type, values)) <= {list} or not set(map(len, values)) <= {width}:
            return None
        flat = list(chain.from_iterable(values))
    else:
        flat = values
    if not set(map(type, flat)) <= _NUMBER_TYPES:
        return None
    try:
        array = np.array(flat, dtype=np.float64)
    except OverflowError:  # an integer beyond the float range
        return None
    return array if width is None else array.reshape(-1, width)


def load_ambiguous(path: str | Path) -> dict[str, np.ndarray]:
    """THUMOS14 `Ambiguous_test.txt`: lines `video_id [label] start end` (seconds) -> {video: (K, 2)}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: ambiguous-segments file not found")
    segments: dict[str, list[tuple[float, float]]] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 3:
            raise InputError(f"{path}: line {line_no}: expected 'video_id start end', got {line.strip()!r}")
        try:
            start, end = float(fields[-2]), float(fields[-1])
        except ValueError:
            raise InputError(f"{path}: line {line_no}: start/end are not numbers in {line.strip()!r}") from None
        if not (math.isfinite(start) and math.isfinite(end)) or start > end:
            raise InputError(f"{path}: line {line_no}: invalid segment [{start}, {end}]")
        segments.setdefault(fields[0], []).append((start, end))
    return {video: np.asarray(rows, dtype=np.float64).reshape(-1, 2) for video, rows in segments.items()}


def _where(path, video_id, index: int) -> str:
    return f"{path}: video '{video_id}' prediction {index}"


def _strict_scan(path, check) -> NoReturn:
    """Run the strict per-entry check over every entry of the file, read again by the standard library
    (so values show as written); it raises on the first bad one."""
    for video_id, entries in read_results(path, exact=True).items():
        for i, entry in enumerate(_entries(path, video_id, entries)):
            check(entry, _where(path, video_id, i))
    raise InputError(f"{path}: unreadable predictions")  # not reached: the fast reader refused an entry


def _segment_entry(entry, where: str, known: set[str]) -> tuple[str, float, float, float]:
    label, score = _label_score(entry, where, known)
    if "segment" not in entry:
        hint = " (single-frame predictions: use --frames)" if "frame" in entry else ""
        raise InputError(f"{where}: missing 'segment'{hint}")
    start, end = _segment(entry["segment"], where)
    return label, score, start, end


def _proposal_entry(entry, where: str) -> tuple[float, float, float]:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object, got {type(entry).__name__}")
    for key in ("score", "segment"):
        if key not in entry:
            raise InputError(f"{where}: missing '{key}'")
    return (_number(entry["score"], f"{where} score"), *_segment(entry["segment"], where))


def _frame_entry(entry, where: str, known: set[str]) -> tuple[str, float, float]:
    label, score = _label_score(entry, where, known)
    if "frame" not in entry:
        hint = " (segment predictions: leave out --frames)" if "segment" in entry else ""
        raise InputError(f"{where}: missing 'frame'{hint}")
    return label, score, _number(entry["frame"], f"{where} frame")


def _entries(path, video_id, entries) -> list:
    if not isinstance(entries, list):
        raise InputError(f"{path}: video '{video_id}': expected a list of predictions, got {type(entries).__name__}")
    return entries


def _label_score(entry, where: str, known: set[str]) -> tuple[str, float]:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object, got {type(entry).__name__}")
    if "label" not in entry:
        raise InputError(f"{where}: missing 'label'")
    if "score" not in entry:
        raise InputError(f"{where}: missing 'score'")
    label = entry["label"]
    if not isinstance(label, str) or label not in known:
        shown = ", ".join(sorted(known)[:5]) + (", ..." if len(known) > 5 else "")
        raise InputError(f"{where}: unknown label {label!r} (not a ground-truth class: {shown})")
    return label, _number(entry["score"], f"{where} score")


def _segment(value, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise InputError(f"{where}: segment must be [start, end], got {value!r}")
    start = _number(value[0], f"{where} segment start")
    end = _number(value[1], f"{where} segment end")
    if start >= end:
        raise InputError(f"{where}: segment start {start} >= end {end}")
    return start, end
