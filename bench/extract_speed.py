"""Feature-extraction speed of `pointtal extract` (frames/s of resampled 25 fps video), split by stage.

    python bench/extract_speed.py [--seconds 4] [--size 320x240] [--flows tvl1,raft] [--device cpu|cuda]

A generated 30 fps clip (moving squares over a textured background) is extracted with the default
settings (25 fps, 16-frame snippets, shorter side 256, 224 center crop, two-stream I3D with random weights:
speed does not depend on the weight values) once per flow method, all in one process, so the figures are
side-by-side ratios on the same machine state. Decode time is what remains after flow and network time.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from pointtal.errors import InputError  # noqa: E402
from pointtal.video.extract import ExtractOptions, Extractor  # noqa: E402


class Timed:
    """Wrap a callable and add up its wall time."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0
        self.needs_flow, self.dim = getattr(fn, "needs_flow", None), getattr(fn, "dim", None)

    def __call__(self, *args):
        start = time.perf_counter()
        out = self.fn(*args)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        return out


def make_clip(path: Path, seconds: float, width: int, height: int) -> Path:
    import av

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * 30)):
            frame = np.roll(texture, 3 * i, axis=1)
            frame[40:90, (5 * i) % (width - 50) : (5 * i) % (width - 50) + 50] = (255, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def measure(clip: Path, flow: str, device: str) -> dict:
    extractor = Extractor(ExtractOptions(flow=flow, random_init=True, device=device))
    extractor.flow, extractor.backbone = Timed(extractor.flow), Timed(extractor.backbone)
    start = time.perf_counter()
    features, stats = extractor.video(clip)
    total = time.perf_counter() - start
    return {
        "flow": flow,
        "frames": stats.frames,
        "snippets": len(features),
        "total": total,
        "flow_s": extractor.flow.seconds,
        "net_s": extractor.backbone.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--flows", default="tvl1,raft")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print("| flow | frames | snippets | frames/s | flow s | I3D s | decode+rest s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", args.seconds, width, height)
        for flow in args.flows.split(","):
            try:
                r = measure(clip, flow, args.device)
            except InputError as err:
                print(f"| {flow} | not measured: {err} | | | | | |")
                continue
            rest = r["total"] - r["flow_s"] - r["net_s"]
            print(
                f"| {flow} | {r['frames']} | {r['snippets']} | {r['frames'] / r['total']:.2f} | "
                f"{r['flow_s']:.1f} | {r['net_s']:.1f} | {rest:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
