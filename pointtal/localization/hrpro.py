"""HR-Pro proposal generation and post-processing (numpy only): stage-1 proposals, Gaussian soft-NMS, the
reliability ranking that turns stage-1 proposals and points into stage-2 training proposals and pseudo labels.

Pipeline of one video (the official `S_test` in "test" mode, then `reliability_ranking`):
    select_classes -> upsample_extrapolate -> stage1_proposals (class-CAS and class-agnostic thresholds,
    outer-inner contrast) -> [inference: soft_nms per class] / [ranking: match_points, negative_proposals]

Units: snippet units throughout (the official code works in seconds; a proposal `[u0, u1]` of the `scale`-times
upsampled sequence is `[u0 / scale, (u1 + 1) / scale)` snippets). Classes are 1..C (column 0 = background).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pointtal.localization.nms import soft_nms, soft_nms_per_class  # noqa: F401 (HR-Pro's soft-NMS, shared)
from pointtal.localization.runs import find_runs_2d
from pointtal.localization.upsample import upsample

CAS_THRESHOLDS = tuple(round(0.025 * i, 3) for i in range(10))  # np.arange(0.0, 0.25, 0.025)
AGNOSTIC_THRESHOLDS = tuple(round(0.5 + 0.025 * i, 3) for i in range(9))  # np.arange(0.5, 0.725, 0.025)


@dataclass(frozen=True)
class RawProposals:
    """Stage-1 proposals of one video, in generation order (thresholding kind, threshold, class, start)."""

    start: np.ndarray  # (N,) float64 snippet units
    end: np.ndarray  # (N,) float64 snippet units (exclusive)
    label: np.ndarray  # (N,) int64 class 1..C
    score: np.ndarray  # (N,) float64 outer-inner contrast (+ gamma * video score)

    def __len__(self) -> int:
        return len(self.start)

    def array(self) -> np.ndarray:
        """(N, 4) [start, end, score, class] (the official stage-2 proposal layout)."""
        return np.column_stack([self.start, self.end, self.score, self.label]).astype(np.float64).reshape(-1, 4)


def select_classes(video_scores: np.ndarray, class_thresh: float) -> np.ndarray:
    """Action classes (1..C) with video score >= class_thresh, else the best one. video_scores (C+1,), col 0 unused."""
    action = np.asarray(video_scores, dtype=np.float64)[1:]  # (C,)
    kept = np.flatnonzero(action >= class_thresh)
    if kept.size == 0:
        kept = np.array([int(np.argmax(action))])
    return kept + 1


def upsample_extrapolate(values: np.ndarray, scale: int) -> np.ndarray:
    """(T, K) -> (T*scale, K) float64 at positions u / scale, u = 0..T*scale-1, extrapolating past the last
    snippet (the official `upgrade_resolution`; the shared `localization.upsample.upsample`, "index" positions)."""
    return upsample(np.asarray(values, dtype=np.float64), scale, "index")


def _contrast(
    values: np.ndarray, column: np.ndarray, start: np.ndarray, last: np.ndarray, outer_ratio: float
) -> np.ndarray:
    """mean(values[start..last]) - mean(outer) per run, values (R, U, K) indexed by run `column` = (r, k).

    Outer region (the official `get_proposal_oic`): [max(0, floor(start - r*len)), start) and
    (last, min(U-1, floor(last + r*len))]; an empty outer region has mean 0. Prefix sums: O(1) per run.
    """
    r, k = column
    n_points = values.shape[1]
    prefix = np.zeros((values.shape[0], n_points + 1, values.shape[2]))  # (R, U+1, K)
    np.cumsum(values, axis=1, out=prefix[:, 1:])
    length = last - start + 1  # (N,)
    outer_start = np.maximum(np.floor(start - outer_ratio * length), 0).astype(np.int64)
    outer_end = np.minimum(np.floor(last + outer_ratio * length), n_points - 1).astype(np.int64)  # inclusive
    inside = (prefix[r, last + 1, k] - prefix[r, start, k]) / length
    outside_sum = prefix[r, start, k] - prefix[r, outer_start, k] + prefix[r, outer_end + 1, k] - prefix[r, last + 1, k]
    outside_n = (start - outer_start) + (outer_end - last)
    outside = np.divide(outside_sum, outside_n, out=np.zeros_like(outside_sum), where=outside_n > 0)
    return inside - outside


def _threshold_runs(
    kept: np.ndarray,
    scored: np.ndarray,
    classes: np.ndarray,
    video_scores: np.ndarray,
    scale: int,
    outer_ratio: float,
    gamma: float,
) -> RawProposals:
    """Runs of `kept` (R, U, K) bool, each scored on `scored` (R, U, K): ordered by threshold r, class k, start."""
    n_thr, n_points, n_cls = kept.shape
    row, start, end = find_runs_2d(kept.transpose(0, 2, 1).reshape(-1, n_points))  # rows = r * K + k
    r, k = np.divmod(row, n_cls)
    last = end - 1
    label = classes[k]
    score = _contrast(scored, (r, k), start, last, outer_ratio) + gamma * video_scores[label]
    return RawProposals(start / scale, (last + 1) / scale, label.astype(np.int64), score)


def stage1_proposals(
    cas: np.ndarray,
    video_scores: np.ndarray,
    *,
    class_thresh: float = 0.5,
    scale: int = 2,
    cas_thresholds=CAS_THRESHOLDS,
    agnostic_thresholds=AGNOSTIC_THRESHOLDS,
    outer_ratio: float = 0.25,
    gamma: float = 0.0,
) -> RawProposals:
    """Every stage-1 proposal of one video, not suppressed (the official `S_test` in "test" mode).

    cas (T, C+1): column 0 the background probability b, columns 1..C the fused class scores s_c * (1 - b);
    video_scores (C+1,) top-k class scores (column 0 unused). For the kept classes, the CAS and the
    class-agnostic score 1 - b are upsampled `scale` times; a class-CAS threshold keeps the points with value
    >= threshold and > 0 and scores each run on the CAS with points below the threshold zeroed; an agnostic
    threshold keeps the points whose 1 - b >= threshold and scores each run on the plain CAS.
    """
    cas = np.asarray(cas, dtype=np.float64)
    video_scores = np.asarray(video_scores, dtype=np.float64)
    if cas.shape[0] == 0:
        return RawProposals(np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0))
    classes = select_classes(video_scores, class_thresh)  # (K,)
    up = upsample_extrapolate(cas[:, classes], scale)  # (U, K)
    agnostic = upsample_extrapolate(1.0 - cas[:, :1], scale)  # (U, 1)
    cas_thr = np.asarray(cas_thresholds, dtype=np.float64)[:, None, None]  # (R1, 1, 1)
    zeroed = np.where(up[None] < cas_thr, 0.0, up[None])  # (R1, U, K)
    first = _threshold_runs(zeroed > 0, zeroed, classes, video_scores, scale, outer_ratio, gamma)
    agn_thr = np.asarray(agnostic_thresholds, dtype=np.float64)[:, None, None]  # (R2, 1, 1)
    agn = np.where(agnostic[None] < agn_thr, 0.0, agnostic[None])  # (R2, U, 1)
    kept = np.broadcast_to(agn > 0, (len(agnostic_thresholds), *up.shape))  # (R2, U, K)
    second = _threshold_runs(kept, np.broadcast_to(up, kept.shape), classes, video_scores, scale, outer_ratio, gamma)
    return RawProposals(
        *(np.concatenate([getattr(first, f), getattr(second, f)]) for f in ("start", "end", "label", "score"))
    )


def valid_segments(segments: np.ndarray) -> np.ndarray:
    """Rows of (N, 4) [start, end, class, score] with finite start < end and a finite score, order kept.

    The official code writes stage-2 segments whose regressed start passed their end; its evaluator
    (ActivityNet `segment_iou`: intersection clipped at 0) gives such a segment tIoU 0 with every ground
    truth, so it only ever counts as a false positive. Dropping these rows after soft-NMS keeps every other
    row (bounds, decayed score, order) as the official output and removes only those false positives."""
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 4)
    keep = (
        np.isfinite(segments[:, 0])
        & np.isfinite(segments[:, 1])
        & (segments[:, 0] < segments[:, 1])
        & np.isfinite(segments[:, 3])
    )
    return segments[keep]


def match_points(proposals: RawProposals, point_time: np.ndarray, point_label: np.ndarray) -> np.ndarray:
    """Reliable proposals (the official `match_point`): for each point, the best-scoring proposal of its class
    that contains it, preferring proposals that lie strictly between the neighbouring points.

    point_time (P,) snippet units, sorted; point_label (P,) classes. Returns (P,) index into the proposals,
    -1 where no proposal of the class with score > 0 contains the point. Ties go to the first proposal.
    """
    point_time = np.asarray(point_time, dtype=np.float64)
    neighbours = np.concatenate([[-1.0], point_time, [1e5]])  # the official t_pos (seconds there; far enough)
    contains = (
        (proposals.start[None, :] <= point_time[:, None])
        & (proposals.end[None, :] >= point_time[:, None])
        & (proposals.label[None, :] == np.asarray(point_label)[:, None])
        & (proposals.score[None, :] > 0)
    )  # (P, N)
    inside = (proposals.start[None, :] > neighbours[:-2, None]) & (proposals.end[None, :] < neighbours[2:, None])
    out = np.full(len(point_time), -1, dtype=np.int64)
    for candidates in (contains & inside, contains):  # with the boundary condition, then without it
        masked = np.where(candidates, proposals.score[None, :], -np.inf)  # (P, N)
        best = np.argmax(masked, axis=1) if masked.shape[1] else np.zeros(len(point_time), np.int64)
        found = (out < 0) & candidates.any(axis=1)
        out[found] = best[found]
    return out


def negative_proposals(
    background_seed: np.ndarray, count: int, rng: np.random.Generator, max_rounds: int = 100
) -> np.ndarray:
    """`count` random background proposals (N, 3) [start, end, -coverage] inside runs of background seeds
    (the official negative proposals of `reliability_ranking`).

    Each draw picks a run uniformly; a one-snippet run [s] gives [s, s+1, -1]; otherwise start =
    floor(U(first, last)), end = floor(U(start, last)), kept when start < end with score
    -(end - start) / (last - first). Draws come in vectorised rounds until `count` are kept or `max_rounds`
    rounds ran (the official loops without bound; runs of two snippets rarely yield a proposal).
    """
    seed = np.asarray(background_seed, dtype=bool)[None, :]
    _, run_start, run_end = find_runs_2d(seed)
    if count <= 0 or len(run_start) == 0:
        return np.zeros((0, 3))
    first, last = run_start.astype(np.float64), (run_end - 1).astype(np.float64)
    found: list[np.ndarray] = []
    total = 0
    for _ in range(max_rounds):  # rounds of draws, not videos or snippets
        pick = rng.integers(0, len(first), size=count)
        lo, hi = first[pick], last[pick]
        start = np.floor(lo + rng.random(count) * (hi - lo))
        end = np.floor(start + rng.random(count) * (hi - start))
        single = hi == lo
        start, end = np.where(single, lo, start), np.where(single, lo + 1, end)
        score = np.where(single, -1.0, -(end - start) / np.where(single, 1.0, hi - lo))
        good = start < end
        rows = np.column_stack([start, end, score])[good]
        found.append(rows)
        total += len(rows)
        if total >= count:
            break
    return np.concatenate(found)[:count]
