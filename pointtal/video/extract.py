"""Feature extraction: video files -> FEATURES_DIR/<video_id>.npy (T, D) float32 + FEATURES_DIR/extract.json
(or the files of another writable layout, `data/layouts/`: v-iashin/video_features').

T is the number of whole `stride`-frame snippets after resampling to `fps` (decode.py): floor(frames / stride);
the last partial snippet is dropped, matching `SnippetGeometry.n_snippets` (snippet t covers
[t * stride / fps, (t + 1) * stride / fps) seconds). Frames stream through in chunks of `batch` snippets, so
memory does not grow with the video's length.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pointtal.atomic import file_sha256, write_text_atomic
from pointtal.data.layouts import LAYOUTS
from pointtal.data.manifest import DEFAULT_LAYOUT
from pointtal.errors import InputError
from pointtal.video.decode import DecodeStats, resampled_frames, video_id_for
from pointtal.video.flow import build_flow, flow_for_snippets, import_torchvision
from pointtal.video.i3d import TwoStreamI3D, load_stream_weights, read_state_dict
from pointtal.video.manifest import MANIFEST, plan_extraction
from pointtal.video.options import (
    I3D_DIM,
    TV_BACKBONES,
    ExtractOptions,
    check_options,
    feature_width,
    streams_of,
)

log = logging.getLogger(__name__)

KINETICS_MEAN, KINETICS_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)


def resolve(device: str) -> torch.device:
    """--device: auto is CUDA when present, else CPU."""
    name = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA device is available; use auto or cpu")
    return torch.device(name)


class I3DBackbone:
    """Two-stream I3D on (B, S, H, W, 3) frames and their (B, S, H, W, 2) flow -> (B, 2048)."""

    needs_flow = True
    dim = I3D_DIM

    def __init__(self, opts: ExtractOptions, device: torch.device):
        self.net = TwoStreamI3D()
        if not opts.random_init:
            load_stream_weights(self.net.rgb, opts.rgb_weights, "--rgb-weights")
            load_stream_weights(self.net.flow, opts.flow_weights, "--flow-weights")
        self.net.to(device).eval()
        self.device = device

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray, flow: np.ndarray) -> np.ndarray:
        rgb = torch.from_numpy(frames).to(self.device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # [-1, 1]
        motion = torch.from_numpy(flow).to(self.device).permute(0, 4, 1, 2, 3).clamp(-20, 20) / 20  # [-1, 1]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            return self.net(rgb, motion).float().cpu().numpy()


class TorchvisionBackbone:
    """A torchvision Kinetics video classifier without its head, RGB only (Kinetics mean/std normalization)."""

    needs_flow = False

    def __init__(self, opts: ExtractOptions, device: torch.device):
        video_models = import_torchvision(f"--backbone {opts.backbone}").video
        head, self.dim = TV_BACKBONES[opts.backbone]
        build = getattr(video_models, opts.backbone)
        self.net = build(weights="DEFAULT" if opts.rgb_weights in ("DEFAULT", "default") else None)
        if opts.rgb_weights and opts.rgb_weights not in ("DEFAULT", "default"):
            try:
                self.net.load_state_dict(read_state_dict(opts.rgb_weights, "--rgb-weights"))
            except RuntimeError as err:
                raise InputError(
                    f"--rgb-weights {opts.rgb_weights}: not {opts.backbone} weights ({str(err).splitlines()[0]})"
                ) from None
        setattr(self.net, head, torch.nn.Identity())
        self.net.to(device).eval()
        self.device = device
        self.mean = torch.tensor(KINETICS_MEAN, device=device).view(1, 3, 1, 1, 1)
        self.std = torch.tensor(KINETICS_STD, device=device).view(1, 3, 1, 1, 1)

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray, flow=None) -> np.ndarray:
        x = (torch.from_numpy(frames).to(self.device).permute(0, 4, 1, 2, 3).float() / 255 - self.mean) / self.std
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            out = self.net(x)
        return out.reshape(len(x), -1, self.dim).mean(1).float().cpu().numpy()  # s3d keeps a time axis


def extract_settings(opts: ExtractOptions, layout: str = "pointtal") -> dict:
    """What decides the features' values, as recorded in extract.json (weights by file name and sha256), and
    the feature layout where it is not pointtal's own."""
    uses_flow = opts.backbone == "i3d"
    weights: dict = {}
    if opts.random_init:
        weights["random_init_seed"] = opts.seed
    else:
        files = {
            "rgb": opts.rgb_weights,
            "flow": opts.flow_weights if uses_flow else None,
            "raft": opts.raft_weights if uses_flow and opts.flow == "raft" else None,
        }
        for key, path in files.items():
            if path and path.lower() == "default":
                weights[key] = "torchvision DEFAULT"
            elif path:
                weights[key] = {"file": Path(path).name, "sha256": file_sha256(path)}
    flow = (f"{opts.flow}:{opts.raft_model}" if opts.flow == "raft" else opts.flow) if uses_flow else None
    settings = {
        "fps": opts.fps,
        "stride": opts.stride,
        "backbone": opts.backbone,
        "dim": feature_width(opts.backbone),
        "flow": flow,
        "resize": opts.resize,
        "crop": opts.crop,
        "weights": weights,
    }
    return settings if layout == DEFAULT_LAYOUT else {**settings, "layout": layout}


