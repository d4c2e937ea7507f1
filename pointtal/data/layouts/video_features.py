"""v-iashin/video_features (I3D): `DIR/<stem>_rgb.npy`, `<stem>_flow.npy` ((T, 1024) each, joined rgb|flow),
`<stem>_fps.npy` (the video's fps) and `<stem>_timestamps_ms.npy` (T,), as its `--on_extraction save_numpy`
writes them into `output/i3d/`; its default stack and step are 64 frames at the video's own fps, so such
features train with `data.stride: 64` and the native fps of each video in the ground truth. The video id is the
stem; one stream alone is read where only one was extracted.

`pointtal extract --layout video_features` writes it (`write`): the streams split from the backbone's output
(I3D: rgb | flow, 1024 each; an RGB-only backbone: `_rgb.npy` alone), the extraction fps as a 0-d array and the
timestamp of stack i as `(i + 1) * stride / fps * 1000` ms, where the stack's frames end."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointtal.atomic import write_atomic
from pointtal.data.features import FeatureStore, check_video_id, read_npy
from pointtal.data.layouts.common import STREAMS, Layout
from pointtal.errors import InputError

NAME, TITLE = "video_features", "video_features"
META = ("fps", "timestamps_ms")  # per-video files beside the streams
FOLDER = "i3d"  # the subfolder video_features writes I3D features into (output_path/feature_type)


def matches(folder: Path) -> bool:
    """`<stem>_fps.npy` files beside `<stem>_rgb.npy` / `<stem>_flow.npy` ones, and no other .npy (a pointtal
    folder whose ids happen to end in `_rgb` stays pointtal's)."""
    if not folder.is_dir() or next(folder.glob("*_fps.npy"), None) is None:
        return False
    names = [p.name for p in folder.glob("*.npy")]
    streams = tuple(f"_{s}.npy" for s in STREAMS)
    return any(n.endswith(streams) for n in names) and all(
        n.endswith((*streams, *(f"_{m}.npy" for m in META))) for n in names
    )


def detect(path: Path) -> Layout | None:
    """The output folder itself or its `i3d/` folder."""
    return next((Layout(NAME, f) for f in (path, path / FOLDER) if matches(f)), None)


class VideoFeaturesReader:
    """Every video with a `<stem>_fps.npy` needs a file of every stream the folder holds."""

    def __init__(self, root: Path):
        self.root = root
        stems = sorted(p.name[: -len("_fps.npy")] for p in root.glob("*_fps.npy"))
        self.streams = tuple(s for s in STREAMS if any((root / f"{v}_{s}.npy").is_file() for v in stems))
        for stem in stems:
            missing = [s for s in self.streams if not (root / f"{stem}_{s}.npy").is_file()]
            if missing:
                raise InputError(
                    f"{root / f'{stem}_fps.npy'}: video '{stem}' has no {stem}_{missing[0]}.npy; "
                    f"the folder's other videos have the {' and '.join(self.streams)} streams"
                )
        self._ids = set(stems)

    def stream_paths(self, video_id: str) -> list[Path]:
        if check_video_id(video_id, str(self.root)) not in self._ids:
            raise InputError(
                f"{self.root}: no feature file for video '{video_id}' "
                f"({video_id}_{self.streams[0]}.npy with {video_id}_fps.npy)"
            )
        return [self.root / f"{video_id}_{stream}.npy" for stream in self.streams]

    def path(self, video_id: str) -> Path:
        return self.stream_paths(video_id)[0]

    def __contains__(self, video_id: str) -> bool:
        return check_video_id(video_id, str(self.root)) in self._ids

    def ids(self) -> list[str]:
        return sorted(self._ids)

    def arrays(self, video_id: str, trust_pickle: bool) -> list[tuple[np.ndarray, Path]]:
        return [(read_npy(p, video_id, trust_pickle), p) for p in self.stream_paths(video_id)]

    def step_frames(self, video_id: str) -> float | None:
        """Frames between snippets (video_features' step size) from the video's fps and timestamps; None
        for a video with fewer than two snippets."""
        try:
            fps = np.load(self.root / f"{video_id}_fps.npy", allow_pickle=False)
            stamps = np.load(self.root / f"{video_id}_timestamps_ms.npy", allow_pickle=False)
        except (OSError, ValueError):  # missing or not a plain array: only the log line lacks the step
            return None
        if stamps.size < 2 or fps.size != 1:
            return None
        return float(np.median(np.diff(stamps.ravel()))) * float(fps) / 1000.0


class VideoFeaturesStore(FeatureStore):
    """The store over a `VideoFeaturesReader`; `step_frames` reads the step a video was extracted at."""

    def __init__(self, layout: Layout, trust_pickle: bool = False):
        super().__init__(layout.features, trust_pickle=trust_pickle, reader=VideoFeaturesReader(layout.features))

    def step_frames(self, video_id: str) -> float | None:
        return self.reader.step_frames(video_id)

    def describe(self) -> str:
        first = next(iter(self.ids()), None)
        step = self.step_frames(first) if first is not None else None
        return f"{'|'.join(self.streams)}; " + (
            f"a snippet every {step:.4g} frames: set data.stride to it" if step else "step unknown"
        )


def open_store(layout: Layout, trust_pickle: bool = False) -> VideoFeaturesStore:
    return VideoFeaturesStore(layout, trust_pickle=trust_pickle)


def file_names(video_id: str, streams: tuple[str, ...]) -> list[str]:
    """The files one video has in this layout, `_fps.npy` last (written last: it is what indexes a video)."""
    return [*(f"{video_id}_{s}.npy" for s in streams), f"{video_id}_timestamps_ms.npy", f"{video_id}_fps.npy"]


def video_of(name: str) -> tuple[str, bool] | None:
    """(video id, whether the file holds its T feature rows) of a file name of this layout, else None."""
    for suffix in (*STREAMS, *META):
        if name.endswith(f"_{suffix}.npy"):
            return name[: -len(f"_{suffix}.npy")], suffix in STREAMS
    return None


def write(
    out_dir: Path, video_id: str, features: np.ndarray, streams: tuple[str, ...], fps: float, stride: int
) -> None:
    """A video's (T, D) features as video_features saves them; each file atomic, `_fps.npy` last."""
    parts = np.split(features, len(streams), axis=1)  # rgb | flow halves, (T, D / streams) each
    stamps = (np.arange(len(features)) + 1) * stride / fps * 1000  # (T,) ms
    arrays = [*parts, stamps, np.array(float(fps))]
    for name, array in zip(file_names(video_id, streams), arrays, strict=True):
        write_atomic(out_dir / name, lambda h, a=array: np.save(h, a, allow_pickle=False))
