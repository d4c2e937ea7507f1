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


def nms_per_class(segments: np.ndarray, scores: np.ndarray, classes: np.ndarray, tiou_threshold: float) -> np.ndarray:
    """NMS run separately within each class (segments of different classes never suppress each other).

    Returns kept indices ordered by descending score over all classes (stable for ties).
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes).reshape(-1)
    kept = [
        np.flatnonzero(classes == label)[nms(segments[classes == label], scores[classes == label], tiou_threshold)]
        for label in np.unique(classes)
    ]  # a loop over classes only (a handful per video)
    keep = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    keep = np.sort(keep)  # input order, so the stable sort below breaks ties by input position
    return keep[np.argsort(-scores[keep], kind="stable")]


def soft_nms(
    segments: np.ndarray,
    scores: np.ndarray,
    sigma: float = 0.3,
    offset: float = 0.0,
    *,
    area_eps: float = 0.0,
    min_score: float | None = None,
    max_kept: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian soft-NMS: indices in visiting order and their decayed scores.

    Repeatedly takes the highest-scoring remaining segment (first on ties; the swap of the best into the front
    that HR-Pro's and ActionFormer's code make is reproduced, so tie order matches) and multiplies every other
    remaining score by exp(-tIoU^2 / sigma). tIoU uses lengths `end - start + offset + area_eps` and
    intersection `min(ends) - max(starts) + offset` clipped at 0 (HR-Pro: offset 1 in seconds; ActionFormer:
    area_eps 1e-6). With `min_score`, a segment whose decayed score falls below it is dropped (ActionFormer;
    its C++ moves the last segment into the dropped one's place, which changes only the order of exact ties);
    without it nothing is discarded (HR-Pro).

    `max_kept` K stops after K visits: decays only lower scores (weights <= 1), so the visiting order is by
    non-increasing decayed score and the first K visits are exactly the K best-scored rows of the full output,
    at O(K N) instead of O(N^2) cost.
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    work = np.column_stack([segments, np.asarray(scores, dtype=np.float64), np.arange(len(segments))])  # (N, 4)
    area = segments[:, 1] - segments[:, 0] + offset + area_eps
    work = np.column_stack([work, area])  # (N, 5): start, end, score, index, area
    order, kept_scores = [], []
    while work.shape[0] and (max_kept is None or len(order) < max_kept):
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


def soft_nms_per_class(
    segments: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    sigma: float,
    offset: float = 0.0,
    *,
    area_eps: float = 0.0,
    min_score: float | None = None,
    max_per_class: int | None = None,
) -> np.ndarray:
    """(N, 4) [start, end, class, score] after `soft_nms` within each class (classes in order of first
    appearance, as HR-Pro's dict), rows of a class in visiting order; with `max_per_class` K only each class's
    first K visits (its K best-scored rows of the full output, see `soft_nms`).

    Without `min_score` every class runs at once (`_soft_nms_side_by_side`); with it (segments are dropped
    as their scores decay) the classes run one after another.
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    _, first = np.unique(labels, return_index=True)
    classes = labels[np.sort(first)]
    if not len(classes):
        return np.zeros((0, 4))
    members = [np.flatnonzero(labels == label) for label in classes]  # a loop over classes (a handful)
    if min_score is None:
        return _soft_nms_side_by_side(
            segments, scores, classes, members, sigma, offset + area_eps, offset, max_per_class
        )
    rows = []
    for label, index in zip(classes, members, strict=True):
        order, decayed = soft_nms(
            segments[index],
            scores[index],
            sigma,
            offset,
            area_eps=area_eps,
            min_score=min_score,
            max_kept=max_per_class,
        )
        rows.append(np.column_stack([segments[index[order]], np.full(len(order), label), decayed]))
    return np.concatenate(rows).astype(np.float64)


def _soft_nms_side_by_side(
    segments: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    members: list[np.ndarray],
    sigma: float,
    area_offset: float,
    offset: float,
    max_per_class: int | None,
) -> np.ndarray:
    """`soft_nms` of every class at once: the classes' rows side by side in a (K classes, longest) array, one
    visit of every class per step (padding scores -inf, never visited, never decayed), so the number of steps
    is the longest class's, not the sum over classes. Same swaps and products per class as `soft_nms`."""
    counts = np.array([len(m) for m in members])
    real = np.arange(counts.max())[None, :] < counts[:, None]  # (K, W)
    index = np.zeros(real.shape, dtype=np.int64)
    index[real] = np.concatenate(members)  # row r: class r's rows in input order
    start, end = np.where(real, segments[index, 0], 0.0), np.where(real, segments[index, 1], 0.0)  # (K, W)
    score = np.where(real, scores[index], -np.inf)
    area = end - start + area_offset
    visits = counts if max_per_class is None else np.minimum(counts, max_per_class)  # (K,)
    order = np.zeros((len(classes), int(visits.max())), dtype=np.int64)  # (K, V) row of `index` visited
    kept = np.zeros(order.shape)
    columns = (start, end, score, index, area)
    for first in range(int(visits.max())):  # visits, each of every class still visiting
        rows = np.flatnonzero(visits > first)
        best = first + np.argmax(score[rows, first:], axis=1)
        for column in columns:
            front = column[rows, first].copy()
            column[rows, first] = column[rows, best]
            column[rows, best] = front
        order[rows, first], kept[rows, first] = index[rows, first], score[rows, first]
        rest = slice(first + 1, None)
        inter = np.maximum(
            np.minimum(end[rows, first, None], end[rows, rest])
            - np.maximum(start[rows, first, None], start[rows, rest])
            + offset,
            0.0,
        )
        iou = inter / (area[rows, first, None] + area[rows, rest] - inter)
        score[rows, rest] = np.where(real[rows, rest], score[rows, rest] * np.exp(-(iou * iou) / sigma), -np.inf)
    out = [
        np.column_stack([segments[order[r, :v]], np.full(v, label), kept[r, :v]])
        for r, (label, v) in enumerate(zip(classes, visits, strict=True))
    ]
    return np.concatenate(out).astype(np.float64)


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