class Extractor:
    """Decode -> snippets -> (flow) -> backbone, one video at a time, in chunks of `batch` snippets."""

    def __init__(self, opts: ExtractOptions):
        check_options(opts)
        self.opts = opts
        self.device = resolve(opts.device)
        with torch.random.fork_rng(devices=[]):  # --random-init: the same weights on every run
            torch.manual_seed(opts.seed)
            self.backbone = (I3DBackbone if opts.backbone == "i3d" else TorchvisionBackbone)(opts, self.device)
            self.flow = None
            if self.backbone.needs_flow:
                self.flow = build_flow(
                    opts.flow,
                    raft_model=opts.raft_model,
                    device=self.device,
                    raft_weights=None if opts.random_init else opts.raft_weights,
                )

    def video(self, path: Path, on_frames=None) -> tuple[np.ndarray, DecodeStats]:
        """(T, D) float32 features of one video; `on_frames(n)` is told of every chunk of n frames done."""
        stats = DecodeStats()
        frames = resampled_frames(path, self.opts.fps, self.opts.resize, self.opts.crop, stats)
        out = [
            self._features(chunk, nxt) for chunk, nxt in _chunks(frames, self.opts.stride, self.opts.batch, on_frames)
        ]
        if not out:
            raise InputError(
                f"{path}: {stats.frames} frames at {self.opts.fps:g} fps is shorter than one "
                f"{self.opts.stride}-frame snippet"
            )
        return np.concatenate(out).astype(np.float32, copy=False), stats

    def _features(self, chunk: np.ndarray, lookahead: np.ndarray | None) -> np.ndarray:
        # chunk (B * stride, H, W, 3) uint8 -> (B, D)
        s = self.opts.stride
        snippets = chunk.reshape(-1, s, *chunk.shape[1:])
        flow = None
        if self.flow is not None:
            flow = flow_for_snippets(self.flow, chunk, lookahead).reshape(len(snippets), s, *chunk.shape[1:3], 2)
        return self.backbone(snippets, flow)


def _chunks(frames, stride: int, batch: int, on_frames=None):
    """Yield (frames of up to `batch` whole snippets, the next frame or None); a partial snippet is dropped."""
    size = stride * batch
    buffer: list[np.ndarray] = []
    for frame in frames:
        buffer.append(frame)
        if len(buffer) == size + 1:
            yield np.stack(buffer[:size]), buffer[size]
            if on_frames:
                on_frames(size)
            buffer = buffer[size:]
    whole = len(buffer) // stride * stride
    if whole:
        yield np.stack(buffer[:whole]), buffer[whole] if len(buffer) > whole else None
        if on_frames:
            on_frames(whole)


# ---- running over many videos: outputs, manifest, progress, failures ----


@dataclass
class Summary:
    done: list[str]
    skipped: list[str]
    failed: list[str]
    frames: int
    seconds: float


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    write_text_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=1))


