"""pointtal's own layout: `DIR/<video_id>.npy`, one (T, D) array per video (the store's `DirectoryReader`)."""

from __future__ import annotations

from pathlib import Path

from pointtal.data.features import FeatureStore
from pointtal.data.layouts.common import Layout, has_npy

NAME = "pointtal"


def detect(path: Path) -> Layout | None:
    """A folder holding .npy files directly."""
    return Layout(NAME, path) if has_npy(path) else None


def open_store(layout: Layout, trust_pickle: bool = False) -> FeatureStore:
    return FeatureStore(layout.features, trust_pickle=trust_pickle)
