"""Clicks in and out of the annotation tools the field uses (docs/formats.md, "Click files of other tools").

* VIA 3 (VGG Image Annotator, its video annotator): the project JSON (`file`, `view`, `attribute`, `metadata`;
  a metadata's `z` is `[t]`, a time marker, or `[t1, t2]`, a temporal segment, in seconds; its `av` maps an
  attribute id to the option id of a select / radio attribute or to the text of a text attribute) and the CSV it
  exports (`# ATTRIBUTE = {...}` comment, then `metadata_id,file_list,flags,temporal_coordinates,
  spatial_coordinates,metadata` rows). The class is the value of the first attribute anchored on time
  (`FILE1_Z1_XY0` / `FILE1_Z2_XY0`); the video id is the file name without its video extension.
* Label Studio's video timeline (JSON export: a list of tasks, each with `data` and `annotations[].result`):
  `timelinelabels` results (`value.ranges` of 1-based inclusive frames at the video's frame rate,
  `value.timelinelabels` the class) and `videorectangle` results (`value.sequence` keyframes with `frame` and
  `time`, `value.labels`). Frame f starts at (f - 1) / fps seconds.
* LACP / HR-Pro point CSV (export only; `points.read_points` reads it): `class,class_index,start_frame,stop_frame,
  video_id,point`, frames at the video's native fps, class_index 0-based in the sorted class list.

A segment (a VIA `[t1, t2]`, a timeline range of several frames) becomes one click at its middle: a point label
is one click per instance. Every reader names the file and the record of a malformed entry in one line.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from pointtal.atomic import write_text_atomic
from pointtal.data.annotations import BACKGROUND, Video
from pointtal.data.points import Point, _read_text
from pointtal.errors import InputError

log = logging.getLogger(__name__)

IMPORT_FORMATS = ("via", "labelstudio")
EXPORT_FORMATS = ("via", "labelstudio", "lacp")
VIDEO_EXTENSIONS = {
    ".mp4",
    ".avi",
    ".mkv",
    ".webm",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".ogv",
    ".ogg",
    ".flv",
    ".wmv",
    ".3gp",
    ".ts",
}
VIA_TIME_ANCHORS = ("FILE1_Z1_XY0", "FILE1_Z2_XY0")  # time marker, temporal segment
VIA_SELECT_TYPES = (3, 4)  # RADIO, SELECT: `av` holds an option id
VIA_CSV_HEADER = "metadata_id,file_list,flags,temporal_coordinates,spatial_coordinates,metadata"
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes uploaded file names with 8 hex digits
_EPS = 1e-9  # a time on a frame boundary belongs to the later frame (as SnippetGeometry.to_snippet)

FpsLookup = Callable[[str], "float | None"]


def _sort(points: list[Point]) -> list[Point]:
    return sorted(points, key=lambda p: (p.video_id, p.time_sec, p.label))


def video_id_of(name: str) -> str:
    """`path/to/video_0001.mp4?x=1` -> `video_0001`: the base name, less a video extension (other dots stay)."""
    base = PurePosixPath(name.split("?", 1)[0].replace("\\", "/")).name
    suffix = PurePosixPath(base).suffix
    return base[: -len(suffix)] if suffix.lower() in VIDEO_EXTENSIONS else base


def _time(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"{where}: time {value!r} is not a number >= 0")
    return float(value)


def _json(path: Path, text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None


# ------------------------------------------------------------------------------------------------- VIA 3


def _via_label_attribute(attributes: Mapping, path: Path) -> tuple[str, dict]:
    """(id, attribute) of the class attribute: the first (by id) anchored on time; any, when anchors are unknown."""
    if not isinstance(attributes, dict) or not attributes:
        raise InputError(
            f"{path}: no VIA attribute to read the class from (expected 'attribute' with one "
            f"anchored on {' or '.join(VIA_TIME_ANCHORS)})"
        )

    def order(aid: str):
        return (0, int(aid), aid) if str(aid).isdigit() else (1, 0, str(aid))

    timed = [
        a
        for a in attributes
        if isinstance(attributes[a], dict) and attributes[a].get("anchor_id", VIA_TIME_ANCHORS[0]) in VIA_TIME_ANCHORS
    ]
    if not timed:
        raise InputError(
            f"{path}: no VIA attribute is anchored on time ({' or '.join(VIA_TIME_ANCHORS)}); the "
            "class of a click is the value of such an attribute"
        )
    aid = min(timed, key=order)
    return str(aid), attributes[aid]


def _via_label(av, aid: str, attribute: dict, where: str) -> str:
    if not isinstance(av, dict) or aid not in av or str(av[aid]).strip() == "":
        raise InputError(f"{where}: no value for attribute {aid} ('{attribute.get('aname', aid)}'), the class")
    value = str(av[aid]).strip()
    options = attribute.get("options")
    if attribute.get("type") in VIA_SELECT_TYPES and isinstance(options, dict):
        if value not in options:
            raise InputError(
                f"{where}: attribute {aid} has no option '{value}' (options: {', '.join(map(str, options))})"
            )
        value = str(options[value]).strip()
    if attribute.get("type") == 2 and "," in value:
        raise InputError(f"{where}: several classes '{value}' ticked in checkbox attribute {aid}; one a click")
    return value


def _via_time(z, where: str) -> float | None:
    """The click time of a metadata's `z`: `[t]` -> t, `[t1, t2]` -> the middle; `[]` (a file attribute) -> None."""
    if not isinstance(z, list) or len(z) > 2:
        raise InputError(f"{where}: temporal coordinates {z!r} are not [t] or [t1, t2]")
    if not z:
        return None
    times = [_time(t, where) for t in z]
    if len(times) == 2 and times[1] < times[0]:
        raise InputError(f"{where}: segment [{times[0]}, {times[1]}] ends before it starts")
    return sum(times) / len(times)


