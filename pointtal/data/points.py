"""Point annotations (docs/methods.md §1, docs/formats.md): CSV readers/writer, simulated points, snippet mapping.

Every source of points -- human click files, SF-Net style simulated action points, SODA style action +
background points, full labels -- ends up as a list of `Point(video_id, time_sec, label)`; `map_points`
turns such a list into per-point snippet indices and class columns (0 = background) for the dataset.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointtal.atomic import write_text_atomic
from pointtal.data.annotations import BACKGROUND, Video, read_json
from pointtal.data.features import SnippetGeometry
from pointtal.errors import InputError
from pointtal.limits import MAX_FPS, refuse_estimate

log = logging.getLogger(__name__)

SCHEMES = (
    "sfnet-uniform",
    "sfnet-center",
    "sfnet-center-jitter",
    "sfnet-start",
    "sfnet-custom",
    "gaussian",
    "soda",
    "soda-action",
    "soda-background",
    "full",
    "weak",
)

# `gaussian`: std of a point's offset from its instance's centre, as a fraction of the instance length.
# Measured on the point_gaussian.csv that HR-Pro publishes for ActivityNet 1.3 (13,904 instances):
# std((point - centre) / length) = 0.0099, kurtosis 3.04 (normal), the same 0.010 in every length bin; its GTEA
# and BEOID files agree (0.011 on instances longer than 60 frames, where frame rounding does not dominate).
GAUSSIAN_STD = 0.01

# Relative position of human clicks inside an instance, 10 equal bins (SF-Net's "custom" distribution).
CUSTOM_BINS = (0.12, 0.16, 0.19, 0.16, 0.12, 0.11, 0.06, 0.03, 0.02, 0.03)
_EPS = 1e-9  # same tolerance as SnippetGeometry.to_snippet: a time on a snippet boundary belongs to the later one
_MIN_PIECE_SEC = 1e-6  # SODA pieces shorter than this are float noise at window/instance boundaries

MAX_WINDOWS = 1e7  # SODA windows of one simulation: beyond this the window cannot be meant (hours, GB of points)

_SFNET_HEADER_TIME = {"time", "time_sec", "time_seconds"}
_LACP_REQUIRED = ("class", "video_id", "point")


def custom_click_positions(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count,) relative click positions in [0, 1): a bin drawn from CUSTOM_BINS, then uniform inside it."""
    bins = rng.choice(len(CUSTOM_BINS), size=count, p=np.asarray(CUSTOM_BINS) / sum(CUSTOM_BINS))
    return (bins + rng.random(count)) / len(CUSTOM_BINS)


@dataclass(frozen=True)
class Point:
    """One point annotation: a time in a video and an action class name (or the background name)."""

    video_id: str
    time_sec: float
    label: str = BACKGROUND
    file: str = field(default="", compare=False, repr=False)  # the point file it was read from ("" if simulated)
    line: int = field(default=0, compare=False, repr=False)  # its 1-based line there, so warnings can name it

    @property
    def origin(self) -> str:
        """'FILE line N' for a point read from a file, else ''."""
        return f"{self.file} line {self.line}" if self.file else ""


# ----------------------------------------------------------------------------------------------- reading


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"{path}: point file not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputError(f"{path} line {line}: not UTF-8 text (byte {err.start}); save the file as UTF-8") from None
    return text.removeprefix("\ufeff")


