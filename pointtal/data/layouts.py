"""Datasets as LACP and HR-Pro publish them, read in place next to pointtal's own `DIR/<video_id>.npy`.

Published layouts (docs/formats.md, "Features"):

* LACP:   `DATASET/features/{train,test}/{rgb,flow}/<id>.npy`, two (T, 1024) streams joined rgb|flow at load;
          `gt.json` (segment times as numeric strings, no durations), `fps_dict.json`, split files.
* HR-Pro: `DATASET/features/{train,test}/<id>.npy` ((T, 2048)); `gt_full.json` (durations and the native fps).
* v-iashin/video_features (I3D): `DIR/<stem>_rgb.npy`, `<stem>_flow.npy` ((T, 1024) each, joined rgb|flow),
          `<stem>_fps.npy` (the video's fps) and `<stem>_timestamps_ms.npy` (T,), as its `--on_extraction
          save_numpy` writes them into `output/i3d/`; its default stack and step are 64 frames at the video's own
          fps, so such features train with `data.stride: 64` and the native fps of each video in the ground truth.
* Both:   `split_train.txt` / `split_test.txt` (one video id a line) decide which videos are trained and tested
          on; the point files (`point_gaussian/point_labels.csv`, `point_labels/point_gaussian.csv`) give frame
          numbers at each video's native fps and are read by `points.read_points`.

The ground truth of a published dataset is rewritten in memory into pointtal's: the split files name the
subsets (split_train -> `data.train_subset`, split_test -> `data.test_subset`), a missing duration is the
feature length `T * stride / fps`, and the native fps goes to `GroundTruth.frame_fps` (for point frames) and
never into the snippet geometry, which stays at the feature rate `data.fps`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointtal.data.annotations import GroundTruth, load_ground_truth, parse_ground_truth, read_json
from pointtal.data.features import FeatureStore, check_video_id, validate_features
from pointtal.data.points import _parse_time, read_fps_dict
from pointtal.errors import MAX_FPS, InputError

log = logging.getLogger(__name__)

SPLITS = ("train", "test")  # the folders under features/ and the split_<name>.txt files
STREAMS = ("rgb", "flow")  # LACP's two I3D streams, joined in this order
VF_META = ("fps", "timestamps_ms")  # video_features' per-video files beside the streams
VF_FOLDER = "i3d"  # the subfolder video_features writes I3D features into (output_path/feature_type)
GT_NAMES = ("gt_full.json", "gt.json")  # HR-Pro's, then LACP's ground-truth file in a dataset folder
EXPECTED = (
    "expected DIR/<video_id>.npy (pointtal), DIR/features/{train,test}/{rgb,flow}/<video_id>.npy (LACP) "
    "or DIR/features/{train,test}/<video_id>.npy (HR-Pro) or DIR/<video_id>_{rgb,flow,fps}.npy (video_features)"
)


# ------------------------------------------------------------------------------------------ features


@dataclass(frozen=True)
class Layout:
    """Which layout a feature directory holds and where its files are."""

    kind: str  # "pointtal" | "lacp" | "hrpro" | "video_features"
    features: Path  # the folder of <id>.npy (pointtal) or of the split folders (published)
    splits: tuple[str, ...] = ()  # split folders present (published layouts)


def _has_npy(folder: Path) -> bool:
    return next(folder.glob("*.npy"), None) is not None


def _split_kind(folder: Path) -> str:
    """`lacp` for rgb/ + flow/ stream folders, `hrpro` for .npy files; anything else is an input error."""
    streams = [s for s in STREAMS if (folder / s).is_dir()]
    if len(streams) == 2:
        return "lacp"
    if streams:
        other = STREAMS[1 - STREAMS.index(streams[0])]
        raise InputError(f"{folder}: has {streams[0]}/ but no {other}/ (the LACP layout needs both streams)")
    if _has_npy(folder):
        return "hrpro"
    raise InputError(f"{folder}: no feature files; {EXPECTED}")


def _is_video_features(folder: Path) -> bool:
    """video_features' output: `<stem>_fps.npy` files beside `<stem>_rgb.npy` / `<stem>_flow.npy` ones, and no
    other .npy (a pointtal folder whose ids happen to end in `_rgb` stays pointtal's)."""
    if not folder.is_dir() or next(folder.glob("*_fps.npy"), None) is None:
        return False
    names = [p.name for p in folder.glob("*.npy")]
    streams = tuple(f"_{s}.npy" for s in STREAMS)
    return any(n.endswith(streams) for n in names) and \
        all(n.endswith((*streams, *(f"_{m}.npy" for m in VF_META))) for n in names)


def detect_layout(path: str | Path) -> Layout:
    """The layout of a feature directory: the dataset root or its `features/` folder both work (video_features:
    its output folder or the `i3d/` folder in it)."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: feature directory not found ({EXPECTED})")
    for folder in (path, path / VF_FOLDER):
        if _is_video_features(folder):
            return Layout("video_features", folder)
    if _has_npy(path):
        return Layout("pointtal", path)
    base = path / "features" if (path / "features").is_dir() else path
    splits = tuple(s for s in SPLITS if (base / s).is_dir())
    if splits:
        kinds = {_split_kind(base / s) for s in splits}
        if len(kinds) > 1:
            raise InputError(f"{base}: train/ and test/ hold different layouts (one rgb/flow, one not); {EXPECTED}")
        return Layout(kinds.pop(), base, splits)
    if base != path and _has_npy(base):
        return Layout("pointtal", base)
    raise InputError(f"{path}: no feature files found; {EXPECTED}")


class SplitFeatureStore(FeatureStore):
    """Features of a published layout: `features/<split>[/<stream>]/<id>.npy`, streams joined along D.

    One store serves every subset, as pointtal's own does: each video is looked up in whichever split folder
    holds it. Single-stream files are memory-mapped; LACP's two streams are read and concatenated (rgb|flow).
    """

    def __init__(self, layout: Layout, trust_pickle: bool = False):
        super().__init__(layout.features, trust_pickle=trust_pickle)
        self.layout = layout
        self.streams = STREAMS if layout.kind == "lacp" else ("",)
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
                    raise InputError(f"{self.root}: video '{video_id}' has features in both {where[video_id]}/ "
                                     f"and {split}/; keep one")
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

    def n_snippets(self, video_id: str) -> int:
        """T of a video from its first stream, without reading the data (memory-mapped header)."""
        path = self.path(video_id)
        array = self._load_npy(path, video_id)
        if array.ndim != 2 or array.shape[0] == 0:
            raise InputError(f"{path}: video '{video_id}' features have shape {array.shape}; expected (T, D), T > 0")
        return int(array.shape[0])

    def load(self, video_id: str, validate: bool = True) -> np.ndarray:
        """The video's `(T, D)` array: one memory-mapped file, or LACP's two streams joined (rgb|flow)."""
        paths = self.stream_paths(video_id)
        arrays = [self._load_npy(p, video_id) for p in paths]
        if validate:
            for array, path in zip(arrays, paths, strict=True):
                validate_features(array, video_id, path)
        joined = _join_streams(arrays, paths, video_id)
        if validate and self._dim is not None and joined.shape[1] != self._dim:
            raise InputError(f"{paths[0]}: video '{video_id}' features are {joined.shape[1]} wide "
                             f"(all streams) but other videos are {self._dim}")
        self._dim = self._dim or int(joined.shape[1])
        return joined


class VideoFeaturesStore(SplitFeatureStore):
    """Features as v-iashin/video_features saves them: `<stem>_rgb.npy` and `<stem>_flow.npy` joined rgb|flow
    (one of them where only one stream was extracted), the video id being the stem. Every video with a
    `<stem>_fps.npy` needs a file of every stream the folder holds."""

    def __init__(self, layout: Layout, trust_pickle: bool = False):
        FeatureStore.__init__(self, layout.features, trust_pickle=trust_pickle)
        self.layout = layout
        stems = sorted(p.name[: -len("_fps.npy")] for p in self.root.glob("*_fps.npy"))
        self.streams = tuple(s for s in STREAMS if any((self.root / f"{v}_{s}.npy").is_file() for v in stems))
        for stem in stems:
            missing = [s for s in self.streams if not (self.root / f"{stem}_{s}.npy").is_file()]
            if missing:
                raise InputError(f"{self.root / f'{stem}_fps.npy'}: video '{stem}' has no {stem}_{missing[0]}.npy; "
                                 f"the folder's other videos have the {' and '.join(self.streams)} streams")
        self._ids = set(stems)

    def stream_paths(self, video_id: str) -> list[Path]:
        if check_video_id(video_id, str(self.root)) not in self._ids:
            raise InputError(f"{self.root}: no feature file for video '{video_id}' "
                             f"({video_id}_{self.streams[0]}.npy with {video_id}_fps.npy)")
        return [self.root / f"{video_id}_{stream}.npy" for stream in self.streams]

    def __contains__(self, video_id: str) -> bool:
        return check_video_id(video_id, str(self.root)) in self._ids

    def ids(self) -> list[str]:
        return sorted(self._ids)

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


def _join_streams(arrays: list[np.ndarray], paths: list[Path], video_id: str) -> np.ndarray:
    """rgb|flow along D; the streams must cover the same snippets (equal T)."""
    if len(arrays) == 1:
        return arrays[0]
    lengths = [a.shape[0] if a.ndim == 2 else None for a in arrays]
    if None in lengths or len(set(lengths)) > 1:
        shapes = ", ".join(f"{p.parent.name} {a.shape}" for a, p in zip(arrays, paths, strict=True))
        raise InputError(f"{paths[0].parent.parent}: video '{video_id}' streams differ in length ({shapes}); "
                         "rgb and flow need the same number of snippets T")
    return np.concatenate(arrays, axis=1)  # (T, D_rgb + D_flow)


def feature_length(store: FeatureStore, video_id: str) -> int:
    """T of a video without reading its numbers (headers of memory-mapped files)."""
    if isinstance(store, SplitFeatureStore):
        return store.n_snippets(video_id)
    return int(store.load(video_id, validate=False).shape[0])


def open_features(path: str | Path, trust_pickle: bool = False, video_names=None) -> FeatureStore:
    """The feature store of `data.features`: a legacy single file, pointtal's layout or a published one."""
    path = Path(path)
    if path.is_file():
        return FeatureStore(path, trust_pickle=trust_pickle, video_names=video_names)
    layout = detect_layout(path)
    if layout.kind == "pointtal":
        return FeatureStore(layout.features, trust_pickle=trust_pickle)
    if layout.kind == "video_features":
        store = VideoFeaturesStore(layout, trust_pickle=trust_pickle)
        first = next(iter(store.ids()), None)
        step = store.step_frames(first) if first is not None else None
        log.info("features: video_features layout in %s (%s; %s)", layout.features, "|".join(store.streams),
                 f"a snippet every {step:.4g} frames: set data.stride to it" if step else "step unknown")
        return store
    name = {"lacp": "LACP", "hrpro": "HR-Pro"}[layout.kind]
    log.info("features: %s layout in %s (%s)", name, layout.features, ", ".join(layout.splits))
    return SplitFeatureStore(layout, trust_pickle=trust_pickle)


# ------------------------------------------------------------------------------------- ground truth


@dataclass(frozen=True)
class Subsets:
    """How a published dataset's split files are named as pointtal subsets, and its feature geometry."""

    train: str = "validation"  # data.train_subset
    test: str = "test"  # data.test_subset
    fps: float = 25.0  # feature fps (data.fps): durations from features are T * stride / fps
    stride: int = 16  # data.stride


def _published_files(path: Path) -> tuple[Path, Path] | None:
    """(ground-truth file, dataset folder) of a published dataset, or None for a plain ground-truth file."""
    if path.is_dir():
        found = next((path / name for name in GT_NAMES if (path / name).is_file()), None)
        if found is None:
            raise InputError(f"{path}: no {' or '.join(GT_NAMES)} in this dataset folder")
        return found, path
    if any((path.parent / f"split_{s}.txt").is_file() for s in SPLITS):
        return path, path.parent
    return None


def _read_split(path: Path, database: dict, gt_path: Path) -> list[str]:
    """Video ids of one split file (blank lines ignored); each must be a video of the ground truth."""
    if not path.is_file():
        raise InputError(f"{path}: split file not found (a published dataset has split_train.txt and split_test.txt)")
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start})") from None
    ids = []
    for number, line in enumerate(lines, start=1):
        video_id = line.strip()
        if not video_id:
            continue
        if video_id not in database:
            raise InputError(f"{path} line {number}: video '{video_id}' is not in {gt_path}")
        ids.append(video_id)
    return ids


