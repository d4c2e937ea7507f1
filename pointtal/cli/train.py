"""`pointtal train`: train a method from a YAML config into a run directory."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pointtal.cli import checks
from pointtal.config import load_config
from pointtal.errors import InputError

HELP = (
    "train a method (SF-Net, SODA, LACP, HR-Pro, weak, ActionFormer), or a teacher -> pseudo labels -> "
    "detector route, from a YAML config into a run directory"
)
EXAMPLE = (
    "pointtal train configs/thumos14_sfnet.yaml --out runs/sfnet --set data.annotations=GT.json "
    "--set data.features=FEATURES/ --set data.points=[a1.csv,a2.csv]\n"
    "  pointtal train --out runs/sfnet --resume          # continue after a crash\n"
    "  pointtal train configs/thumos14_sfnet.yaml --out runs/sfnet ... > train.log 2>&1  # a line per log_every steps\n"
    "  torchrun --nproc-per-node 4 -m pointtal train configs/thumos14_soda.yaml --out runs/soda ...  # DDP\n"
    "  pointtal train configs/thumos14_hrpro_actionformer.yaml --out runs/route ...  # points -> HR-Pro -> pseudo "
    "labels -> ActionFormer\n"
    "  pointtal train configs/thumos14_lacp_actionformer.yaml --out runs/route2 --set teacher.run=runs/lacp ...  "
    "# reuse a finished teacher"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG.yaml",
        help="config preset (with --resume: defaults to RUN_DIR/config.yaml)",
    )
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.steps=500 (repeatable)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar: a log line every train.log_every steps instead (the default "
        "when stderr is not a terminal)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar, no step or evaluation lines (warnings and the result only)",
    )


def check_args(args: argparse.Namespace) -> None:
    """The run directory; the config (CONFIG with --set) is read and checked in `run` before training starts."""
    checks.not_a_file(args, "out", "the run directory to write")


def run(args: argparse.Namespace) -> int:
    from pointtal.engine.route import train_route  # torch import only when training
    from pointtal.engine.trainer import summary_line, train

    config_path = args.config
    if config_path is None:
        if not args.resume:
            raise InputError("give a CONFIG.yaml (or --resume to continue RUN_DIR with its own config)")
        config_path = Path(args.out) / "config.yaml"
    overrides = list(args.set) + (["train.progress=false"] if args.no_progress or args.quiet else [])
    if args.quiet:
        logging.getLogger("pointtal").setLevel(logging.WARNING)
    config = load_config(config_path, overrides, check_file=args.config is not None)  # --resume: its own config
    runner = train_route if config.teacher is not None else train  # a teacher section: the pseudo-label route
    result = runner(config, args.out, resume=args.resume)
    if result.metrics is not None:
        print(f"{args.out}: step {result.step}: {summary_line(result.metrics)}")
        if (Path(args.out) / "protocol.json").is_file():  # what the numbers mean
            from pointtal.evaluation.protocol import read_protocol

            print(f"  evaluation {read_protocol(Path(args.out) / 'protocol.json').describe()}")
        print(f"predictions: {Path(args.out) / 'predictions.json'}")
    return 0