def _via_point(video_id: str, z, xy, av, aid, attribute, where: str, path: Path, line: int) -> Point | None:
    if xy:  # a spatial region (a box in a frame) is not a click on the timeline
        return None
    time_sec = _via_time(z, where)
    if time_sec is None:
        return None
    return Point(video_id, time_sec, _via_label(av, aid, attribute, where), str(path), line)


def _read_via_json(path: Path, text: str) -> list[Point]:
    data = _json(path, text)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), dict) for k in ("file", "view", "metadata")):
        raise InputError(
            f"{path}: not a VIA 3 project (expected an object with 'file', 'view', 'attribute' and 'metadata')"
        )
    aid, attribute = _via_label_attribute(data.get("attribute"), path)
    points = []
    for mid, meta in data["metadata"].items():
        where = f"{path}: metadata '{mid}'"
        if not isinstance(meta, dict):
            raise InputError(f"{where}: expected an object")
        view = data["view"].get(str(meta.get("vid")))
        fids = view.get("fid_list") if isinstance(view, dict) else None
        file = data["file"].get(str(fids[0])) if isinstance(fids, list) and fids else None
        if not isinstance(file, dict) or not isinstance(file.get("fname"), str) or not file["fname"]:
            raise InputError(f"{where}: view {meta.get('vid')!r} names no file with a 'fname'")
        point = _via_point(
            video_id_of(file["fname"]), meta.get("z"), meta.get("xy"), meta.get("av"), aid, attribute, where, path, 0
        )
        if point is not None:
            points.append(point)
    return points


def _via_csv_attributes(comments: list[str], path: Path) -> dict:
    """The attributes of a VIA CSV export: `# ATTRIBUTE = {id: attribute}` (full) or `# ATTRIBUTES = {id: name}`."""
    for line in comments:
        key, _, value = line.lstrip("#").partition("=")
        if key.strip() in ("ATTRIBUTE", "ATTRIBUTES"):
            try:
                attributes = json.loads(value)
            except json.JSONDecodeError:
                raise InputError(f"{path}: the '# {key.strip()} =' line is not valid JSON") from None
            if not isinstance(attributes, dict):
                break
            return {str(a): v if isinstance(v, dict) else {"aname": str(v)} for a, v in attributes.items()}
    raise InputError(f"{path}: no '# ATTRIBUTE = {{...}}' line; expected a CSV exported by VIA 3")


