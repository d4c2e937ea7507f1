"""`pointtal label` behind the page: a small HTTP server (standard library only) over a `ClickStore`
(pointtal/video/clicks.py: journal + atomically rewritten CSV, so an acknowledged change survives a kill).

Server: `ThreadingHTTPServer` with the page at `/`, a JSON API under `/api/` and the videos at `/video/<id>` with
HTTP range requests. Times are the video's presentation times in seconds (what the browser's `currentTime` and
`pointtal extract` use); `/api/frames` lists each frame's, read with PyAV, for one-frame steps on any frame
rate. Review changes are `PATCH /api/points/<id>` (move or accept), a video's done mark `POST /api/done`.
Only the files listed at start (regular files directly in VIDEOS_DIR whose real path stays inside it) are
served: a URL names a video id, never a path. Bad requests get a 4xx JSON error; a click outside the video (its
length read from the file with PyAV on its first click, `DURATION_SLACK_SEC` past the end allowed) is one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from pointtal.data.annotations import BACKGROUND, load_ground_truth
from pointtal.errors import InputError
from pointtal.evaluation import load_segment_predictions
from pointtal.limits import MAX_DURATION_SEC
from pointtal.video.clicks import ClickStore

log = logging.getLogger(__name__)

VIDEO_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".mkv": "video/x-matroska",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
}
MAX_BODY_BYTES = 64 * 1024
MAX_PREDICTIONS_PER_VIDEO = 50  # highest-scoring segments shown on the timeline
_CHUNK_BYTES = 256 * 1024
_FORBIDDEN_IN_CSV = ',\n\r"'
DURATION_SLACK_SEC = 0.1  # a click may be this far past the container's end (the browser's may differ by a frame)


# ------------------------------------------------------------------------------------------------ what is served


@dataclass(frozen=True)
class LabelSession:
    """Everything the page needs that is fixed at start."""

    root: Path  # VIDEOS_DIR, resolved
    videos: Mapping[str, Path]  # video id -> resolved file inside root
    classes: tuple[str, ...]
    background: str = BACKGROUND
    fps: float = 25.0
    stride: int = 16
    annotator: str = ""
    reference: Mapping[str, dict] = field(default_factory=dict)  # video id -> {"ground_truth", "predictions"}

    def to_json(self) -> dict:
        return {
            "classes": list(self.classes),
            "background": self.background,
            "fps": self.fps,
            "stride": self.stride,
            "annotator": self.annotator,
            "snippet_sec": self.stride / self.fps,
        }


def list_videos(root: str | Path) -> dict[str, Path]:
    """Video files directly in `root` by id (file name without extension). Files whose real path leaves `root`
    (a symlink out of it) and names a click CSV cannot hold are skipped with a warning."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory of videos")
    real_root = root.resolve()
    videos: dict[str, Path] = {}
    for path in sorted(root.iterdir()):
        if path.suffix.lower() not in VIDEO_TYPES:
            continue
        real = path.resolve()
        if not real.is_relative_to(real_root) or not real.is_file():
            log.warning("%s: skipped, not a regular file inside %s", path, root)
            continue
        if any(c in path.stem for c in _FORBIDDEN_IN_CSV) or not path.stem:
            log.warning("%s: skipped, a video id cannot hold a comma, quote or newline", path)
            continue
        if path.stem in videos:
            raise InputError(f"{root}: two videos have the id '{path.stem}' ({videos[path.stem].name}, {path.name})")
        videos[path.stem] = real
    if not videos:
        raise InputError(f"{root}: no video files ({', '.join(sorted(VIDEO_TYPES))})")
    return videos


