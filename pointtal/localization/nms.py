"""Temporal IoU and greedy 1-D non-maximum suppression (numpy only).

Segments are `[start, end)` intervals in any one unit (snippets, seconds); lengths are `end - start`
(continuous, no "+1" as in frame-index code). tIoU follows docs/evaluation.md:
`max(0, min(e1, e2) - max(s1, s2)) / ((e1 - s1) + (e2 - s2) - intersection)`, and is 0 where the union is 0.
"""

from __future__ import annotations

import numpy as np


def pairwise_tiou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """tIoU of every segment of `a` (N, 2) with every segment of `b` (M, 2): (N, M) float64."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(
        np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0, None
    )  # (N, M)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter  # (N, M)
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def tiou(segment: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """tIoU of one segment (2,) with each of `segments` (N, 2): (N,)."""
    return pairwise_tiou(np.asarray(segment).reshape(1, 2), segments)[0]


def nms(segments: np.ndarray, scores: np.ndarray, tiou_threshold: float) -> np.ndarray:
    """Greedy NMS: indices of the kept segments, highest score first.

    A segment is suppressed when its tIoU with an already kept segment is strictly greater than
    `tiou_threshold` (the torchvision convention; threshold 1.0 keeps even exact duplicates).
    Ties in score are visited in input order (stable sort), so the earlier segment wins.
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    assert len(segments) == len(scores), "one score per segment"
    order = np.argsort(-scores, kind="stable")  # (N,)
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        order = rest[tiou(segments[best], segments[rest]) <= tiou_threshold]
    return np.asarray(keep, dtype=np.int64)


def nms_per_class(
    segments: np.ndarray, scores: np.ndarray, classes: np.ndarray, tiou_threshold: float
) -> np.ndarray:
    """NMS run separately within each class (segments of different classes never suppress each other).

    Returns kept indices ordered by descending score over all classes (stable for ties).
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes).reshape(-1)
    kept = [
        np.flatnonzero(classes == label)[
            nms(segments[classes == label], scores[classes == label], tiou_threshold)
        ]
        for label in np.unique(classes)
    ]  # a loop over classes only (a handful per video)
    keep = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    keep = np.sort(keep)  # input order, so the stable sort below breaks ties by input position
    return keep[np.argsort(-scores[keep], kind="stable")]
