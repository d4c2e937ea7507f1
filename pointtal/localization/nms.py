"""Temporal IoU, greedy 1-D non-maximum suppression, Gaussian soft-NMS and segment voting (numpy only).

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


def soft_nms(segments: np.ndarray, scores: np.ndarray, sigma: float = 0.3, offset: float = 0.0, *,
             area_eps: float = 0.0, min_score: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian soft-NMS: indices in visiting order and their decayed scores.

    Repeatedly takes the highest-scoring remaining segment (first on ties; the swap of the best into the front
    that HR-Pro's and ActionFormer's code make is reproduced, so tie order matches) and multiplies every other
    remaining score by exp(-tIoU^2 / sigma). tIoU uses lengths `end - start + offset + area_eps` and
    intersection `min(ends) - max(starts) + offset` clipped at 0 (HR-Pro: offset 1 in seconds; ActionFormer:
    area_eps 1e-6). With `min_score`, a segment whose decayed score falls below it is dropped (ActionFormer;
    its C++ moves the last segment into the dropped one's place, which changes only the order of exact ties);
    without it nothing is discarded (HR-Pro).
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    work = np.column_stack([segments, np.asarray(scores, dtype=np.float64), np.arange(len(segments))])  # (N, 4)
    area = segments[:, 1] - segments[:, 0] + offset + area_eps
    work = np.column_stack([work, area])  # (N, 5): start, end, score, index, area
    order, kept_scores = [], []
    while work.shape[0]:
        best = int(np.argmax(work[:, 2]))
        work[[0, best]] = work[[best, 0]]
        order.append(int(work[0, 3]))
        kept_scores.append(work[0, 2])
        inter = np.maximum(np.minimum(work[0, 1], work[1:, 1]) - np.maximum(work[0, 0], work[1:, 0]) + offset, 0.0)
        iou = inter / (work[0, 4] + work[1:, 4] - inter)
        work[1:, 2] *= np.exp(-(iou * iou) / sigma)
        work = work[1:]
        if min_score is not None:
            work = work[work[:, 2] >= min_score]
    return np.asarray(order, dtype=np.int64), np.asarray(kept_scores, dtype=np.float64)


def soft_nms_per_class(segments: np.ndarray, scores: np.ndarray, labels: np.ndarray, sigma: float,
                       offset: float = 0.0, *, area_eps: float = 0.0, min_score: float | None = None) -> np.ndarray:
    """(N, 4) [start, end, class, score] after `soft_nms` within each class (classes in order of first
    appearance), rows of a class in visiting order."""
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    _, first = np.unique(labels, return_index=True)
    rows = []
    for label in labels[np.sort(first)]:  # a loop over classes (a handful per video)
        index = np.flatnonzero(labels == label)
        order, decayed = soft_nms(segments[index], np.asarray(scores)[index], sigma, offset, area_eps=area_eps,
                                  min_score=min_score)
        rows.append(np.column_stack([segments[index[order]], np.full(len(order), label), decayed]))
    return np.concatenate(rows).astype(np.float64) if rows else np.zeros((0, 4))


def segment_voting(kept: np.ndarray, segments: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Boundaries of the `kept` (K, 2) segments refined by voting (ActionFormer's `seg_voting`): each becomes
    the average of the candidates `segments` (N, 2) whose tIoU with it is >= `threshold`, weighted by
    score x tIoU (the official adds a score offset that it then never uses; so does this). (K, 2)."""
    kept = np.asarray(kept, dtype=np.float64).reshape(-1, 2)
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    iou = pairwise_tiou(kept, segments)  # (K, N)
    weights = np.where(iou >= threshold, iou, 0.0) * np.asarray(scores, dtype=np.float64)[None, :]  # (K, N)
    total = weights.sum(1, keepdims=True)
    return np.where(total > 0, weights @ segments / np.where(total > 0, total, 1.0), kept)
