"""Shared by the `pointtal label` tests: a generated video, a server in a thread, small HTTP calls."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
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
            frame[36:60, x: x + 24] = (255, 220, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
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
    session = LabelSession(root=videos_dir.resolve(), videos=list_videos(videos_dir), classes=CLASSES,
                           annotator="tester", reference=load_reference(CLASSES, **reference))
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
