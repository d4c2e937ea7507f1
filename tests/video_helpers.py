"""Small generated videos for the extract/detect tests (PyAV): a bright square moving over a dark background."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# a 16x16 crop keeps two-stream I3D and TV-L1 fast enough for two busy cores
SMALL = ["--resize", "16", "--crop", "16", "--random-init", "--no-progress"]


def moving_square(n: int, size: int = 24, speed: int = 2, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8 frames; the square's speed and colour depend on the seed."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(120, 256, 3)
    frames = np.full((n, size, size, 3), 20, np.uint8)
    for i in range(n):
        x = (speed * i) % (size - 8)
        frames[i, 8:16, x : x + 8] = colour
    return frames


def write_video(path: Path, frames: np.ndarray, fps: int = 30, codec: str = "mpeg4") -> Path:
    """Encode frames (N, H, W, 3) uint8 with PyAV at a constant `fps`."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv444p" if codec == "ffv1" else "yuv420p"
        if codec == "mpeg4":
            stream.options = {"qscale": "2"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def truncate(src: Path, dst: Path, keep: float = 0.5) -> Path:
    """A copy of `src` cut after `keep` of its bytes (a broken download)."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst
