"""Single-frame localization mAP (SF-Net), with the same greedy matching as segment mAP.

A predicted point `(video, time, label, score)` hits a ground-truth instance `[s, e]` of its class in its
video when `s <= time <= e`; its distance to that instance is `|time - (s + e) / 2| / (e - s) * 2`
(0 at the centre, 1 at a boundary, 2 when outside). Points are visited in descending score (stable);
each visits its instances in increasing distance (ties: the later annotation first, as for segments) and
takes the first one with distance <= threshold not yet taken at that threshold, otherwise it is a false
positive. AP is the VOC-2011 interpolated area, as for segments. Thresholds: 0.25, 0.5, 0.75, 1.0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from pointtal.evaluation.detection import DetectionResult, check_thresholds, prepare, ranked_ap
from pointtal.evaluation.tables import PointTable, SegmentTable

FRAME_DISTANCES = (0.25, 0.5, 0.75, 1.0)


def point_distance(time_sec: np.ndarray, gt_start: np.ndarray, gt_end: np.ndarray) -> np.ndarray:
    """Element-wise (broadcast) normalised distance of points to instances; 2 outside the instance."""
    mid = (gt_start + gt_end) / 2
    inside = (gt_start <= time_sec) & (time_sec <= gt_end)
    return np.where(inside, np.abs(time_sec - mid) / (gt_end - gt_start) * 2, 2.0)


def frame_map(
    ground_truth: SegmentTable,
    predictions: PointTable,
    distances: Iterable[float] = FRAME_DISTANCES,
    *,
    exclude_videos: Iterable[str] | None = None,
    ambiguous: Mapping[str, np.ndarray] | None = None,
) -> DetectionResult:
    """Single-frame AP per distance threshold and class (`criterion="distance"`).

    `exclude_videos` drops videos from both sides; `ambiguous` (video id -> (K, 2) seconds) discards
    points lying inside an ambiguous segment (start <= time <= end).
    """
    thresholds = check_thresholds(distances, "distance")
    if not np.all(np.isfinite(predictions.time_sec)) or not np.all(np.isfinite(predictions.score)):
        raise ValueError("predictions: times and scores must be finite")
    ground_truth, predictions, counts = prepare(ground_truth, predictions, exclude_videos, ambiguous)

    def similarity(pred, pred_rows, gt_rows):  # negated distance: "similar enough" is sim >= -threshold
        return -point_distance(pred.time_sec[pred_rows], ground_truth.start_sec[gt_rows], ground_truth.end_sec[gt_rows])

    # Below distance 2 only points inside an instance can match: skip the others before computing distances.
    reach = (predictions.time_sec, predictions.time_sec) if thresholds.max() < 2 else None
    ap, classes = ranked_ap(ground_truth, predictions, -thresholds, similarity, reach)
    return DetectionResult(thresholds, classes, ap, "distance", counts)