def _csv_json(value: str, where: str, what: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise InputError(f"{where}: {what} {value!r} is not valid JSON") from None


def _read_via_csv(path: Path, text: str) -> list[Point]:
    lines = text.splitlines()
    comments = [line for line in lines if line.startswith("#")]
    aid, attribute = _via_label_attribute(_via_csv_attributes(comments, path), path)
    points = []
    for number, line in enumerate(lines, start=1):
        if line.startswith("#") or not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            fields = next(csv.reader([line]))
        except csv.Error as err:
            raise InputError(f"{where}: unreadable CSV line ({err})") from None
        if len(fields) < 6:
            raise InputError(f"{where}: expected 6 fields ({VIA_CSV_HEADER}), got {len(fields)}")
        files = _csv_json(fields[1], where, "file_list")
        if not isinstance(files, list) or not files or not isinstance(files[0], str) or not files[0]:
            raise InputError(f"{where}: file_list {fields[1]!r} names no file")
        point = _via_point(
            video_id_of(files[0]),
            _csv_json(fields[3], where, "temporal_coordinates"),
            _csv_json(fields[4], where, "spatial_coordinates"),
            _csv_json(fields[5], where, "metadata"),
            aid,
            attribute,
            where,
            path,
            number,
        )
        if point is not None:
            points.append(point)
    return points


def read_via(path: str | Path) -> list[Point]:
    """Clicks of a VIA 3 project JSON or VIA 3 CSV export (told apart by the first character)."""
    path = Path(path)
    text = _read_text(path)
    reader = _read_via_json if text.lstrip().startswith("{") else _read_via_csv
    return _sort(reader(path, text))


def _via_options(points: Sequence[Point]) -> dict[str, str]:
    return {str(i): label for i, label in enumerate(sorted({p.label for p in points}))}


def _via_attribute(options: dict[str, str]) -> dict:
    return {
        "aname": "action",
        "anchor_id": "FILE1_Z1_XY0",
        "type": 4,
        "desc": "class of the click (pointtal)",
        "options": options,
        "default_option_id": "",
    }


def write_via(points: Sequence[Point], path: str | Path) -> None:
    """A VIA 3 project (`.json`) or VIA 3 CSV (any other suffix): one time marker `z = [t]` a click, the class
    a select attribute; byte-reproducible (sorted, ids numbered in order)."""
    path = Path(path)
    points = _sort(list(points))
    options = _via_options(points)
    option_of = {label: oid for oid, label in options.items()}
    videos = sorted({p.video_id for p in points})
    vid_of = {v: str(i + 1) for i, v in enumerate(videos)}
    if path.suffix.lower() == ".json":
        metadata = {
            f"{vid_of[p.video_id]}_{i:08d}": {
                "vid": vid_of[p.video_id],
                "flg": 0,
                "z": [p.time_sec],
                "xy": [],
                "av": {"1": option_of[p.label]},
            }
            for i, p in enumerate(points)
        }
        project = {
            "project": {
                "pid": "__VIA_PROJECT_ID__",
                "rev": "__VIA_PROJECT_REV_ID__",
                "rev_timestamp": "__VIA_PROJECT_REV_TIMESTAMP__",
                "pname": "pointtal clicks",
                "creator": "pointtal",
                "created": 0,
                "vid_list": [vid_of[v] for v in videos],
            },
            "config": {"file": {"loc_prefix": {"1": "", "2": "", "3": "", "4": ""}}, "ui": {}},
            "attribute": {"1": _via_attribute(options)},
            "file": {vid_of[v]: {"fid": vid_of[v], "fname": v, "type": 4, "loc": 1, "src": ""} for v in videos},
            "view": {vid_of[v]: {"fid_list": [vid_of[v]]} for v in videos},
            "metadata": metadata,
        }
        write_text_atomic(path, json.dumps(project, indent=1, ensure_ascii=False) + "\n")
        return
    out = io.StringIO()
    out.write("# Exported using pointtal in the layout of VGG Image Annotator 3's CSV export\n")
    out.write(f"# ATTRIBUTE = {json.dumps({'1': _via_attribute(options)}, ensure_ascii=False)}\n")
    out.write(f"# CSV_HEADER = {VIA_CSV_HEADER}\n")
    writer = csv.writer(out, lineterminator="\n")
    for i, p in enumerate(points):
        writer.writerow(
            [
                f"{vid_of[p.video_id]}_{i:08d}",
                json.dumps([p.video_id], ensure_ascii=False),
                0,
                json.dumps([p.time_sec]),
                "[]",
                json.dumps({"1": option_of[p.label]}),
            ]
        )
    write_text_atomic(path, out.getvalue())


# ----------------------------------------------------------------------------------------- Label Studio


def _fps(fps_lookup: FpsLookup, video_id: str, where: str) -> float:
    hint = "give 'fps' in the ground truth or --fps-dict (video id -> fps)"
    try:
        fps = fps_lookup(video_id)
    except KeyError:
        fps = None
    if fps is None or not math.isfinite(fps) or fps <= 0:
        raise InputError(f"{where}: no frame rate for video '{video_id}' to convert frames ({hint})")
    return float(fps)


def _task_video(task: dict, known: Mapping[str, Video] | None, where: str) -> str:
    data = task.get("data")
    if not isinstance(data, dict):
        raise InputError(f"{where}: no 'data' object naming the video")
    value = data.get("video", next((v for v in data.values() if isinstance(v, str)), None))
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: 'data' names no video (expected data.video)")
    video_id = video_id_of(value)
    if known is not None and video_id not in known and _UPLOAD_PREFIX.match(video_id) and video_id[9:] in known:
        video_id = video_id[9:]  # an uploaded file: '1a2b3c4d-video_0001.mp4'
    return video_id


def _frame(value, where: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value != int(value)
        or value < 1
    ):
        raise InputError(f"{where}: frame {value!r} is not a whole number >= 1 (timeline frames start at 1)")
    return int(value)


def _single_label(value: dict, key: str, where: str) -> str:
    labels = value.get(key)
    if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str) or not labels[0].strip():
        raise InputError(f"{where}: expected one class in value.{key}, got {labels!r}")
    return labels[0].strip()


