"""`pointtal visualize`: one video's timeline (ground truth, training points, CAS, predictions) as PNG, PDF or SVG."""

from __future__ import annotations

import argparse
from pathlib import Path

from pointtal.cli import checks
from pointtal.errors import InputError
from pointtal.outputs import check_outputs, record_output, run_inputs

HELP = "draw one video's timeline (ground truth, training points, CAS, predictions) from a trained run"
EXAMPLE = (
    "pointtal visualize runs/sfnet --video video_test_0000004 --out figures/video_test_0000004.png\n"
    "  pointtal visualize runs/sfnet --video video_validation_0000051 --checkpoint runs/sfnet/best.pt --out v51.png"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `pointtal train`")
    parser.add_argument(
        "--video",
        required=True,
        metavar="VIDEO_ID",
        help='a video id of the run\'s ground truth (a key of its "database"); '
        "an id starting with '-' as --video=-0RYqpcQyAc",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="figure.png",
        help="figure to write; the suffix picks the format: .png, .pdf or .svg",
    )
    parser.add_argument("--checkpoint", metavar="FILE", help="weights to use (default RUN_DIR/checkpoint.pt)")
    parser.add_argument("--features", metavar="DIR", help="feature directory (default: the run's data.features)")
    parser.add_argument("--device", help="auto, cpu or cuda (default: cpu)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out that pointtal did not write"
    )


def check_args(args: argparse.Namespace) -> None:
    check_outputs(
        {"--out": args.out},
        {**run_inputs(args.run_dir), "--checkpoint": args.checkpoint, "--features": args.features},
        overwrite=args.overwrite,
    )
    checks.figure(args, "out")  # an unknown suffix is refused before anything is loaded
    checks.device(args)


def run(args: argparse.Namespace) -> int:
    from pointtal.engine.inference import resolve_device  # torch import only when drawing
    from pointtal.engine.predictor import load_trained
    from pointtal.engine.report import draw_timeline, training_points
    from pointtal.engine.setup import load_ground_truth_for, open_store

    device = resolve_device(args.device or "cpu")
    loaded = load_trained(args.run_dir, args.checkpoint, device)
    config = loaded.config
    gt = load_ground_truth_for(config)
    if gt.classes != loaded.classes:
        raise InputError(f"{config.data.annotations}: classes differ from the run's checkpoint")
    video = gt.videos.get(args.video)
    if video is None:
        examples = ", ".join(sorted(gt.videos)[:3])
        raise InputError(
            f"--video {args.video!r}: not in the run's ground truth {config.data.annotations}; valid ids are "
            f'the keys of its "database" (e.g. {examples}), or see the run\'s predictions.json'
        )
    store = open_store(config, args.features)
    features = store.load(video.video_id)
    train_video = video.subset.casefold() == config.data.train_subset.casefold()  # HR-Pro: 'Validation'
    points = training_points(config, gt, store, video.video_id) if train_video else []
    path = draw_timeline(args.out, loaded.method, config, loaded.classes, video, features, points, device)
    role = f"subset '{video.subset}'"
    if train_video:
        role = f"training video, {len(points)} point{'s' * (len(points) != 1)}"
    record_output(path, "visualize")
    print(f"wrote {Path(path)}: {video.video_id} ({role}), step {loaded.step}")
    return 0
