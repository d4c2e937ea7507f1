"""The clicks of one annotator file, written through on every change (`pointtal label`'s store).

Every change is one JSON line appended to `<out>.journal` and fsynced before the caller returns, then the SF-Net
CSV `<out>` (`video_id,time_seconds,label`, what `pointtal annotate --check` and training read) is rewritten
atomically (temp file, fsync, rename). Killing the process therefore never loses an acknowledged click, and
reopening replays the journal. The journal also holds what the CSV cannot: the annotator's active time per video
(heartbeats timed by this process's clock, which `label_stats` reports), the videos marked done and the points
accepted in review.

The CSV is the user's file: when it was edited by hand while no server ran (its rows differ from the journal's
points), reopening keeps the CSV's rows, journals the difference and says so in one warning line. A symlinked
`<out>` is followed (the real file is written and its journal sits beside it), and the real file is locked: its
journal by path and the CSV found at start by inode, so a second server on a symlink or a hard link is refused.
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
    last_change: tuple[str, StoredPoint] | None = None  # the last add, delete or move: undone, the CSV before it
    done: set[str] = field(default_factory=set)  # videos the annotator marked done
    reviewed: set[int] = field(default_factory=set)  # live point ids accepted (or moved) in review

    def points_before_last_change(self) -> list[StoredPoint]:
        """The live points before the last add, delete or move (what the CSV holds after a kill between the
        journal's append and the CSV's rewrite)."""
        points = dict(self.points)
        if self.last_change is not None:
            op, point = self.last_change
            if op == "add":
                points.pop(point.id, None)
            else:  # a deleted point, or a moved one where it was
                points[point.id] = point
        return list(points.values())

    def apply(self, record: dict) -> None:
        """Apply one journal record (`add`, `delete`, `move`, `accept`, `done` or `active`)."""
        op = record["op"]
        if op in ("add", "active", "done"):
            self.last_video = str(record["video"])
        if op in ("move", "accept"):
            self._review(op, int(record["id"]), record.get("time"))
        elif op == "done":
            (self.done.add if record["done"] else self.done.discard)(str(record["video"]))
        elif op == "add":
            point = StoredPoint(int(record["id"]), str(record["video"]), float(record["time"]), str(record["label"]))
            self.points[point.id] = point
            self.next_id = max(self.next_id, point.id + 1)
            self.last_change = ("add", point)
        elif op == "delete":
            deleted = self.points.pop(int(record["id"]), None)
            self.reviewed.discard(int(record["id"]))
            self.last_video = deleted.video if deleted is not None else self.last_video
            if deleted is not None:
                self.last_change = ("delete", deleted)
        elif op == "active":
            video = str(record["video"])
            self.active_sec[video] = self.active_sec.get(video, 0.0) + float(record["sec"])
        else:
            raise KeyError(op)

    def _review(self, op: str, point_id: int, time_sec) -> None:
        """`accept` marks a point reviewed; `move` gives it a new time (keeping its id) and marks it reviewed."""
        point = self.points.get(point_id)
        if point is None:
            return
        self.last_video = point.video
        self.reviewed.add(point_id)
        if op == "move":
            self.points[point_id] = StoredPoint(point.id, point.video, float(time_sec), point.label)
            self.last_change = ("move", point)


def journal_path(out: str | Path) -> Path:
    """The journal that belongs to a click CSV: `<out>.journal` next to it (next to the real file when `out`
    is a symlink, so every name of one CSV has one journal)."""
    out = Path(os.path.realpath(out))
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
        log.warning(
            "%s: ignoring an unfinished last line (%d bytes), a write cut short", path, len(data) - len(complete)
        )
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

    The real file is locked (flock) while the store is open: its journal, and the CSV as found at start (by
    inode: a hard link's journal is another file), so two servers cannot write the same file under two names.
    `clock` (seconds, monotonic) times the heartbeats; tests pass a fake one.
    """

    def __init__(self, out: str | Path, annotator: str = "", clock: Callable[[], float] = time.monotonic):
        self.out = Path(os.path.realpath(out))  # a symlink's target: written in place, the link stays
        self.journal = journal_path(self.out)
        self.annotator = annotator
        self._clock = clock
        self._lock = threading.Lock()
        self._last_beat: dict[str, float] = {}
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._csv_handle = self._lock_csv_inode()
        new_journal = not self.journal.exists()
        self._handle = open(self.journal, "ab")  # noqa: SIM115 -- held open (and locked) until close()
        try:
            _lock_or_refuse(self._handle, self.journal)
            rows = self._read_csv()  # the user's rows; an unreadable CSV is refused before anything is written
            self.state = replay_journal(self.journal)
            csv_older = rows is not None and self.out.stat().st_mtime_ns < self.journal.stat().st_mtime_ns
        except BaseException:
            self.close()
            if new_journal and self.journal.exists() and not self.journal.stat().st_size:
                self.journal.unlink()
            raise
        self._handle.truncate(self.state.good_bytes)  # drop a torn last line so appends start on a fresh one
        if not self.state.good_bytes and rows:
            self._import_csv(rows)
        elif rows is not None:
            self._keep_edited_rows(rows, csv_older)
        elif self.state.points:
            log.warning(
                "%s: missing; rewritten from its journal %s (%d points)", out, self.journal, len(self.state.points)
            )
        self._write_csv()

    def _lock_csv_inode(self):
        """Lock the CSV found at start by inode (None when there is none yet): another name for the same file
        (a hard link) has its own journal, so only this lock keeps a second server off it."""
        try:
            handle = open(self.out, "rb")  # noqa: SIM115 -- held open (and locked) until close()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise InputError(f"--out {self.out}: is a directory; give a click CSV file") from None
        _lock_or_refuse(handle, self.out)
        links = os.fstat(handle.fileno()).st_nlink
        if links > 1:
            log.warning(
                "%s: has %d names (hard links); every save replaces the file under this name only, the "
                "other names keep the rows of now",
                self.out,
                links,
            )
        return handle

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

    def is_done(self, video: str) -> bool:
        with self._lock:
            return video in self.state.done

    def reviewed(self, video: str | None = None) -> list[int]:
        """Ids of the live points (of one video) accepted or moved in review, ascending."""
        with self._lock:
            return sorted(i for i in self.state.reviewed if video is None or self.state.points[i].video == video)

    # -- changes
    def add(self, video: str, time_sec: float, label: str) -> StoredPoint:
        """Store a click: journal (fsynced), then the CSV. Returns the point with its new id."""
        with self._lock:
            point = StoredPoint(self.state.next_id, video, round(float(time_sec), 6), label)
            self._append(
                {
                    "op": "add",
                    "id": point.id,
                    "video": video,
                    "time": point.time_sec,
                    "label": label,
                    "annotator": self.annotator,
                    "at": _now_iso(),
                }
            )
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

    def move(self, point_id: int, time_sec: float) -> StoredPoint | None:
        """Give a click a new time (review: the reviewer placed it); None when no live point has that id."""
        with self._lock:
            if point_id not in self.state.points:
                return None
            self._append(
                {
                    "op": "move",
                    "id": point_id,
                    "time": round(float(time_sec), 6),
                    "annotator": self.annotator,
                    "at": _now_iso(),
                }
            )
            self._write_csv()
            return self.state.points[point_id]

    def accept(self, point_id: int) -> StoredPoint | None:
        """Mark a click reviewed (the CSV does not change); None when no live point has that id."""
        with self._lock:
            if point_id not in self.state.points:
                return None
            if point_id not in self.state.reviewed:
                self._append({"op": "accept", "id": point_id, "annotator": self.annotator, "at": _now_iso()})
            return self.state.points[point_id]

    def set_done(self, video: str, done: bool) -> None:
        """The annotator's "done" mark of a video (journaled and fsynced like a click)."""
        with self._lock:
            if (video in self.state.done) != done:
                self._append(
                    {"op": "done", "video": video, "done": done, "annotator": self.annotator, "at": _now_iso()}
                )

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
        for handle in (getattr(self, "_handle", None), self._csv_handle):
            if handle is not None:
                handle.close()  # releases its lock

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

    def _read_csv(self) -> list[Point] | None:
        """The CSV's rows ([] for an empty file), or None when there is no CSV."""
        if not self.out.is_file():
            return None
        return read_points(self.out) if self.out.stat().st_size else []

    def _import_csv(self, imported: list[Point]) -> None:
        """An existing click CSV without a journal (made elsewhere): journal its points so the page continues it."""
        for point in imported:
            self._add_row(point, "imported")
        log.info("%s: imported %d existing points into %s", self.out, len(imported), self.journal)

    def _keep_edited_rows(self, rows: list[Point], csv_older: bool) -> None:
        """The CSV's rows win over the journal's points (the user edited the file while no server ran): journal
        the rows added and removed by hand, and say so in one line.

        Not an edit: a CSV one change behind its journal and older than it, which is what a kill between
        the journal's append and the CSV's rewrite leaves (that change is kept, as the journal has it)."""
        in_csv = Counter(_row_key(p.video_id, p.time_sec, p.label) for p in rows)
        behind = Counter(_row_key(p.video, p.time_sec, p.label) for p in self.state.points_before_last_change())
        if in_csv == behind and csv_older:
            return
        journaled: dict[tuple, list[int]] = {}
        for point in sorted(self.state.points.values(), key=lambda p: p.id):
            journaled.setdefault(_row_key(point.video, point.time_sec, point.label), []).append(point.id)
        removed = [i for key, ids in journaled.items() for i in ids[in_csv.get(key, 0) :]]
        have = Counter({key: len(ids) for key, ids in journaled.items()})
        added = []
        for point in rows:
            key = _row_key(point.video_id, point.time_sec, point.label)
            have[key] -= 1
            if have[key] < 0:  # more rows of this click than journaled points
                added.append(point)
        if not removed and not added:
            return
        for point_id in removed:
            self._append({"op": "delete", "id": point_id, "annotator": "edited by hand", "at": _now_iso()})
        for point in added:
            self._add_row(point, "edited by hand")
        log.warning(
            "%s: edited since its journal was written (%d rows added, %d removed by hand): keeping the "
            "CSV's rows; %s now records the change",
            self.out,
            len(added),
            len(removed),
            self.journal,
        )

    def _add_row(self, point: Point, annotator: str) -> None:
        self._append(
            {
                "op": "add",
                "id": self.state.next_id,
                "video": point.video_id,
                "time": round(float(point.time_sec), 6),
                "label": point.label,
                "annotator": annotator,
                "at": _now_iso(),
            }
        )