def _split_subsets(folder: Path, database: dict, gt_path: Path, names: Subsets) -> dict[str, str]:
    """video id -> pointtal subset name, from split_train.txt / split_test.txt."""
    subset_of: dict[str, str] = {}
    for split, name in (("train", names.train), ("test", names.test)):
        split_path = folder / f"split_{split}.txt"
        for video_id in _read_split(split_path, database, gt_path):
            if subset_of.get(video_id, name) != name:
                raise InputError(f"{split_path}: video '{video_id}' is listed in both split files")
            subset_of[video_id] = name
    return subset_of


def _number_text(value, where: str, what: str):
    """A number as LACP writes it (a numeric string) or as JSON does; other types are left to the shared
    ground-truth parser, which names them."""
    return _parse_time(value, where, what) if isinstance(value, str) else value


def _normalised_entry(video_id: str, entry, subset: str, duration, where: str) -> dict:
    """One published video entry in pointtal's ground-truth form (no fps: it is the native, not feature, rate;
    no duration where `duration` is None)."""
    annotations = entry.get("annotations", [])
    if not isinstance(annotations, list):
        raise InputError(f"{where}: video '{video_id}': 'annotations' must be a list")
    rewritten = []
    for i, ann in enumerate(annotations):
        if isinstance(ann, dict) and isinstance(ann.get("segment"), (list, tuple)):
            segment = [_number_text(x, f"{where}: video '{video_id}' annotation {i}", "segment time")
                       for x in ann["segment"]]
            ann = {"segment": segment, "label": ann.get("label")}
        rewritten.append(ann)
    entry = {"subset": subset, "annotations": rewritten}
    if duration is not None:
        entry["duration"] = duration
    return entry


