"""The clicks of one annotator file, written through on every change (`pointtal label`'s store).

Every change is one JSON line appended to `<out>.journal` and fsynced before the caller returns, then the SF-Net
CSV `<out>` (`video_id,time_seconds,label`, what `pointtal annotate --check` and training read) is rewritten
atomically (temp file, fsync, rename). Killing the process therefore never loses an acknowledged click, and
reopening replays the journal. The journal also holds the annotator's active time per video (heartbeats timed by
this process's clock), which `label_stats` reports.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pointtal.data.annotations import BACKGROUND
from pointtal.data.points import Point, read_points, write_points
from pointtal.errors import InputError

log = logging.getLogger(__name__)

HEARTBEAT_GAP_SEC = 20.0  # a longer silence between heartbeats is idle time (tab hidden, machine asleep)


@dataclass(frozen=True)
class StoredPoint:
    """A click as the store keeps it: a journal id, the video id, the time in seconds and the label."""

    id: int
    video: str
    time_sec: float
    label: str

    def to_json(self) -> dict:
        return {"id": self.id, "video": self.video, "time": self.time_sec, "label": self.label}


@dataclass
class JournalState:
    """What replaying a journal gives: live points by id, the next id, active seconds per video."""

    points: dict[int, StoredPoint] = field(default_factory=dict)
    next_id: int = 1
    active_sec: dict[str, float] = field(default_factory=dict)
    good_bytes: int = 0  # length of the journal up to its last complete line
    last_video: str | None = None  # the video worked on last: the page reopens it

    def apply(self, record: dict) -> None:
        """Apply one journal record (`add`, `delete` or `active`)."""
        op = record["op"]
        if op != "delete":
            self.last_video = str(record["video"])
        if op == "add":
            point = StoredPoint(int(record["id"]), str(record["video"]), float(record["time"]), str(record["label"]))
            self.points[point.id] = point
            self.next_id = max(self.next_id, point.id + 1)
        elif op == "delete":
            deleted = self.points.pop(int(record["id"]), None)
            self.last_video = deleted.video if deleted is not None else self.last_video
        elif op == "active":
            video = str(record["video"])
            self.active_sec[video] = self.active_sec.get(video, 0.0) + float(record["sec"])
        else:
            raise KeyError(op)


def journal_path(out: str | Path) -> Path:
    """The journal that belongs to a click CSV: `<out>.journal` next to it."""
    out = Path(out)
    return out.with_name(out.name + ".journal")


def replay_journal(path: Path) -> JournalState:
    """Replay a journal. A last line without its newline is a write cut short by a kill (never acknowledged):
    it is ignored with a warning. Any other unreadable line is an input error naming the line."""
    state = JournalState()
    if not path.exists():
        return state
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        log.warning("%s: ignoring an unfinished last line (%d bytes), a write cut short", path, len(data) - len(complete))
    for number, line in enumerate(complete.splitlines(), start=1):
        try:
            state.apply(json.loads(line))
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"{path} line {number}: unreadable journal record ({type(err).__name__}: {err})") from None
    state.good_bytes = len(complete)
    return state


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ClickStore:
    """The clicks of one annotator file: journal + CSV written through on every change; thread-safe.

    The journal is locked (flock) while the store is open, so two servers cannot write the same file.
    `clock` (seconds, monotonic) times the heartbeats; tests pass a fake one.
    """

    def __init__(self, out: str | Path, annotator: str = "", clock: Callable[[], float] = time.monotonic):
        self.out = Path(out)
        self.journal = journal_path(self.out)
        self.annotator = annotator
        self._clock = clock
        self._lock = threading.Lock()
        self._last_beat: dict[str, float] = {}
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.journal, "ab")  # noqa: SIM115 -- held open (and locked) until close()
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise InputError(f"{self.journal}: another `pointtal label` is writing to this file") from None
        self.state = replay_journal(self.journal)
        self._handle.truncate(self.state.good_bytes)  # drop a torn last line so appends start on a fresh one
        if not self.state.good_bytes and self.out.exists() and self.out.stat().st_size:
            self._import_csv()
        self._write_csv()

    # -- reading
    def points(self, video: str | None = None) -> list[StoredPoint]:
        """Live points (of one video), sorted by time then id."""
        with self._lock:
            chosen = [p for p in self.state.points.values() if video is None or p.video == video]
        return sorted(chosen, key=lambda p: (p.video, p.time_sec, p.id))

    def last_video(self) -> str | None:
        with self._lock:
            return self.state.last_video

    def active_sec(self, video: str) -> float:
        with self._lock:
            return self.state.active_sec.get(video, 0.0)

    # -- changes
    def add(self, video: str, time_sec: float, label: str) -> StoredPoint:
        """Store a click: journal (fsynced), then the CSV. Returns the point with its new id."""
        with self._lock:
            point = StoredPoint(self.state.next_id, video, round(float(time_sec), 6), label)
            self._append({"op": "add", "id": point.id, "video": video, "time": point.time_sec, "label": label,
                          "annotator": self.annotator, "at": _now_iso()})
            self._write_csv()
            return point

    def delete(self, point_id: int) -> StoredPoint | None:
        """Remove a click by id; None when no live point has that id."""
        with self._lock:
            point = self.state.points.get(point_id)
            if point is None:
                return None
            self._append({"op": "delete", "id": point_id, "annotator": self.annotator, "at": _now_iso()})
            self._write_csv()
            return point

    def heartbeat(self, video: str, start: bool = False) -> float:
        """The page is being worked on: count the time since this video's previous heartbeat, unless `start`
        (first beat after a pause, a switch of video or a hidden tab) or the gap exceeds HEARTBEAT_GAP_SEC.
        Returns the video's total active seconds."""
        with self._lock:
            now = self._clock()
            previous = self._last_beat.get(video)
            self._last_beat[video] = now
            gap = None if previous is None else now - previous
            if not start and gap is not None and 0 < gap <= HEARTBEAT_GAP_SEC:
                self._append({"op": "active", "video": video, "sec": round(gap, 3), "annotator": self.annotator})
            return self.state.active_sec.get(video, 0.0)

    def close(self) -> None:
        self._handle.close()  # releases the lock

    # -- internals (called with the lock held)
    def _append(self, record: dict) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        self._handle.write(line)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.state.apply(record)

    def _write_csv(self) -> None:
        points = [Point(p.video, p.time_sec, p.label) for p in self.state.points.values()]
        write_points(points, self.out)  # atomic: temp file, fsync, rename

    def _import_csv(self) -> None:
        """An existing click CSV without a journal (made elsewhere): journal its points so the page continues it."""
        imported = read_points(self.out)
        for point in imported:
            self._append({"op": "add", "id": self.state.next_id, "video": point.video_id, "time": point.time_sec,
                          "label": point.label, "annotator": "imported", "at": _now_iso()})
        log.info("%s: imported %d existing points into %s", self.out, len(imported), self.journal)


# ------------------------------------------------------------------------------------------------ stats


@dataclass(frozen=True)
class VideoStats:
    """Annotation cost of one video: points by kind and the annotator's active seconds."""

    video: str
    n_action: int
    n_background: int
    active_sec: float

    @property
    def n_points(self) -> int:
        return self.n_action + self.n_background

    @property
    def sec_per_point(self) -> float | None:
        return self.active_sec / self.n_points if self.n_points else None


def label_stats(out: str | Path, background: str = BACKGROUND) -> list[VideoStats]:
    """Per video (sorted by id): action and background points and active seconds, read from the journal."""
    path = journal_path(out)
    if not path.is_file():
        raise InputError(f"{path}: no journal next to {out} (it is written by `pointtal label ... --out {out}`)")
    state = replay_journal(path)
    kinds = Counter((p.video, p.label == background) for p in state.points.values())
    videos = sorted({video for video, _ in kinds} | set(state.active_sec))
    return [VideoStats(video, kinds[video, False], kinds[video, True], state.active_sec.get(video, 0.0))
            for video in videos]
