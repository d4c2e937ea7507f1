"""Greedy prediction-to-ground-truth matching and VOC interpolated AP, shared by segment and frame mAP.

The ActivityNet rule (docs/evaluation.md) visits predictions in descending score; each prediction looks at the
ground truths of its class in its video in order of decreasing similarity and takes the first one that is
similar enough (similarity >= threshold) and not already taken at that threshold; otherwise it is a false
positive. That is a sequential greedy process, but it splits into independent problems, one per
(threshold, class, video), and most predictions never compete for anything. `greedy_match` exploits this:

* Only *eligible* pairs (similarity >= threshold) are kept; a prediction without one is a false positive.
* In each round, a prediction is *free* when it is the best-ranked unresolved prediction of every ground
  truth it is eligible for: no earlier unresolved prediction can take any of its ground truths, so its
  outcome is already decided — it takes its first untaken eligible ground truth. Free predictions of one
  round never share a ground truth, so they are all resolved at once with numpy.
* Taken ground truths drop out; a prediction left without eligible pairs is a false positive.
* Most predictions have a single candidate pair; their first round is done on the compact
  (threshold, ground truth) form before anything is expanded (`_presolve_single`), and only the pairs on
  ground truths still contested by a several-pair prediction go on to the rounds.

Each round resolves at least the best-ranked unresolved prediction of every independent problem. When
rounds stop paying off (few pairs left, or a round removed little), the remaining pairs — already in the
right order — are finished by a plain sequential loop. The result is exactly the sequential greedy
outcome; tests/evaluation/test_evaluation.py checks it against a transcription of the official code.
"""

from __future__ import annotations

import numpy as np

# Below this many pairs, or when a round removes less than this fraction of pairs, finish sequentially.
_SEQUENTIAL_PAIRS = 4096
_MIN_ROUND_GAIN = 0.1
_PRESOLVE_SINGLE = True  # decide single-pair predictions on the compact form first (tests switch it off)