def _row_key(video: str, time_sec: float, label: str) -> tuple[str, str, str]:
    """A row as the CSV writes it (times with 6 decimals), for comparing CSV rows with journaled points."""
    return video, f"{time_sec:.6f}", label


def _lock_or_refuse(handle, path: Path) -> None:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InputError(f"{path}: another `pointtal label` is writing to this file") from None


# ------------------------------------------------------------------------------------------------ stats


@dataclass(frozen=True)
class VideoStats:
    """Annotation cost of one video: points by kind, the annotator's active seconds and "done" mark."""

    video: str
    n_action: int
    n_background: int
    active_sec: float
    done: bool = False

    @property
    def n_points(self) -> int:
        return self.n_action + self.n_background

    @property
    def sec_per_point(self) -> float | None:
        return self.active_sec / self.n_points if self.n_points else None


def label_stats(out: str | Path, background: str = BACKGROUND) -> list[VideoStats]:
    """Per video (sorted by id): action and background points, active seconds and the done mark, read from the
    journal."""
    path = journal_path(out)
    if not path.is_file():
        raise InputError(f"{path}: no journal next to {out} (it is written by `pointtal label ... --out {out}`)")
    state = replay_journal(path)
    kinds = Counter((p.video, p.label == background) for p in state.points.values())
    videos = sorted({video for video, _ in kinds} | set(state.active_sec) | state.done)
    return [
        VideoStats(
            video, kinds[video, False], kinds[video, True], state.active_sec.get(video, 0.0), video in state.done
        )
        for video in videos
    ]