def probe_duration(path: str | Path) -> float | None:
    """Seconds of a video file, from its container or else its video stream; None when PyAV is not installed
    or the file does not tell."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / av.time_base
            for stream in container.streams.video:
                if stream.duration and stream.time_base:
                    return float(stream.duration * stream.time_base)
    except (av.FFmpegError, OSError, ValueError):
        return None
    return None


def frame_times(path: str | Path) -> list[float] | None:
    """Presentation time (seconds) of every frame of the first video stream, ascending, from the packets (no
    decoding); each rounded up to the microsecond, so a click stored at it (CSV times have 6 decimals) is never
    before its frame. None when PyAV is not installed or the file has no readable video stream."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            pts = np.array([p.pts for p in container.demux(stream) if p.pts is not None and p.size], np.float64)  # (F,)
            base = float(stream.time_base)
    except (av.FFmpegError, OSError, ValueError):
        return None
    if not len(pts):
        return None
    seconds = np.unique(np.ceil(np.round(pts * base * 1e6, 3)) / 1e6)  # (F,) ascending; round(., 3): float noise
    return seconds.tolist()


def load_reference(
    classes: tuple[str, ...],
    ground_truth: str | Path | None = None,
    predictions: str | Path | None = None,
    videos: Collection[str] | None = None,
) -> dict[str, dict]:
    """Ground-truth segments and the best-scoring predicted segments per video, to draw under the clicks and
    beside each point in review. With `videos` (the ids served), a file that names none of them is warned about."""
    reference: dict[str, dict] = {}

    def entry(video: str) -> dict:
        return reference.setdefault(video, {"ground_truth": [], "predictions": []})

    if ground_truth is not None:
        gt = load_ground_truth(ground_truth)
        _check_overlap(f"--ground-truth {ground_truth}", list(gt.videos), videos)
        for video in gt.videos.values():
            entry(video.video_id)["ground_truth"] = [
                {"start": i.start_sec, "end": i.end_sec, "label": i.label} for i in video.instances
            ]
    if predictions is not None:
        table = load_segment_predictions(predictions, classes)
        _check_overlap(f"--predictions {predictions}", list(table.video_ids), videos)
        order = np.lexsort((-table.score, table.video))  # (N,) by video, best score first
        bounds = np.searchsorted(table.video[order], np.arange(len(table.video_ids) + 1))  # (V+1,)
        for v, video in enumerate(table.video_ids):
            rows = order[bounds[v] : bounds[v + 1]][:MAX_PREDICTIONS_PER_VIDEO]
            entry(video)["predictions"] = [
                {
                    "start": float(table.start_sec[i]),
                    "end": float(table.end_sec[i]),
                    "label": table.classes[int(table.label[i])],
                    "score": float(table.score[i]),
                }
                for i in rows
            ]
    return reference


def _check_overlap(what: str, named: list[str], videos: Collection[str] | None) -> None:
    """A reference file for other videos than the ones served is likely the wrong file: say so in one line."""
    if videos is None or not named or set(named) & set(videos):
        return
    log.warning(
        "%s: none of its %d videos (%s, ...) is in the videos directory (%s, ...; ids are file names "
        "without extension): nothing of it is shown",
        what,
        len(named),
        ", ".join(sorted(named)[:3]),
        ", ".join(sorted(videos)[:3]),
    )


# ------------------------------------------------------------------------------------------------ HTTP


class ApiError(Exception):
    """A request the server refuses: HTTP status and a one-line message (sent as JSON)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class LabelServer(ThreadingHTTPServer):
    """The HTTP server, holding the session and the store for its handlers."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], session: LabelSession, store: ClickStore):
        super().__init__(address, LabelHandler)
        self.session = session
        self.store = store
        host, port = self.server_address[:2]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
        loopback = host in ("127.0.0.1", "::1", "localhost")
        # DNS-rebinding guard: on loopback only requests addressed to loopback names are answered.
        self.allowed_hosts = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"} if loopback else None
        self._durations: dict[str, float | None] = {}
        self._durations_lock = threading.Lock()
        self._frames: dict[str, list[float] | None] = {}
        self._frames_lock = threading.Lock()  # its own: reading a long file's packets does not hold up clicks

    def duration(self, video: str) -> float | None:
        """The video's length in seconds (probed once, on its first click); None when it cannot be read."""
        with self._durations_lock:
            if video not in self._durations:
                seconds = probe_duration(self.session.videos[video])
                if seconds is None:
                    log.warning(
                        "%s: length unknown (no PyAV, or the file does not say): clicks are not checked against it",
                        self.session.videos[video],
                    )
                self._durations[video] = seconds
            return self._durations[video]

    def frames(self, video: str) -> list[float] | None:
        """The video's frame times (read once, on first request); None when they cannot be read."""
        with self._frames_lock:
            if video not in self._frames:
                self._frames[video] = frame_times(self.session.videos[video])
            return self._frames[video]


