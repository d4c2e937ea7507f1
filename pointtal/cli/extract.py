"""`pointtal extract`: video files -> per-video I3D (or torchvision) features + extract.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from pointtal.cli import checks
from pointtal.errors import InputError

HELP = "extract snippet features from video files (two-stream I3D by default) into FEATURES_DIR/<video_id>.npy"
EXAMPLE = (
    "pointtal extract videos/ --out features/ --rgb-weights rgb_imagenet.pt --flow-weights flow_imagenet.pt\n"
    "  pointtal extract a.mp4 b.mkv --out features/ --flow raft --raft-weights raft_small.pth --device cuda\n"
    "  pointtal extract videos/ --out /tmp/f --random-init --resize 64 --crop 56  # smoke test, random weights\n"
    "  pointtal extract videos/ --out output/i3d --layout video_features ...   # v-iashin/video_features' files"
)


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that decide the features (shared with `pointtal detect`)."""
    from pointtal.video.options import BACKBONES, ExtractOptions

    d = ExtractOptions()
    parser.add_argument(
        "--backbone",
        default=d.backbone,
        choices=BACKBONES,
        help="i3d: two-stream I3D, rgb|flow = 2048 wide (the THUMOS14 release layout); the others "
        "are torchvision Kinetics models, RGB only (need a torchvision that imports)",
    )
    parser.add_argument(
        "--rgb-weights",
        metavar="FILE",
        help="I3D RGB stream weights (e.g. rgb_imagenet.pt), or the torchvision backbone's "
        "state dict (DEFAULT: torchvision's own download)",
    )
    parser.add_argument("--flow-weights", metavar="FILE", help="I3D flow stream weights (e.g. flow_imagenet.pt)")
    parser.add_argument(
        "--flow",
        choices=("tvl1", "raft"),
        help="optical flow for I3D: tvl1 (OpenCV dual TV-L1, default: what the released THUMOS14 "
        "features of W-TALC/BaSNet/SF-Net/LACP used) or raft (torchvision, fast on GPU)",
    )
    parser.add_argument(
        "--raft-model",
        choices=("raft_small", "raft_large"),
        help=f"RAFT network for --flow raft (default {d.raft_model})",
    )
    parser.add_argument(
        "--raft-weights",
        metavar="FILE",
        help="RAFT state dict file, or DEFAULT for torchvision's download (needs internet)",
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="random weights (seeded by --seed): smoke tests only, the features mean nothing",
    )
    parser.add_argument("--seed", type=int, help=f"seed of --random-init (default {d.seed})")
    parser.add_argument("--resize", type=int, default=d.resize, help="shorter side before the crop (default 256)")
    parser.add_argument("--crop", type=int, default=d.crop, help="center crop size (default 224)")
    parser.add_argument("--batch", type=int, default=d.batch, help="snippets per forward pass (default 8)")
    parser.add_argument("--device", default=d.device, help="auto (CUDA with bf16 when present), cpu or cuda")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "videos", nargs="+", metavar="VIDEO", help="video files or directories of them (.mp4 .avi .mkv .webm .mov .m4v)"
    )
    parser.add_argument("--out", required=True, metavar="FEATURES_DIR", help="directory for <video_id>.npy files")
    parser.add_argument(
        "--layout",
        choices=("pointtal", "video_features"),
        default="pointtal",
        help="feature files: pointtal = <video_id>.npy (T, D); video_features = v-iashin/"
        "video_features' <video_id>_rgb.npy, _flow.npy (I3D's two halves), _fps.npy, "
        "_timestamps_ms.npy, read back by training like pointtal's own (default pointtal)",
    )
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate to resample to (default 25)")
    parser.add_argument(
        "--stride",
        type=int,
        default=16,
        help="frames per snippet (default 16); T = "
        "floor(resampled frames / stride), the last partial snippet is dropped",
    )
    add_extract_arguments(parser)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="re-extract the given videos that already have features; with other settings than "
        "FEATURES_DIR/extract.json records, every video of the folder is re-extracted, so all "
        "of them must be given (else refused: a folder never holds features its extract.json "
        "does not describe)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or progress log lines")


def options_from(args: argparse.Namespace, fps: float, stride: int):
    from pointtal.video.options import ExtractOptions

    d = ExtractOptions()
    return ExtractOptions(
        fps=fps,
        stride=stride,
        backbone=args.backbone,
        flow=args.flow or d.flow,
        resize=args.resize,
        crop=args.crop,
        rgb_weights=args.rgb_weights,
        flow_weights=args.flow_weights,
        raft_model=args.raft_model or d.raft_model,
        raft_weights=args.raft_weights,
        random_init=args.random_init,
        seed=d.seed if args.seed is None else args.seed,
        batch=args.batch,
        device=args.device,
    )


