"""Decode a video file with PyAV and resample it to a fixed frame rate by timestamps.

Resampling rule (what `ffmpeg -r` does for a constant-rate output): output frame k shows the source frame on
screen at time k / fps, i.e. the last source frame whose presentation time is <= k / fps, counted from the first
frame. The video ends when its last frame's display ends, so a 30 fps video of N frames gives
ceil(N * fps / 30) frames. Frames are scaled so the shorter side is `resize` pixels, then center-cropped to
`crop` x `crop` (the Kinetics I3D test-time protocol: 256 then a 224 center crop).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from pointtal.data.features import check_video_id
from pointtal.errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


def list_videos(inputs: list[str]) -> list[Path]:
    """Video files named directly or found (non-recursively, by extension) in named directories."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{path}: no such video file or directory")
    if not found:
        raise InputError(f"{', '.join(inputs)}: no video files ({', '.join(VIDEO_EXTENSIONS)})")
    ids = [video_id_for(p) for p in found]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise InputError(f"video id {twice[0]!r} names two input files; video ids are file names without extension")
    return found


def video_id_for(path: Path) -> str:
    """The video id is the file name without its extension (it names the feature file)."""
    return check_video_id(path.stem, str(path))


@dataclass
class DecodeStats:
    """Frame counts of one decoded video (recorded in extract.json)."""

    source_frames: int = 0
    source_fps: float = 0.0
    frames: int = 0  # after resampling


def _frame_size(width: int, height: int, resize: int) -> tuple[int, int]:
    """(width, height) with the shorter side scaled to `resize`, aspect kept."""
    scale = resize / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _center_crop(image: np.ndarray, crop: int) -> np.ndarray:  # (H, W, 3) -> (crop, crop, 3)
    h, w = image.shape[:2]
    top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    return image[top : top + crop, left : left + crop]


def resampled_frames(path: Path, fps: float, resize: int, crop: int, stats: DecodeStats) -> Iterator[np.ndarray]:
    """Yield (crop, crop, 3) uint8 RGB frames at `fps`; a file PyAV cannot read is an InputError."""
    import av  # PyAV: only the extract/detect commands need it

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            stats.source_fps = float(rate) if rate else 0.0
            yield from _resample(container.decode(stream), stream, Fraction(fps), resize, crop, stats)
    except InputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: unreadable video ({type(err).__name__}: {str(err).splitlines()[0]})") from None


def _resample(frames, stream, fps: Fraction, resize: int, crop: int, stats: DecodeStats) -> Iterator[np.ndarray]:
    """Nearest-previous resampling by presentation time; each source frame is converted at most once."""
    start = previous = None
    last_step = Fraction(1, 25)
    for frame in frames:
        if frame.pts is None or frame.time_base is None:
            continue
        t = Fraction(frame.pts) * frame.time_base
        start = t if start is None else start
        if previous is not None:
            last_step = (t - previous[0]) or last_step
            yield from _emit(previous[1], t - start, fps, resize, crop, stats)
        previous = (t, frame)
        stats.source_frames += 1
    if previous is None:
        return
    t, frame = previous
    duration = Fraction(frame.duration) * frame.time_base if frame.duration else 0
    if not duration:
        rate = stream.average_rate or stream.guessed_rate
        duration = Fraction(1) / Fraction(rate) if rate else last_step
    yield from _emit(frame, t - start + duration, fps, resize, crop, stats)


def _emit(frame, end: Fraction, fps: Fraction, resize, crop, stats) -> Iterator[np.ndarray]:
    """The frame once for every output time k / fps before `end` not yet shown (none: a dropped frame)."""
    image = None
    while Fraction(stats.frames) / fps < end:
        if image is None:
            width, height = _frame_size(frame.width, frame.height, resize)
            image = _center_crop(frame.reformat(width=width, height=height, format="rgb24").to_ndarray(), crop)
        stats.frames += 1
        yield image
