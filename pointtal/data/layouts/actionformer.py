"""ActionFormer's and OpenTAD's THUMOS14 releases, read as they are.

* ActionFormer (`happyharrycn/actionformer_release`, `data/thumos/`): `annotations/thumos14.json` (ActivityNet
  layout: per video `subset` Validation / Test, `duration`, its own `fps`, and per instance `segment` in seconds,
  `label` and `label_id`, the class's column) and `i3d_features/<id>.npy` ((T, 2048), pointtal's own feature
  layout).
* OpenTAD (`sming256/OpenTAD`, `data/thumos-14/`): `annotations/thumos_14_anno.json` (per video `subset`
  training / validation, `duration` and `frame`, the frame count: fps = frame / duration; instances labelled
  `Ambiguous` are not actions and are dropped, as its loader does), `annotations/category_idx.txt` (one class a
  line, the class order) and the ActionFormer features.

Both cut I3D windows of 16 frames every 4 frames and place feature step i at the window's centre, `(i * 4 + 8) /
fps` seconds (ActionFormer's `feat_offset = 0.5 * num_frames / feat_stride`, OpenTAD's `offset_frames = 8`). In
pointtal's geometry snippet t covers `[t, t+1)`, so each video's snippets start `num_frames/2 - stride/2` frames
in (`Video.offset_frames`, `SnippetGeometry.offset`): the step's centre lands at the time the releases give it,
and predictions come back in the videos' own seconds. Train such features with `data.stride: 4` (the fps of each
video comes from the file). OpenTAD's subsets are named by role: training -> `data.train_subset`, validation ->
`data.test_subset`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from pointtal.data.annotations import GroundTruth, parse_ground_truth
from pointtal.data.layouts.common import Subsets
from pointtal.errors import InputError
from pointtal.limits import MAX_FPS

log = logging.getLogger(__name__)

NUM_FRAMES = 16  # frames of one I3D window in both releases (ActionFormer's `num_frames`)
STRIDE = 4  # frames between feature steps in both releases (`feat_stride`)
CATEGORIES = "category_idx.txt"  # OpenTAD's class order, beside its annotation file
AMBIGUOUS = "Ambiguous"  # OpenTAD's label for THUMOS14's ambiguous segments, not an action
OPENTAD_SUBSETS = ("training", "validation")  # OpenTAD's subset names: trained on, tested on


def kind(path: Path, data) -> str | None:
    """ "opentad" for an annotation file with category_idx.txt beside it, "actionformer" for one whose instances
    carry `label_id`, None for any other ground truth (pointtal's pseudo-label files, which carry `label_id`
    for ActionFormer's reader, included)."""
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict) or "pseudo_labels" in data:  # pointtal's pseudo labels carry label_id too
        return None
    if (path.parent / CATEGORIES).is_file():
        return "opentad"
    for entry in database.values():
        annotations = entry.get("annotations") if isinstance(entry, dict) else None
        if isinstance(annotations, list) and any(isinstance(a, dict) and "label_id" in a for a in annotations):
            return "actionformer"
    return None


def offset_frames(stride: int) -> float:
    """Frames before snippet 0 starts, so that snippet t's centre is `(t * stride + NUM_FRAMES / 2) / fps`."""
    return NUM_FRAMES / 2 - stride / 2


def load(
    path: Path,
    data: dict,
    release: str,
    names: Subsets,
    class_list=None,
    need_duration: bool = True,
    check_stride: bool = True,
) -> GroundTruth:
    """The release's ground truth in pointtal's form, each video carrying its fps and the window offset
    (`check_stride`: a run whose data.stride is not the release's 4 trains on other features, so their snippets
    get no window offset, and a warning says so)."""
    other = check_stride and names.stride != STRIDE
    if other:
        log.warning(
            "%s: %s's features are %d frames apart but data.stride is %d: read as features of pointtal's "
            "geometry, without the release's window offset (set data.stride: %d for its features)",
            path,
            release,
            STRIDE,
            names.stride,
            STRIDE,
        )
    database = {vid: _entry(vid, entry, release, names, str(path)) for vid, entry in data["database"].items()}
    if release == "opentad" and class_list is None:
        class_list = path.parent / CATEGORIES
    truth = parse_ground_truth({"database": database}, path, class_list, need_duration=need_duration)
    if release == "actionformer" and class_list is None:
        truth = dataclasses.replace(truth, classes=_label_id_order(data["database"], truth.classes, path))
    offset = 0.0 if other else offset_frames(STRIDE)
    videos = {vid: dataclasses.replace(v, offset_frames=offset) for vid, v in truth.videos.items()}
    log.info(
        "ground truth: %s release in %s (%d videos; feature step i at (i * %d + %d) / fps s)",
        release,
        path,
        len(videos),
        STRIDE,
        NUM_FRAMES // 2,
    )
    return dataclasses.replace(truth, videos=videos)


def _entry(video_id: str, entry, release: str, names: Subsets, where: str):
    """One video entry in pointtal's layout (OpenTAD: fps from frame / duration, subsets by role, no
    Ambiguous instances); malformed entries are left to the shared parser, which names them."""
    if not isinstance(entry, dict) or release != "opentad":
        return entry
    entry = dict(entry)
    subset = entry.get("subset")
    if subset in OPENTAD_SUBSETS:
        entry["subset"] = names.train if subset == OPENTAD_SUBSETS[0] else names.test
    frames, duration = entry.get("frame"), entry.get("duration")
    if "fps" not in entry and frames is not None and duration is not None:
        if (
            not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (frames, duration))
            or duration <= 0
            or not 0 < frames / duration <= MAX_FPS
        ):
            raise InputError(
                f"{where}: video '{video_id}': 'frame' / 'duration' must give an fps in "
                f"(0, {MAX_FPS:g}], got {frames!r} / {duration!r}"
            )
        entry["fps"] = frames / duration
    annotations = entry.get("annotations")
    if isinstance(annotations, list):
        entry["annotations"] = [a for a in annotations if not (isinstance(a, dict) and a.get("label") == AMBIGUOUS)]
    return entry


def _label_id_order(database: dict, classes: tuple[str, ...], path: Path) -> tuple[str, ...]:
    """The classes in the order of their `label_id`; a label with two ids or an id with two labels is an
    input error naming both."""
    ids: dict[str, int] = {}
    for video_id, entry in database.items():
        for ann in entry.get("annotations", []):
            label, number = ann.get("label"), ann.get("label_id")
            if number is None:
                continue
            if isinstance(number, bool) or not isinstance(number, int):
                raise InputError(f"{path}: video '{video_id}': label_id must be an integer, got {number!r}")
            if ids.setdefault(label, number) != number:
                raise InputError(
                    f"{path}: video '{video_id}': label '{label}' has label_id {number} here and {ids[label]} elsewhere"
                )
    owners: dict[int, str] = {}
    for label, number in ids.items():
        if owners.setdefault(number, label) != label:
            raise InputError(f"{path}: label_id {number} names both '{owners[number]}' and '{label}'")
    missing = [c for c in classes if c not in ids]
    return tuple(sorted(ids, key=ids.__getitem__)) + tuple(missing)
