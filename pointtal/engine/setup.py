"""From a validated Config to in-memory datasets: ground truth, feature store, points, train/test sets."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pointtal.config import TEACHER_SEGMENTS, Config
from pointtal.data.annotations import GroundTruth
from pointtal.data.dataset import PointDataset, build_dataset, point_label_rows, point_times
from pointtal.data.features import FeatureStore
from pointtal.data.layouts import Subsets, feature_length, load_truth, open_features
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
from pointtal.data.segments import FULL, SegmentTable, load_segments
from pointtal.engine.evaluate import load_protocol_ambiguous, protocol_for
from pointtal.errors import InputError
from pointtal.evaluation.protocol import Protocol, excluded_videos

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """Everything a run reads from disk, loaded once."""

    gt: GroundTruth
    store: FeatureStore
    train: PointDataset | None
    test: PointDataset | None
    protocol: Protocol = field(default_factory=Protocol)  # how the run's evaluations count (protocol_for)
    ambiguous: dict | None = None  # the protocol's ambiguous segments, video id -> (K, 2) seconds

    @property
    def classes(self) -> tuple[str, ...]:
        return self.gt.classes


def must_exist(config: Config, key: str, path: str | Path, what: str, is_dir: bool = False) -> Path:
    """`path` of config key `data.<key>`, or a one-line error naming the key and the config it came from."""
    path = Path(path)
    if not ((path.is_dir() or path.is_file()) if is_dir else path.is_file()):
        raise InputError(
            f"{path}: {what} not found (data.{key} of {config.origin}; a relative path in a config "
            "file is read from that file's directory, one given with --set from the current one)"
        )
    return path


def load_ground_truth_for(
    config: Config, annotations: str | None = None, features: str | None = None, store: FeatureStore | None = None
) -> GroundTruth:
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
    return map_run_points(config, gt, {vid: int(n) for vid, n in zip(train.video_ids, train.n_snippets, strict=False)})


def map_run_points(config: Config, gt: GroundTruth, counts: dict[str, int]) -> MappedPoints | None:
    """The run's points (data.points) on the training videos of `counts` (video id -> feature length T);
    None for weak supervision."""
    d = config.data
    scheme, paths = point_sources(config)
    videos = {vid: gt.videos[vid] for vid in counts}
    if scheme == "weak":
        return None
    if scheme is not None:
        points = simulate_points(
            list(videos.values()),
            scheme,
            d.fps,
            d.stride,
            d.point_seed,
            window_sec=d.window_sec,
            background_label=d.background_label,
            snippet_counts=counts,
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
    mapped = map_points(
        points,
        videos,
        d.fps,
        d.stride,
        gt.class_index,
        d.background_label,
        strict=d.strict_points,
        source=source,
        snippet_counts=counts,
        elsewhere={**videos_elsewhere(gt.videos, videos, d.train_subset), **without_features(gt)},
        scope=f"the training subset '{d.train_subset}'",
        actions_expected=scheme != "soda-background",
    )
    log.info("points: %s", mapped.report.summary)
    return mapped


def point_classes(config: Config, gt: GroundTruth, store: FeatureStore, video_ids: list[str]) -> dict[str, set[str]]:
    """The action classes each training video of `video_ids` is known to contain from the run's own
    supervision: the classes of its points (data.points: click files or a scheme, as training maps them); with
    weak supervision, its video-level labels. A video without action points maps to an empty set; videos
    outside data.train_subset are not in the result (no points exist for them)."""
    train_ids = {v.video_id for v in gt.subset(config.data.train_subset, "data.train_subset")}
    ids = [v for v in video_ids if v in train_ids]
    if point_sources(config)[0] == "weak":
        return {v: {i.label for i in gt.videos[v].instances} for v in ids}
    mapped = map_run_points(config, gt, {v: feature_length(store, v) for v in ids})
    classes: dict[str, set[str]] = {v: set() for v in ids}
    for vid, index in zip(mapped.video_id, mapped.class_index, strict=True):
        if index > 0:
            classes[vid].add(gt.classes[index - 1])
    return classes


def without_features(gt: GroundTruth) -> dict[str, str]:
    """Videos a published layout skipped for want of a feature file -> why (for `map_points`' report)."""
    return {vid: f"subset '{subset}' without a feature file" for vid, subset in gt.skipped.items()}


def without_videos(gt: GroundTruth, excluded: tuple[str, ...]) -> GroundTruth:
    """The ground truth less the videos of `data.exclude_videos` (names like `thumos14` expanded; an id it does
    not hold is logged once)."""
    excluded = excluded_videos(excluded)
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
    if source == TEACHER_SEGMENTS:  # pointtal.engine.route loads the data with its own pseudo-label file
        raise InputError(
            f"data.segments={source}: a route's student; train it with `pointtal train` (its teacher "
            "section writes the pseudo labels)"
        )
    if source != FULL:
        must_exist(config, "segments", source, "pseudo-label file")
    return load_segments(source, gt, train.video_ids, train.geometries)


def load_run_data(config: Config, *, train: bool = True, test: bool = True) -> RunData:
    """Load the subsets a run needs; features are read once into memory."""
    protocol = protocol_for(config)
    ambiguous = load_protocol_ambiguous(protocol)  # checked before the features are read
    store = open_store(config)
    gt = without_videos(load_ground_truth_for(config, store=store), config.data.exclude_videos)
    d = config.data
    train_set = test_set = None
    if train:
        train_set = build_dataset(gt, d.train_subset, store, d.fps, d.stride)
        mapped = load_points(config, gt, train_set)
        if mapped is not None:
            train_set.set_point_labels(point_label_rows(train_set, mapped, len(gt.classes)))
            train_set.point_times = point_times(train_set, mapped)
        if wants_segments(config):
            train_set.segments = load_training_segments(config, gt, train_set)
    if test:
        test_set = build_dataset(gt, d.test_subset, store, d.fps, d.stride)
    return RunData(gt, store, train_set, test_set, protocol, ambiguous)
