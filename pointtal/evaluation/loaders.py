"""Readers for evaluation inputs: ActivityNet results JSON (segments or single frames), ambiguous segments.

Every malformed input raises `InputError` naming the file, the video, the entry and the offending value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pointtal.errors import DuplicateKey, InputError, unique_keys
from pointtal.evaluation.tables import PointTable, SegmentTable


def read_results(path: str | Path) -> dict:
    """The `results` mapping (video id -> list of entries) of an ActivityNet results JSON file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: predictions file not found")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"), object_pairs_hook=unique_keys)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except DuplicateKey as err:
        raise InputError(f"{path}: key {_show(err.args[0])} appears twice in one JSON object (a video or "
                         "field listed twice); keep one") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to be a predictions file") from None
    except ValueError as err:  # e.g. an integer literal with more than 4300 digits
        raise InputError(f"{path}: unreadable JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise InputError(f"{path}: expected an object with a 'results' mapping video ids to lists of "
                         "predictions (ActivityNet results format)")
    return data["results"]


_NUMBER_TYPES = (int, float)  # bool is an int subclass but `type(True) is bool`: rejected


def _show(value, limit: int = 60) -> str:
    """repr of a user value, cut short (a JSON integer may have thousands of digits)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def load_segment_predictions(path: str | Path, classes: Sequence[str]) -> SegmentTable:
    """Segment predictions `{"label", "score", "segment": [start, end]}` of a results JSON file."""
    results = read_results(path)
    known = set(classes)
    ids, starts, ends, labels, scores = [], [], [], [], []
    for video_id, entries in results.items():
        for i, entry in enumerate(_entries(path, video_id, entries)):
            try:  # fast path for well-formed entries; anything else gets the strict check and its message
                label, score, (start, end) = entry["label"], entry["score"], entry["segment"]
                fine = (label in known and type(score) in _NUMBER_TYPES and type(start) in _NUMBER_TYPES
                        and type(end) in _NUMBER_TYPES and start < end)
            except (TypeError, KeyError, ValueError):
                fine = False
            if not fine:
                label, score, start, end = _segment_entry(entry, _where(path, video_id, i), known)
            ids.append(video_id)
            starts.append(start)
            ends.append(end)
            labels.append(label)
            scores.append(score)
    try:
        table = SegmentTable.from_columns(ids, starts, ends, labels, scores, classes)
    except OverflowError:  # an integer beyond the float range: find it and name it
        _strict_scan(path, results, lambda entry, where: _segment_entry(entry, where, known))
    if not np.all(np.isfinite(table.start_sec) & np.isfinite(table.end_sec) & np.isfinite(table.score)):
        _strict_scan(path, results, lambda entry, where: _segment_entry(entry, where, known))
    return table


def load_frame_predictions(path: str | Path, classes: Sequence[str]) -> PointTable:
    """Single-frame predictions `{"label", "score", "frame": seconds}` of a results JSON file."""
    results = read_results(path)
    known = set(classes)
    ids, times, labels, scores = [], [], [], []
    for video_id, entries in results.items():
        for i, entry in enumerate(_entries(path, video_id, entries)):
            try:
                label, score, time = entry["label"], entry["score"], entry["frame"]
                fine = label in known and type(score) in _NUMBER_TYPES and type(time) in _NUMBER_TYPES
            except (TypeError, KeyError, ValueError):
                fine = False
            if not fine:
                label, score, time = _frame_entry(entry, _where(path, video_id, i), known)
            ids.append(video_id)
            times.append(time)
            labels.append(label)
            scores.append(score)
    try:
        table = PointTable.from_columns(ids, times, labels, scores, classes)
    except OverflowError:  # an integer beyond the float range: find it and name it
        _strict_scan(path, results, lambda entry, where: _frame_entry(entry, where, known))
    if not np.all(np.isfinite(table.time_sec) & np.isfinite(table.score)):
        _strict_scan(path, results, lambda entry, where: _frame_entry(entry, where, known))
    return table


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


def _strict_scan(path, results: dict, check) -> None:
    """Run the strict per-entry check over every entry; it raises on the first bad one."""
    for video_id, entries in results.items():
        for i, entry in enumerate(entries):
            check(entry, _where(path, video_id, i))
    raise InputError(f"{path}: non-finite values among the predictions")  # not reached


def _segment_entry(entry, where: str, known: set[str]) -> tuple[str, float, float, float]:
    label, score = _label_score(entry, where, known)
    if "segment" not in entry:
        hint = " (single-frame predictions: use --frames)" if "frame" in entry else ""
        raise InputError(f"{where}: missing 'segment'{hint}")
    start, end = _segment(entry["segment"], where)
    return label, score, start, end


def _frame_entry(entry, where: str, known: set[str]) -> tuple[str, float, float]:
    label, score = _label_score(entry, where, known)
    if "frame" not in entry:
        hint = " (segment predictions: leave out --frames)" if "segment" in entry else ""
        raise InputError(f"{where}: missing 'frame'{hint}")
    return label, score, _number(entry["frame"], f"{where} frame")


def _entries(path, video_id, entries) -> list:
    if not isinstance(entries, list):
        raise InputError(f"{path}: video '{video_id}': expected a list of predictions, "
                         f"got {type(entries).__name__}")
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


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: expected a finite number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise InputError(f"{where}: expected a finite number, got {_show(value)}")
    return number
