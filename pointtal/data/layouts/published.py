"""The ground truth of LACP's and HR-Pro's releases, rewritten in memory into pointtal's.

`gt.json` (LACP: segment times as numeric strings, no durations) or `gt_full.json` (HR-Pro: durations and the
native fps), `fps_dict.json` (LACP) and `split_train.txt` / `split_test.txt` (one video id a line), which decide
which videos are trained and tested on: split_train -> `data.train_subset`, split_test -> `data.test_subset`. A
missing duration is the feature length `T * stride / fps`, and the native fps goes to `GroundTruth.frame_fps`
(for the point files' frame numbers, read by `points.read_points`) and never into the snippet geometry, which
stays at the feature rate `data.fps`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pointtal.data.annotations import GroundTruth, parse_ground_truth, read_json
from pointtal.data.features import FeatureStore
from pointtal.data.layouts.common import SPLITS, Subsets
from pointtal.data.points import _parse_time, read_fps_dict
from pointtal.errors import InputError
from pointtal.limits import MAX_FPS

log = logging.getLogger(__name__)

GT_NAMES = ("gt_full.json", "gt.json")  # HR-Pro's, then LACP's ground-truth file in a dataset folder


def find(path: Path) -> tuple[Path, Path] | None:
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
            segment = [
                _number_text(x, f"{where}: video '{video_id}' annotation {i}", "segment time") for x in ann["segment"]
            ]
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
                raise InputError(f"{where}: video '{video_id}': fps must be a number in (0, {MAX_FPS:g}], got {fps!r}")
            rates[video_id] = float(number)
    fps_dict = folder / "fps_dict.json"
    if fps_dict.is_file():
        rates.update(read_fps_dict(fps_dict))
    return rates


def load_published_truth(
    gt_path: Path,
    folder: Path,
    names: Subsets,
    class_list=None,
    store: Callable[[], FeatureStore] | None = None,
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
        duration = (
            _number_text(entry["duration"], f"{gt_path}: video '{video_id}'", "duration")
            if "duration" in entry
            else None
        )
        if duration is None and store is not None:
            opened = opened or store()
            if video_id in opened:
                duration = opened.length(video_id) * names.stride / names.fps  # T * stride / fps seconds
        if duration is None and need_duration:
            if store is None:
                raise InputError(
                    f"{gt_path}: video '{video_id}' has no duration; it is taken from the features, "
                    "so give them (data.features, or --features)"
                )
            no_features.append(video_id)
            continue
        normalised[video_id] = _normalised_entry(video_id, entry, subset_of[video_id], duration, str(gt_path))
    if no_features:
        log.warning(
            "%s: %d of %d videos of the split files have no duration and no feature file; skipped (first: %s)",
            gt_path,
            len(no_features),
            len(subset_of),
            ", ".join(no_features[:3]),
        )
    unused = len(database) - len(subset_of)
    if unused:
        log.info("%s: %d videos are in no split file and are left out", gt_path, unused)
    if not normalised:
        raise InputError(f"{gt_path}: no video of the split files has a duration or a feature file")
    truth = parse_ground_truth(
        {"database": normalised},
        gt_path,
        class_list,
        need_duration=need_duration,
        labels_of=_labels(database[v] for v in subset_of),
    )
    rates = _native_fps(database, folder, str(gt_path))
    skipped = {v: subset_of[v] for v in no_features}
    return GroundTruth(truth.videos, truth.classes, rates, skipped)
