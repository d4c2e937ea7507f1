"""Options shared by `pointtal ablate` and `pointtal sweep`: how the study's runs are launched (--jobs,
--launcher and its Slurm options) and the --metric that sorts the table."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pointtal.cli import checks
from pointtal.errors import InputError
from pointtal.studies.runner import LAUNCHERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="runs trained at once (default 1): local processes sharing the CPU threads, one "
        "CUDA device each where several are visible; with --launcher slurm, jobs in flight",
    )
    parser.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="local",
        help="local (default: this machine), slurm (each run a Slurm job through submitit: "
        "pip install 'pointtal[slurm]'), submitit-local (submitit's local executor: the "
        "Slurm path on a machine without Slurm)",
    )
    parser.add_argument("--partition", help="Slurm partition (--launcher slurm)")
    parser.add_argument("--gpus", type=int, metavar="G", help="GPUs per Slurm job (--launcher slurm; default 0)")
    parser.add_argument(
        "--time",
        type=int,
        metavar="MIN",
        help="time limit of each job in minutes (--launcher slurm or submitit-local; default 60)",
    )


def check_args(args: argparse.Namespace) -> None:
    checks.number(args, "jobs", 1, why="runs at once")
    checks.number(args, "gpus", 0, 64, why="GPUs per Slurm job")
    checks.number(args, "time", 1, 60 * 24 * 30, why="minutes per job")
    checks.only_with(args, ("partition", "gpus"), args.launcher == "slurm", "applies to --launcher slurm")
    checks.only_with(args, ("time",), args.launcher != "local", "applies to --launcher slurm or submitit-local")
    if args.launcher != "local":
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise InputError(f"--launcher {args.launcher}: needs submitit; pip install 'pointtal[slurm]'") from None
    if args.launcher == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        raise InputError(
            "--launcher slurm: no Slurm on this machine (sbatch/srun not found); run on the cluster's "
            "login node, or try the path here with --launcher submitit-local"
        )
    if getattr(args, "dry_run", False):
        checks.only_with(args, ("jobs",), args.jobs == 1, "--dry-run trains nothing")


def launch_from(args: argparse.Namespace):
    from pointtal.studies.runner import Launch

    return Launch(
        jobs=args.jobs,
        launcher=args.launcher,
        partition=args.partition,
        gpus=args.gpus,
        time_min=args.time,
        folder=Path(args.out) / "submitit",
    )


def progress_line(outcome) -> str:
    """One line per finished (or failed) run."""
    where = f"[{outcome.run_dir.parent.parent.name}] {outcome.variant.name} seed {outcome.seed}"
    if outcome.failed:
        return f"{where}: FAILED ({outcome.error}); log {outcome.log}"
    m = outcome.metrics
    maps = " ".join(f"{k}={v:.2f}" for k, v in m.items() if k.startswith("mAP@"))
    return f"{where}: {maps} avg={m['average']:.2f} ({outcome.status}, {outcome.seconds:.1f} s)"