def _result_points(result, video_id: str, fps: Callable[[], float], where: str, path: Path) -> list[Point]:
    if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
        raise InputError(f"{where}: expected an object with a 'value'")
    kind, value = result.get("type"), result["value"]
    if kind == "timelinelabels":
        label = _single_label(value, "timelinelabels", where)
        ranges = value.get("ranges")
        if not isinstance(ranges, list) or not ranges:
            raise InputError(f"{where}: no value.ranges")
        points = []
        for span in ranges:
            if not isinstance(span, dict):
                raise InputError(f"{where}: range {span!r} is not an object with 'start' and 'end'")
            start, end = _frame(span.get("start"), where), _frame(span.get("end", span.get("start")), where)
            if end < start:
                raise InputError(f"{where}: range {start}..{end} ends before it starts")
            points.append(Point(video_id, ((start + end) / 2 - 1) / fps(), label, str(path)))
        return points
    if kind == "videorectangle":
        label = _single_label(value, "labels", where)
        sequence = value.get("sequence")
        if not isinstance(sequence, list) or not sequence or not isinstance(sequence[0], dict):
            raise InputError(f"{where}: no value.sequence of keyframes")
        first = sequence[0]
        time_sec = _time(first["time"], where) if "time" in first else (_frame(first.get("frame"), where) - 1) / fps()
        return [Point(video_id, time_sec, label, str(path))]
    return []  # other controls (choices, text areas) carry no click


def read_labelstudio(path: str | Path, fps_lookup: FpsLookup, known: Mapping[str, Video] | None = None) -> list[Point]:
    """Clicks of a Label Studio JSON export (a list of tasks, or one task). A task's first annotation that is not
    cancelled is read (a warning counts tasks with more); a range of frames is one click at its middle."""
    path = Path(path)
    data = _json(path, _read_text(path))
    tasks = [data] if isinstance(data, dict) else data
    if not isinstance(tasks, list):
        raise InputError(f"{path}: expected a Label Studio JSON export (a list of tasks)")
    points, several = [], 0
    for t, task in enumerate(tasks):
        where = f"{path}: task {task.get('id', t) if isinstance(task, dict) else t}"
        if not isinstance(task, dict) or not isinstance(task.get("annotations", []), list):
            raise InputError(f"{where}: expected an object with a list of 'annotations'")
        annotations = [a for a in task.get("annotations", []) if isinstance(a, dict) and not a.get("was_cancelled")]
        if not annotations:
            continue
        several += len(annotations) > 1
        video_id = _task_video(task, known, where)
        results = annotations[0].get("result", [])
        if not isinstance(results, list):
            raise InputError(f"{where}: annotation 'result' is not a list")
        for r, result in enumerate(results):
            rwhere = f"{where} result {result.get('id', r) if isinstance(result, dict) else r}"
            points.extend(
                _result_points(result, video_id, lambda v=video_id, w=rwhere: _fps(fps_lookup, v, w), rwhere, path)
            )
    if several:
        log.warning(
            "%s: %d task(s) have several annotations; the first of each is read (export one annotator "
            "at a time to keep the others)",
            path,
            several,
        )
    return _sort(points)


