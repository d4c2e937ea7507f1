"""The peak snippet of each segment (numpy only): the frame (point) prediction SODA and HR-Pro give a detection."""

from __future__ import annotations

import numpy as np


def segment_peaks(
    cas: np.ndarray, column: np.ndarray, start_snippet: np.ndarray, end_snippet: np.ndarray
) -> np.ndarray:
    """Arg-max snippet of cas (T, K) column `column[i]` among snippets overlapping segment i: (N,) int64.

    A snippet t overlaps `[start, end)` when `floor(start) <= t < ceil(end)`; ties go to the earliest snippet.
    """
    cas = np.asarray(cas, dtype=np.float64)
    first = np.floor(start_snippet).astype(np.int64)  # (N,)
    last = np.maximum(np.ceil(end_snippet).astype(np.int64), first + 1)  # (N,) exclusive, never empty
    # A loop over kept segments (after NMS), not snippets: an (N, T) masked matrix would cost N*T memory.
    peaks = [lo + int(np.argmax(cas[lo:hi, k])) for lo, hi, k in zip(first, last, column, strict=True)]
    return np.asarray(peaks, dtype=np.int64)
