"""Segment detection mAP, numerically identical to ActivityNet's `eval_detection.py`, but vectorised.

The rules (docs/evaluation.md): per class, predictions in descending score (stable: ties keep input order);
each visits the ground truths of its class in its video in descending tIoU (ties: the later annotation
first, which is what the official `argsort()[::-1]` does with numpy's classic sort) and takes the first
one with tIoU >= threshold not yet taken at that threshold, else it is a false positive. AP is the
VOC-2011 interpolated area; a class without predictions has AP 0; mAP is the mean over the classes that
have ground truth in the evaluated videos. Predictions for videos without ground truth of their class
(including videos outside the evaluated subset) are false positives, as in the official code.

Two options from later point-supervised work (off by default; they change the numbers):
* `exclude_videos`: video ids dropped from both ground truth and predictions (LACP / HR-Pro drop THUMOS14
  test videos 270, 1292, 1496).
* `ambiguous`: per-video segments marked "Ambiguous" in THUMOS14; a prediction overlapping one of them
  (intersection > 0 seconds, i.e. any overlap) is discarded before matching. This follows HR-Pro/W-TALC's
  `filter_segments` (which tests `IoU > 0`, i.e. a non-empty intersection, on snippet indices); pointtal
  tests the intersection in seconds, so predictions that merely touch an ambiguous segment are kept.

All APs are fractions in [0, 1]; the CLI prints percentages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from pointtal.evaluation.matching import class_average_precision, greedy_match
from pointtal.evaluation.tables import PointTable, SegmentTable, align_classes, align_videos

THUMOS_TIOUS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
ANET_TIOUS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True)
class DetectionResult:
    """AP per threshold and class. `ap` is (T, C) over the evaluated classes (those with ground truth).

    `criterion` is "tiou" for segments (match when tIoU >= threshold) or "distance" for single frames
    (match when normalised distance <= threshold). `counts` says what was evaluated and what was dropped.
    """

    thresholds: np.ndarray
    classes: tuple[str, ...]
    ap: np.ndarray
    criterion: str = "tiou"
    counts: dict = field(default_factory=dict)

    @property
    def map(self) -> np.ndarray:
        """(T,) mean AP over classes, per threshold."""
        return self.ap.mean(axis=1)

    @property
    def average(self) -> float:
        """Mean of the mAPs over all thresholds."""
        return float(self.map.mean())

    @property
    def per_class(self) -> dict[str, np.ndarray]:
        """Class name -> (T,) AP."""
        return {name: self.ap[:, c] for c, name in enumerate(self.classes)}

    def at(self, threshold: float) -> float:
        """mAP at one of the evaluated thresholds."""
        hits = np.flatnonzero(np.isclose(self.thresholds, threshold, rtol=0, atol=1e-9))
        if hits.size == 0:
            raise KeyError(f"threshold {threshold} was not evaluated")
        return float(self.map[hits[0]])

    def average_over(self, low: float, high: float) -> float:
        """Mean mAP over the evaluated thresholds in [low, high] (e.g. 0.3:0.7 on THUMOS14)."""
        inside = (self.thresholds >= low - 1e-9) & (self.thresholds <= high + 1e-9)
        if not inside.any():
            raise KeyError(f"no evaluated threshold in [{low}, {high}]")
        return float(self.map[inside].mean())


def segment_tiou(pred_start: np.ndarray, pred_end: np.ndarray, gt_start: np.ndarray, gt_end: np.ndarray) -> np.ndarray:
    """Element-wise (broadcast) temporal IoU, written exactly as ActivityNet's `segment_iou`."""
    intersection = (np.minimum(pred_end, gt_end) - np.maximum(pred_start, gt_start)).clip(0)
    union = (gt_end - gt_start) + (pred_end - pred_start) - intersection
    return intersection / union


def segment_map(
    ground_truth: SegmentTable,
    predictions: SegmentTable,
    tious: Iterable[float] = THUMOS_TIOUS,
    *,
    exclude_videos: Iterable[str] | None = None,
    ambiguous: Mapping[str, np.ndarray] | None = None,
) -> DetectionResult:
    """Segment detection AP per tIoU threshold and class (see module doc).

    Args:
        ground_truth: ground-truth segments of the evaluated videos (score ignored); its `classes` is the
            class list. Include every evaluated video in its vocabulary, even those without instances.
        predictions: predicted segments with scores; labels must be in the ground truth's class list.
        tious: (T,) tIoU thresholds in (0, 1].
        exclude_videos: ids dropped from ground truth and predictions.
        ambiguous: video id -> (K, 2) [start, end] seconds; overlapping predictions are discarded.
    """
    thresholds = check_thresholds(tious, "tIoU")
    matches, counts = segment_matches(ground_truth, predictions, thresholds, exclude_videos, ambiguous)
    return DetectionResult(thresholds, matches.evaluated_classes, matches.ap(), "tiou", counts)


