"""`pointtal detect`: new video files -> features (extracted as the run's were) -> segments of a trained run."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from pointtal.cli import checks
from pointtal.errors import InputError

log = logging.getLogger(__name__)

HELP = "detect actions in new video files with a trained run (extracts features the way the run's were made)"
EXAMPLE = (
    "pointtal detect runs/sfnet new.mp4 --out detections.json --plot timeline.png "
    "--rgb-weights rgb_imagenet.pt --flow-weights flow_imagenet.pt"
)
# what the run's extract.json fixes; a flag may repeat it but not contradict it
RECORDED = ("backbone", "resize", "crop")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pointtal.cli.extract import add_extract_arguments

    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `pointtal train`")
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or directories of them")
    parser.add_argument("--out", required=True, metavar="detections.json", help="ActivityNet results JSON to write")
    parser.add_argument(
        "--plot", metavar="timeline.png", help="draw each video's timeline (several videos: timeline_<video_id>.png)"
    )
    parser.add_argument("--checkpoint", metavar="FILE", help="weights (default RUN_DIR/best.pt, else checkpoint.pt)")
    parser.add_argument(
        "--features-dir",
        metavar="DIR",
        help="keep the extracted features here (resumable; default: a temporary directory)",
    )
    parser.add_argument(
        "--top", type=int, default=10, help="segments per video shown in the table (default 10; at least 1)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out / --plot that pointtal did not write (never one of the "
        "run's files or another input)",
    )
    add_extract_arguments(parser)
    # backbone/flow/crop come from the run's extract.json; flags only fill in for runs without one
    parser.set_defaults(backbone=None, flow=None, resize=None, crop=None, raft_model=None)


def check_args(args: argparse.Namespace) -> None:
    """Ranges, the --plot format and the devices, before the run is read (its settings are checked against
    the run's extract.json in `extract_options`, before any video is decoded)."""
    from pointtal.cli.extract import check_extract_ranges

    checks.number(args, "top", 1)
    checks.figure(args, "plot")
    checks.not_a_file(args, "features_dir", "a directory to keep the extracted features in")
    check_extract_ranges(args)


def run(args: argparse.Namespace) -> int:
    from pointtal.engine.checkpoint import load_checkpoint
    from pointtal.engine.predictor import load_trained

    run_dir = Path(args.run_dir)
    checkpoint = Path(args.checkpoint) if args.checkpoint else _default_checkpoint(run_dir)
    _check_outputs(args, run_dir, checkpoint)  # before loading or extracting anything
    in_dim = int(load_checkpoint(checkpoint)["in_dim"])
    loaded = load_trained(run_dir, checkpoint)
    opts = extract_options(args, loaded.config, run_dir)
    if args.features_dir:
        return _detect(args, loaded, opts, in_dim, Path(args.features_dir))
    with tempfile.TemporaryDirectory(prefix="pointtal-detect-") as tmp:
        return _detect(args, loaded, opts, in_dim, Path(tmp))


def _check_outputs(args: argparse.Namespace, run_dir: Path, checkpoint: Path) -> None:
    """The output guard: --out, --plot and --features-dir are none of the run's files, the checkpoint, the
    videos or the weights; an existing --out / --plot that pointtal did not write needs --overwrite."""
    from pointtal.cli.extract import guard_features_dir
    from pointtal.outputs import check_outputs, run_inputs
    from pointtal.video.decode import list_videos, video_id_for

    paths = list_videos(args.videos)
    weights = {f"--{k}-weights": getattr(args, f"{k}_weights") for k in ("rgb", "flow", "raft")}
    inputs = {
        **run_inputs(run_dir),
        "--checkpoint": checkpoint,
        **{f"VIDEO {p}": p for p in paths},
        **{k: v for k, v in weights.items() if v and v.lower() != "default"},
    }
    ids = [video_id_for(p) for p in paths]
    plots = (
        {f"--plot ({v})" if len(ids) > 1 else "--plot": plot_path(args.plot, v, len(ids)) for v in ids}
        if args.plot
        else {}
    )
    check_outputs({"--out": args.out, **plots}, inputs, overwrite=args.overwrite)
    if args.features_dir:
        from pointtal.video.manifest import plan_extraction

        guard_features_dir(Path(args.features_dir), paths, args, "--features-dir", inputs)
        plan_extraction(Path(args.features_dir), None, ids, False, "--features-dir")  # its files; settings later


def plot_path(base: str | Path, video_id: str, n_videos: int) -> Path:
    """--plot's file for one video: the path itself for one video, else timeline_<video_id>.png beside it."""
    base = Path(base)
    return base if n_videos == 1 else base.with_name(f"{base.stem}_{video_id}{base.suffix or '.png'}")


def _default_checkpoint(run_dir: Path) -> Path:
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: run directory not found")
    best = run_dir / "best.pt"
    return best if best.is_file() else run_dir / "checkpoint.pt"


def run_manifest(run_dir: Path, config) -> tuple[dict | None, str]:
    """How the run's features were made: RUN_DIR/extract.json, else the one beside data.features."""
    from pointtal.video.manifest import MANIFEST, check_geometry, read_manifest

    for where in (run_dir, Path(config.data.features) if config.data.features else None):
        if where is not None and where.is_dir():
            manifest = read_manifest(where)
            if manifest is not None:
                check_geometry(manifest, config.data.fps, config.data.stride, str(where / MANIFEST))
                return manifest, str(where / MANIFEST)
    return None, ""


def extract_options(args: argparse.Namespace, config, run_dir: Path):
    """Extraction settings: the run's data.fps/stride and recorded backbone/flow/crop/weights, plus the flags."""
    from pointtal.cli.extract import options_from
    from pointtal.video.options import ExtractOptions

    manifest, where = run_manifest(run_dir, config)
    d = ExtractOptions()
    if manifest is None:
        log.warning(
            "%s records no extract.json (features not made by `pointtal extract`): extracting with the "
            "flags given (or the defaults)",
            run_dir,
        )
        manifest = {}
    _check_flags_apply(args, manifest, where)
    for key in RECORDED:
        flag = getattr(args, key)
        if manifest.get(key) is not None and flag is not None and flag != manifest[key]:
            raise InputError(f"--{key} {flag}: the run's features used {key}={manifest[key]} ({where})")
        setattr(args, key, flag if flag is not None else manifest.get(key, getattr(d, key)))
    recorded_flow = manifest.get("flow") or ""
    method, _, raft_model = recorded_flow.partition(":")
    if method and args.flow is not None and args.flow != method:
        raise InputError(f"--flow {args.flow}: the run's features used flow {method} ({where})")
    args.flow = args.flow or method or d.flow
    args.raft_model = args.raft_model or raft_model or d.raft_model
    weights = manifest.get("weights") or {}
    if "random_init_seed" in weights:  # the run was trained on random-init features: reproduce them
        args.random_init, args.seed = True, int(weights["random_init_seed"])
    _check_weight_hashes(args, weights, where)
    return options_from(args, config.data.fps, config.data.stride)


def _check_flags_apply(args: argparse.Namespace, manifest: dict, where: str) -> None:
    """Flags the run's recorded extraction cannot take are an error, not ignored: another --seed or weights
    files for random-init features, --random-init for features made with weights files, flow options for an
    RGB-only backbone or for TV-L1 flow."""
    from pointtal.cli.extract import check_extract_applies
    from pointtal.video.options import ExtractOptions

    d = ExtractOptions()
    weights = manifest.get("weights") or {}
    random_init = "random_init_seed" in weights
    if random_init:
        seed = int(weights["random_init_seed"])
        if args.seed is not None and args.seed != seed:
            raise InputError(
                f"--seed {args.seed}: the run's features used random weights with seed {seed} "
                f"({where}); another seed gives features the run never saw"
            )
        args.seed = None  # the recorded seed is used; repeating it is fine
    elif args.random_init and any(key in weights for key in ("rgb", "flow", "raft")):
        raise InputError(
            f"--random-init: the run's features were made with weights files ({where}); random "
            "weights give features the run never saw"
        )
    backbone = manifest.get("backbone") or args.backbone or d.backbone
    flow = (manifest.get("flow") or "").partition(":")[0] or args.flow or d.flow
    check_extract_applies(
        args, backbone, flow, random_init or (not manifest and args.random_init), where if manifest else ""
    )


def _check_weight_hashes(args: argparse.Namespace, weights: dict, where: str) -> None:
    """A weights file other than the one the run's features came from gives features the run never saw."""
    from pointtal.atomic import file_sha256

    for key in ("rgb", "flow", "raft"):
        recorded, given = weights.get(key), getattr(args, f"{key}_weights")
        if isinstance(recorded, dict) and given and Path(given).is_file():
            if file_sha256(given) != recorded.get("sha256"):
                raise InputError(
                    f"--{key}-weights {given}: differs (sha256) from the file the run's features "
                    f"were made with, {recorded.get('file')} ({where})"
                )


def _detect(args, loaded, opts, in_dim: int, features_dir: Path) -> int:
    from pointtal.video.decode import list_videos, video_id_for
    from pointtal.video.extract import extract_videos
    from pointtal.video.manifest import read_manifest
    from pointtal.video.options import feature_width

    paths = list_videos(args.videos)
    width = feature_width(opts.backbone)
    if width != in_dim:
        raise InputError(
            f"{args.run_dir}: the run's model takes {in_dim}-wide features but backbone {opts.backbone} gives {width}"
        )
    summary = extract_videos(paths, features_dir, opts, progress=not args.no_progress, option="--features-dir")
    manifest = read_manifest(features_dir) or {"videos": {}}
    ids = [v for v in (video_id_for(p) for p in paths) if v in manifest["videos"] and v not in summary.failed]
    if not ids:
        raise InputError(f"{', '.join(args.videos)}: no video could be extracted")
    predictions, gt, store = _predict(loaded, features_dir, manifest, ids, args)
    from pointtal.atomic import write_json
    from pointtal.outputs import record_output

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(args.out), predictions.results_json())
    record_output(args.out, "detect")
    print_segments(predictions.segments, args.top)
    if args.plot:
        _plot(args, loaded, gt, store, ids)
    n = sum(len(s) for s in predictions.segments.values())
    print(f"wrote {args.out}: {len(ids)} videos, {n} segments (step {loaded.step})")
    return 1 if summary.failed else 0


