"""`pointtal synth OUT_DIR --preset {tiny,gtea,beoid,thumos14}`: write a synthetic benchmark."""

from __future__ import annotations

import argparse
import shlex

from pointtal.cli import checks
from pointtal.data.synthetic import DTYPES, PRESETS, generate

HELP = "generate a synthetic benchmark (ground truth, I3D-like features, click files)"
EXAMPLE = "pointtal synth data/synth_th14 --preset thumos14 --seed 0 --dim 2048"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out_dir", metavar="OUT_DIR", help="directory to write (new, empty, or a previous synth output)"
    )
    parser.add_argument(
        "--preset",
        required=True,
        choices=sorted(PRESETS),
        help="tiny: 36 invented short videos; gtea / beoid / thumos14: the real temporal structure and "
        "real click files with synthetic features",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed and options = identical files")
    parser.add_argument(
        "--dim",
        type=int,
        default=None,
        help="feature width D, even (RGB half + flow half); default: "
        + ", ".join(f"{name} {p.default_dim}" for name, p in sorted(PRESETS.items())),
    )
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="feature dtype (default float32)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty directory that is not a synth output (deletes nothing), "
        "or replace a synth output of another preset (removes its feature files)",
    )
    parser.add_argument(
        "--force", action="store_true", help="write features estimated beyond 20 GB (an unusually large --dim)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_args(args: argparse.Namespace) -> None:
    checks.number(args, "seed", 0)
    checks.number(args, "dim", 2)
    if args.dim is not None and args.dim % 2:
        checks.fail("dim", args.dim, "must be even (an RGB half and a flow half)")
    checks.not_a_file(args, "out_dir", "a directory to write the benchmark into", shown="OUT_DIR")


def run(args: argparse.Namespace) -> int:
    summary = generate(
        args.out_dir,
        args.preset,
        seed=args.seed,
        dim=args.dim,
        dtype=args.dtype,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
        force=args.force,
    )
    subsets = ", ".join(f"{k} {v}" for k, v in summary.subsets.items())
    print(
        f"synth {summary.preset}: {summary.n_videos} videos ({subsets}), {len(summary.classes)} classes, "
        f"{summary.n_instances} instances, {summary.n_snippets} snippets x {summary.dim} {summary.dtype} "
        f"({summary.feature_bytes / 1e6:.1f} MB), {summary.n_clicks} clicks, seed {summary.seed}, "
        f"{summary.seconds:.1f} s"
    )
    print(f"  annotations: {summary.annotations_path}")
    print(f"  features:    {summary.features_dir}")
    print(f"  points:      {' '.join(str(p) for p in summary.point_paths)}")
    print(f"  metadata:    {summary.dataset_yaml}  {summary.readme}")
    command = ["pointtal", "train", str(summary.train_config), "--out", f"runs/synth_{summary.preset}"]
    print(f"next: {shlex.join(command)}")
    return 0