def segment_matches(
    ground_truth: SegmentTable,
    predictions: SegmentTable,
    thresholds: np.ndarray,
    exclude_videos: Iterable[str] | None = None,
    ambiguous: Mapping[str, np.ndarray] | None = None,
) -> tuple[RankedMatches, dict]:
    """The matching behind `segment_map` (validated (T,) tIoU `thresholds`): ranked true positives, counts."""
    _check_segments(ground_truth, "ground truth")
    _check_segments(predictions, "predictions")
    ground_truth, predictions, counts = prepare(ground_truth, predictions, exclude_videos, ambiguous)

    def similarity(pred, pred_rows, gt_rows):
        return segment_tiou(
            pred.start_sec[pred_rows],
            pred.end_sec[pred_rows],
            ground_truth.start_sec[gt_rows],
            ground_truth.end_sec[gt_rows],
        )

    # With every threshold > 0 only intersecting pairs can match: skip the others before computing tIoU.
    reach = (predictions.start_sec, predictions.end_sec) if thresholds.min() > 0 else None
    return ranked_matches(ground_truth, predictions, thresholds, similarity, reach), counts


def prepare(ground_truth: SegmentTable, predictions, exclude_videos, ambiguous):
    """Apply the exclusion and ambiguous-segment options and put both tables on shared vocabularies.

    Returns (ground truth, predictions, counts), predictions re-indexed so that video index
    >= len(ground_truth.video_ids) means "no ground truth for this video".
    """
    predictions = align_classes(ground_truth, predictions)
    counts = {"predictions_in": len(predictions)}
    if exclude_videos:
        excluded = set(exclude_videos)
        ground_truth = ground_truth.select(~_video_in(ground_truth, excluded))
        drop = _video_in(predictions, excluded)
        counts["dropped_excluded"] = int(drop.sum())
        predictions = predictions.select(~drop)
        counts["excluded_videos"] = sorted(excluded & set(ground_truth.video_ids))
        counts["excluded_unknown"] = sorted(excluded - set(ground_truth.video_ids))
    if ambiguous:
        drop = overlaps_ambiguous(predictions, ambiguous)
        counts["dropped_ambiguous"] = int(drop.sum())
        predictions = predictions.select(~drop)
    predictions, n_gt_videos = align_videos(ground_truth, predictions)
    counts["predictions_unknown_video"] = int((predictions.video >= n_gt_videos).sum())
    n_gt_per_class = np.bincount(ground_truth.label, minlength=len(ground_truth.classes))
    counts["ignored_class_without_gt"] = int((n_gt_per_class[predictions.label] == 0).sum())
    counts["predictions"] = len(predictions)
    counts["ground_truth"] = len(ground_truth)
    return ground_truth, predictions, counts


@dataclass(frozen=True)
class RankedMatches:
    """Outcome of the greedy matching: predictions of classes with ground truth in rank order (by class,
    then descending score, stable), N of them, over C_all classes (the ground truth's class list).

    `tp` (T, N) bool true positive per threshold; `label` (N,) class index (non-decreasing); `score` (N,);
    `n_gt_per_class` (C_all,); `classes` (C_all,) names. Evaluated classes are those with ground truth.
    """

    tp: np.ndarray
    label: np.ndarray
    score: np.ndarray
    n_gt_per_class: np.ndarray
    classes: tuple[str, ...]

    @property
    def evaluated(self) -> np.ndarray:
        """(C_all,) bool: classes with ground truth."""
        return self.n_gt_per_class > 0

    @property
    def evaluated_classes(self) -> tuple[str, ...]:
        return tuple(name for name, keep in zip(self.classes, self.evaluated, strict=True) if keep)

    def ap(self) -> np.ndarray:
        """(T, C) VOC-2011 interpolated AP of the evaluated classes."""
        return class_average_precision(self.tp, self.label, self.n_gt_per_class)[:, self.evaluated]


def ranked_ap(ground_truth: SegmentTable, predictions, thresholds: np.ndarray, similarity, reach=None):
    """AP (T, C) of the C classes with ground truth, and their names (see `ranked_matches`)."""
    matches = ranked_matches(ground_truth, predictions, thresholds, similarity, reach)
    return matches.ap(), matches.evaluated_classes