def _predict(loaded, features_dir: Path, manifest: dict, ids: list[str], args):
    """Predict through the engine, with an in-memory ground truth that only carries durations."""
    from pointtal.data.annotations import GroundTruth, Video
    from pointtal.data.features import FeatureStore
    from pointtal.engine.inference import resolve_device
    from pointtal.engine.predictor import predict_videos

    fps = loaded.config.data.fps
    videos = {v: Video(v, "detect", manifest["videos"][v]["frames"] / fps, None, ()) for v in ids}
    gt = GroundTruth(videos, loaded.classes)
    device = resolve_device(args.device)
    loaded.method.to(device)
    store = FeatureStore(features_dir)
    predictions = predict_videos(
        loaded, store, gt, ids, batch_size=loaded.config.eval.batch_size, device=device, progress=not args.no_progress
    )
    return predictions, gt, store


def print_segments(segments: dict[str, list[dict]], top: int) -> None:
    """A table of each video's best segments: start, end, class, score."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("video", "start (s)", "end (s)", "class", "score", title="detections")
    for video_id, found in segments.items():
        best = sorted(found, key=lambda s: -s["score"])
        for s in best[:top]:
            table.add_row(
                escape(video_id),
                f"{s['segment'][0]:.2f}",
                f"{s['segment'][1]:.2f}",
                escape(s["label"]),
                f"{s['score']:.3f}",
            )
        if len(best) > top:
            table.add_row(escape(video_id), "", "", f"... {len(best) - top} more in the JSON", "")
    Console(width=100).print(table)


def _plot(args, loaded, gt, store, ids: list[str]) -> None:
    from pointtal.engine.inference import resolve_device
    from pointtal.engine.report import draw_timeline
    from pointtal.outputs import record_output

    for video_id in ids:
        path = plot_path(args.plot, video_id, len(ids))
        path = draw_timeline(
            path,
            loaded.method,
            loaded.config,
            loaded.classes,
            gt.videos[video_id],
            store.load(video_id),
            [],
            resolve_device(args.device),
        )
        record_output(path, "detect")
        print(f"timeline: {path}")
