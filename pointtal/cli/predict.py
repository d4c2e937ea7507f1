"""`pointtal predict`: segments (and single frames) for a subset's videos from a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from pointtal.outputs import check_outputs, record_output, run_inputs

HELP = "predict segments and single frames for a subset's videos with a trained run"
EXAMPLE = (
    "pointtal predict runs/sfnet --subset test --out predictions.json --frames-out frames.json\n"
    "  torchrun --nproc-per-node 2 -m pointtal predict runs/sfnet --out predictions.json  # sharded"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `pointtal train`")
    parser.add_argument("--checkpoint", metavar="FILE", help="weights to use (default RUN_DIR/checkpoint.pt)")
    parser.add_argument("--features", metavar="DIR", help="feature directory (default: the run's data.features)")
    parser.add_argument("--annotations", metavar="GT.json", help="ground truth listing the videos (default: the run's)")
    parser.add_argument("--subset", help="subset to predict (default: the run's data.test_subset)")
    parser.add_argument("--out", required=True, metavar="predictions.json", help="segment predictions to write")
    parser.add_argument("--frames-out", metavar="frames.json", help="also write single-frame predictions")
    parser.add_argument("--device", help="auto, cpu or cuda (default: the run's train.device)")
    parser.add_argument("--batch-size", type=int, help="videos per inference batch")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out / --frames-out that pointtal did not write")


def run(args: argparse.Namespace) -> int:
    from pointtal.engine.predictor import predict_run  # torch import only when predicting

    inputs = {**run_inputs(args.run_dir), "--checkpoint": args.checkpoint, "--annotations": args.annotations}
    check_outputs({"--out": args.out, "--frames-out": args.frames_out}, inputs, overwrite=args.overwrite)
    summary = predict_run(
        args.run_dir, out=args.out, frames_out=args.frames_out, checkpoint=args.checkpoint,
        features=args.features, annotations=args.annotations, subset=args.subset, device=args.device,
        batch_size=args.batch_size, progress=not args.no_progress,
    )
    if summary is not None:
        for path in (args.out, args.frames_out):
            if path:
                record_output(path, "predict")
        print(f"wrote {Path(args.out)}: {summary}")
    return 0