def check_extract_ranges(args: argparse.Namespace) -> None:
    """The values of the options `add_extract_arguments` adds (shared with `pointtal detect`)."""
    checks.number(args, "seed", 0)
    checks.number(args, "resize", 8)
    checks.number(args, "crop", 8)
    if args.resize is not None and args.crop is not None and args.crop > args.resize:
        checks.fail("crop", args.crop, f"must be <= --resize {args.resize} (the crop is cut from the resized frame)")
    checks.number(args, "batch", 1)
    checks.device(args)


def check_extract_applies(
    args: argparse.Namespace, backbone: str, flow: str, random_init: bool, where: str = ""
) -> None:
    """Flags that cannot change features made with `backbone`, `flow`, random or loaded weights: an error."""
    context = f" ({where})" if where else ""
    checks.only_with(
        args, ("seed",), random_init, f"applies to --random-init only (it seeds the random weights){context}"
    )
    checks.only_with(
        args,
        ("rgb_weights", "flow_weights", "raft_weights"),
        not random_init,
        f"not used with random weights (--random-init){context}",
    )
    rgb_only = f"backbone {backbone} is RGB only{context}: no optical flow"
    checks.only_with(args, ("flow", "flow_weights", "raft_model", "raft_weights"), backbone == "i3d", rgb_only)
    checks.only_with(
        args, ("raft_model", "raft_weights"), flow == "raft", f"applies to --flow raft; the flow is {flow}{context}"
    )


def check_args(args: argparse.Namespace) -> None:
    from pointtal.video.options import ExtractOptions

    checks.number(args, "fps", 0, 1000, low_open=True)
    checks.number(args, "stride", 1)
    check_extract_ranges(args)
    checks.not_a_file(args, "out", "the directory the <video_id>.npy files go to")
    check_extract_applies(args, args.backbone, args.flow or ExtractOptions().flow, args.random_init)


def guard_features_dir(
    out: Path, paths: list[Path], opts, option: str = "--out", inputs: dict | None = None, layout: str = "pointtal"
) -> None:
    """The output guard on a features folder: never a file, and none of the files extraction writes there
    (`<video_id>.npy`, extract.json) is one of the command's inputs. Which existing files of the folder may be
    replaced is the folder's extract.json's business (pointtal.video.manifest.plan_extraction)."""
    from pointtal.data.layouts import LAYOUTS
    from pointtal.outputs import check_outputs, is_run_dir
    from pointtal.video.decode import video_id_for
    from pointtal.video.manifest import MANIFEST
    from pointtal.video.options import streams_of

    if out.exists() and not out.is_dir():
        raise InputError(f"{option} {out}: is a file; give the directory the <video_id>.npy files go to")
    if is_run_dir(out):  # its extract.json records how the run's features were made: never rewritten
        raise InputError(f"{option} {out}: is a run directory written by `pointtal train`; give a features directory")
    weights = {f"--{k}-weights": getattr(opts, f"{k}_weights") for k in ("rgb", "flow", "raft")}
    weights = {k: v for k, v in weights.items() if v and v.lower() != "default"}
    sources = {f"VIDEO {p}": p for p in paths}
    files = [name for p in paths for name in LAYOUTS[layout].file_names(video_id_for(p), streams_of(opts))]
    outputs = [(option, out / name) for name in (MANIFEST, *files)]
    check_outputs(outputs, {**sources, **weights, **(inputs or {})}, overwrite=True)


def run(args: argparse.Namespace) -> int:
    from pointtal.video.decode import list_videos
    from pointtal.video.extract import extract_videos
    from pointtal.video.options import check_options

    opts = options_from(args, args.fps, args.stride)
    paths = list_videos(args.videos)
    guard_features_dir(Path(args.out), paths, opts, layout=args.layout)
    check_options(opts)  # refuse missing weights before decoding anything
    summary = extract_videos(
        paths, Path(args.out), opts, overwrite=args.overwrite, progress=not args.no_progress, layout=args.layout
    )
    rate = summary.frames / summary.seconds if summary.seconds else 0.0
    print(
        f"extracted {len(summary.done)} videos ({summary.frames} frames, {rate:.1f} frames/s), "
        f"{len(summary.skipped)} already done, {len(summary.failed)} failed -> {args.out}"
    )
    return 1 if summary.failed else 0