def ranked_matches(
    ground_truth: SegmentTable, predictions, thresholds: np.ndarray, similarity, reach=None
) -> RankedMatches:
    """Greedy matching of the predictions of classes with ground truth, in rank order.

    `similarity(predictions, pred_rows, gt_rows)` gives the (M,) similarity of candidate pairs (same class
    and video); a pair is eligible when similarity >= threshold and visited in decreasing similarity.
    `reach`, when given, is the (N,) [start, end] interval of each prediction such that an eligible ground
    truth always intersects it (closed intervals); only those candidates are generated, instead of every
    ground truth of the same class and video.
    """
    n_classes = len(ground_truth.classes)
    n_gt_per_class = np.bincount(ground_truth.label, minlength=n_classes)  # (C,)
    evaluated = n_gt_per_class > 0
    if not evaluated.any():
        raise ValueError("the ground truth holds no instances to evaluate against")
    if evaluated.all():
        order = rank_order(predictions.label, predictions.score)
    else:  # predictions of classes without ground truth count nowhere
        has_gt = np.flatnonzero(evaluated[predictions.label])
        order = has_gt[rank_order(predictions.label[has_gt], predictions.score[has_gt])]
    pred_label = predictions.label[order]  # (N,) rank order: by class, then descending score
    pred_key = predictions.video[order] * n_classes + pred_label
    gt_key = ground_truth.video * n_classes + ground_truth.label
    if reach is None:
        pair_pred, pair_gt = same_key_pairs(pred_key, gt_key)
    else:
        pair_pred, pair_gt = overlap_pairs(
            pred_key, reach[0][order], reach[1][order], gt_key, ground_truth.start_sec, ground_truth.end_sec
        )
    sim = similarity(predictions, order[pair_pred], pair_gt)
    keep = np.flatnonzero(sim >= thresholds.min())  # indices: one pass instead of one per masked array
    pair_pred, pair_gt, sim = pair_pred[keep], pair_gt[keep], sim[keep]
    visit = visit_order(pair_pred, pair_gt, sim)
    tp = greedy_match(pair_pred[visit], pair_gt[visit], sim[visit], thresholds, order.size, len(ground_truth))
    return RankedMatches(tp, pred_label, predictions.score[order], n_gt_per_class, tuple(ground_truth.classes))


def rank_order(label: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Permutation sorting by class, then descending score; ties keep input order (a stable sort)."""
    by_score = np.argsort(-score)  # fast unstable sort: exact unless scores tie
    ordered = score[by_score]
    if np.any(ordered[1:] == ordered[:-1]):
        by_score = np.argsort(-score, kind="stable")
    narrow = np.int16 if label.size == 0 or label.max() < np.iinfo(np.int16).max else np.int64
    return by_score[np.argsort(label[by_score].astype(narrow), kind="stable")]  # radix sort for int16


def visit_order(pair_pred: np.ndarray, pair_gt: np.ndarray, sim: np.ndarray) -> np.ndarray:
    """Permutation of pairs (grouped by prediction) putting each prediction's pairs in visiting order:
    decreasing similarity, ties: later ground truth first. Only predictions with several pairs move."""
    visit = np.arange(pair_pred.size)
    same = pair_pred[1:] == pair_pred[:-1]  # pairs are grouped by prediction
    several = np.flatnonzero(np.concatenate((same, [False])) | np.concatenate(([False], same)))
    if several.size == 0:
        return visit
    pred, gt = pair_pred[several], pair_gt[several]
    levels, level = np.unique(sim[several], return_inverse=True)  # exact ranks of the similarities
    group = np.cumsum(np.concatenate(([0], pred[1:] != pred[:-1])))  # (S,) 0, 1, ... per prediction
    n_gt = int(gt.max()) + 1
    if (int(group[-1]) + 1) * levels.size * n_gt < 2**62:  # one int64 key: np.lexsort is several times slower
        key = (group * levels.size + (levels.size - 1 - level)) * n_gt + (n_gt - 1 - gt)  # unique per pair
        visit[several] = several[np.argsort(key)]
    else:
        visit[several] = several[np.lexsort((-gt, -sim[several], pred))]
    return visit


def same_key_pairs(pred_key: np.ndarray, gt_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (prediction, ground truth) index pairs with equal keys, ordered by prediction then GT index."""
    gt_order = np.argsort(gt_key, kind="stable")
    lo = np.searchsorted(gt_key[gt_order], pred_key, side="left")
    hi = np.searchsorted(gt_key[gt_order], pred_key, side="right")
    return _expand_ranges(lo, hi, gt_order)


def overlap_pairs(pred_key, pred_start, pred_end, gt_key, gt_start, gt_end) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, ground truth) pairs with equal keys whose closed intervals may intersect.

    A superset of the intersecting pairs: within a key, ground truths sorted by start; an intersecting one
    starts in [pred_start - longest ground truth of the key, pred_end]. The search runs on one sorted array
    of `key_rank * span + start`, with a safety margin that absorbs its rounding.
    """
    if gt_key.size == 0 or pred_key.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    gt_order = np.lexsort((gt_start, gt_key))
    key = gt_key[gt_order]
    new_group = np.concatenate(([True], key[1:] != key[:-1]))
    group_first = np.flatnonzero(new_group)
    group_of_key = np.full(int(key[-1]) + 2, -1, dtype=np.int64)  # dense lookup: key -> group, last: none
    group_of_key[key[group_first]] = np.arange(group_first.size)
    longest = np.maximum.reduceat((gt_end - gt_start)[gt_order], group_first)  # (K,)
    t_min, t_max = float(gt_start.min()), float(gt_start.max())
    span = t_max - t_min + 4.0
    composite = (np.cumsum(new_group) - 1) * span + (gt_start[gt_order] - t_min)  # (G,) sorted
    margin = 1e-6 + 1e-12 * group_first.size * span
    group = group_of_key[np.minimum(pred_key, key[-1] + 1)]  # (N,) -1: no ground truth with this key
    lo = np.zeros(pred_key.size, dtype=np.int64)
    hi = np.zeros(pred_key.size, dtype=np.int64)
    found = np.flatnonzero(group >= 0)
    group = group[found]
    low = np.clip(pred_start[found] - longest[group] - margin, t_min - 1, t_max + 1) - t_min + group * span
    high = np.clip(pred_end[found] + margin, t_min - 1, t_max + 1) - t_min + group * span
    # searchsorted is several times faster on (nearly) sorted queries: search in the order of `low`
    by_low = np.argsort(low)
    rows = found[by_low]
    low_sorted = low[by_low]
    # lo = searchsorted(composite, low_sorted, "left"), i.e. the entries below each query, counted the other
    # way round: entry c is below query i exactly when i >= searchsorted(low_sorted, c, "right").
    below = np.bincount(np.searchsorted(low_sorted, composite, side="right"), minlength=low_sorted.size + 1)
    lo[rows] = np.cumsum(below)[:-1]
    hi[rows] = np.searchsorted(composite, high[by_low], side="right")
    return _expand_ranges(lo, np.maximum(hi, lo), gt_order)


def _expand_ranges(lo: np.ndarray, hi: np.ndarray, gt_order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, gt_order[j]) for every i and lo[i] <= j < hi[i], ordered by i then j."""
    count = hi - lo  # (N,)
    pair_pred = np.repeat(np.arange(lo.size), count)  # (M,)
    shift = lo - (np.cumsum(count) - count)  # pair k of prediction i sits at j = k + shift[i]
    return pair_pred, gt_order[np.arange(pair_pred.size) + shift[pair_pred]]


