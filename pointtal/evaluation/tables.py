"""Columnar containers for segments and points: the data the evaluators work on.

A table is a set of parallel numpy arrays, one row per segment (or point), plus two vocabularies:
`video_ids` (the `video` column indexes it) and `classes` (the `label` column indexes it). Row order is
meaningful: it is the input order that breaks score ties, and for ground truth the order that breaks tIoU
ties. Ground truth uses the same type with `score` set to 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def _index_column(names: Sequence[str], vocabulary: dict[str, int], what: str) -> np.ndarray:
    try:
        return np.fromiter((vocabulary[n] for n in names), dtype=np.int64, count=len(names))
    except KeyError as err:
        raise ValueError(f"unknown {what} {err.args[0]!r}") from None


def _factorize(names: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """Vocabulary in first-appearance order and the (N,) index of every name in it."""
    vocabulary: dict[str, int] = {}
    index = np.fromiter((vocabulary.setdefault(n, len(vocabulary)) for n in names), dtype=np.int64, count=len(names))
    return tuple(vocabulary), index


@dataclass(frozen=True)
class SegmentTable:
    """N segments: `video` (N,) int64, `start_sec`/`end_sec` (N,) float64, `label` (N,) int64, `score` (N,)."""

    video_ids: tuple[str, ...]
    classes: tuple[str, ...]
    video: np.ndarray
    start_sec: np.ndarray
    end_sec: np.ndarray
    label: np.ndarray
    score: np.ndarray

    def __post_init__(self) -> None:
        n = self.video.shape[0]
        for name in ("start_sec", "end_sec", "label", "score"):
            if getattr(self, name).shape != (n,):
                shape = getattr(self, name).shape
                raise ValueError(f"SegmentTable: column {name} has shape {shape}, want ({n},)")

    def __len__(self) -> int:
        return int(self.video.shape[0])

    @classmethod
    def from_columns(
        cls,
        video_ids: Sequence[str],
        start_sec: Sequence[float] | np.ndarray,
        end_sec: Sequence[float] | np.ndarray,
        labels: Sequence[str],
        scores: Sequence[float] | np.ndarray | None,
        classes: Sequence[str],
    ) -> SegmentTable:
        """Build from per-row video ids and label names; `scores=None` means ground truth (all 1)."""
        vocabulary, video = _factorize(video_ids)
        class_index = {name: i for i, name in enumerate(classes)}
        n = len(video)
        score = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64).reshape(n)
        return cls(
            video_ids=vocabulary,
            classes=tuple(classes),
            video=video,
            start_sec=np.asarray(start_sec, dtype=np.float64).reshape(n),
            end_sec=np.asarray(end_sec, dtype=np.float64).reshape(n),
            label=_index_column(labels, class_index, "label"),
            score=score,
        )

    @classmethod
    def from_ground_truth(cls, videos: Iterable, classes: Sequence[str]) -> SegmentTable:
        """Ground-truth table from `Video`-like objects (`video_id`, `instances` with `start_sec`, `end_sec`,
        `label`), keeping annotation order. Videos without instances are kept in the vocabulary."""
        ids, starts, ends, labels = [], [], [], []
        all_ids = []
        for video in videos:
            all_ids.append(video.video_id)
            for inst in video.instances:
                ids.append(video.video_id)
                starts.append(inst.start_sec)
                ends.append(inst.end_sec)
                labels.append(inst.label)
        table = cls.from_columns(ids, starts, ends, labels, None, classes)
        return table.with_video_ids(tuple(dict.fromkeys([*table.video_ids, *all_ids])))

    @classmethod
    def from_mapping(cls, segments: Mapping[str, Iterable[tuple]], classes: Sequence[str]) -> SegmentTable:
        """From {video_id: [(start, end, label) or (start, end, label, score), ...]}; no score means 1."""
        ids, starts, ends, labels, scores = [], [], [], [], []
        for video_id, rows in segments.items():
            for row in rows:
                ids.append(video_id)
                starts.append(row[0])
                ends.append(row[1])
                labels.append(row[2])
                scores.append(row[3] if len(row) > 3 else 1.0)
        table = cls.from_columns(ids, starts, ends, labels, scores, classes)
        return table.with_video_ids(tuple(dict.fromkeys([*table.video_ids, *segments])))

    def with_video_ids(self, video_ids: Sequence[str]) -> SegmentTable:
        """Same rows re-indexed against another vocabulary that contains all used ids."""
        return _reindex(self, video_ids)

    def select(self, keep: np.ndarray) -> SegmentTable:
        """Rows where `keep` (N,) bool is True (or the given row indices), order preserved."""
        return SegmentTable(
            self.video_ids,
            self.classes,
            self.video[keep],
            self.start_sec[keep],
            self.end_sec[keep],
            self.label[keep],
            self.score[keep],
        )


@dataclass(frozen=True)
class PointTable:
    """N single-frame predictions: `video` (N,), `time_sec` (N,) float64, `label` (N,), `score` (N,)."""

    video_ids: tuple[str, ...]
    classes: tuple[str, ...]
    video: np.ndarray
    time_sec: np.ndarray
    label: np.ndarray
    score: np.ndarray

    def __post_init__(self) -> None:
        n = self.video.shape[0]
        for name in ("time_sec", "label", "score"):
            if getattr(self, name).shape != (n,):
                shape = getattr(self, name).shape
                raise ValueError(f"PointTable: column {name} has shape {shape}, want ({n},)")

    def __len__(self) -> int:
        return int(self.video.shape[0])

    @classmethod
    def from_columns(
        cls,
        video_ids: Sequence[str],
        time_sec: Sequence[float] | np.ndarray,
        labels: Sequence[str],
        scores: Sequence[float] | np.ndarray,
        classes: Sequence[str],
    ) -> PointTable:
        vocabulary, video = _factorize(video_ids)
        class_index = {name: i for i, name in enumerate(classes)}
        n = len(video)
        return cls(
            video_ids=vocabulary,
            classes=tuple(classes),
            video=video,
            time_sec=np.asarray(time_sec, dtype=np.float64).reshape(n),
            label=_index_column(labels, class_index, "label"),
            score=np.asarray(scores, dtype=np.float64).reshape(n),
        )

    def with_video_ids(self, video_ids: Sequence[str]) -> PointTable:
        return _reindex(self, video_ids)

    def select(self, keep: np.ndarray) -> PointTable:
        return PointTable(
            self.video_ids, self.classes, self.video[keep], self.time_sec[keep], self.label[keep], self.score[keep]
        )


def _reindex(table, video_ids: Sequence[str]):
    video_ids = tuple(video_ids)
    position = {v: i for i, v in enumerate(video_ids)}
    remap = np.array([position.get(v, -1) for v in table.video_ids], dtype=np.int64)
    video = remap[table.video] if len(table) else table.video
    if np.any(video < 0):
        missing = table.video_ids[int(table.video[np.flatnonzero(video < 0)[0]])]
        raise ValueError(f"video {missing!r} is missing from the new vocabulary")
    return type(table)(**{**table.__dict__, "video_ids": video_ids, "video": video})


def align_videos(ground_truth, predictions):
    """Re-index `predictions` onto a vocabulary that starts with the ground truth's videos.

    Returns (predictions re-indexed, number of ground-truth videos). Prediction videos absent from the
    ground truth get indices >= that number (they hold no ground truth: all their rows are false
    positives).
    """
    known = set(ground_truth.video_ids)
    extra = [v for v in predictions.video_ids if v not in known]
    return predictions.with_video_ids((*ground_truth.video_ids, *extra)), len(ground_truth.video_ids)


def align_classes(ground_truth, predictions):
    """Re-index prediction labels onto the ground truth's class list (every prediction class must be in it)."""
    if predictions.classes == ground_truth.classes:
        return predictions
    position = {c: i for i, c in enumerate(ground_truth.classes)}
    missing = [c for c in predictions.classes if c not in position]
    if missing:
        raise ValueError(f"prediction classes not in the ground-truth class list: {', '.join(missing[:5])}")
    remap = np.array([position[c] for c in predictions.classes], dtype=np.int64)
    label = remap[predictions.label] if len(predictions) else predictions.label
    return type(predictions)(**{**predictions.__dict__, "classes": ground_truth.classes, "label": label})
