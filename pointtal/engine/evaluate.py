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


def protocol_for(config: Config) -> Protocol:
    """The evaluation protocol of a run: `data.exclude_videos` (names expanded), `data.ambiguous` (a file or a
    shipped name, resolved to its path) and `eval.tiou`."""
    return Protocol(excluded_videos(config.data.exclude_videos), ambiguous_path(config.data.ambiguous),
                    tuple(config.eval.tiou))


def load_protocol_ambiguous(protocol: Protocol, key: str = "data.ambiguous"):
    """The protocol's ambiguous segments (video id -> (K, 2) seconds), or None; a missing file names `key`."""
    if protocol.ambiguous is None:
        return None
    try:
        return load_ambiguous(protocol.ambiguous)
    except InputError as err:
        raise InputError(f"{err} ({key})") from None


def _segment_table(predictions, video_ids: Sequence[str], classes) -> SegmentTable:
    rows = {vid: [(*e["segment"], e["label"], e["score"]) for e in predictions.segments.get(vid, [])]
            for vid in video_ids}
    return SegmentTable.from_mapping(rows, classes)


def _frame_table(predictions, video_ids: Sequence[str], classes) -> PointTable:
    ids, times, labels, scores = [], [], [], []
    for vid in video_ids:
        for e in predictions.frames.get(vid, []):
            ids.append(vid)
            times.append(e["frame"])
            labels.append(e["label"])
            scores.append(e["score"])
    table = PointTable.from_columns(ids, times, labels, scores, classes)
    return table.with_video_ids(tuple(dict.fromkeys([*table.video_ids, *video_ids])))


def evaluate_predictions(gt: GroundTruth, video_ids: Sequence[str], predictions, tious, ambiguous=None) -> dict:
    """Segment mAP per tIoU and averages, single-frame mAP and video classification mAP, in percent.
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
    labels = np.zeros((len(video_ids), len(classes)))  # (V, C)
    for row, vid in enumerate(video_ids):
        for inst in gt.videos[vid].instances:
            labels[row, classes.index(inst.label)] = 1
    scores = np.stack([predictions.video_scores[v][1:] for v in video_ids])  # (V, C)
    record["cmAP"] = 100 * classification_map(scores, labels)
    return record