def overlaps_ambiguous(table: SegmentTable | PointTable, ambiguous: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N,) bool: segment rows intersecting (> 0 s) an ambiguous segment of their video; for point rows,
    points inside one (start <= time <= end)."""
    hit = np.zeros(len(table), dtype=bool)
    position = {v: i for i, v in enumerate(table.video_ids)}
    for video_id, segments in ambiguous.items():
        if video_id not in position or len(segments) == 0:
            continue
        rows = np.flatnonzero(table.video == position[video_id])
        seg = np.asarray(segments, dtype=np.float64).reshape(-1, 2)  # (K, 2)
        if isinstance(table, PointTable):
            t = table.time_sec[rows, None]
            inside = (seg[None, :, 0] <= t) & (t <= seg[None, :, 1])
        else:
            inter = np.minimum(table.end_sec[rows, None], seg[None, :, 1]) - np.maximum(
                table.start_sec[rows, None], seg[None, :, 0]
            )  # (R, K)
            inside = inter > 0
        hit[rows] = inside.any(axis=1)
    return hit


def _video_in(table, video_ids: set[str]) -> np.ndarray:
    flagged = np.array([v in video_ids for v in table.video_ids], dtype=bool)
    return flagged[table.video] if len(table) else np.zeros(0, dtype=bool)


def check_thresholds(values: Iterable[float], what: str) -> np.ndarray:
    thresholds = np.asarray(list(values), dtype=np.float64).reshape(-1)  # (T,)
    if thresholds.size == 0:
        raise ValueError(f"no {what} thresholds given")
    if not np.all(np.isfinite(thresholds)):
        raise ValueError(f"{what} thresholds must be finite, got {thresholds.tolist()}")
    return thresholds


def _check_segments(table: SegmentTable, what: str) -> None:
    ok = np.isfinite(table.start_sec) & np.isfinite(table.end_sec) & (table.start_sec < table.end_sec)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise ValueError(
            f"{what}: row {row} of video {table.video_ids[table.video[row]]!r} has an invalid "
            f"segment [{table.start_sec[row]}, {table.end_sec[row]}] (need finite start < end)"
        )
    if not np.all(np.isfinite(table.score)):
        raise ValueError(f"{what}: scores must be finite")
