"""Average recall at an average number of proposals per video (AR@AN), the ActivityNet proposal protocol
of `eval_proposal.py` (`average_recall_vs_avg_nr_proposals`), vectorised.

The rules (class-agnostic: labels are ignored):
* The evaluated videos are those with ground truth. With `M` = `max_avg_proposals` (100), `V` evaluated
  videos and `N` proposals in all (those of other videos included), each video keeps its
  `floor(n_v * M * V / N)` best-scored proposals (at most n_v); `K` = the kept proposals of all videos.
* The grid of 100 budgets `p_j = (j + 1) / 100 * M * V / K`: at budget j a video looks at its first
  `floor(kept_v * p_j)` proposals (at most kept_v). A ground-truth instance is recalled at tIoU threshold t
  when one of those has tIoU >= t with it (one proposal may recall several instances).
* recall[t, j] = recalled instances / all instances; AR[j] = mean over thresholds; AN[j] = p_j * K / V
  (= (j + 1) * M / 100); AUC = trapezoid area under AR(AN) divided by AN[-1], as the official code reports.

Proposals of a video are ranked by descending score; score ties keep input order (a stable sort, as for
detection mAP; the official `argsort()[::-1]` leaves ties to numpy's sort). Every step uses the official
code's floating-point expressions, so the numbers are its numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from pointtal.evaluation.detection import (
    ANET_TIOUS,
    _check_segments,
    check_thresholds,
    overlap_pairs,
    prepare,
    segment_tiou,
)
from pointtal.evaluation.tables import SegmentTable

GRID = 100  # budgets p_1 .. p_100, as the official code
REPORTED_AN = (1, 5, 10, 100)  # AR@1, AR@5, AR@10, AR@100 (ActivityNet / BMN tables)


@dataclass(frozen=True)
class RecallResult:
    """`recall` (T, 100) per tIoU threshold and budget; `average_recall` (100,) its mean over thresholds;
    `proposals_per_video` (100,) the average number of proposals per video (AN) at each budget."""

    thresholds: np.ndarray
    recall: np.ndarray
    average_recall: np.ndarray
    proposals_per_video: np.ndarray
    max_avg_proposals: float
    counts: dict = field(default_factory=dict)

    @property
    def auc(self) -> float:
        """Area under AR(AN) over AN[-1], a fraction in [0, 1] (the official code prints 100 times it)."""
        return float(_trapezoid(self.average_recall, self.proposals_per_video) / self.proposals_per_video[-1])

    def at(self, an: float) -> float:
        """AR at the budget whose nominal AN is `an` ((j + 1) * M / 100 for j = 0..99)."""
        j = an * GRID / self.max_avg_proposals - 1
        if not (0 <= round(j) < GRID and abs(j - round(j)) < 1e-9):
            raise KeyError(f"AN {an} is not on the grid of {self.max_avg_proposals:g} / {GRID} steps")
        return float(self.average_recall[round(j)])

    @property
    def reported(self) -> dict[int, float]:
        """{AN: AR} for AN in 1, 5, 10, 100 that lie on the grid."""
        out = {}
        for an in REPORTED_AN:
            try:
                out[an] = self.at(an)
            except KeyError:
                continue
        return out


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
    return float(trapezoid(y, x))


def average_recall(
    ground_truth: SegmentTable,
    proposals: SegmentTable,
    tious: Iterable[float] = ANET_TIOUS,
    max_avg_proposals: float = 100,
    *,
    exclude_videos: Iterable[str] | None = None,
    ambiguous: Mapping[str, np.ndarray] | None = None,
) -> RecallResult:
    """AR per budget (see module doc) of `proposals` (labels ignored) against `ground_truth`.

    Args:
        ground_truth: ground-truth segments of the evaluated videos.
        proposals: scored segments; rows of videos without ground truth only count in N.
        tious: (T,) tIoU thresholds in (0, 1].
        max_avg_proposals: M, the largest average number of proposals per video (100).
        exclude_videos, ambiguous: as for `segment_map`.
    """
    thresholds = check_thresholds(tious, "tIoU")
    if not np.all(thresholds > 0):
        raise ValueError(f"recall needs tIoU thresholds > 0, got {thresholds.tolist()}")
    if not max_avg_proposals > 0:
        raise ValueError(f"max_avg_proposals must be > 0, got {max_avg_proposals}")
    _check_segments(ground_truth, "ground truth")
    _check_segments(proposals, "proposals")
    ground_truth, proposals, counts = prepare(ground_truth, proposals, exclude_videos, ambiguous)
    if len(ground_truth) == 0:
        raise ValueError("the ground truth holds no instances to evaluate against")
    gt_videos, gt_video = np.unique(ground_truth.video, return_inverse=True)  # (V,), (G,) 0..V-1
    n_videos = gt_videos.size
    ratio = max_avg_proposals * float(n_videos) / len(proposals) if len(proposals) else 0.0
    rank, kept = _ranks_kept(proposals, gt_videos, ratio)  # (N,) rank in its video, (V,) kept per video
    total = int(kept.sum())
    if total == 0:  # no proposal on an evaluated video: nothing recalled
        budget = np.arange(1, GRID + 1) / float(GRID)
        return RecallResult(
            thresholds,
            np.zeros((thresholds.size, GRID)),
            np.zeros(GRID),
            budget * max_avg_proposals,
            float(max_avg_proposals),
            counts,
        )
    pcn = np.arange(1, GRID + 1) / 100.0 * (max_avg_proposals * float(n_videos) / total)  # (J,) official
    looked = np.minimum((kept[:, None] * pcn[None, :]).astype(np.int64), kept[:, None])  # (V, J)
    first = _first_recalling_rank(ground_truth, proposals, rank, kept, gt_videos, thresholds)  # (T, G)
    recalled = (first[:, :, None] < looked[gt_video][None, :, :]).sum(axis=1)  # (T, J)
    recall = recalled / float(len(ground_truth))
    return RecallResult(
        thresholds,
        recall,
        recall.mean(axis=0),
        pcn * (float(total) / n_videos),
        float(max_avg_proposals),
        {**counts, "kept_proposals": total},
    )


def _ranks_kept(proposals: SegmentTable, gt_videos: np.ndarray, ratio: float):
    """(N,) rank of each proposal within its video (0 = best score; ties keep input order) and (V,) the
    number kept per evaluated video, min(floor(n_v * ratio), n_v) as the official `int(n * ratio)`."""
    order = np.lexsort((np.arange(len(proposals)), -proposals.score, proposals.video))  # by video, score
    video_sorted = proposals.video[order]
    starts = np.flatnonzero(np.concatenate(([True], video_sorted[1:] != video_sorted[:-1])))
    sizes = np.diff(np.append(starts, order.size))
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size) - np.repeat(starts, sizes)
    n_per_video = np.bincount(proposals.video, minlength=int(gt_videos.max()) + 1)[gt_videos]  # (V,)
    kept = (n_per_video * ratio).astype(np.int64)  # float64 product truncated, as int(n * ratio)
    return rank, np.minimum(kept, n_per_video)


def _first_recalling_rank(ground_truth, proposals, rank, kept, gt_videos, thresholds) -> np.ndarray:
    """(T, G) best rank among the kept proposals of its video with tIoU >= threshold, per ground truth;
    int64 max when none."""
    kept_of = np.zeros(int(max(gt_videos.max(), proposals.video.max(initial=0))) + 1, dtype=np.int64)
    kept_of[gt_videos] = kept
    use = np.flatnonzero(rank < kept_of[proposals.video])  # (K,) proposals inside their video's kept part
    pair_prop, pair_gt = overlap_pairs(
        proposals.video[use],
        proposals.start_sec[use],
        proposals.end_sec[use],
        ground_truth.video,
        ground_truth.start_sec,
        ground_truth.end_sec,
    )
    rows = use[pair_prop]
    tiou = segment_tiou(
        proposals.start_sec[rows],
        proposals.end_sec[rows],
        ground_truth.start_sec[pair_gt],
        ground_truth.end_sec[pair_gt],
    )  # (P,)
    by_threshold = np.argsort(thresholds, kind="stable")
    n_eligible = np.searchsorted(thresholds[by_threshold], tiou, side="right")  # (P,) eligible at t < this
    some = np.flatnonzero(n_eligible)
    never = np.iinfo(np.int64).max
    best = np.full((thresholds.size, len(ground_truth)), never, dtype=np.int64)  # (T, G) up to threshold t
    np.minimum.at(best, (n_eligible[some] - 1, pair_gt[some]), rank[rows[some]])
    first = np.minimum.accumulate(best[::-1], axis=0)[::-1]  # (T, G) eligible at t: n_eligible > t
    out = np.empty_like(first)
    out[by_threshold] = first
    return out
