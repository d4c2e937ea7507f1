"""Precision-recall curves of segment detection, from the very matching `segment_map` scores.

Per tIoU threshold and class (those with ground truth), over the class's predictions in rank order
(descending score, stable): `precision = cumsum(tp) / (cumsum(tp) + cumsum(fp))` and
`recall = cumsum(tp) / n_gt`, the arrays ActivityNet's `compute_average_precision_detection` builds before
`interpolated_prec_rec`. `PrecisionRecallCurves.ap()` applies that interpolation to them and equals
`segment_map(...).ap`; `mean_envelope()` is the class-averaged curve that `pointtal.viz` plots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from pointtal.evaluation.detection import THUMOS_TIOUS, check_thresholds, segment_matches
from pointtal.evaluation.tables import SegmentTable


@dataclass(frozen=True)
class PrecisionRecallCurves:
    """Raw (not interpolated) precision/recall of each evaluated class, per threshold.

    `thresholds` (T,); `classes` (C,) the classes with ground truth; `precision[c]`, `recall[c]`,
    (T, N_c) over class c's N_c predictions in rank order; `scores[c]` (N_c,) their scores (descending);
    `n_gt` (C,) ground-truth instances per class.
    """

    thresholds: np.ndarray
    classes: tuple[str, ...]
    precision: tuple[np.ndarray, ...]
    recall: tuple[np.ndarray, ...]
    scores: tuple[np.ndarray, ...]
    n_gt: np.ndarray

    def ap(self) -> np.ndarray:
        """(T, C) VOC-2011 interpolated AP of every curve (0 for a class without predictions)."""
        ap = np.zeros((self.thresholds.size, len(self.classes)))
        for c, (precision, recall) in enumerate(zip(self.precision, self.recall, strict=True)):
            for t in range(self.thresholds.size):
                ap[t, c] = interpolated_ap(precision[t], recall[t])
        return ap

    def envelope(self, t: int, c: int, recall_grid: np.ndarray) -> np.ndarray:
        """(K,) interpolated precision of class c at threshold index t: max precision at recall >= r,
        0 beyond the class's final recall."""
        precision, recall = self.precision[c][t], self.recall[c][t]
        if precision.size == 0:
            return np.zeros(recall_grid.size)
        running = np.maximum.accumulate(precision[::-1])[::-1]  # (N_c,) max precision from i on
        at = np.searchsorted(recall, recall_grid, side="left")  # first prediction reaching recall r
        return np.where(at < recall.size, running[np.minimum(at, recall.size - 1)], 0.0)

    def mean_envelope(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Class-averaged interpolated curve at threshold index t: (recall (K,), precision (K,)).

        `recall` holds 0 and every recall value a class reaches; `precision[k]` is the mean over classes
        of their envelopes at `recall[k]`, constant on (recall[k-1], recall[k]] (a 'steps-pre' curve).
        Its area, sum (recall[k] - recall[k-1]) * precision[k], is the mAP at that threshold.
        """
        reached = [r[t] for r in self.recall if r.shape[1]]
        grid = np.unique(np.concatenate([[0.0], *reached]))  # (K,)
        precision = np.mean([self.envelope(t, c, grid) for c in range(len(self.classes))], axis=0)
        return grid, precision


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC-2011 interpolated AP of one raw precision/recall curve (ActivityNet's `interpolated_prec_rec`)."""
    mprec = np.concatenate(([0.0], precision, [0.0]))
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def segment_pr_curves(
    ground_truth: SegmentTable,
    predictions: SegmentTable,
    tious: Iterable[float] = THUMOS_TIOUS,
    *,
    exclude_videos: Iterable[str] | None = None,
    ambiguous: Mapping[str, np.ndarray] | None = None,
) -> PrecisionRecallCurves:
    """Precision/recall per tIoU threshold and class; same arguments and matching as `segment_map`."""
    thresholds = check_thresholds(tious, "tIoU")
    matches, _ = segment_matches(ground_truth, predictions, thresholds, exclude_videos, ambiguous)
    class_start = np.searchsorted(matches.label, np.arange(len(matches.classes) + 1))  # (C_all + 1,)
    precision, recall, scores = [], [], []
    for c in np.flatnonzero(matches.evaluated):
        lo, hi = class_start[c], class_start[c + 1]
        tp = np.cumsum(matches.tp[:, lo:hi], axis=1).astype(np.float64)  # (T, N_c)
        fp = np.cumsum(~matches.tp[:, lo:hi], axis=1).astype(np.float64)
        precision.append(tp / np.maximum(tp + fp, 1.0))
        recall.append(tp / float(matches.n_gt_per_class[c]))
        scores.append(matches.score[lo:hi])
    return PrecisionRecallCurves(
        thresholds,
        matches.evaluated_classes,
        tuple(precision),
        tuple(recall),
        tuple(scores),
        matches.n_gt_per_class[matches.evaluated].copy(),
    )
