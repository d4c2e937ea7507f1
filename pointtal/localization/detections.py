"""`Detections`: what every method's inference produces for one video, in snippet units (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Detections of one video in snippet units (fractional allowed); classes are 1..C.

    The one output type of every localizer and method: a CAS method's thresholded runs and a proposal
    method's regressed boundaries alike. The engine converts them to seconds with the video's geometry.
    """

    segments: np.ndarray  # (N, 4) float64: start_snippet, end_snippet, class, score
    frames: np.ndarray  # (K, 3) float64: snippet, class, score (single-frame predictions; may be empty)

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4)), np.zeros((0, 3)))
