"""pointtal's own layout: `DIR/<video_id>.npy`, one (T, D) array per video (the store's `DirectoryReader`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointtal.atomic import write_atomic
from pointtal.data.features import FeatureStore
from pointtal.data.layouts.common import Layout, has_npy

NAME = "pointtal"


def detect(path: Path) -> Layout | None:
    """A folder holding .npy files directly."""
    return Layout(NAME, path) if has_npy(path) else None


def open_store(layout: Layout, trust_pickle: bool = False) -> FeatureStore:
    return FeatureStore(layout.features, trust_pickle=trust_pickle)


def file_names(video_id: str, streams: tuple[str, ...]) -> list[str]:
    """The files one video has in this layout (`pointtal extract` writes them)."""
    return [f"{video_id}.npy"]


def video_of(name: str) -> tuple[str, bool] | None:
    """(video id, whether the file holds its T feature rows) of a file name of this layout, else None."""
    return (name[: -len(".npy")], True) if name.endswith(".npy") else None


def write(
    out_dir: Path, video_id: str, features: np.ndarray, streams: tuple[str, ...], fps: float, stride: int
) -> None:
    """One (T, D) float32 array, written atomically."""
    write_atomic(out_dir / f"{video_id}.npy", lambda h: np.save(h, features, allow_pickle=False))