def make_server(session: LabelSession, store: ClickStore, host: str = "127.0.0.1", port: int = 8765) -> LabelServer:
    """Bind (port 0 picks a free port; see `server.url`) without serving yet: call `serve_forever()`."""
    try:
        return LabelServer((host, port), session, store)
    except OSError as err:
        raise InputError(
            f"cannot listen on {host}:{port}: {err.strerror} (pick another --port, 0 = any free)"
        ) from None


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single `Range: bytes=a-b` / `a-` / `-n` as inclusive (first, last); None = whole file (no header, or
    one we do not honour: several ranges or odd syntax). Raises ApiError 416 when it lies beyond the file."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return None
    first_text, last_text = match.groups()
    if first_text:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
    else:  # suffix range: the last n bytes
        first, last = max(0, size - int(last_text)), size - 1
    if first >= size or first > last:
        raise ApiError(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, f"range {header!r} is outside the {size} bytes")
    return first, last


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number")


class LabelHandler(BaseHTTPRequestHandler):
    """Routes: `/` page, `/api/*` JSON, `/video/<id>` file with ranges. Every error is a JSON object."""

    server: LabelServer
    protocol_version = "HTTP/1.1"
    server_version = "pointtal-label"

    # -- dispatch
    def do_GET(self) -> None:
        self._dispatch(
            {
                "/": self._page,
                "/api/session": self._session,
                "/api/videos": self._videos,
                "/api/points": self._points,
                "/api/reference": self._reference,
                "/api/frames": self._frames,
            },
            video_route=True,
        )

    def do_POST(self) -> None:
        self._dispatch({"/api/points": self._add_point, "/api/heartbeat": self._heartbeat, "/api/done": self._done})

    def do_DELETE(self) -> None:
        self._dispatch({}, point_route=self._delete_point)

    def do_PATCH(self) -> None:
        self._dispatch({}, point_route=self._patch_point)

    def do_HEAD(self) -> None:
        self._send_error_json(HTTPStatus.METHOD_NOT_ALLOWED, "HEAD is not supported; use GET")

    do_PUT = do_OPTIONS = do_HEAD

    def _dispatch(self, routes: dict, video_route: bool = False, point_route=None) -> None:
        try:
            self._check_origin()
            path = urlsplit(self.path).path
            if path in routes:
                return routes[path]()
            if video_route and path.startswith("/video/"):
                return self._video(path.removeprefix("/video/"))
            if point_route is not None and path.startswith("/api/points/"):
                return point_route(self._point_id(path.removeprefix("/api/points/")))
            known = path in (
                "/",
                "/api/session",
                "/api/videos",
                "/api/points",
                "/api/reference",
                "/api/heartbeat",
                "/api/frames",
                "/api/done",
            )
            if known or path.startswith(("/api/points/", "/video/")):
                raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not allowed on {path}")
            raise ApiError(HTTPStatus.NOT_FOUND, f"no such page: {path}")
        except ApiError as err:
            if self.command != "GET":
                self.close_connection = True  # a refused body may be unread: do not parse it as the next request
            self._send_error_json(err.status, str(err))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the browser gave up on a video range; nothing to answer
        except Exception as err:  # a bug, not bad input: log it and keep serving
            log.exception("pointtal label: %s %s failed", self.command, self.path)
            self._send_error_json(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(err).__name__}")

    # -- GET
    def _page(self) -> None:
        body = resources.files("pointtal.video").joinpath("static/label.html").read_bytes()
        self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")

    def _session(self) -> None:
        last = self.server.store.last_video()
        last = last if last in self.server.session.videos else None
        self._send_json(HTTPStatus.OK, {**self.server.session.to_json(), "last_video": last})

    def _videos(self) -> None:
        store, counts = self.server.store, {}
        for point in store.points():
            counts[point.video] = counts.get(point.video, 0) + 1
        self._send_json(
            HTTPStatus.OK,
            {
                "videos": [
                    {
                        "id": video,
                        "url": f"/video/{video}",
                        "points": counts.get(video, 0),
                        "done": store.is_done(video),
                        "active_sec": round(store.active_sec(video), 3),
                    }
                    for video in self.server.session.videos
                ]
            },
        )

    def _points(self) -> None:
        video, store = self._video_param(), self.server.store
        self._send_json(
            HTTPStatus.OK,
            {"video": video, "points": [p.to_json() for p in store.points(video)], "reviewed": store.reviewed(video)},
        )

    def _frames(self) -> None:
        video = self._video_param()
        self._send_json(HTTPStatus.OK, {"video": video, "times": self.server.frames(video)})

    def _reference(self) -> None:
        video = self._video_param()
        empty = {"ground_truth": [], "predictions": []}
        self._send_json(HTTPStatus.OK, {"video": video, **self.server.session.reference.get(video, empty)})

    def _video(self, video: str) -> None:
        path = self.server.session.videos.get(video)
        # Re-checked at every request: a file swapped for a symlink after start is still refused.
        if path is None or not path.resolve().is_relative_to(self.server.session.root) or not path.is_file():
            raise ApiError(HTTPStatus.NOT_FOUND, f"no video '{video}'")
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            span = parse_range(self.headers.get("Range"), size)
            first, last = span if span is not None else (0, size - 1)
            self.send_response(HTTPStatus.PARTIAL_CONTENT if span is not None else HTTPStatus.OK)
            self.send_header("Content-Type", VIDEO_TYPES[path.suffix.lower()])
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(last - first + 1))
            if span is not None:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.end_headers()
            handle.seek(first)
            left = last - first + 1
            while left > 0:
                chunk = handle.read(min(_CHUNK_BYTES, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    # -- POST / DELETE
    def _add_point(self) -> None:
        body = self._json_body({"video", "time", "label"})
        video = self._known_video(body["video"])
        time_sec = self._click_time(body["time"], video)
        label, session = body["label"], self.server.session
        if label not in session.classes and label != session.background:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, f"'label' {label!r:.60} is not a class of --classes nor '{session.background}'"
            )
        point = self.server.store.add(video, time_sec, label)
        self._send_json(HTTPStatus.CREATED, point.to_json())

    def _heartbeat(self) -> None:
        body = self._json_body({"video"}, optional={"start"})
        video = self._known_video(body["video"])
        start = body.get("start", False)
        if not isinstance(start, bool):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"'start' must be true or false, got {start!r:.60}")
        seconds = self.server.store.heartbeat(video, start)
        self._send_json(HTTPStatus.OK, {"video": video, "active_sec": round(seconds, 3)})

    def _done(self) -> None:
        body = self._json_body({"video", "done"})
        video, done = self._known_video(body["video"]), body["done"]
        if not isinstance(done, bool):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"'done' must be true or false, got {done!r:.60}")
        self.server.store.set_done(video, done)
        self._send_json(HTTPStatus.OK, {"video": video, "done": done})

    def _delete_point(self, point_id: int) -> None:
        point = self.server.store.delete(point_id)
        if point is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no point with id {point_id}")
        self._send_json(HTTPStatus.OK, point.to_json())

    def _patch_point(self, point_id: int) -> None:
        """Review: `{"time": t}` moves the point, `{"accepted": true}` accepts it; either marks it reviewed."""
        body = self._json_body(set(), optional={"time", "accepted"})
        if len(body) != 1:
            raise ApiError(HTTPStatus.BAD_REQUEST, "body must hold exactly one of 'time' (move) or 'accepted' (true)")
        store = self.server.store
        if "accepted" in body:
            if body["accepted"] is not True:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"'accepted' must be true, got {body['accepted']!r:.60}")
            point = store.accept(point_id)
        else:
            known = next((p for p in store.points() if p.id == point_id), None)
            point = known and store.move(point_id, self._click_time(body["time"], known.video))
        if point is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no point with id {point_id}")
        self._send_json(HTTPStatus.OK, {**point.to_json(), "reviewed": True})

    # -- request checks
    def _click_time(self, time_sec, video: str) -> float:
        """A click's time: a finite number of seconds inside the video (its length read from the file)."""
        if isinstance(time_sec, bool) or not isinstance(time_sec, (int, float)) or not math.isfinite(time_sec):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"'time' must be a number of seconds, got {time_sec!r:.60}")
        if not 0 <= time_sec <= MAX_DURATION_SEC:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"'time' must be between 0 and {MAX_DURATION_SEC:g}, got {time_sec}")
        length = self.server.duration(video)
        if length is not None and time_sec > length + DURATION_SLACK_SEC:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                f"'time' must be between 0 and {length:.3f} s, the length of video '{video}', got {time_sec:g}",
            )
        return time_sec

    @staticmethod
    def _point_id(text: str) -> int:
        if not text.isdigit() or not text.isascii() or len(text) > 18:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"point id must be a positive integer, got {text!r:.60}")
        return int(text)

    def _check_origin(self) -> None:
        """Only requests addressed to this server (Host) and, when a page sent them, from its own origin."""
        allowed = self.server.allowed_hosts
        host = self.headers.get("Host", "")
        if allowed is not None and host not in allowed:
            raise ApiError(HTTPStatus.FORBIDDEN, f"Host {host!r:.80} is not this server")
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{host}":
            raise ApiError(HTTPStatus.FORBIDDEN, f"Origin {origin!r:.80} may not use this server")

    def _video_param(self) -> str:
        values = parse_qs(urlsplit(self.path).query).get("video")
        if not values:
            raise ApiError(HTTPStatus.BAD_REQUEST, "missing query parameter 'video'")
        return self._known_video(values[0])

    def _known_video(self, video) -> str:
        if not isinstance(video, str):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"'video' must be a string, got {video!r:.60}")
        if video not in self.server.session.videos:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no video '{video:.80}' in the videos directory")
        return video

    def _json_body(self, required: set[str], optional: frozenset | set = frozenset()) -> dict:
        """The request's JSON object, with exactly the `required` keys (plus `optional` ones)."""
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        if not length_text.isdigit() or int(length_text) > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body must not be taken for the next request
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length_text.isdigit() else HTTPStatus.BAD_REQUEST,
                f"Content-Length must be a number of bytes up to {MAX_BODY_BYTES}, got {length_text!r:.40}",
            )
        raw = self.rfile.read(int(length_text))
        try:
            body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as err:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {err}") from None
        if not isinstance(body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"body must be a JSON object with keys {sorted(required)}")
        missing, extra = required - body.keys(), body.keys() - required - set(optional)
        if missing or extra:
            what = f"missing {sorted(missing)}" if missing else f"unknown {sorted(extra)}"
            also = f", optional {sorted(optional)}" if optional else ""
            raise ApiError(HTTPStatus.BAD_REQUEST, f"body keys: {what} (expected {sorted(required)}{also})")
        return body

    # -- responses
    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, data) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), "application/json")

    def _send_error_json(self, status: int, message: str) -> None:
        self._send_json(status, {"error": message, "status": int(status)})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by http.server itself (bad request line, unknown method) as JSON too; an unknown
        method is 405 rather than 501."""
        code = HTTPStatus.METHOD_NOT_ALLOWED if code == HTTPStatus.NOT_IMPLEMENTED else code
        self.close_connection = True
        try:
            self._send_error_json(code, message or HTTPStatus(code).phrase)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args) -> None:  # noqa: A002 -- the base class's name
        log.debug("%s %s", self.address_string(), format % args)
