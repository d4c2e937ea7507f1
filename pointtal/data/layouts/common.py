"""What every layout module shares: the detected `Layout`, the split and stream names, and the hint listing the
layouts a feature directory may hold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "test")  # the folders under features/ and the split_<name>.txt files
STREAMS = ("rgb", "flow")  # two-stream I3D, joined in this order
EXPECTED = (
    "expected DIR/<video_id>.npy (pointtal), DIR/features/{train,test}/{rgb,flow}/<video_id>.npy (LACP) "
    "or DIR/features/{train,test}/<video_id>.npy (HR-Pro) or DIR/<video_id>_{rgb,flow,fps}.npy (video_features)"
)


@dataclass(frozen=True)
class Layout:
    """Which layout a feature directory holds and where its files are."""

    kind: str  # a key of LAYOUTS: "pointtal" | "lacp" | "hrpro" | "video_features"
    features: Path  # the folder of <id>.npy (pointtal) or of the split folders (published)
    splits: tuple[str, ...] = ()  # split folders present (published layouts)


def has_npy(folder: Path) -> bool:
    return next(folder.glob("*.npy"), None) is not None


@dataclass(frozen=True)
class Subsets:
    """How a published dataset's split files are named as pointtal subsets, and its feature geometry."""

    train: str = "validation"  # data.train_subset
    test: str = "test"  # data.test_subset
    fps: float = 25.0  # feature fps (data.fps): durations from features are T * stride / fps
    stride: int = 16  # data.stride