def _frame_of(time_sec: float, fps: float) -> int:
    """1-based frame holding `time_sec` (frame f covers [(f - 1) / fps, f / fps))."""
    return int(math.floor(time_sec * fps + _EPS)) + 1


def write_labelstudio(points: Sequence[Point], path: str | Path, fps_lookup: FpsLookup) -> None:
    """A Label Studio JSON export: one task a video, each click a one-frame `timelinelabels` range
    (`from_name` videoLabels, `to_name` video, as in Label Studio's video timeline template)."""
    path = Path(path)
    by_video: dict[str, list[Point]] = {}
    for p in _sort(list(points)):
        by_video.setdefault(p.video_id, []).append(p)
    tasks = []
    for t, (video_id, clicks) in enumerate(sorted(by_video.items()), start=1):
        fps = _fps(fps_lookup, video_id, f"{path}: video '{video_id}'")
        results = []
        for i, p in enumerate(clicks):
            frame = _frame_of(p.time_sec, fps)
            results.append(
                {
                    "id": f"p{t}_{i}",
                    "type": "timelinelabels",
                    "from_name": "videoLabels",
                    "to_name": "video",
                    "origin": "manual",
                    "value": {"ranges": [{"start": frame, "end": frame}], "timelinelabels": [p.label]},
                }
            )
        tasks.append({"id": t, "data": {"video": video_id}, "annotations": [{"id": t, "result": results}]})
    write_text_atomic(path, json.dumps(tasks, indent=1, ensure_ascii=False) + "\n")


# ------------------------------------------------------------------------------------------ LACP / HR-Pro

LACP_HEADER = "class,class_index,start_frame,stop_frame,video_id,point"


def write_lacp(
    points: Sequence[Point],
    path: str | Path,
    fps_lookup: FpsLookup,
    classes: Sequence[str],
    videos: Mapping[str, Video],
    background_label: str = BACKGROUND,
) -> int:
    """LACP's `point_labels.csv`: frames at each video's fps, class_index 0-based in `classes`, start / stop
    frames of the ground-truth instance of that class holding the click (the click's own frame where none
    does; LACP reads only `point` and `class_index`). Background clicks have no place there: they are left out
    and counted (the return value)."""
    path = Path(path)
    index = {c: i for i, c in enumerate(classes)}
    lines, dropped = [LACP_HEADER], 0
    for p in _sort(list(points)):
        if p.label == background_label:
            dropped += 1
            continue
        where = f"{p.origin or path}: video '{p.video_id}'"
        if p.label not in index:
            raise InputError(f"{where}: label '{p.label}' is not a class of the ground truth")
        if any(c in text for text in (p.video_id, p.label) for c in ',\n\r"'):
            raise InputError(
                f"{where}: cannot write {p.video_id!r} / {p.label!r} to a CSV (holds ',', quote or newline)"
            )
        fps = _fps(fps_lookup, p.video_id, where)
        frame = _frame_of(p.time_sec, fps) - 1  # 0-based frame number, as LACP's `point`
        start, stop = frame, frame
        video = videos.get(p.video_id)
        for instance in video.instances if video is not None else ():
            if instance.label == p.label and instance.start_sec <= p.time_sec <= instance.end_sec:
                start, stop = int(round(instance.start_sec * fps)), int(round(instance.end_sec * fps))
                break
        lines.append(f"{p.label},{index[p.label]},{start},{stop},{p.video_id},{frame}")
    write_text_atomic(path, "\n".join(lines) + "\n")
    return dropped


# ------------------------------------------------------------------------------------------------ entry


def import_clicks(
    path: str | Path, fmt: str, fps_lookup: FpsLookup, known: Mapping[str, Video] | None = None
) -> list[Point]:
    """Clicks of a foreign file: `via` (project JSON or CSV export) or `labelstudio` (JSON export)."""
    if fmt == "via":
        return read_via(path)
    if fmt == "labelstudio":
        return read_labelstudio(path, fps_lookup, known)
    raise InputError(f"--format: cannot import '{fmt}' (choose {', '.join(IMPORT_FORMATS)})")
