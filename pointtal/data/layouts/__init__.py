"""Feature and ground-truth layouts, read in place: pointtal's own `DIR/<video_id>.npy` and the releases of
the field, one small module each (docs/formats.md, "Features").

`LAYOUTS` maps each feature layout to its module: `detect(path)` or `matches(split folder)` says whether a
folder holds it, `open_store(layout, trust_pickle)` returns the one `FeatureStore` interface over its reader.
A new layout is one module plus one line here. Ground truth: `published.py` reads LACP's and HR-Pro's files,
`actionformer.py` ActionFormer's and OpenTAD's; anything else is pointtal's ActivityNet-layout JSON.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from pathlib import Path

from pointtal.data.annotations import GroundTruth, parse_ground_truth, read_json
from pointtal.data.features import FeatureStore
from pointtal.data.layouts import actionformer, hrpro, lacp, pointtal, published, video_features
from pointtal.data.layouts.common import EXPECTED, SPLITS, STREAMS, Layout, Subsets
from pointtal.data.layouts.splits import SplitFeatureStore, split_folders
from pointtal.data.layouts.video_features import VideoFeaturesStore
from pointtal.errors import InputError

__all__ = [
    "EXPECTED",
    "LAYOUTS",
    "WRITABLE",
    "SPLITS",
    "STREAMS",
    "Layout",
    "SplitFeatureStore",
    "Subsets",
    "VideoFeaturesStore",
    "detect_layout",
    "feature_length",
    "load_published_truth",
    "load_truth",
    "open_features",
]

log = logging.getLogger(__name__)

LAYOUTS = {
    pointtal.NAME: pointtal,
    lacp.NAME: lacp,
    hrpro.NAME: hrpro,
    video_features.NAME: video_features,
}
DEFAULT_SUBSETS = Subsets()
SPLIT_LAYOUTS = (lacp, hrpro)  # told apart by their split folders, in this order
WRITABLE = (pointtal.NAME, video_features.NAME)  # layouts `pointtal extract --layout` writes (`write`, `file_names`)
load_published_truth = published.load_published_truth


def detect_layout(path: str | Path) -> Layout:
    """The layout of a feature directory: the dataset root or its `features/` folder both work (video_features:
    its output folder or the `i3d/` folder in it)."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: feature directory not found ({EXPECTED})")
    found = video_features.detect(path) or pointtal.detect(path)
    if found is not None:
        return found
    base, splits = split_folders(path)
    if splits:
        kinds = {_split_kind(base / s) for s in splits}
        if len(kinds) > 1:
            raise InputError(f"{base}: train/ and test/ hold different layouts (one rgb/flow, one not); {EXPECTED}")
        return Layout(kinds.pop(), base, splits)
    found = pointtal.detect(base) if base != path else None
    if found is None:
        raise InputError(f"{path}: no feature files found; {EXPECTED}")
    return found


def _split_kind(folder: Path) -> str:
    """The split layout whose `matches` accepts `folder`; anything else is an input error."""
    kind = next((m.NAME for m in SPLIT_LAYOUTS if m.matches(folder)), None)
    if kind is None:
        raise InputError(f"{folder}: no feature files; {EXPECTED}")
    return kind


def open_features(path: str | Path, trust_pickle: bool = False, video_names=None) -> FeatureStore:
    """The feature store of `data.features`: a legacy single file, pointtal's layout or a published one."""
    path = Path(path)
    if path.is_file():
        return FeatureStore(path, trust_pickle=trust_pickle, video_names=video_names)
    layout = detect_layout(path)
    module = LAYOUTS[layout.kind]
    store = module.open_store(layout, trust_pickle=trust_pickle)
    if layout.kind == video_features.NAME:
        log.info("features: video_features layout in %s (%s)", layout.features, store.describe())
    elif layout.kind != pointtal.NAME:
        log.info("features: %s layout in %s (%s)", module.TITLE, layout.features, ", ".join(layout.splits))
    return store


def feature_length(store: FeatureStore, video_id: str) -> int:
    """T of a video without reading its numbers (headers of memory-mapped files)."""
    return store.length(video_id)


def load_truth(
    path: str | Path,
    class_list=None,
    names: Subsets | None = None,
    store: Callable[[], FeatureStore] | None = None,
    need_duration: bool = True,
) -> GroundTruth:
    """`data.annotations`: pointtal's ground-truth JSON, a LACP / HR-Pro release (its folder, or its gt.json /
    gt_full.json with split_train.txt / split_test.txt beside it) or an ActionFormer / OpenTAD annotation file.
    `store` opens the features, needed only when the ground truth has no durations (LACP) and `need_duration`
    (False: evaluation, where a missing duration is NaN; see `published.load_published_truth`). `names`: the
    run's subsets and feature geometry (None: `Subsets()`, and no feature stride to check, as in evaluation)."""
    path = Path(path)
    checked, names = names is not None, names or DEFAULT_SUBSETS
    found = published.find(path)
    if found is not None:
        return published.load_published_truth(*found, names, class_list, store, need_duration)
    data = read_json(path, "ground-truth file")
    release = actionformer.kind(path, data)
    if release is not None:
        truth = actionformer.load(
            path, data, release, names, class_list, need_duration and store is None, check_stride=checked
        )
    else:
        truth = parse_ground_truth(data, path, class_list, need_duration=need_duration and store is None)
    return truth if store is None else _durations_from(truth, store, names, need_duration)


def _durations_from(
    truth: GroundTruth, store: Callable[[], FeatureStore], names: Subsets, need_duration: bool = True
) -> GroundTruth:
    """Fill the NaN durations of a plain ground-truth file from the feature lengths; a video without either is
    an input error naming both causes (left NaN when `need_duration` is False)."""
    missing = [v for v, video in truth.videos.items() if math.isnan(video.duration_sec)]
    if not missing:
        return truth
    opened = store()
    videos = dict(truth.videos)
    for video_id in missing:
        if video_id not in opened:
            if not need_duration:
                continue
            raise InputError(
                f"{opened.root}: video '{video_id}' has no 'duration' in the ground truth and no "
                "feature file here to take it from"
            )
        duration = opened.length(video_id) * names.stride / names.fps  # T * stride / fps seconds
        videos[video_id] = dataclasses.replace(truth.videos[video_id], duration_sec=duration)
    return dataclasses.replace(truth, videos=videos)
