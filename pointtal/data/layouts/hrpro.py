"""HR-Pro's release: `DATASET/features/{train,test}/<id>.npy` ((T, 2048), memory-mapped); `gt_full.json`
(durations and the native fps) and the split files are read by `published.py`."""

from __future__ import annotations

from pathlib import Path

from pointtal.data.layouts.common import Layout, has_npy
from pointtal.data.layouts.splits import SplitFeatureStore

NAME, TITLE = "hrpro", "HR-Pro"


def matches(split: Path) -> bool:
    """A split folder holding .npy files directly."""
    return has_npy(split)


def open_store(layout: Layout, trust_pickle: bool = False) -> SplitFeatureStore:
    return SplitFeatureStore(layout, ("",), trust_pickle=trust_pickle)
