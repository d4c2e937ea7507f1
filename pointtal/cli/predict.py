"""`pointtal predict`: segments (and single frames) for a subset's videos from a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from pointtal.cli import checks
from pointtal.engine.pseudo_labels import DEFAULT_THRESHOLD
from pointtal.errors import InputError
from pointtal.outputs import check_outputs, record_output, run_inputs

HELP = "predict segments and single frames for a subset's videos with a trained run"
EXAMPLE = (
    "pointtal predict runs/sfnet --subset test --out predictions.json --frames-out frames.json\n"
    "  pointtal predict runs/sfnet --out predictions.json --save-raw   # + runs/sfnet/raw/checkpoint-test.npz\n"
    "  torchrun --nproc-per-node 2 -m pointtal predict runs/sfnet --out predictions.json  # sharded\n"
    "  pointtal predict runs/soda --pseudo-labels pseudo_gt.json --subset validation\n"
    "      -> ActivityNet ground truth: each validation video's segments in the upper half of its score\n"
    "         range, every other subset as it was; train a fully supervised model on it, e.g.\n"
    "         pointtal train CONFIG --set data.annotations=pseudo_gt.json --set data.points=full --out runs/full"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `pointtal train`")
    parser.add_argument("--checkpoint", metavar="FILE", help="weights to use (default RUN_DIR/checkpoint.pt)")
    parser.add_argument("--features", metavar="DIR", help="feature directory (default: the run's data.features)")
    parser.add_argument("--annotations", metavar="GT.json", help="ground truth listing the videos (default: the run's)")
    parser.add_argument(
        "--subset",
        help="subset to predict (default: the run's data.test_subset; with --pseudo-labels: its data.train_subset)",
    )
    parser.add_argument("--out", metavar="predictions.json", help="segment predictions to write")
    parser.add_argument("--frames-out", metavar="frames.json", help="also write single-frame predictions")
    parser.add_argument(
        "--pseudo-labels",
        metavar="GT_OUT.json",
        help="write the subset's predicted segments as ActivityNet ground truth (pseudo-labels); "
        "videos of other subsets keep their ground truth",
    )
    parser.add_argument(
        "--pseudo-threshold",
        type=float,
        metavar="R",
        help="keep a video's segments scoring at least R of the way from its lowest to its top "
        f"segment score (0 <= R <= 1, default {DEFAULT_THRESHOLD}: the upper half; relative "
        "because methods' scores share no scale or offset)",
    )
    parser.add_argument(
        "--pseudo-overlaps",
        choices=("suppress", "keep"),
        default="suppress",
        help="same-class pseudo instances that overlap: suppress (default: the higher score is kept, "
        "so no two instances of a class overlap, as a detector's ground truth needs) or keep "
        "(more recall, duplicates; BENCHMARKS.md, 'Pseudo-labels: classes and overlaps')",
    )
    parser.add_argument(
        "--save-raw",
        action="store_true",
        help="also keep each video's raw outputs (CAS, actionness, video scores) once in "
        "RUN_DIR/raw/<checkpoint>-<subset>.npz: a sweep over inference-only keys (thresholds, "
        "NMS) re-localizes from them without the network",
    )
    parser.add_argument("--device", help="auto, cpu or cuda (default: the run's train.device)")
    parser.add_argument(
        "--batch-size", type=int, help="videos per inference batch (at least 1; default: the run's eval.batch_size)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out / --frames-out / --pseudo-labels that pointtal did not write",
    )


def check_args(args: argparse.Namespace) -> None:
    checks.number(args, "pseudo_threshold", 0.0, 1.0, why="a fraction of each video's segment score range")
    checks.number(args, "batch_size", 1)
    checks.device(args)
    if not args.out and not args.pseudo_labels:
        raise InputError("predict: give --out predictions.json and/or --pseudo-labels GT_OUT.json")
    checks.only_with(
        args,
        ("pseudo_threshold",),
        bool(args.pseudo_labels),
        "applies to --pseudo-labels (which segments become pseudo ground truth)",
    )
    if args.pseudo_overlaps != "suppress" and not args.pseudo_labels:
        raise InputError("--pseudo-overlaps applies to --pseudo-labels; give --pseudo-labels GT_OUT.json or drop it")


def run(args: argparse.Namespace) -> int:
    from pointtal.engine.predictor import predict_run  # torch import only when predicting

    if args.pseudo_threshold is None:
        args.pseudo_threshold = DEFAULT_THRESHOLD
    inputs = {
        **run_inputs(args.run_dir),
        "--checkpoint": args.checkpoint,
        "--annotations": args.annotations,
        "--features": args.features,
    }
    outputs = {"--out": args.out, "--frames-out": args.frames_out, "--pseudo-labels": args.pseudo_labels}
    check_outputs(outputs, inputs, overwrite=args.overwrite)
    summary = predict_run(
        args.run_dir,
        out=args.out,
        frames_out=args.frames_out,
        checkpoint=args.checkpoint,
        features=args.features,
        annotations=args.annotations,
        subset=args.subset,
        device=args.device,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        pseudo_labels=args.pseudo_labels,
        pseudo_threshold=args.pseudo_threshold,
        pseudo_suppress=args.pseudo_overlaps == "suppress",
        save_raw=args.save_raw,
    )
    if summary is not None:
        written = [path for path in outputs.values() if path]
        for path in written:
            record_output(path, "predict")
        print(f"wrote {', '.join(str(Path(p)) for p in written)}: {summary}")
    return 0
