"""From a validated Config to in-memory datasets: ground truth, feature store, points, train/test sets."""

from __future__ import annotations

import logging
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from pointtal.config import Config
from pointtal.data.annotations import GroundTruth
from pointtal.data.dataset import PointDataset, build_dataset, point_label_rows
from pointtal.data.features import FeatureStore
from pointtal.data.segments import FULL, SegmentTable, load_segments
from pointtal.data.layouts import Subsets, load_truth, open_features
from pointtal.data.points import (
    SCHEMES,
    MappedPoints,
    choose_annotator,
    fps_lookup_for,
    map_points,
    read_points,
    simulate_points,
    videos_elsewhere,
)
from pointtal.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """Everything a run reads from disk, loaded once."""

    gt: GroundTruth
    store: FeatureStore
    train: PointDataset | None
    test: PointDataset | None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.gt.classes


def must_exist(config: Config, key: str, path: str | Path, what: str, is_dir: bool = False) -> Path:
    """`path` of config key `data.<key>`, or a one-line error naming the key and the config it came from."""
    path = Path(path)
    if not ((path.is_dir() or path.is_file()) if is_dir else path.is_file()):
        raise InputError(f"{path}: {what} not found (data.{key} of {config.origin}; a relative path in a config "
                         "file is read from that file's directory, one given with --set from the current one)")
    return path


def load_ground_truth_for(config: Config, annotations: str | None = None, features: str | None = None,
                          store: FeatureStore | None = None) -> GroundTruth:
    """The run's ground truth; a published dataset's split files become data.train_subset / data.test_subset
    (features, opened only when the ground truth lacks durations, from `store` or `features`/data.features)."""
    d = config.data
    path = annotations or d.annotations
    if not path:
        raise InputError("config: data.annotations is not set; pass --set data.annotations=GT.json")
    if not annotations:  # an --annotations option names itself in the reader's own message
        must_exist(config, "annotations", path, "ground truth", is_dir=True)
    if d.class_list:
        must_exist(config, "class_list", d.class_list, "class list")
    names = Subsets(d.train_subset, d.test_subset, d.fps, d.stride)
    return load_truth(path, d.class_list, names, store=lambda: store or open_store(config, features))


def open_store(config: Config, features: str | None = None) -> FeatureStore:
    root = features or config.data.features
    if not root:
        raise InputError("config: data.features is not set; pass --set data.features=FEATURES_DIR")
    if not features:  # a --features option names itself in the store's own message
        must_exist(config, "features", root, "feature directory or file", is_dir=True)
    return open_features(root, trust_pickle=config.data.trust_pickle, video_names=config.data.video_names)


def point_sources(config: Config) -> tuple[str | None, tuple[str, ...]]:
    """(scheme name or None, CSV paths) from `data.points`."""
    points = config.data.points
    if isinstance(points, str):
        if points in SCHEMES:
            return points, ()
        points = (points,)
    if not points:
        raise InputError(f"config: data.points is empty; give CSV paths or a scheme ({', '.join(SCHEMES)})")
    return None, tuple(points)


def load_points(config: Config, gt: GroundTruth, train: PointDataset) -> MappedPoints | None:
    """The training points from click files (one annotator drawn per video) or a simulation scheme."""
    d = config.data
    scheme, paths = point_sources(config)
    videos = {vid: gt.videos[vid] for vid in train.video_ids}
    counts = {vid: int(n) for vid, n in zip(train.video_ids, train.n_snippets)}
    if scheme == "weak":
        return None
    if scheme is not None:
        points = simulate_points(
            list(videos.values()), scheme, d.fps, d.stride, d.point_seed,
            window_sec=d.window_sec, background_label=d.background_label, snippet_counts=counts,
            gaussian_std=d.gaussian_std,
        )
        source = f"scheme {scheme}"
    else:
        lookup = fps_lookup_for(gt.videos, gt.frame_fps)
        per_annotator = []
        for path in paths:
            must_exist(config, "points", path, "point file")
            per_annotator.append(read_points(path, d.background_label, lookup))
        points = choose_annotator(per_annotator, d.point_seed, d.annotator)
        source = ", ".join(paths)
    mapped = map_points(points, videos, d.fps, d.stride, gt.class_index, d.background_label,
                        strict=d.strict_points, source=source, snippet_counts=counts,
                        elsewhere=videos_elsewhere(gt.videos, videos, d.train_subset),
                        scope=f"the training subset '{d.train_subset}'", actions_expected=scheme != "soda-background")
    log.info("points: %s", mapped.report.summary)
    return mapped


def without_videos(gt: GroundTruth, excluded: tuple[str, ...]) -> GroundTruth:
    """The ground truth less the videos of `data.exclude_videos` (an id it does not hold is logged once)."""
    if not excluded:
        return gt
    missing = sorted(set(excluded) - set(gt.videos))
    if missing:
        log.warning("data.exclude_videos: %d id(s) are not in the ground truth, e.g. %s", len(missing), missing[0])
    kept = {vid: video for vid, video in gt.videos.items() if vid not in set(excluded)}
    log.info("data.exclude_videos: %d video(s) left out", len(gt.videos) - len(kept))
    return dataclasses.replace(gt, videos=kept)


def wants_segments(config: Config) -> bool:
    """Whether the config's method trains on segments (`Method.supervision`)."""
    from pointtal.methods import METHODS

    return getattr(METHODS.get(config.method), "supervision", "points") == "segments"


def load_training_segments(config: Config, gt: GroundTruth, train: PointDataset) -> SegmentTable:
    """The training videos' instances from `data.segments`: `full` or a pseudo-label file."""
    source = config.data.segments
    if source != FULL:
        must_exist(config, "segments", source, "pseudo-label file")
    return load_segments(source, gt, train.video_ids, train.geometries)


def load_run_data(config: Config, *, train: bool = True, test: bool = True) -> RunData:
    """Load the subsets a run needs; features are read once into memory."""
    store = open_store(config)
    gt = without_videos(load_ground_truth_for(config, store=store), config.data.exclude_videos)
    d = config.data
    train_set = test_set = None
    if train:
        train_set = build_dataset(gt, d.train_subset, store, d.fps, d.stride)
        mapped = load_points(config, gt, train_set)
        if mapped is not None:
            train_set.set_point_labels(point_label_rows(train_set, mapped, len(gt.classes)))
        if wants_segments(config):
            train_set.segments = load_training_segments(config, gt, train_set)
    if test:
        test_set = build_dataset(gt, d.test_subset, store, d.fps, d.stride)
    return RunData(gt, store, train_set, test_set)
