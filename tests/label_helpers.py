"""Shared by the `pointtal label` tests: generated videos (constant and variable frame rate), a server in a thread
or as a `pointtal label` process, small HTTP calls."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

from pointtal.video.clicks import ClickStore
from pointtal.video.label_server import LabelSession, list_videos, load_reference, make_server

CLASSES = ("Jump", "Throw", "Run")


def make_video(path: Path, seconds: float = 4.0, fps: int = 30, size: tuple[int, int] = (160, 96)) -> Path:
    """An H.264 .mp4 (or VP8 .webm, by suffix) of a square moving left to right over a changing background."""
    import av

    width, height = size
    n_frames = int(round(seconds * fps))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx" if path.suffix == ".webm" else "libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n_frames):
            frame = np.zeros((height, width, 3), dtype=np.uint8)  # (H, W, 3) RGB
            frame[..., 2] = 40 + (150 * i) // max(1, n_frames - 1)
            x = (width - 24) * i // max(1, n_frames - 1)
            frame[36:60, x : x + 24] = (255, 220, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def grey_level(k: int) -> int:
    """The grey of frame k of `make_vfr_video` (steps of 6: frame k is told apart after lossy coding)."""
    return 10 + 6 * k


def make_vfr_video(path: Path, starts_ms: list[int], size: tuple[int, int] = (64, 48)) -> Path:
    """A variable-frame-rate H.264 .mp4: frame k starts at starts_ms[k] (a 1 ms time base) and is a flat grey of
    `grey_level(k)`, so a decoded frame names its index."""
    import av

    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for k, start in enumerate(starts_ms):
            image = np.full((height, width, 3), grey_level(k), np.uint8)  # (H, W, 3)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = start, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_classes(path: Path, classes=CLASSES) -> Path:
    path.write_text("\n".join(classes) + "\n", encoding="utf-8")
    return path


@contextlib.contextmanager
def running_server(videos_dir: Path, out: Path, clock=None, **reference):
    """A label server on a free port in a thread; yields (server, store)."""
    session = LabelSession(
        root=videos_dir.resolve(),
        videos=list_videos(videos_dir),
        classes=CLASSES,
        annotator="tester",
        reference=load_reference(CLASSES, **reference),
    )
    store = ClickStore(out, "tester", **({"clock": clock} if clock else {}))
    server = make_server(session, store, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, store
    finally:
        server.shutdown()
        server.server_close()
        store.close()


def call(port: int, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None):
    """One request; returns (status, headers, parsed JSON or raw bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    sent_headers = dict(headers or {})
    payload = raw
    if body is not None:
        payload = json.dumps(body).encode()
        sent_headers.setdefault("Content-Type", "application/json")
    connection.request(method, path, body=payload, headers=sent_headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    is_json = response.getheader("Content-Type", "").startswith("application/json")
    return response.status, dict(response.getheaders()), json.loads(data) if is_json else data


def start_cli(videos: Path, classes: Path, out: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    """`pointtal label` as its own process on a free port; returns (process, port). Stop it with `stop_cli`."""
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pointtal",
            "label",
            str(videos),
            "--classes",
            str(classes),
            "--out",
            str(out),
            "--port",
            "0",
            "--annotator",
            "kim",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    for line in process.stdout:
        match = re.search(r"open http://127\.0\.0\.1:(\d+)/", line)
        if match:
            return process, int(match.group(1))
    process.kill()
    raise AssertionError(f"no URL printed; stderr: {process.stderr.read()}")


def stop_cli(process: subprocess.Popen, timeout_sec: float = 20.0) -> tuple[str, str]:
    """Stop a `start_cli` server: SIGTERM (the CLI stops cleanly on it, even where SIGINT is ignored, as under
    `nohup` or a shell's `trap '' INT`), then SIGKILL if it is still running after `timeout_sec`. Returns the
    rest of its (stdout, stderr)."""
    if process.poll() is not None:
        return "", ""  # stopped already (killed, or its output read to the end)
    process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=timeout_sec)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()
