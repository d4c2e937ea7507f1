"""Segment supervision: each training video's action instances as segments, for methods that train on them.

A point method gets points (`PointDataset.point_labels`); a segment method (a fully supervised detector such as
ActionFormer) gets every instance of a training video as one row of a `SegmentTable`: start and end in seconds
and in snippet units (`seconds * fps / stride`, the unit of `SnippetGeometry`: snippet t covers [t, t+1)),
the class (1..C) and a confidence weight. Instances are never merged: two touching instances of one class stay
two rows (per-snippet labels cannot tell them apart).

Where the segments come from is `data.segments`:
  * `full`: the ground truth's instances of the training videos (full supervision), weight 1;
  * a pseudo-label file (`pointtal predict RUN --pseudo-labels OUT.json`, or any ActivityNet-layout JSON):
    the instances it gives the training videos, weight = the instance's `score` where it has one (else 1).
    A training video the file does not hold gets no segment (it trains as background), logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pointtal.data.annotations import GroundTruth, Video, load_ground_truth
from pointtal.data.features import SnippetGeometry
from pointtal.errors import InputError

log = logging.getLogger(__name__)

FULL = "full"  # data.segments: the ground truth's own instances


@dataclass(frozen=True)
class SegmentTable:
    """Instances of V videos in one flat table; video v owns rows `offsets[v]:offsets[v+1]` (in time order)."""

    offsets: np.ndarray  # (V+1,) int64
    start_sec: np.ndarray  # (K,) float64
    end_sec: np.ndarray  # (K,) float64
    start: np.ndarray  # (K,) float64 snippet units: (start_sec * fps - offset) / stride (SnippetGeometry)
    end: np.ndarray  # (K,) float64 snippet units
    label: np.ndarray  # (K,) int64 class column 1..C
    weight: np.ndarray  # (K,) float32 confidence (1 for ground truth)
    source: str  # "full" or the pseudo-label file

    def __len__(self) -> int:
        return len(self.label)

    def rows(self, video: int) -> slice:
        """Rows of video `video` (its index in the dataset)."""
        return slice(int(self.offsets[video]), int(self.offsets[video + 1]))

    def counts(self) -> np.ndarray:  # (V,) instances per video
        return np.diff(self.offsets)


def segment_table(
    videos: Sequence[Video | None], geometries: Sequence[SnippetGeometry], class_index: dict[str, int], source: str
) -> SegmentTable:
    """The instances of `videos` (None: a video without instances) as a table, each video's in time order."""
    rows = []  # (start_sec, end_sec, label, weight) per instance, video by video
    counts = np.zeros(len(videos), dtype=np.int64)
    for v, (video, geometry) in enumerate(zip(videos, geometries, strict=True)):
        if video is None:
            continue
        mine = sorted(video.instances, key=lambda i: (i.start_sec, i.end_sec))
        for inst in mine:
            if inst.label not in class_index:
                raise InputError(
                    f"{source}: video '{video.video_id}' has label '{inst.label}', which is not one "
                    f"of the run's classes; give the run's class list as data.class_list"
                )
            weight = 1.0 if inst.score is None else inst.score
            rows.append(
                (
                    inst.start_sec,
                    inst.end_sec,
                    class_index[inst.label],
                    weight,
                    geometry.fps / geometry.stride,
                    geometry.offset / geometry.stride,
                )
            )
        counts[v] = len(mine)
    table = np.array(rows, dtype=np.float64).reshape(-1, 6)  # (K, 6)
    per_sec, shift = table[:, 4], table[:, 5]  # snippets per second of each instance's video, its window offset
    return SegmentTable(
        offsets=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        start_sec=table[:, 0],
        end_sec=table[:, 1],
        start=table[:, 0] * per_sec - shift,
        end=table[:, 1] * per_sec - shift,
        label=table[:, 2].astype(np.int64),
        weight=table[:, 3].astype(np.float32),
        source=source,
    )


def load_segments(
    source: str, gt: GroundTruth, video_ids: Sequence[str], geometries: Sequence[SnippetGeometry]
) -> SegmentTable:
    """The segments of the training videos `video_ids` from `data.segments` (module doc)."""
    if source == FULL:
        return segment_table([gt.videos[v] for v in video_ids], geometries, gt.class_index, "ground truth")
    pseudo = load_ground_truth(source)
    missing = [v for v in video_ids if v not in pseudo.videos]
    if len(missing) == len(video_ids):
        raise InputError(
            f"{source}: holds none of the {len(video_ids)} training videos (data.segments); "
            f"was it written for another subset?"
        )
    if missing:
        log.warning(
            "%s: %d of %d training videos have no pseudo labels and train as background (first: %s)",
            source,
            len(missing),
            len(video_ids),
            ", ".join(missing[:3]),
        )
    table = segment_table([pseudo.videos.get(v) for v in video_ids], geometries, gt.class_index, source)
    if np.any(table.weight < 0):
        raise InputError(f"{source}: instance scores must be >= 0 to weight losses (data.segments)")
    log.info("segments: %d pseudo instances for %d training videos from %s", len(table), len(video_ids), source)
    return table