def greedy_match(
    pair_pred: np.ndarray,
    pair_gt: np.ndarray,
    pair_similarity: np.ndarray,
    thresholds: np.ndarray,
    n_pred: int,
    n_gt: int,
) -> np.ndarray:
    """True positives of the sequential greedy matching, for every threshold at once.

    Args:
        pair_pred: (M,) prediction rank of each candidate pair; rank 0 is visited first (highest score).
        pair_gt: (M,) ground-truth index (0..n_gt-1) of each pair (the caller pairs a prediction only with
            ground truths of its class and video; predictions compete through shared ground truths).
        pair_similarity: (M,) tIoU (or negated distance) of each pair; eligible when >= threshold.
        thresholds: (T,) thresholds.
        n_pred, n_gt: number of predictions and ground truths.

    Pairs must be sorted by `pair_pred`, then in the order a prediction visits its ground truths
    (decreasing similarity, ties broken by the caller).

    Returns:
        (T, n_pred) bool: whether prediction of rank r is a true positive at threshold t.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    n_thr = thresholds.size
    by_threshold = np.argsort(thresholds, kind="stable")  # work on ascending thresholds
    tp = np.zeros(n_thr * n_pred, dtype=bool)  # (T * N,) indexed by task = t * N + rank
    locked = np.zeros(n_thr * n_gt, dtype=bool)  # (T * G,) ground truth already matched, indexed t * G + g
    if pair_pred.size and n_thr:
        # ascending thresholds: pair j is eligible (similarity >= threshold) at t < n_eligible[j]
        n_eligible = np.searchsorted(thresholds[by_threshold], pair_similarity, side="right")  # (M,)
        n_eligible[np.isnan(pair_similarity)] = 0  # NaN >= threshold is False (searchsorted puts NaN last)
        left = np.arange(pair_pred.size)  # (M',) the pairs still to resolve
        if _PRESOLVE_SINGLE:
            left = _presolve_single(n_eligible, pair_pred, pair_gt, n_pred, tp, locked)
        eligible = np.arange(n_thr)[:, None] < n_eligible[left][None, :]  # (T, M')
        if _PRESOLVE_SINGLE:  # ground truths taken in the presolve are gone
            eligible &= ~locked.reshape(n_thr, n_gt)[:, pair_gt[left]]
        _match_rounds(eligible, pair_pred[left], pair_gt[left], n_pred, tp, locked)
    out = np.empty((n_thr, n_pred), dtype=bool)
    out[by_threshold] = tp.reshape(n_thr, n_pred)
    return out


def _presolve_single(n_eligible, pair_pred, pair_gt, n_pred, tp, locked) -> np.ndarray:
    """A first round on the compact (T, G) form, for predictions with a single candidate pair.

    Such a prediction is decided at threshold t as soon as it is the best-ranked prediction eligible for
    its ground truth at t: it takes it. Marks those true positives and locks, and returns the indices of
    the pairs left for the general rounds: pairs on ground truths taken here are gone (the taker ranks
    before every other prediction eligible for it), so only pairs on a ground truth whose best-ranked
    candidate has several pairs, at some threshold, are left. Thresholds must ascend, so that a pair
    eligible at t is eligible at every lower threshold: pair j is eligible at thresholds 0 .. n_eligible[j] - 1.
    """
    n_thr = tp.size // n_pred  # tp is (T * N,), locked (T * G,)
    n_gt = locked.size // n_thr
    some = np.flatnonzero(n_eligible)
    never = np.iinfo(np.int64).max
    best = np.full((n_thr, n_gt), never, dtype=np.int64)  # (T, G) best rank eligible for g only up to t
    np.minimum.at(best, (n_eligible[some] - 1, pair_gt[some]), pair_pred[some])
    first_rank = np.minimum.accumulate(best[::-1], axis=0)[::-1]  # (T, G) best rank eligible at t
    n_pairs = np.bincount(pair_pred, minlength=n_pred)  # (N,)
    taker = np.where(first_rank == never, 0, first_rank)  # (T, G) the best-ranked prediction at t
    taken = (first_rank != never) & (n_pairs[taker] == 1)  # (T, G) taken by a single-pair prediction
    # A single-pair prediction is a true positive at t exactly when it is that best-ranked prediction for
    # its only ground truth: one entry of `taken` each, so mark them from the small (T, G) form.
    thr_idx, gt_idx = np.nonzero(taken)
    tp[thr_idx * n_pred + taker[thr_idx, gt_idx]] = True
    locked.reshape(n_thr, n_gt)[:] = taken
    open_gt = ((first_rank != never) & ~taken).any(axis=0)  # (G,) contested by a several-pair prediction
    return np.flatnonzero(open_gt[pair_gt])  # (M',) every other pair is decided: TP above or taken


def _match_rounds(eligible, pair_pred, pair_gt, n_pred, tp, locked) -> None:
    """Resolve the eligible (threshold, pair) entries left: parallel rounds, then a sequential finish."""
    n_gt = locked.size // eligible.shape[0]
    thr_idx, pair_idx = np.nonzero(eligible)  # ordered by threshold, then pair order
    rank = pair_pred[pair_idx]
    task = thr_idx * n_pred + rank  # non-decreasing; pairs of a task stay in visiting order
    slot = thr_idx * n_gt + pair_gt[pair_idx]  # a ground truth at one threshold
    undecided = ~locked[slot]  # a ground truth taken in the first round is gone for later predictions
    task, slot, rank = task[undecided], slot[undecided], rank[undecided]
    while task.size:
        if task.size <= _SEQUENTIAL_PAIRS:
            _match_sequential(task, slot, tp, locked)
            break
        before = task.size
        task, slot, rank = _match_round(task, slot, rank, tp, locked)
        if task.size > (1.0 - _MIN_ROUND_GAIN) * before:
            _match_sequential(task, slot, tp, locked)
            break


def _match_round(task, slot, rank, tp, locked):
    """Resolve every free prediction (see module doc); return the pairs still undecided."""
    first_rank = np.full(locked.size, np.iinfo(np.int64).max, dtype=np.int64)  # (T * G,)
    np.minimum.at(first_rank, slot, rank)
    blocked_task = np.zeros(tp.size, dtype=bool)  # (T * N,)
    blocked_task[task[rank > first_rank[slot]]] = True  # an earlier unresolved prediction wants its GT
    free = ~blocked_task[task]
    # The first pair of a free task is its first untaken eligible ground truth.
    free_task = task[free]
    head = np.ones(free_task.size, dtype=bool)
    head[1:] = free_task[1:] != free_task[:-1]
    tp[free_task[head]] = True
    locked[slot[free][head]] = True
    keep = ~free & ~locked[slot]
    return task[keep], slot[keep], rank[keep]


def _match_sequential(task, slot, tp, locked) -> None:
    """The plain greedy loop over pairs ordered by task (threshold, rank), then visiting order."""
    taken = bytearray(locked.tobytes())
    matched = []
    done = -1
    for k, s in zip(task.tolist(), slot.tolist(), strict=True):
        if k == done or taken[s]:
            continue
        taken[s] = 1
        matched.append(k)
        done = k
    if matched:
        tp[np.asarray(matched, dtype=np.int64)] = True
    locked[:] = np.frombuffer(bytes(taken), dtype=bool)


def class_average_precision(tp: np.ndarray, class_of_rank: np.ndarray, n_gt_per_class: np.ndarray) -> np.ndarray:
    """VOC-2011 interpolated AP per threshold and class from true-positive flags.

    Args:
        tp: (T, N) bool, predictions in rank order, grouped by class (all predictions of a class are
            contiguous and sorted by descending score).
        class_of_rank: (N,) class index (0..C-1) of each ranked prediction, non-decreasing.
        n_gt_per_class: (C,) number of ground truths per class (> 0 for every class with predictions).

    Returns:
        (T, C) AP; a class without predictions (or without true positives) has AP 0.

    Equal to ActivityNet's `interpolated_prec_rec` on the full precision/recall curve, computed from the
    true positives alone: recall only changes at a true positive, and the precision envelope
    (max of the precision from there on) is always reached at a true positive, because precision falls
    at every false positive. The k-th true positive of a class, at position i in that class's ranking,
    has precision k / (i + 1) and recall k / n_gt, the same floats the official code divides out.
    """
    n_thr = tp.shape[0]
    n_classes = n_gt_per_class.size
    ap = np.zeros(n_thr * n_classes)  # (T * C,)
    thr_idx, pos = np.nonzero(tp)  # (P,) ordered by threshold, then rank
    if pos.size == 0:
        return ap.reshape(n_thr, n_classes)
    cls = class_of_rank[pos]
    class_start = np.searchsorted(class_of_rank, np.arange(n_classes))  # (C,)
    curve = thr_idx * n_classes + cls  # (P,) one precision/recall curve per (threshold, class)
    first = np.flatnonzero(np.concatenate(([True], curve[1:] != curve[:-1])))
    k = np.arange(1, pos.size + 1) - np.repeat(first, np.diff(np.append(first, pos.size)))  # k-th TP, 1-based
    n_gt = n_gt_per_class[cls].astype(np.float64)
    precision = k / (pos - class_start[cls] + 1).astype(np.float64)
    envelope = _reverse_segment_max(precision, curve)
    gain = k / n_gt - (k - 1) / n_gt  # recall step, as the official code computes it
    ap[curve[first]] = np.add.reduceat(gain * envelope, first)
    return ap.reshape(n_thr, n_classes)


def _reverse_segment_max(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """max(values[i:end of i's segment]) for every i, exactly; `segment` non-decreasing."""
    levels, rank = np.unique(values, return_inverse=True)  # exact ranks: integer maxima are exact
    n_levels = levels.size
    offset = (segment.max() - segment) * n_levels  # segments further right get smaller offsets
    running = np.maximum.accumulate((offset + rank)[::-1])[::-1]  # a segment never sees a later one
    return levels[running - offset]
