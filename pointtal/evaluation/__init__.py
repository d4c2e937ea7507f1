"""Evaluation (numpy only): segment detection mAP equal to ActivityNet's official code, single-frame mAP
(SF-Net), video classification mAP and average recall at AN (proposals), plus readers for prediction
files. APs are fractions in [0, 1]."""

from pointtal.evaluation.classification import average_precision, classification_map, video_classification_ap
from pointtal.evaluation.curves import PrecisionRecallCurves, interpolated_ap, segment_pr_curves
from pointtal.evaluation.detection import (
    ANET_TIOUS,
    THUMOS_TIOUS,
    DetectionResult,
    overlaps_ambiguous,
    segment_map,
    segment_tiou,
)
from pointtal.evaluation.frames import FRAME_DISTANCES, frame_map, point_distance
from pointtal.evaluation.loaders import (
    load_ambiguous,
    load_frame_predictions,
    load_proposals,
    load_segment_predictions,
)
from pointtal.evaluation.recall import RecallResult, average_recall
from pointtal.evaluation.tables import PointTable, SegmentTable

__all__ = [
    "ANET_TIOUS",
    "FRAME_DISTANCES",
    "THUMOS_TIOUS",
    "DetectionResult",
    "PointTable",
    "PrecisionRecallCurves",
    "RecallResult",
    "SegmentTable",
    "average_precision",
    "average_recall",
    "classification_map",
    "frame_map",
    "interpolated_ap",
    "load_ambiguous",
    "load_frame_predictions",
    "load_proposals",
    "load_segment_predictions",
    "overlaps_ambiguous",
    "point_distance",
    "segment_map",
    "segment_pr_curves",
    "segment_tiou",
    "video_classification_ap",
]
