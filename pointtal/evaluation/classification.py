"""Video classification mAP ("cmAP"): per class, AP of video-level scores against video labels.

AP is the non-interpolated average precision of scikit-learn's `average_precision_score`:
`sum_n (R_n - R_{n-1}) * P_n` over the distinct score thresholds in decreasing order, so videos with tied
scores enter together and the result does not depend on input order. Without ties this equals W-TALC's
`getAP` (mean precision at each positive video) used by weakly supervised TAL work. Classes without a
positive video have no AP (NaN) and are left out of the mean.
"""

from __future__ import annotations

import numpy as np


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Non-interpolated AP of (V,) scores against (V,) binary labels; NaN without positives."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positive = np.asarray(labels).reshape(-1).astype(bool)
    if scores.shape != positive.shape:
        raise ValueError(f"scores {scores.shape} and labels {positive.shape} differ in shape")
    if not positive.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    tps = np.cumsum(positive[order])  # (V,)
    group_end = np.append(sorted_scores[1:] != sorted_scores[:-1], True)  # last video of each tie group
    tps = tps[group_end].astype(np.float64)
    seen = (np.flatnonzero(group_end) + 1).astype(np.float64)
    precision = tps / seen
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def video_classification_ap(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(C,) AP per class of (V, C) video scores against (V, C) binary labels (NaN: no positive video)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f"need (V, C) scores and labels of equal shape, got {scores.shape} and {labels.shape}")
    return np.array([average_precision(scores[:, c], labels[:, c]) for c in range(scores.shape[1])])


def classification_map(scores: np.ndarray, labels: np.ndarray) -> float:
    """cmAP: mean AP over the classes with at least one positive video (fraction in [0, 1])."""
    ap = video_classification_ap(scores, labels)
    if np.all(np.isnan(ap)):
        raise ValueError("no class has a positive video: classification mAP is undefined")
    return float(np.nanmean(ap))
