"""SODA inference (docs/methods.md §3.4): multi-threshold proposals scored by outer-inner contrast, then NMS.

Pipeline for one video (numpy only):
    select_classes -> upsample_linear -> threshold_proposals -> outer_inner_contrast -> nms_per_class
    -> segments in snippet units, plus one single frame (the arg-max snippet) per kept segment.

Conventions:
* "upsampled units": the CAS of `T` snippets is resampled to `U = T * scale` points; point `u` covers the
  snippet-time interval `[u/scale, (u+1)/scale)`, so a run `[u0, u1)` is the segment
  `[u0/scale, u1/scale)` in snippet units, and the whole video is `[0, T)`.
* **[choice]** centre-aligned linear interpolation: point `u` takes the CAS value at fractional snippet
  position `(u + 0.5)/scale - 0.5` (snippet `t`'s value sits at its centre), clamped at both ends.
* A proposal is a maximal run of points whose score is **strictly above** a threshold, so with a softmax
  CAS threshold 0.0 yields the whole video (as in the reference code of the OIC family).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pointtal.localization.detections import Detections
from pointtal.localization.nms import nms_per_class
from pointtal.localization.peaks import segment_peaks
from pointtal.localization.runs import find_runs_2d

DEFAULT_THRESHOLDS = tuple(round(0.025 * i, 3) for i in range(10))  # 0.0, 0.025, ..., 0.225


@dataclass(frozen=True)
class Proposals:
    """Runs in a (U, K) array of upsampled class scores."""

    column: np.ndarray  # (N,) int64, column k of the (U, K) array
    start: np.ndarray  # (N,) int64, first point (inclusive, upsampled units)
    end: np.ndarray  # (N,) int64, end point (exclusive, upsampled units)


def select_classes(video_scores: np.ndarray, tau_cls: float) -> np.ndarray:
    """Action classes (1..C) whose video score is > tau_cls; if none, the single best action class.

    The background column 0 is never selected.
    """
    action_scores = np.asarray(video_scores, dtype=np.float64)[1:]  # (C,)
    kept = np.flatnonzero(action_scores > tau_cls)
    if kept.size == 0:
        kept = np.array([int(np.argmax(action_scores))])  # first best on ties
    return kept + 1


def upsample_linear(values: np.ndarray, scale: int) -> np.ndarray:
    """(T, K) -> (T*scale, K) centre-aligned linear interpolation along time (see module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    position = np.clip((np.arange(n * scale) + 0.5) / scale - 0.5, 0.0, n - 1)  # (U,) fractional snippet
    low = np.floor(position).astype(np.int64)  # (U,)
    high = np.minimum(low + 1, n - 1)  # (U,)
    frac = (position - low)[:, None]  # (U, 1)
    return values[low] * (1.0 - frac) + values[high] * frac  # (U, K)


def threshold_proposals(values: np.ndarray, thresholds: tuple[float, ...] | np.ndarray) -> Proposals:
    """Maximal runs strictly above each threshold, for every (threshold, column) pair at once.

    values (U, K); the result lists runs ordered by threshold, then column, then start.
    """
    values = np.asarray(values, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    n_points, n_columns = values.shape
    above = values.T[None, :, :] > thresholds[:, None, None]  # (n_thr, K, U)
    row, start, end = find_runs_2d(above.reshape(-1, n_points))
    return Proposals(column=row % n_columns, start=start.astype(np.int64), end=end.astype(np.int64))


def outer_inner_contrast(values: np.ndarray, proposals: Proposals, outer_ratio: float) -> np.ndarray:
    """mean(inside) - mean(outside) of each proposal in its own column of values (U, K): (N,).

    "Outside" is `pad = ceil(outer_ratio * length)` points on each side, clipped to `[0, U)`.
    **[choice]** When the clipped outside is empty (a proposal covering the whole video, or `pad = 0`),
    the outside mean is 0, as in the reference OIC code, so the contrast is just the inside mean.
    Means come from per-column prefix sums, O(1) per proposal.
    """
    values = np.asarray(values, dtype=np.float64)
    n_points = values.shape[0]
    prefix = np.zeros((n_points + 1, values.shape[1]))  # (U+1, K)
    np.cumsum(values, axis=0, out=prefix[1:])
    col, start, end = proposals.column, proposals.start, proposals.end
    length = end - start  # (N,)
    # (N,) points on each side; the epsilon keeps ceil(0.3 * 10) at 3 despite 0.3 * 10 = 3.0000000000000004
    pad = np.ceil(outer_ratio * length - 1e-9).astype(np.int64)
    outer_start = np.maximum(start - pad, 0)
    outer_end = np.minimum(end + pad, n_points)
    inside = (prefix[end, col] - prefix[start, col]) / length  # (N,)
    outside_sum = (prefix[start, col] - prefix[outer_start, col]) + (prefix[outer_end, col] - prefix[end, col])
    outside_n = (start - outer_start) + (outer_end - end)  # (N,)
    outside = np.divide(outside_sum, outside_n, out=np.zeros_like(outside_sum), where=outside_n > 0)
    return inside - outside


def localize_soda(
    cas: np.ndarray,
    video_scores: np.ndarray,
    *,
    tau_cls: float = 0.25,
    scale: int = 24,
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
    outer_ratio: float = 0.25,
    gamma: float = 0.2,
    nms_tiou: float = 0.7,
) -> Detections:
    """Segments and single frames of one video from its softmax CAS (T, C+1) and video scores (C+1,).

    Segment score = outer-inner contrast + gamma * video_scores[class]; proposals of all thresholds are
    merged per class by NMS at `nms_tiou`. Output rows are ordered by descending score.
    Each kept segment also yields a frame at its arg-max snippet (original, not upsampled, CAS) with the
    segment's score.
    """
    cas = np.asarray(cas, dtype=np.float64)
    video_scores = np.asarray(video_scores, dtype=np.float64)
    if cas.shape[0] == 0:
        return Detections.empty()
    classes = select_classes(video_scores, tau_cls)  # (K,) in 1..C
    upsampled = upsample_linear(cas[:, classes], scale)  # (T*scale, K)
    proposals = threshold_proposals(upsampled, thresholds)
    label = classes[proposals.column]  # (N,)
    score = outer_inner_contrast(upsampled, proposals, outer_ratio) + gamma * video_scores[label]  # (N,)
    bounds = np.stack([proposals.start, proposals.end], axis=1) / scale  # (N, 2) snippet units
    keep = nms_per_class(bounds, score, label, nms_tiou)
    bounds, label, score, column = bounds[keep], label[keep], score[keep], proposals.column[keep]
    peak = segment_peaks(cas[:, classes], column, bounds[:, 0], bounds[:, 1])  # (N,)
    segments = np.column_stack([bounds, label, score]).astype(np.float64).reshape(-1, 4)
    frames = np.column_stack([peak, label, score]).astype(np.float64).reshape(-1, 3)
    return Detections(segments, frames)
