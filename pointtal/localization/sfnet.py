"""SF-Net inference (docs/methods.md §2.5): thresholded class activation -> segments and single frames (numpy only).

Pipeline for one video of T snippets:
    class_scores -> kept_classes -> per-class score_t = cas[t, c] + w_act * act_t -> runs above the
    per-class threshold mean(score) * adjust -> segments (runs of >= `min_segment_len` snippets) and one
    single-frame prediction per run (every run, also the short ones) at the run's arg-max snippet.

Conventions, as in the SF-Net reference code:
* `cas` is in whatever space the method hands over (SF-Net's default: raw logits, see `methods/sfnet.py`);
  the rule `s_c > 0` is only selective for logits.
* A run is a maximal set of consecutive snippets with score **strictly above** the threshold.
* Confidence of a run (segment and frame alike) = max(score over the run) + s_c.
* The frame sits at the first snippet where the run reaches its maximum; segments are `[start, end)`.
* No NMS.
"""

from __future__ import annotations

import numpy as np

from pointtal.localization.detections import Detections
from pointtal.localization.runs import find_runs_2d


def class_scores(cas_actions: np.ndarray, topk_divisor: int) -> np.ndarray:
    """s_c = mean of the top max(T // topk_divisor, 1) values of each column: (T, C) -> (C,)."""
    t = cas_actions.shape[0]
    k = max(t // topk_divisor, 1)
    top = -np.sort(-cas_actions, axis=0)[:k]  # (k, C), descending per column
    return top.mean(axis=0)


def kept_classes(scores: np.ndarray, ratio: float) -> np.ndarray:
    """0-based columns with s_c > max(s) / ratio and s_c > 0."""
    if scores.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero((scores > scores.max() / ratio) & (scores > 0))


def run_peaks(
    score: np.ndarray, rows: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum and first arg-max snippet of every run [start, end) of row `row` of `score` (R, T).

    Returns (peak_value (N,), peak_snippet (N,) int64), vectorised over all runs: the runs' values are
    concatenated, reduced with `np.maximum.reduceat`, and the first position equal to the maximum is found
    with `np.unique(..., return_index=True)`.
    """
    lengths = ends - starts  # (N,), all >= 1
    first = np.cumsum(lengths) - lengths  # offset of each run in the concatenation
    run_id = np.repeat(np.arange(lengths.size), lengths)  # (L,)
    snippet = np.arange(run_id.size) - first[run_id] + starts[run_id]  # (L,)
    values = score[rows[run_id], snippet]  # (L,)
    peak = np.maximum.reduceat(values, first)  # (N,)
    at_peak = np.flatnonzero(values == peak[run_id])
    _, first_hit = np.unique(run_id[at_peak], return_index=True)  # one per run, in run order
    return peak, snippet[at_peak[first_hit]]


def localize_sfnet(
    cas: np.ndarray,
    actionness: np.ndarray | None,
    *,
    w_act: float = 2.0,
    adjust: float = 1.0,
    class_topk_divisor: int = 12,
    class_ratio: float = 1.5,
    min_segment_len: int = 2,
) -> Detections:
    """Segments and single frames of one video from cas (T, C+1) and actionness (T,) or None.

    Column 0 of `cas` (background) is dropped; `actionness=None` or `w_act=0` localizes from the CAS alone
    (the weakly supervised baseline).
    """
    cas_actions = np.asarray(cas, dtype=np.float64)[:, 1:]  # (T, C)
    t = cas_actions.shape[0]
    if t == 0 or cas_actions.shape[1] == 0:
        return Detections.empty()
    s = class_scores(cas_actions, class_topk_divisor)  # (C,)
    kept = kept_classes(s, class_ratio)  # (R,)
    score = cas_actions[:, kept].T  # (R, T)
    if actionness is not None and w_act != 0:
        score = score + w_act * np.asarray(actionness, dtype=np.float64).reshape(1, t)
    threshold = score.mean(axis=1, keepdims=True) * adjust  # (R, 1)
    rows, starts, ends = find_runs_2d(score > threshold)
    if rows.size == 0:
        return Detections.empty()
    peak, peak_snippet = run_peaks(score, rows, starts, ends)
    label = kept[rows] + 1  # (N,) class index 1..C
    confidence = peak + s[kept[rows]]  # (N,)
    long_enough = (ends - starts) >= min_segment_len
    segments = np.stack([starts, ends, label, confidence], axis=1)[long_enough].astype(np.float64)  # (N', 4)
    frames = np.stack([peak_snippet, label, confidence], axis=1).astype(np.float64)  # (N, 3)
    return Detections(segments, frames)
