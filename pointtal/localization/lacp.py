"""LACP inference post-processing (the official test.py / utils.py of "Learning Action Completeness from Points").

For one video with fused class scores p (T, C), agnostic actionness a = 1 - P(background) (T,) and video scores s:
  1. classes with s_c >= class_threshold are localized (none: the arg-max class);
  2. p[:, c] and a are upsampled `scale` times by linear interpolation (extrapolated past the last snippet, as
     scipy's interp1d(fill_value="extrapolate") at positions arange(0, T, 1/scale));
  3. proposals are the runs of p_c >= th for every CAS threshold and the runs of a >= th for every actionness
     threshold (a value must also be > 0). Each run [s, e] (upsampled indices, inclusive) scores
     mean(w[s..e]) - mean(w[outer]) + gamma * s_c, outer = [max(0, int(s - L/4)), s) and
     (e, min(N-1, int(e + L/4))], L = e - s + 1, where w is p_c zeroed below the threshold for CAS runs and the
     plain p_c for actionness runs (the official code scores each on that array);
  4. per class, greedy NMS with the official IoU: lengths x2 - x1 + extent (the code adds 1 to segments in
     seconds; `extent` is that second in snippet units) and suppression when IoU >= nms_threshold.
Segments come out in snippet units: [s / scale, (e + 1) / scale].
"""

from __future__ import annotations

import numpy as np

from pointtal.localization.detections import Detections
from pointtal.localization.runs import find_runs_2d
from pointtal.localization.upsample import upsample as upsample_at


def upsample(values: np.ndarray, scale: int) -> np.ndarray:
    """(T, ...) -> (len(arange(0, T, 1/scale)), ...): the official positions, float step included (the shared
    `localization.upsample.upsample`, "step" positions)."""
    return upsample_at(values, scale, "step")


def outer_inner_scores(
    weights: np.ndarray, rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, delta: float = 0.25
) -> np.ndarray:
    """Inner mean minus outer mean of runs [starts, ends] (inclusive) of rows of `weights` (R, N) -> (n,).

    outer = [max(0, int(s - delta*L)), s) and (e, min(N-1, int(e + delta*L))]; 0 when empty (the official
    get_proposal_oic / get_oic_score).
    """
    n = weights.shape[1]
    cum = np.concatenate([np.zeros((weights.shape[0], 1)), np.cumsum(weights, axis=1, dtype=np.float64)], axis=1)
    length = ends - starts + 1
    inner = (cum[rows, ends + 1] - cum[rows, starts]) / length
    lo = np.maximum(0, np.trunc(starts - delta * length)).astype(np.int64)
    hi = np.minimum(n - 1, np.trunc(ends + delta * length)).astype(np.int64)
    count = (starts - lo) + (hi - ends)
    total = (cum[rows, starts] - cum[rows, lo]) + (cum[rows, hi + 1] - cum[rows, ends + 1])
    outer = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return inner - outer


def lacp_nms(segments: np.ndarray, scores: np.ndarray, threshold: float, extent: float) -> np.ndarray:
    """The official greedy NMS: IoU with lengths `x2 - x1 + extent`, a segment is dropped when its IoU with a
    kept one is >= threshold. Returns kept indices, highest score first."""
    x1, x2 = segments[:, 0], segments[:, 1]
    areas = x2 - x1 + extent
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        inter = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + extent)
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou < threshold]
    return np.asarray(keep, dtype=np.int64)


def localize_lacp(
    cas: np.ndarray,
    actionness: np.ndarray,
    video_scores: np.ndarray,
    *,
    class_threshold: float,
    cas_thresholds: tuple[float, ...],
    actionness_thresholds: tuple[float, ...],
    scale: int,
    gamma: float,
    nms_threshold: float,
    nms_extent: float,
    delta: float = 0.25,
) -> Detections:
    """cas (T, C+1) fused probabilities (column 0 = background, unused), actionness (T,), video_scores (C+1,)."""
    scores = np.asarray(video_scores, dtype=np.float64)[1:]  # (C,)
    classes = np.flatnonzero(scores >= class_threshold)
    if classes.size == 0:
        classes = np.array([int(np.argmax(scores))])
    cas_up = upsample(np.asarray(cas, dtype=np.float64)[:, 1 + classes], scale).T  # (P, N)
    act_up = upsample(np.asarray(actionness, dtype=np.float64), scale)  # (N,)
    p = len(classes)
    keeps, weights, row_class = [], [], []
    for th in cas_thresholds:  # one row per (threshold, class): a handful of thresholds, vectorised over classes
        above = cas_up >= th
        keeps.append(above & (cas_up > 0))
        weights.append(np.where(above, cas_up, 0.0))
        row_class.append(np.arange(p))
    agn = (act_up >= np.asarray(actionness_thresholds)[:, None]) & (act_up > 0)  # (A, N)
    for row in agn:
        keeps.append(np.broadcast_to(row, cas_up.shape))
        weights.append(cas_up)
        row_class.append(np.arange(p))
    keep = np.concatenate(keeps)  # (R, N)
    weight = np.concatenate(weights)
    which = np.concatenate(row_class)  # (R,) index into `classes`
    rows, starts, ends_excl = find_runs_2d(keep)
    if rows.size == 0:
        return Detections.empty()
    ends = ends_excl - 1
    score = outer_inner_scores(weight, rows, starts, ends, delta) + gamma * scores[classes[which[rows]]]
    segs = np.stack([starts / scale, (ends + 1) / scale], axis=1)  # (n, 2) snippets
    label = classes[which[rows]] + 1  # 1..C
    out = []
    for c in np.unique(label):  # a loop over the predicted classes only
        idx = np.flatnonzero(label == c)
        kept = idx[lacp_nms(segs[idx], score[idx], nms_threshold, nms_extent)]
        out.append(np.column_stack([segs[kept], np.full(len(kept), c, dtype=np.float64), score[kept]]))
    return Detections(np.concatenate(out).astype(np.float64), np.zeros((0, 3)))
