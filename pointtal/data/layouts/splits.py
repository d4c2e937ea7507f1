"""The split-folder feature layout LACP and HR-Pro publish: `features/<split>[/<stream>]/<id>.npy`.

One reader serves every subset, as pointtal's own store does: each video is looked up in whichever split folder
holds it. Single-stream files are memory-mapped; LACP's two streams are read and joined by the store (rgb|flow).
`lacp.py` and `hrpro.py` name their streams and how their split folders look."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointtal.data.features import FeatureStore, check_video_id, read_npy
from pointtal.data.layouts.common import SPLITS, Layout
from pointtal.errors import InputError


class SplitReader:
    """Video id -> split folder, indexed once; the file of each stream under it."""

    def __init__(self, layout: Layout, streams: tuple[str, ...]):
        self.root = layout.features
        self.layout = layout
        self.streams = streams
        self._split = self._index()  # video id -> split folder name

    def _stream_ids(self, split: str) -> set[str]:
        """Ids with a file in every stream folder of a split; a file in only one stream is an input error."""
        per_stream = [{p.stem for p in (self.root / split / s).glob("*.npy")} for s in self.streams]
        for stream, ids in zip(self.streams, per_stream, strict=True):
            lonely = sorted(ids - set.intersection(*per_stream))
            if lonely:
                raise InputError(
                    f"{self.root / split / stream}: {len(lonely)} video(s) have no file in the other stream "
                    f"folder (first: {lonely[0]}); the LACP layout needs rgb and flow for every video"
                )
        return per_stream[0]

    def _index(self) -> dict[str, str]:
        where: dict[str, str] = {}
        for split in self.layout.splits:
            for video_id in self._stream_ids(split):
                if video_id in where:
                    raise InputError(
                        f"{self.root}: video '{video_id}' has features in both {where[video_id]}/ "
                        f"and {split}/; keep one"
                    )
                where[video_id] = split
        return where

    def stream_paths(self, video_id: str) -> list[Path]:
        """The video's file in each stream folder (one path for HR-Pro)."""
        check_video_id(video_id, str(self.root))
        split = self._split.get(video_id)
        if split is None:
            folders = " or ".join(f"{s}/" for s in self.layout.splits)
            raise InputError(f"{self.root}: no feature file for video '{video_id}' in {folders}")
        return [self.root / split / stream / f"{video_id}.npy" for stream in self.streams]

    def path(self, video_id: str) -> Path:
        return self.stream_paths(video_id)[0]

    def __contains__(self, video_id: str) -> bool:
        return check_video_id(video_id, str(self.root)) in self._split

    def ids(self) -> list[str]:
        return sorted(self._split)

    def arrays(self, video_id: str, trust_pickle: bool) -> list[tuple[np.ndarray, Path]]:
        return [(read_npy(p, video_id, trust_pickle), p) for p in self.stream_paths(video_id)]


class SplitFeatureStore(FeatureStore):
    """The store over a `SplitReader` (LACP's or HR-Pro's release); adds nothing to the store's interface."""

    def __init__(self, layout: Layout, streams: tuple[str, ...], trust_pickle: bool = False):
        super().__init__(layout.features, trust_pickle=trust_pickle, reader=SplitReader(layout, streams))

    n_snippets = FeatureStore.length  # the name this store had before the one interface


def split_folders(path: Path) -> tuple[Path, tuple[str, ...]]:
    """(the folder holding train/ and test/: `path/features` or `path`, the split folders present)."""
    base = path / "features" if (path / "features").is_dir() else path
    return base, tuple(s for s in SPLITS if (base / s).is_dir())
