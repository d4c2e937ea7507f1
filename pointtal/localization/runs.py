"""Maximal runs of True in boolean arrays: the building block of every thresholding localizer."""

from __future__ import annotations

import numpy as np


def find_runs_2d(above: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of every row of a (R, T) boolean array: (row, start, end) arrays, ordered by row then start."""
    above = np.asarray(above, dtype=bool)
    rows = above.shape[0]
    padded = np.zeros((rows, above.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = above
    edges = np.diff(padded, axis=1)
    start_row, start = np.nonzero(edges == 1)
    _, end = np.nonzero(edges == -1)
    return start_row, start, end