def _labels(entries) -> set[str]:
    """The string labels of the annotations of published video entries (malformed ones are left to the parser)."""
    labels = set()
    for entry in entries:
        annotations = entry.get("annotations") if isinstance(entry, dict) else None
        for ann in annotations if isinstance(annotations, list) else ():
            label = ann.get("label") if isinstance(ann, dict) else None
            if isinstance(label, str) and label.strip():
                labels.add(label)
    return labels


def _native_fps(database: dict, folder: Path, where: str) -> dict[str, float]:
    """video id -> native fps: the ground truth's `fps` keys (HR-Pro), overridden by fps_dict.json (LACP)."""
    rates = {}
    for video_id, entry in database.items():
        fps = entry.get("fps") if isinstance(entry, dict) else None
        if fps is not None:
            number = _number_text(fps, f"{where}: video '{video_id}'", "fps")
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 < number <= MAX_FPS:
                raise InputError(f"{where}: video '{video_id}': fps must be a number in (0, {MAX_FPS:g}], "
                                 f"got {fps!r}")
            rates[video_id] = float(number)
    fps_dict = folder / "fps_dict.json"
    if fps_dict.is_file():
        rates.update(read_fps_dict(fps_dict))
    return rates


def load_published_truth(
    gt_path: Path, folder: Path, names: Subsets, class_list=None, store: Callable[[], FeatureStore] | None = None,
    need_duration: bool = True,
) -> GroundTruth:
    """A LACP / HR-Pro ground truth with its split files; durations missing from it come from the features
    (`store`). A video of the split files without a duration and without a feature file is skipped with a
    warning (`GroundTruth.skipped` names it), unless `need_duration=False` (evaluation): then it is kept with
    a NaN duration. The classes are those of every video of the split files, skipped or not, and
    `GroundTruth.frame_fps` holds the native fps of every video the files give one for."""
    data = read_json(gt_path, "ground-truth file")
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise InputError(f"{gt_path}: expected an object with a 'database' mapping video ids to videos")
    database = data["database"]
    subset_of = _split_subsets(folder, database, gt_path, names)
    opened = None
    normalised, no_features = {}, []
    for video_id in sorted(subset_of):
        entry = database[video_id]
        if not isinstance(entry, dict):
            raise InputError(f"{gt_path}: video '{video_id}': expected an object, got {type(entry).__name__}")
        duration = _number_text(entry["duration"], f"{gt_path}: video '{video_id}'", "duration") \
            if "duration" in entry else None
        if duration is None and store is not None:
            opened = opened or store()
            if video_id in opened:
                duration = feature_length(opened, video_id) * names.stride / names.fps  # T * stride / fps seconds
        if duration is None and need_duration:
            if store is None:
                raise InputError(f"{gt_path}: video '{video_id}' has no duration; it is taken from the features, "
                                 "so give them (data.features, or --features)")
            no_features.append(video_id)
            continue
        normalised[video_id] = _normalised_entry(video_id, entry, subset_of[video_id], duration, str(gt_path))
    if no_features:
        log.warning("%s: %d of %d videos of the split files have no duration and no feature file; skipped "
                    "(first: %s)", gt_path, len(no_features),
                    len(subset_of), ", ".join(no_features[:3]))
    unused = len(database) - len(subset_of)
    if unused:
        log.info("%s: %d videos are in no split file and are left out", gt_path, unused)
    if not normalised:
        raise InputError(f"{gt_path}: no video of the split files has a duration or a feature file")
    truth = parse_ground_truth({"database": normalised}, gt_path, class_list, need_duration=need_duration,
                               labels_of=_labels(database[v] for v in subset_of))
    rates = _native_fps(database, folder, str(gt_path))
    skipped = {v: subset_of[v] for v in no_features}
    return GroundTruth(truth.videos, truth.classes, rates, skipped)


