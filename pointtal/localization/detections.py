"""`Detections`: what every method's inference produces for one video, in snippet units (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Detections of one video in snippet units (fractional allowed); classes are 1..C.

    The one output type of every localizer and method: a CAS method's thresholded runs and a proposal
    method's regressed boundaries alike. The engine converts them to seconds with the video's geometry.
    """

    segments: np.ndarray  # (N, 4) float64: start_snippet, end_snippet, class, score
    frames: np.ndarray  # (K, 3) float64: snippet, class, score (single-frame predictions; may be empty)

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4)), np.zeros((0, 3)))


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
        raise InvalidDetections(f"method '{method}' returned detections of shape segments {segments.shape}, "
                                f"frames {frames.shape} for video '{video_id}' (need (N, 4) and (K, 3))")
    start, end, label, score = segments.T
    _refuse_first(~(np.isfinite(start) & np.isfinite(end) & (start < end) & np.isfinite(score)
                    & _is_class(label, n_classes)), method, video_id, "segment", lambda row: (
        f"[{float(start[row])!r}, {float(end[row])!r}] class {float(label[row])!r} score {float(score[row])!r} "
        f"(need finite start < end, a finite score and a class in 1..{n_classes})"))
    snippet, frame_label, frame_score = frames.T
    _refuse_first(~(np.isfinite(snippet) & np.isfinite(frame_score) & _is_class(frame_label, n_classes)), method,
                  video_id, "frame", lambda row: (
        f"snippet {float(snippet[row])!r} class {float(frame_label[row])!r} score {float(frame_score[row])!r} "
        f"(need finite values and a class in 1..{n_classes})"))
    return found


def _refuse_first(bad: np.ndarray, method: str, video_id: str, what: str, describe) -> None:
    """InvalidDetections naming the first True row of `bad` (N,) bool, described by `describe(row)`."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidDetections(f"method '{method}' returned an invalid {what} for video '{video_id}': row {row} of "
                                f"{len(bad)} is {describe(row)}; nothing was written")


def _is_class(label: np.ndarray, n_classes: int) -> np.ndarray:
    """(N,) bool: an integer class in 1..n_classes."""
    return np.isfinite(label) & (label == np.round(label)) & (label >= 1) & (label <= n_classes)
