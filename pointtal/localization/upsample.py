"""Linear upsampling of a score sequence along time, extrapolated past the last snippet (numpy only).

One interpolation serves the localizers that follow the official `upgrade_resolution` (scipy interp1d
'extrapolate'); each passes its official positions:
  * "step"  - np.arange(0, T, 1 / scale), the float step of the official LACP code (its length may differ from
              T * scale by one where the step rounds);
  * "index" - np.arange(T * scale) / scale, HR-Pro's positions.
SODA's centre-aligned interpolation is another rule and lives in `localization/soda.py`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def upsample(values: np.ndarray, scale: int, positions: Literal["step", "index"]) -> np.ndarray:
    """(T, ...) -> (U, ...): linear interpolation at the positions (see module docstring), extrapolated with the
    last interval's slope past T-1; a one-snippet video is repeated. The dtype of `values` is kept."""
    t = values.shape[0]
    x = np.arange(0, t, 1 / scale) if positions == "step" else np.arange(t * scale) / scale  # (U,)
    if t == 1:
        return np.repeat(values, len(x), axis=0)
    low = np.clip(np.floor(x).astype(np.int64), 0, t - 2)  # (U,) left knot; the tail extrapolates
    w = (x - low).reshape(-1, *([1] * (values.ndim - 1)))  # (U, 1, ...), > 1 past the last snippet
    return values[low] * (1 - w) + values[low + 1] * w
