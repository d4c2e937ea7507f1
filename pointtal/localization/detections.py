"""`Detections`: what every method's inference produces for one video, in snippet units (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Detections of one video; classes are 1..C.

    The one form of segments from methods to writers: every localizer and method returns it in snippet
    units (fractional allowed; a CAS method's thresholded runs and a proposal method's regressed boundaries
    alike), the engine converts it to seconds with the video's geometry (`in_seconds`) and keeps it so in its
    predictions; only the JSON writer turns it into ActivityNet entries (`entries`). Read its columns by name
    (`start`, `end`, `label`, `score`; `frame_at`, `frame_label`, `frame_score`).
    """

    segments: np.ndarray  # (N, 4) float64: start, end, class, score (snippet units, or seconds: `unit`)
    frames: np.ndarray  # (K, 3) float64: snippet (index; seconds: the centre's time), class, score; may be empty
    unit: str = "snippets"  # "snippets" (a method's output) or "seconds" (`in_seconds`)

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4)), np.zeros((0, 3)))

    def _column(self, table: np.ndarray, width: int, index: int) -> np.ndarray:
        return np.asarray(table, dtype=np.float64).reshape(-1, width)[:, index]

    @property
    def start(self) -> np.ndarray:  # (N,)
        return self._column(self.segments, 4, 0)

    @property
    def end(self) -> np.ndarray:  # (N,)
        return self._column(self.segments, 4, 1)

    @property
    def label(self) -> np.ndarray:  # (N,) class 1..C (float64 column)
        return self._column(self.segments, 4, 2)

    @property
    def score(self) -> np.ndarray:  # (N,)
        return self._column(self.segments, 4, 3)

    @property
    def frame_at(self) -> np.ndarray:  # (K,) snippet index, or the snippet centre's time in seconds
        return self._column(self.frames, 3, 0)

    @property
    def frame_label(self) -> np.ndarray:  # (K,)
        return self._column(self.frames, 3, 1)

    @property
    def frame_score(self) -> np.ndarray:  # (K,)
        return self._column(self.frames, 3, 2)

    def __len__(self) -> int:
        return len(self.start)

    def in_seconds(self, geometry) -> Detections:
        """The same detections in seconds; `geometry.to_seconds(snippets)` gives a snippet position's time
        (a segment's bounds as they are, a single frame at its snippet's centre)."""
        if self.unit == "seconds":
            return self
        bounds = geometry.to_seconds(np.stack([self.start, self.end], 1))  # (N, 2) one vectorised product
        segments = np.concatenate([bounds, self.label[:, None], self.score[:, None]], 1)  # (N, 4)
        frames = np.stack([geometry.to_seconds(self.frame_at + 0.5), self.frame_label, self.frame_score], 1)
        return Detections(segments, frames.reshape(-1, 3), "seconds")

    def entries(self, classes: tuple[str, ...]) -> tuple[list[dict], list[dict]]:
        """ActivityNet result entries (segments {"label", "score", "segment"}, frames {"label", "score",
        "frame"}) of detections in seconds, `classes[c - 1]` naming class c: the writer's form."""
        if self.unit != "seconds":
            raise ValueError("Detections.entries needs seconds (in_seconds)")
        names = [classes[int(c) - 1] for c in self.label.tolist()]
        segments = [
            {"label": name, "score": score, "segment": pair}
            for name, score, pair in zip(
                names, self.score.tolist(), np.stack([self.start, self.end], 1).tolist(), strict=True
            )
        ]
        frames = [
            {"label": classes[int(c) - 1], "score": score, "frame": time}
            for time, c, score in zip(
                self.frame_at.tolist(), self.frame_label.tolist(), self.frame_score.tolist(), strict=True
            )
        ]
        return segments, frames

    @staticmethod
    def from_entries(segments: list[dict], frames: list[dict], classes: tuple[str, ...]) -> Detections:
        """The detections in seconds that `entries(classes)` turned into `segments` and `frames` (its inverse:
        results read back from a JSON file)."""
        index = {name: c for c, name in enumerate(classes, 1)}
        rows = [[*e["segment"], index[e["label"]], e["score"]] for e in segments]
        points = [[e["frame"], index[e["label"]], e["score"]] for e in frames]
        return Detections(
            np.asarray(rows, dtype=np.float64).reshape(-1, 4),
            np.asarray(points, dtype=np.float64).reshape(-1, 3),
            "seconds",
        )


class InvalidDetections(RuntimeError):
    """A method returned detections no writer may take (start >= end, a non-finite value, a class outside
    1..C): a defect of the method, reported with the method and the video instead of being written."""


def check_detections(found: Detections, n_classes: int, method: str, video_id: str) -> Detections:
    """`found` unchanged when every segment has finite start < end, a finite score and an integer class in
    1..n_classes, and every frame a finite snippet and score and such a class; else InvalidDetections
    naming the method, the video and the first bad row (the engine calls this on every `Method.detect`
    result, so no method can hand the writer a segment `evaluate` would refuse)."""
    segments = np.asarray(found.segments, dtype=np.float64)
    frames = np.asarray(found.frames, dtype=np.float64)
    if segments.ndim != 2 or segments.shape[1] != 4 or frames.ndim != 2 or frames.shape[1] != 3:
        raise InvalidDetections(
            f"method '{method}' returned detections of shape segments {segments.shape}, "
            f"frames {frames.shape} for video '{video_id}' (need (N, 4) and (K, 3))"
        )
    start, end, label, score = segments.T
    _refuse_first(
        ~(np.isfinite(start) & np.isfinite(end) & (start < end) & np.isfinite(score) & _is_class(label, n_classes)),
        method,
        video_id,
        "segment",
        lambda row: (
            f"[{float(start[row])!r}, {float(end[row])!r}] class {float(label[row])!r} score {float(score[row])!r} "
            f"(need finite start < end, a finite score and a class in 1..{n_classes})"
        ),
    )
    snippet, frame_label, frame_score = frames.T
    _refuse_first(
        ~(np.isfinite(snippet) & np.isfinite(frame_score) & _is_class(frame_label, n_classes)),
        method,
        video_id,
        "frame",
        lambda row: (
            f"snippet {float(snippet[row])!r} class {float(frame_label[row])!r} score {float(frame_score[row])!r} "
            f"(need finite values and a class in 1..{n_classes})"
        ),
    )
    return found


def _refuse_first(bad: np.ndarray, method: str, video_id: str, what: str, describe) -> None:
    """InvalidDetections naming the first True row of `bad` (N,) bool, described by `describe(row)`."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidDetections(
            f"method '{method}' returned an invalid {what} for video '{video_id}': row {row} of "
            f"{len(bad)} is {describe(row)}; nothing was written"
        )


def _is_class(label: np.ndarray, n_classes: int) -> np.ndarray:
    """(N,) bool: an integer class in 1..n_classes."""
    return np.isfinite(label) & (label == np.round(label)) & (label >= 1) & (label <= n_classes)