def load_truth(
    path: str | Path, class_list=None, names: Subsets = Subsets(), store: Callable[[], FeatureStore] | None = None,
    need_duration: bool = True,
) -> GroundTruth:
    """`data.annotations`: pointtal's ground-truth JSON, or a published dataset (its folder, or its gt.json /
    gt_full.json with split_train.txt / split_test.txt beside it). `store` opens the features, needed only
    when the ground truth has no durations (LACP) and `need_duration` (False: evaluation, where a missing
    duration is NaN; see `load_published_truth`)."""
    path = Path(path)
    published = _published_files(path)
    if published is None:
        truth = load_ground_truth(path, class_list, need_duration=need_duration and store is None)
        return truth if store is None else _durations_from(truth, store, names, need_duration)
    return load_published_truth(*published, names, class_list, store, need_duration)


def _durations_from(truth: GroundTruth, store: Callable[[], FeatureStore], names: Subsets,
                    need_duration: bool = True) -> GroundTruth:
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
            raise InputError(f"{opened.root}: video '{video_id}' has no 'duration' in the ground truth and no "
                             "feature file here to take it from")
        duration = feature_length(opened, video_id) * names.stride / names.fps  # T * stride / fps seconds
        videos[video_id] = dataclasses.replace(truth.videos[video_id], duration_sec=duration)
    return dataclasses.replace(truth, videos=videos)
