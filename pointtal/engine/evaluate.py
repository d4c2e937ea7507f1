"""Metrics of a run's predictions against the ground truth (percent, as papers report them)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pointtal.config import Config
from pointtal.data.annotations import GroundTruth
from pointtal.errors import InputError
from pointtal.evaluation import PointTable, SegmentTable, classification_map, frame_map, segment_map
from pointtal.evaluation.loaders import load_ambiguous
from pointtal.evaluation.protocol import Protocol, ambiguous_path, excluded_videos
from pointtal.localization.detections import Detections


def protocol_for(config: Config) -> Protocol:
    """The evaluation protocol of a run: `data.exclude_videos` (names expanded), `data.ambiguous` (a file or a
    shipped name, resolved to its path) and `eval.tiou`."""
    return Protocol(
        excluded_videos(config.data.exclude_videos), ambiguous_path(config.data.ambiguous), tuple(config.eval.tiou)
    )


def load_protocol_ambiguous(protocol: Protocol, key: str = "data.ambiguous"):
    """The protocol's ambiguous segments (video id -> (K, 2) seconds), or None; a missing file names `key`."""
    if protocol.ambiguous is None:
        return None
    try:
        return load_ambiguous(protocol.ambiguous)
    except InputError as err:
        raise InputError(f"{err} ({key})") from None


_NONE = Detections(np.zeros((0, 4)), np.zeros((0, 3)), "seconds")  # a video without predictions


def _segment_table(predictions, video_ids: Sequence[str], classes) -> SegmentTable:
    """The predicted segments of `video_ids` (every one in the vocabulary, with segments or not)."""
    found = [predictions.detections.get(vid, _NONE) for vid in video_ids]
    ids = [vid for vid, f in zip(video_ids, found, strict=True) for _ in range(len(f))]
    labels = [classes[int(c) - 1] for f in found for c in f.label.tolist()]
    table = SegmentTable.from_columns(
        ids,
        _cat([f.start for f in found]),
        _cat([f.end for f in found]),
        labels,
        _cat([f.score for f in found]),
        classes,
    )
    return table.with_video_ids(tuple(dict.fromkeys([*table.video_ids, *video_ids])))


def _frame_table(predictions, video_ids: Sequence[str], classes) -> PointTable:
    """The predicted single frames of `video_ids` (every one in the vocabulary)."""
    found = [predictions.detections.get(vid, _NONE) for vid in video_ids]
    ids = [vid for vid, f in zip(video_ids, found, strict=True) for _ in range(len(f.frame_at))]
    labels = [classes[int(c) - 1] for f in found for c in f.frame_label.tolist()]
    table = PointTable.from_columns(
        ids, _cat([f.frame_at for f in found]), labels, _cat([f.frame_score for f in found]), classes
    )
    return table.with_video_ids(tuple(dict.fromkeys([*table.video_ids, *video_ids])))


def _cat(columns: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(columns) if columns else np.zeros(0)


def evaluate_predictions(gt: GroundTruth, video_ids: Sequence[str], predictions, tious, ambiguous=None) -> dict:
    """Segment mAP per tIoU and averages, single-frame mAP and video classification mAP (`cmAP`, only where
    the method produces video scores), in percent.
    `ambiguous` (video id -> (K, 2) seconds, the run's protocol) discards the segments overlapping and the
    frames inside those segments, as `pointtal evaluate --ambiguous` does; the videos are `video_ids`
    (the run's test subset less its excluded videos)."""
    classes = gt.classes
    truth = SegmentTable.from_ground_truth([gt.videos[v] for v in video_ids], classes)
    result = segment_map(truth, _segment_table(predictions, video_ids, classes), tious, ambiguous=ambiguous)
    record = {f"mAP@{t:g}": 100 * float(m) for t, m in zip(result.thresholds, result.map, strict=False)}
    record["average"] = 100 * result.average
    if ((result.thresholds >= 0.3 - 1e-9) & (result.thresholds <= 0.7 + 1e-9)).any():  # else average_over raises
        record["average_0.3_0.7"] = 100 * result.average_over(0.3, 0.7)
    frames = frame_map(truth, _frame_table(predictions, video_ids, classes), ambiguous=ambiguous)
    record.update({f"frame_mAP@{d:g}": 100 * float(m) for d, m in zip(frames.thresholds, frames.map, strict=True)})
    record["frame_mAP"] = 100 * frames.average
    if all(v in predictions.video_scores for v in video_ids):  # a method without video scores has no cmAP
        record["cmAP"] = 100 * classification_map(_video_scores(predictions, video_ids), _video_labels(gt, video_ids))
    return record


def _video_labels(gt: GroundTruth, video_ids: Sequence[str]) -> np.ndarray:
    """(V, C) {0, 1}: the classes each video's ground truth holds."""
    labels = np.zeros((len(video_ids), len(gt.classes)))  # (V, C)
    for row, vid in enumerate(video_ids):
        for inst in gt.videos[vid].instances:
            labels[row, gt.classes.index(inst.label)] = 1
    return labels


def _video_scores(predictions, video_ids: Sequence[str]) -> np.ndarray:
    """(V, C) the predicted video-level scores of the action classes."""
    return np.stack([predictions.video_scores[v][1:] for v in video_ids])