def _rows(text: str, path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank lines as (1-based line number, whitespace-stripped CSV fields); `\\r` is tolerated."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                fields = next(csv.reader([line]))
            except csv.Error as err:  # e.g. a field longer than csv.field_size_limit()
                raise InputError(f"{path} line {number}: unreadable CSV line ({err})") from None
            rows.append((number, [f.strip() for f in fields]))
    return rows


def _parse_time(value: str, where: str, what: str = "time") -> float:
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InputError(f"{where}: {what} {value!r} is not finite")
    if number < 0:
        raise InputError(f"{where}: negative {what} {value!r}")
    return number


def _is_lacp_header(fields: list[str]) -> bool:
    names = {f.lower() for f in fields}
    return all(name in names for name in _LACP_REQUIRED)


def _is_sfnet_header(fields: list[str]) -> bool:
    lowered = [f.lower() for f in fields]
    return len(lowered) == 3 and lowered[0] == "video_id" and lowered[1] in _SFNET_HEADER_TIME and lowered[2] == "label"


def _parse_sfnet(rows: list[tuple[int, list[str]]], path: Path) -> list[Point]:
    """SF-Net click files: `video_id,time_seconds,label` per line."""
    points = []
    for number, fields in rows:
        where = f"{path} line {number}"
        if len(fields) != 3:
            raise InputError(
                f"{where}: expected 3 fields 'video_id,time_seconds,label', got {len(fields)}: {','.join(fields)!r}"
            )
        video_id, time_text, label = fields
        if not video_id:
            raise InputError(f"{where}: empty video id")
        if not label:
            raise InputError(f"{where}: empty label (use the background name for background points)")
        time_sec = _parse_time(time_text, f"{where} video '{video_id}'")
        points.append(Point(video_id, time_sec, label, str(path), number))
    return points


def _parse_lacp(
    header: list[str],
    rows: list[tuple[int, list[str]]],
    path: Path,
    fps_lookup: Callable[[str], float] | None,
) -> list[Point]:
    """LACP / HR-Pro point files: a header naming `class`, `video_id` and `point` (a frame number)."""
    column = {name.lower(): i for i, name in enumerate(header)}
    if len(column) != len(header):
        names = [h.lower() for h in header]
        repeated = next(n for n in names if names.count(n) > 1)
        raise InputError(f"{path}: the header names column '{repeated}' twice")
    points, unknown = [], []
    for number, fields in rows:
        where = f"{path} line {number}"
        if len(fields) != len(header):
            raise InputError(f"{where}: expected {len(header)} fields as in the header, got {len(fields)}")
        video_id, label = fields[column["video_id"]], fields[column["class"]]
        if not video_id or not label:
            raise InputError(f"{where}: empty video id or class")
        frame = _parse_time(fields[column["point"]], f"{where} video '{video_id}'", "point frame")
        fps = _lookup_fps(fps_lookup, video_id, where)
        if fps is None:
            unknown.append((number, video_id))
            continue
        points.append(Point(video_id, frame / fps, label, str(path), number))
    if unknown and not points:
        number, video_id = unknown[0]
        raise InputError(
            f"{path} line {number}: no valid fps for video '{video_id}' (none of the file's "
            f"{len(unknown)} point(s) is on a video of the ground truth or the fps dictionary)"
        )
    if unknown:
        number, video_id = unknown[0]
        log.warning(
            "%s: %d point(s) of %d video(s) in neither the ground truth nor the fps dictionary are "
            "skipped (no native fps to read their frame numbers; first: line %d, video '%s')",
            path,
            len(unknown),
            len({v for _, v in unknown}),
            number,
            video_id,
        )
    return points


def _lookup_fps(fps_lookup: Callable[[str], float] | None, video_id: str, where: str) -> float | None:
    """The native fps of a point's video; None for a video the lookup does not know at all (KeyError: in
    neither the ground truth nor the fps dictionary), whose points `map_points` would drop anyway. A video
    of the ground truth without a valid fps is an input error."""
    hint = "LACP points are frame numbers at the video's native fps; give 'fps' in the ground truth or a fps_dict.json"
    if fps_lookup is None:
        raise InputError(f"{where}: no per-video fps available for video '{video_id}' ({hint})")
    try:
        fps = fps_lookup(video_id)
    except KeyError:
        return None
    if fps is None or not math.isfinite(fps) or fps <= 0:
        raise InputError(f"{where}: no valid fps for video '{video_id}' (got {fps!r}; {hint})")
    return float(fps)


def read_points(
    path: str | Path,
    background_label: str = BACKGROUND,
    fps_lookup: Callable[[str], float] | None = None,
) -> list[Point]:
    """Read one point file, SF-Net CSV or LACP-style CSV (detected from the first line).

    `background_label` is accepted for symmetry with the writer; labels are returned as written (stripped)
    and checked against the class list by `map_points`. LACP files need `fps_lookup(video_id) -> fps`.
    """
    path = Path(path)
    rows = _rows(_read_text(path), path)
    if not rows:
        raise InputError(f"{path}: point file is empty (expected lines 'video_id,time_seconds,label')")
    first_fields = rows[0][1]
    header = _is_lacp_header(first_fields) or _is_sfnet_header(first_fields)
    if header and len(rows) == 1:
        raise InputError(f"{path}: point file has a header line but no points")
    if _is_lacp_header(first_fields):
        return _parse_lacp(first_fields, rows[1:], path, fps_lookup)
    if _is_sfnet_header(first_fields):
        rows = rows[1:]
    return _parse_sfnet(rows, path)


def read_fps_dict(path: str | Path) -> dict[str, float]:
    """`fps_dict.json`: an object mapping video id -> native fps (for LACP-style point files)."""
    data = read_json(path, "fps dictionary")
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected an object mapping video id -> fps")
    result = {}
    for video_id, fps in data.items():
        try:
            ok = not isinstance(fps, bool) and isinstance(fps, (int, float)) and 0 < float(fps) <= MAX_FPS
        except OverflowError:  # an integer beyond the float range
            ok = False
        if not ok:
            shown = repr(fps) if len(repr(fps)) <= 60 else repr(fps)[:57] + "..."
            raise InputError(
                f"{path}: video '{video_id}': fps must be a positive number (at most {MAX_FPS:g}), got {shown}"
            )
        result[str(video_id)] = float(fps)
    return result


def fps_lookup_for(
    videos: Mapping[str, Video], fps_dict: Mapping[str, float] | None = None
) -> Callable[[str], float | None]:
    """Native fps of a video: the ground truth's `fps`, else the fps dictionary, else None; KeyError for a
    video in neither (its points cannot be read, nor placed on any video)."""

    def lookup(video_id: str) -> float | None:
        video = videos.get(video_id)
        if video is not None and video.fps is not None:
            return video.fps
        if fps_dict is not None and video_id in fps_dict:
            return fps_dict[video_id]
        if video is None:
            raise KeyError(video_id)
        return None

    return lookup


# ----------------------------------------------------------------------------------------------- writing


def _sort_key(point: Point) -> tuple[str, float, str]:
    return (point.video_id, point.time_sec, point.label)


def write_points(points: Sequence[Point], path: str | Path) -> None:
    """Write an SF-Net CSV (no header), sorted by (video, time, label), times with 6 decimals: byte-reproducible
    and atomic (an interrupted `annotate` never leaves a truncated annotation file)."""
    path = Path(path)
    lines = []
    for point in sorted(points, key=_sort_key):
        for text in (point.video_id, point.label):
            if not text or any(c in text for c in ',\n\r"'):
                raise InputError(f"{path}: cannot write {text!r} to a point CSV (empty or holds ',', quote or newline)")
        if not math.isfinite(point.time_sec) or point.time_sec < 0:
            raise InputError(f"{path}: video '{point.video_id}': invalid time {point.time_sec!r}")
        lines.append(f"{point.video_id},{point.time_sec:.6f},{point.label}\n")
    write_text_atomic(path, "".join(lines))


# ------------------------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class _SimOptions:
    window_sec: float
    start_ratio: float
    jitter: float
    background_label: str
    gaussian_std: float = GAUSSIAN_STD


def _video_rng(seed: int, video_id: str) -> np.random.Generator:
    """A generator for one video, derived from (seed, video id): adding videos never changes the others."""
    id_key = int.from_bytes(hashlib.sha256(video_id.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([seed, id_key]))


def _snippet_range(geom: SnippetGeometry, start_sec: np.ndarray, end_sec: np.ndarray):
    """Snippets fully inside each interval, `[lo, hi)`, and the snippet containing its middle.  All (N,)."""
    rate, shift = geom.fps / geom.stride, geom.offset / geom.stride
    lo = np.ceil(start_sec * rate - shift - _EPS).astype(np.int64)  # (N,)
    hi = np.floor(end_sec * rate - shift + _EPS).astype(np.int64)  # (N,)
    middle = geom.to_snippet((start_sec + end_sec) / 2)  # (N,)
    return lo, hi, middle


def _snippets_at(geom: SnippetGeometry, start_sec, end_sec, time_sec, n_snippets: int) -> np.ndarray:
    """Snippet of `time_sec` kept inside `[lo, hi)` of its interval; short intervals get their middle snippet."""
    lo, hi, middle = _snippet_range(geom, start_sec, end_sec)
    snippet = np.clip(geom.to_snippet(time_sec), lo, np.maximum(hi - 1, lo))  # (N,)
    snippet = np.where(hi > lo, snippet, middle)
    return np.clip(snippet, 0, n_snippets - 1)


def _uniform_snippets(geom, start_sec, end_sec, n_snippets: int, rng: np.random.Generator) -> np.ndarray:
    """SF-Net rule: uniform in `[ceil(s*fps/stride), floor(e*fps/stride))`; short intervals: middle snippet."""
    lo, hi, middle = _snippet_range(geom, start_sec, end_sec)
    width = np.maximum(hi - lo, 1)  # (N,)
    # Drawn for every interval (short ones too), so which intervals are short does not shift the stream.
    drawn = lo + rng.integers(0, width)  # (N,)
    return np.clip(np.where(hi > lo, drawn, middle), 0, n_snippets - 1)


def _covered(geom: SnippetGeometry, start_sec: np.ndarray, n_snippets: int) -> np.ndarray:
    """Intervals that start before the end of the last snippet (others lie where no feature exists)."""
    return geom.to_snippet(start_sec) < n_snippets


def _instance_arrays(video: Video):
    starts = np.array([inst.start_sec for inst in video.instances], dtype=np.float64)  # (I,)
    ends = np.array([inst.end_sec for inst in video.instances], dtype=np.float64)  # (I,)
    labels = np.array([inst.label for inst in video.instances], dtype=object)  # (I,)
    return starts, ends, labels


def _sfnet_points(video: Video, scheme: str, geom: SnippetGeometry, n_snippets: int, rng, opts: _SimOptions):
    """One action point per ground-truth instance, placed by the SF-Net variant `scheme` or by `gaussian`
    (the protocol of LACP's and HR-Pro's ActivityNet points: a normal draw around the instance's centre)."""
    starts, ends, labels = _instance_arrays(video)
    length = ends - starts  # (I,)
    count = len(starts)
    if scheme == "sfnet-uniform":
        snippets = _uniform_snippets(geom, starts, ends, n_snippets, rng)
    else:
        if scheme == "sfnet-center":
            time_sec = starts + 0.5 * length
        elif scheme == "sfnet-center-jitter":
            time_sec = starts + length * (0.5 + rng.uniform(-opts.jitter, opts.jitter, count))
        elif scheme == "gaussian":  # centre + N(0, (std * length)^2), clipped to the instance
            offset = length * opts.gaussian_std * rng.standard_normal(count)
            time_sec = np.clip(starts + 0.5 * length + offset, starts, ends)
        elif scheme == "sfnet-start":
            time_sec = starts + length * rng.uniform(0.0, opts.start_ratio, count)
        else:  # sfnet-custom: pick a bin of relative position, then uniform inside it
            time_sec = starts + length * custom_click_positions(rng, count)
        snippets = _snippets_at(geom, starts, ends, time_sec, n_snippets)
    keep = _covered(geom, starts, n_snippets)
    return snippets[keep], labels[keep], int((~keep).sum())


def _full_points(video: Video, geom: SnippetGeometry, n_snippets: int):
    """Every snippet fully inside an instance (short instances: their middle snippet), deduplicated."""
    starts, ends, labels = _instance_arrays(video)
    lo, hi, middle = _snippet_range(geom, starts, ends)
    keep = _covered(geom, starts, n_snippets)
    pairs = set()
    for i in np.flatnonzero(keep):
        span = range(lo[i], min(hi[i], n_snippets)) if hi[i] > lo[i] else range(0)
        if len(span) == 0:  # shorter than a snippet, or its full snippets lie past the video's end
            span = [min(middle[i], n_snippets - 1)]
        pairs.update((int(s), labels[i]) for s in span)
    ordered = sorted(pairs)
    snippets = np.array([s for s, _ in ordered], dtype=np.int64)
    return snippets, np.array([lab for _, lab in ordered], dtype=object), int((~keep).sum())


def _window_pieces(video: Video, window_start: float, window_end: float):
    """Action pieces (one per instance overlapping the window) and maximal background pieces of one window."""
    action = []
    for inst in video.instances:
        a, b = max(inst.start_sec, window_start), min(inst.end_sec, window_end)
        if b - a > _MIN_PIECE_SEC:
            action.append((a, b, inst.label))
    background, cursor = [], window_start
    for a, b, _ in sorted(action):
        if a - cursor > _MIN_PIECE_SEC:
            background.append((cursor, a))
        cursor = max(cursor, b)
    if window_end - cursor > _MIN_PIECE_SEC:
        background.append((cursor, window_end))
    return action, background


def _soda_points(video: Video, scheme: str, geom: SnippetGeometry, n_snippets: int, rng, opts: _SimOptions):
    """SODA: annotate windows 0, 2, 4, ...; one uniform point per action piece and per background piece."""
    pieces = []  # (start_sec, end_sec, label)
    n_windows = math.ceil(video.duration_sec / opts.window_sec - _EPS)
    for window in range(0, n_windows, 2):
        window_start = window * opts.window_sec
        window_end = min(window_start + opts.window_sec, video.duration_sec)
        action, background = _window_pieces(video, window_start, window_end)
        pieces.extend(action)
        pieces.extend((a, b, opts.background_label) for a, b in background)
    starts = np.array([p[0] for p in pieces], dtype=np.float64)  # (P,)
    ends = np.array([p[1] for p in pieces], dtype=np.float64)  # (P,)
    labels = np.array([p[2] for p in pieces], dtype=object)  # (P,)
    # Draw for every piece before filtering, so soda-action / soda-background are subsets of soda (same seed).
    snippets = _uniform_snippets(geom, starts, ends, n_snippets, rng)
    keep = _covered(geom, starts, n_snippets)
    if scheme == "soda-action":
        keep &= labels != opts.background_label
    elif scheme == "soda-background":
        keep &= labels == opts.background_label
    return snippets[keep], labels[keep], 0


def _check_simulation_args(scheme: str, fps: float, stride: int, seed: int, opts: _SimOptions) -> None:
    if scheme not in SCHEMES:
        raise InputError(f"unknown point scheme '{scheme}'; choose one of: {', '.join(SCHEMES)}")
    if not (fps > 0 and math.isfinite(fps)) or int(stride) != stride or stride < 1:
        raise InputError(f"fps must be > 0 and stride a positive integer, got fps={fps}, stride={stride}")
    if int(seed) != seed or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if not opts.window_sec > 0:
        raise InputError(f"window_sec must be > 0, got {opts.window_sec}")
    if not 0 < opts.start_ratio <= 1:
        raise InputError(f"start_ratio must be in (0, 1], got {opts.start_ratio}")
    if not 0 <= opts.jitter <= 0.5:
        raise InputError(f"jitter must be in [0, 0.5], got {opts.jitter}")
    if not (0 < opts.gaussian_std and math.isfinite(opts.gaussian_std)):
        raise InputError(f"gaussian_std must be a finite number > 0, got {opts.gaussian_std}")


def simulate_points(
    videos: Sequence[Video],
    scheme: str,
    fps: float,
    stride: int,
    seed: int,
    *,
    window_sec: float = 10.0,
    start_ratio: float = 0.25,
    jitter: float = 0.2,
    background_label: str = BACKGROUND,
    snippet_counts: Mapping[str, int] | None = None,
    gaussian_std: float = GAUSSIAN_STD,
) -> list[Point]:
    """Simulated point annotations for `videos` under `scheme` (docs/methods.md §1); same seed -> same points.

    Each point is emitted at its snippet's centre, `(snippet + 0.5) * stride / fps` seconds, with the
    video's own fps when the ground truth gives one. Instances that start after the video's last snippet
    get no point (the THUMOS14 ground truth has a few); they are counted in a warning. The number of
    snippets is `max(1, floor(duration * fps / stride))` unless `snippet_counts` (video id -> feature
    length T, when the features are known) says otherwise.
    """
    opts = _SimOptions(float(window_sec), float(start_ratio), float(jitter), background_label, float(gaussian_std))
    _check_simulation_args(scheme, fps, stride, seed, opts)
    if scheme == "weak":
        return []
    if scheme.startswith("soda"):
        windows = sum(math.ceil(v.duration_sec / opts.window_sec) for v in videos)
        refuse_estimate(
            windows,
            MAX_WINDOWS,
            f"SODA window of {opts.window_sec:g} s (window_sec) on {len(videos)} videos",
            "give a window of seconds (the SODA protocol uses 10 s)",
            unit="windows",
        )
    points, n_skipped, first_skipped = [], 0, None
    for video in sorted(videos, key=lambda v: v.video_id):
        geom = SnippetGeometry(video.fps if video.fps is not None else float(fps), int(stride), video.offset_frames)
        n_snippets = _snippet_count(video, geom, snippet_counts)
        rng = _video_rng(int(seed), video.video_id)
        if scheme.startswith("sfnet-") or scheme == "gaussian":
            snippets, labels, skipped = _sfnet_points(video, scheme, geom, n_snippets, rng, opts)
        elif scheme == "full":
            snippets, labels, skipped = _full_points(video, geom, n_snippets)
        else:
            snippets, labels, skipped = _soda_points(video, scheme, geom, n_snippets, rng, opts)
        if skipped and first_skipped is None:
            first_skipped = video.video_id
        n_skipped += skipped
        times = geom.to_seconds(snippets + 0.5)  # (P,) snippet centres
        points.extend(Point(video.video_id, float(t), str(lab)) for t, lab in zip(times, labels, strict=True))
    if n_skipped:
        log.warning(
            "%d ground-truth instances start after their video's last snippet and got no simulated point "
            "(first in video '%s')",
            n_skipped,
            first_skipped,
        )
    return sorted(points, key=_sort_key)


# ---------------------------------------------------------------------------------------- annotators


def choose_annotator(annotator_points: Sequence[list[Point]], seed: int, fixed: int | None = None) -> list[Point]:
    """SF-Net's protocol: per video, the points of one annotator drawn at random (seeded).

    Only annotators that clicked on a video are candidates for it. `fixed` (0-based) takes one
    annotator's file for every video instead.
    """
    n = len(annotator_points)
    if n == 0:
        raise InputError("no annotator point files given")
    if fixed is not None:
        if not 0 <= fixed < n:
            raise InputError(f"fixed annotator {fixed} does not exist; {n} annotator files were given (0-based)")
        return sorted(annotator_points[fixed], key=_sort_key)
    by_video: dict[str, list[list[Point]]] = {}
    for points in annotator_points:
        per_file: dict[str, list[Point]] = {}
        for point in points:
            per_file.setdefault(point.video_id, []).append(point)
        for video_id, video_points in per_file.items():
            by_video.setdefault(video_id, []).append(video_points)
    chosen: list[Point] = []
    for video_id in sorted(by_video):
        candidates = by_video[video_id]
        pick = int(_video_rng(int(seed), video_id).integers(len(candidates)))
        chosen.extend(candidates[pick])
    return sorted(chosen, key=_sort_key)


# ------------------------------------------------------------------------------------------- mapping


@dataclass(frozen=True)
class MapReport:
    """What `map_points` did with one file's points."""

    source: str
    n_points: int
    n_mapped: int
    n_outside: int  # beyond the video's last snippet
    n_unknown_video: int  # video id not in the ground truth
    n_elsewhere: int = 0  # on a ground-truth video that is not mapped here (another subset, no features)

    @property
    def summary(self) -> str:
        elsewhere = f", {self.n_elsewhere} on videos outside the subset" if self.n_elsewhere else ""
        return (
            f"{self.source or 'points'}: {self.n_points} points, {self.n_mapped} mapped, "
            f"{self.n_outside} outside video, {self.n_unknown_video} unknown video{elsewhere}"
        )


@dataclass(frozen=True)
class MappedPoints:
    """Points on snippets, sorted by (video, snippet, class). All arrays are (N,)."""

    video_id: np.ndarray  # (N,) object (str)
    snippet: np.ndarray  # (N,) int64
    class_index: np.ndarray  # (N,) int64, 0 = background
    report: MapReport
    position: np.ndarray | None = None  # (N,) float64 the point's exact time in snippet units (time * fps / stride)

    def __len__(self) -> int:
        return len(self.snippet)

    def by_video(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """video id -> (snippets (P,), class indices (P,)): the per-video (snippet, class) lists of docs/methods.md §1."""
        ids, starts = np.unique(self.video_id.astype(str), return_index=True)
        bounds = list(starts) + [len(self.video_id)]
        return {
            vid: (self.snippet[a:b], self.class_index[a:b])
            for vid, a, b in zip(ids, bounds[:-1], bounds[1:], strict=True)
        }


def _class_columns(labels: np.ndarray, ids: np.ndarray, lookup: Mapping[str, int], at: Callable[[int], str], bg: str):
    """Class column of each label; a label that is neither a class nor the background name is an error."""
    names, inverse = np.unique(labels.astype(str), return_inverse=True)
    for j, name in enumerate(names):
        if name not in lookup:
            i = int(np.flatnonzero(inverse == j)[0])
            classes = sorted(k for k in lookup if k != bg)
            known = ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else "")
            raise InputError(
                f"{at(i)}: video '{ids[i]}': label '{name}' is not a class of the ground truth nor the background "
                f"name '{bg}' (classes: {known})"
            )
    return np.array([lookup[name] for name in names], dtype=np.int64)[inverse]  # (N,)


def _snippet_count(video: Video, geom: SnippetGeometry, snippet_counts: Mapping[str, int] | None) -> int:
    """Snippets of a video: the feature length when given, else derived from the ground-truth duration."""
    if snippet_counts is not None and video.video_id in snippet_counts:
        return max(1, int(snippet_counts[video.video_id]))
    return geom.n_snippets(video.duration_sec)


def _video_geometry(ids: np.ndarray, videos: Mapping[str, Video], fps: float, stride: int, snippet_counts=None):
    """Per point: is the video known, its snippets-per-second, its window offset in snippets
    (`SnippetGeometry.offset / stride`) and its number of snippets.  All (N,)."""
    names, inverse = np.unique(ids.astype(str), return_inverse=True)
    known = np.array([name in videos for name in names], dtype=bool)
    rate = np.full(len(names), fps / stride)
    shift = np.zeros(len(names))
    count = np.zeros(len(names), dtype=np.int64)
    for j in np.flatnonzero(known):
        video = videos[names[j]]
        geom = SnippetGeometry(video.fps if video.fps is not None else fps, stride, video.offset_frames)
        rate[j] = geom.fps / stride
        shift[j] = geom.offset / stride
        count[j] = _snippet_count(video, geom, snippet_counts)
    return known[inverse], rate[inverse], shift[inverse], count[inverse]


def _empty_mapped(source: str) -> MappedPoints:
    return MappedPoints(
        np.array([], dtype=object),
        np.array([], dtype=np.int64),
        np.array([], dtype=np.int64),
        MapReport(source, 0, 0, 0, 0),
        np.array([], dtype=np.float64),
    )


def videos_elsewhere(all_videos: Mapping[str, Video], mapped: Collection[str], subset: str) -> dict[str, str]:
    """Ground-truth videos left out of a mapping onto `subset`'s `mapped` videos -> why (for `map_points`)."""
    return {
        vid: f"subset '{video.subset}'" if video.subset != subset else f"subset '{subset}' without a feature file"
        for vid, video in all_videos.items()
        if vid not in mapped
    }


def map_points(
    points: Sequence[Point],
    videos: Mapping[str, Video],
    fps: float,
    stride: int,
    class_index: Mapping[str, int],
    background_label: str = BACKGROUND,
    strict: bool = False,
    source: str = "",
    snippet_counts: Mapping[str, int] | None = None,
    *,
    elsewhere: Mapping[str, str] | None = None,
    scope: str = "the subset",
    actions_expected: bool = True,
) -> MappedPoints:
    """Map points to snippets `floor(time * fps / stride)` (the video's own fps where the ground truth has one).

    Points beyond the video's last snippet and points of videos in no subset of the ground truth are dropped
    and counted (one warning per file and kind, naming the first point's file and line); with `strict=True`
    they are input errors. Points on `elsewhere` videos (ground-truth videos outside `scope`, id -> why, see
    `videos_elsewhere`) are left out and reported as such: they are neither unknown nor an error. A file
    with no action point at all is warned about unless `actions_expected=False`. Labels that are not classes
    and negative times are always input errors. A video has `max(1, floor(duration * fps / stride))`
    snippets unless `snippet_counts` (video id -> feature length T) gives its real length: the THUMOS14
    ground truth understates a few durations (its instances and the human clicks run past them).
    """
    where = source or "points"
    if not points:
        return _empty_mapped(source)
    ids = np.array([p.video_id for p in points], dtype=object)  # (N,)
    times = np.array([p.time_sec for p in points], dtype=np.float64)  # (N,)
    labels = np.array([p.label for p in points], dtype=object)  # (N,)
    files = np.array([p.file or where for p in points], dtype=object)  # (N,) where each point came from
    lines = np.array([p.line for p in points], dtype=np.int64)  # (N,) 0 when not read from a file
    bad = ~np.isfinite(times) | (times < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"{_at(files, lines, i)}: video '{ids[i]}': invalid time {float(times[i])!r} (must be a finite number >= 0)"
        )
    lookup = {**class_index, background_label: 0}
    classes = _class_columns(labels, ids, lookup, lambda i: _at(files, lines, i), background_label)  # (N,)
    known, rate, shift, n_snippets = _video_geometry(ids, videos, fps, stride, snippet_counts)  # (N,) each
    position = np.maximum(np.floor(times * rate - shift + _EPS), 0)  # (N,) float: no int64 wrap-around
    outside = known & (position >= n_snippets)
    snippets = np.where(known & ~outside, position, 0).astype(np.int64)  # (N,)
    other = elsewhere or {}
    away = ~known & np.array([vid in other for vid in ids], dtype=bool)  # (N,) a video outside `scope`
    unknown = ~known & ~away

    def point(i: int) -> str:
        return f"video '{ids[i]}' at {times[i]:.3f} s"

    def beyond(i: int) -> str:
        return f"{point(i)}, after its {n_snippets[i]} snippets ({n_snippets[i] / rate[i]:.3f} s)"

    if strict and unknown.any():
        i = int(np.argmax(unknown))
        raise InputError(
            f"{_at(files, lines, i)}: {point(i)} is not in the ground truth (drop --strict to skip such points)"
        )
    if strict and outside.any():
        i = int(np.argmax(outside))
        raise InputError(
            f"{_at(files, lines, i)}: {beyond(i)} lies beyond the video (drop --strict to skip such points)"
        )
    for dropped, why, describe in (
        (unknown, "of videos not in the ground truth", point),
        (outside, "beyond their video's last snippet", beyond),
    ):
        for name, count, i in _per_file(dropped, files):
            log.warning("%s: dropped %d point(s) %s (first: %s)", name, count, why, _line_and(lines, i, describe(i)))
    for name, count, i in _per_file(away, files):
        log.info(
            "%s: %d point(s) on videos outside %s are not used (first: %s, %s)",
            name,
            count,
            scope,
            _line_and(lines, i, f"video '{ids[i]}'"),
            other[ids[i]],
        )
    if actions_expected:
        _warn_files_without_actions(files, classes, background_label)
    keep = ~(outside | unknown | away)
    if not keep.any():
        log.warning("%s: none of its %d point(s) falls on a video of %s", where, len(points), scope)
    order = np.lexsort((classes[keep], snippets[keep], ids[keep].astype(str)))
    report = MapReport(
        source,
        len(points),
        int(keep.sum()),
        int(outside.sum()),
        int(unknown.sum()),
        int(away.sum()),
    )
    return MappedPoints(
        ids[keep][order],
        snippets[keep][order],
        classes[keep][order],
        report,
        np.maximum(times * rate - shift, 0)[keep][order],
    )


def _at(files: np.ndarray, lines: np.ndarray, i: int) -> str:
    """'FILE line N' of point i (just the source name for points not read from a file)."""
    return f"{files[i]} line {lines[i]}" if lines[i] else str(files[i])


def _line_and(lines: np.ndarray, i: int, text: str) -> str:
    return f"line {lines[i]}, {text}" if lines[i] else text


def _per_file(mask: np.ndarray, files: np.ndarray) -> list[tuple[str, int, int]]:
    """(file, count, index of its first point) of the masked points, one entry per file in input order."""
    index = np.flatnonzero(mask)
    if not len(index):
        return []
    names, first, counts = np.unique(files[index].astype(str), return_index=True, return_counts=True)
    return [(str(names[j]), int(counts[j]), int(index[first[j]])) for j in np.argsort(first)]


def _warn_files_without_actions(files: np.ndarray, classes: np.ndarray, background_label: str) -> None:
    """Once per file whose points are all background: it teaches no action (usually a wrong label column)."""
    names, inverse = np.unique(files.astype(str), return_inverse=True)
    actions = np.bincount(inverse, weights=(classes > 0).astype(np.float64), minlength=len(names))  # (F,)
    for j in np.flatnonzero(actions == 0):
        log.warning(
            "%s: none of its %d point(s) names an action class (all are background '%s'), so its "
            "points teach no action",
            names[j],
            int((inverse == j).sum()),
            background_label,
        )