class Progress:
    """tqdm bars (overall and per video, in frames/s) on a terminal; periodic log lines otherwise."""

    def __init__(self, n_videos: int, enabled: bool, every_sec: float = 10.0):
        self.enabled, self.every = enabled, every_sec
        self.tty = enabled and sys.stderr.isatty()
        self.n_videos, self.frames, self.start = n_videos, 0, time.perf_counter()
        self.overall = self.bar = None
        self.last_log = self.start
        if self.tty:
            from tqdm import tqdm

            self._tqdm = tqdm
            self.overall = tqdm(total=n_videos, desc="videos", unit="video", position=0)

    def begin(self, index: int, name: str) -> None:
        self.name, self.index, self.video_frames = name, index, 0
        if self.tty:
            self.bar = self._tqdm(desc=name, unit="frame", position=1, leave=False)

    def advance(self, n: int) -> None:
        self.frames += n
        self.video_frames += n
        if self.bar is not None:
            self.bar.update(n)
        now = time.perf_counter()
        if self.enabled and not self.tty and now - self.last_log >= self.every:
            self.last_log = now
            log.info(
                "extract: video %d/%d %s: %d frames; overall %.1f frames/s",
                self.index + 1,
                self.n_videos,
                self.name,
                self.video_frames,
                self.rate,
            )

    @property
    def rate(self) -> float:
        return self.frames / max(time.perf_counter() - self.start, 1e-9)

    def end(self, status: str) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.overall is not None:
            self.overall.update(1)
            self.overall.set_postfix_str(f"{self.rate:.1f} frames/s")
        elif self.enabled:
            log.info(
                "extract: video %d/%d %s: %s; overall %.1f frames/s",
                self.index + 1,
                self.n_videos,
                self.name,
                status,
                self.rate,
            )

    def close(self) -> None:
        if self.overall is not None:
            self.overall.close()


def extract_videos(
    paths: list[Path],
    out_dir: Path,
    opts: ExtractOptions,
    *,
    overwrite: bool = False,
    progress: bool = True,
    option: str = "--out",
    layout: str = DEFAULT_LAYOUT,
) -> Summary:
    """Extract every video not done yet into the files of feature `layout` (pointtal's `<video_id>.npy`, or
    v-iashin/video_features'); a video that fails is reported in one line and skipped.

    What the folder holds is planned first (`plan_extraction`): other settings re-extract all its videos
    (with `overwrite`) or are refused, so extract.json always describes every feature file of the folder.
    """
    from pointtal import __version__

    check_options(opts)
    settings = extract_settings(opts, layout)
    writer = LAYOUTS[layout]
    ids = [video_id_for(p) for p in paths]
    old, todo_ids, changed = plan_extraction(out_dir, settings, ids, overwrite, option)  # refused here
    manifest = {"pointtal_version": __version__, **settings, "videos": dict(old["videos"]) if old else {}}
    todo = [(p, v) for p, v in zip(paths, ids, strict=True) if v in set(todo_ids)]
    skipped = [v for v in ids if v not in set(todo_ids)]
    if not todo:
        return Summary([], skipped, [], 0, 0.0)
    out_dir.mkdir(parents=True, exist_ok=True)
    extractor = Extractor(opts)
    bar = Progress(len(todo), progress)
    done, failed = [], []
    for index, (path, video_id) in enumerate(todo):
        bar.begin(index, path.name)
        try:
            features, stats = extractor.video(path, on_frames=bar.advance)
        except InputError as err:
            log.error("pointtal extract: error: %s", err)
            failed.append(video_id)
            bar.end("failed")
            if changed:  # its features of the old settings would lie beside the new extract.json
                for stale in (out_dir / name for name in writer.file_names(video_id, streams_of(opts))):
                    if stale.is_file():
                        stale.unlink()
                        log.warning("%s: removed (made with the folder's old settings)", stale)
            continue
        writer.write(out_dir, video_id, features, streams_of(opts), opts.fps, opts.stride)
        manifest["videos"][video_id] = {"file": path.name, **asdict(stats), "snippets": int(len(features))}
        _write_manifest(out_dir, manifest)
        done.append(video_id)
        bar.end(f"{len(features)} snippets")
    bar.close()
    return Summary(done, skipped, failed, bar.frames, time.perf_counter() - bar.start)
