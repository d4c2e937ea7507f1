"""Ground truth in the ActivityNet JSON layout (docs/formats.md): videos, subsets, instances, classes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from pointtal.atomic import finite_number as _number
from pointtal.atomic import read_json
from pointtal.atomic import show as _show
from pointtal.errors import InputError
from pointtal.limits import MAX_DURATION_SEC, MAX_FPS

BACKGROUND = "background"


@dataclass(frozen=True)
class Instance:
    """One action instance, in seconds."""

    start_sec: float
    end_sec: float
    label: str
    score: float | None = None  # a pseudo label's confidence (`score` in the file); None in ground truth


@dataclass(frozen=True)
class Video:
    video_id: str
    subset: str
    duration_sec: float  # NaN only where a reader was told durations are not needed (evaluation, docs/formats.md)
    fps: float | None
    instances: tuple[Instance, ...]
    offset_frames: float = 0.0  # frames before feature step 0's snippet starts (SnippetGeometry.offset)


@dataclass(frozen=True)
class GroundTruth:
    """All videos of a ground-truth file and the class list (index 0 of score tensors is background)."""

    videos: dict[str, Video]
    classes: tuple[str, ...]
    # Native fps of the frame numbers in LACP-style point files, for published layouts whose ground truth
    # keeps that rate apart from the feature rate (video id -> fps); None: `Video.fps` serves both.
    frame_fps: dict[str, float] | None = None
    # Videos of a published layout's split files left out for want of a duration and a feature file
    # (video id -> the subset they would be in), so that their points are reported as such, not as unknown.
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def class_index(self) -> dict[str, int]:
        """Action class name -> column in a (C+1)-wide score tensor (1..C; 0 is background)."""
        return {name: i + 1 for i, name in enumerate(self.classes)}

    @property
    def subsets(self) -> set[str]:
        return {v.subset for v in self.videos.values()}

    def subset_name(self, name: str, source: str = "ground truth") -> str:
        """The ground truth's spelling of subset `name`: the exact name, else the one name equal to it up to
        case (HR-Pro's `Test` for `test`); anything else is an input error listing the subsets."""
        subsets = self.subsets
        if name in subsets:
            return name
        folded = [s for s in subsets if s.casefold() == name.casefold()]
        if len(folded) == 1:
            return folded[0]
        raise InputError(f"{source}: subset '{name}' does not exist; available: {', '.join(sorted(subsets))}")

    def subset(self, name: str, source: str = "ground truth") -> list[Video]:
        """Videos of one subset (named as in `subset_name`), in sorted id order; an unknown subset is an input
        error."""
        name = self.subset_name(name, source)
        return [self.videos[k] for k in sorted(self.videos) if self.videos[k].subset == name]


def _parse_video(video_id: str, entry, path: str, need_duration: bool = True) -> Video:
    where = f"{path}: video '{video_id}'"
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object, got {type(entry).__name__}")
    if "duration" in entry or need_duration:
        if "duration" not in entry:
            raise InputError(
                f"{where}: missing 'duration'; give the features (data.features, or --features), "
                "whose length T x stride / fps gives it"
            )
        duration = _number(entry["duration"], f"{where} duration")
        if duration <= 0:
            raise InputError(f"{where}: duration must be > 0, got {duration}")
        if duration > MAX_DURATION_SEC:
            raise InputError(f"{where}: duration must be at most {MAX_DURATION_SEC:g} s, got {duration}")
    else:
        duration = math.nan  # unknown, and not needed by the caller (segment and frame mAP use no duration)
    fps = entry.get("fps")
    if fps is not None:
        fps = _number(fps, f"{where} fps")
        if not 0 < fps <= MAX_FPS:
            raise InputError(f"{where}: fps must be > 0 and at most {MAX_FPS:g}, got {fps}")
    annotations = entry.get("annotations", [])
    if not isinstance(annotations, list):
        raise InputError(f"{where}: 'annotations' must be a list")
    instances = []
    for i, ann in enumerate(annotations):
        instances.append(_parse_instance(ann, f"{where} annotation {i}"))
    subset = entry.get("subset", "")
    if not isinstance(subset, str):
        raise InputError(f"{where}: 'subset' must be a string, got {_show(subset)}")
    return Video(video_id, subset, duration, fps, tuple(instances))


def _parse_instance(ann, where: str) -> Instance:
    if not isinstance(ann, dict) or "segment" not in ann or "label" not in ann:
        raise InputError(f"{where}: expected {{'segment': [start, end], 'label': name}}")
    segment = ann["segment"]
    if not isinstance(segment, (list, tuple)) or len(segment) != 2:
        raise InputError(f"{where}: segment must be [start, end], got {segment!r}")
    if any(isinstance(x, str) for x in segment):
        raise InputError(
            f"{where} segment: expected finite numbers, got {_show(segment)} (LACP's gt.json writes "
            "times as text: keep split_train.txt / split_test.txt beside it, or give its dataset "
            "folder, and it is read as the release it is)"
        )
    start, end = (_number(x, f"{where} segment") for x in segment)
    if start < 0:
        raise InputError(f"{where}: negative segment start {start}")
    if start >= end:
        raise InputError(f"{where}: segment start {start} >= end {end}")
    label = ann["label"]
    if not isinstance(label, str) or not label.strip():
        raise InputError(f"{where}: label must be a non-empty string, got {label!r}")
    score = _number(ann["score"], f"{where} score") if ann.get("score") is not None else None
    return Instance(start, end, label, score)


def read_class_list(path: str | Path) -> tuple[str, ...]:
    """One class name per line; blank lines ignored."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: class list not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: class list is not UTF-8 text (byte {err.start})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(f"{path}: class list has duplicate names: {', '.join(duplicates[:5])}")
    if not names:
        raise InputError(f"{path}: class list is empty (expected one class name per line)")
    return tuple(names)


def load_ground_truth(
    path: str | Path, class_list: str | Path | None = None, need_duration: bool = True
) -> GroundTruth:
    """Load and validate an ActivityNet-style ground-truth JSON (`need_duration=False`: a video without
    'duration' gets NaN, for callers that use no duration, like the mAP)."""
    return parse_ground_truth(read_json(path, "ground-truth file"), path, class_list, need_duration=need_duration)


def parse_ground_truth(
    data, path: str | Path, class_list: str | Path | None = None, *, need_duration: bool = True, labels_of=None
) -> GroundTruth:
    """Validate ground truth already read from `path` (a file, or a published layout rewritten in memory).
    `labels_of`: the labels the class list is derived from when no `class_list` is given (default: those
    of `data`; a published layout passes every video's, so videos skipped for lack of features cannot
    change the classes)."""
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise InputError(f"{path}: expected an object with a 'database' mapping video ids to videos")
    videos = {}
    for video_id, entry in data["database"].items():
        videos[video_id] = _parse_video(video_id, entry, str(path), need_duration)
    if not videos:
        raise InputError(f"{path}: 'database' holds no videos")
    labels = sorted({inst.label for v in videos.values() for inst in v.instances} | set(labels_of or ()))
    if class_list is not None:
        classes = read_class_list(class_list)
        unknown = sorted(set(labels) - set(classes))
        if unknown:
            raise InputError(f"{path}: labels not in class list {class_list}: {', '.join(unknown[:5])}")
    else:
        classes = tuple(labels)
    if BACKGROUND in classes:
        raise InputError(f"{path}: '{BACKGROUND}' is reserved and cannot be an action class")
    return GroundTruth(videos, tuple(classes))
