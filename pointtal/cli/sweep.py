"""`pointtal sweep`: train a grid of config values over seeds and tabulate them (mean ± std, sorted, best marked)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pointtal.cli import checks, launch
from pointtal.errors import InputError
from pointtal.outputs import check_outputs, record_output
from pointtal.studies.ablation import run_study

HELP = "sweep any config keys over a grid (mean ± std over seeds, sorted by a metric, best marked)"
EXAMPLE = (
    "pointtal sweep configs/thumos14_sfnet.yaml --grid method.eta=1,3,5,7 --seeds 3 --out runs/sweep-eta\n"
    "      -> runs/sweep-eta/table_sweep.md (.json, .png); runs in runs/sweep-eta/sweep/<variant>/seed<k>/\n"
    "  pointtal sweep CONFIG --grid train.lr=0.001,0.0001 --grid method.alpha=0.5,1 --seeds 2 --out DIR\n"
    "      (full grid: 4 variants)   add --zip to pair the i-th values instead (2 variants)\n"
    "  pointtal sweep CONFIG --grid method.adjust=0.5,1,1.5 --out DIR\n"
    "      (inference-only keys: one run trained per seed, the other values re-localized from its raw outputs)\n"
    "  pointtal sweep runs/sfnet --grid method.adjust=0.5,1,1.5 --grid method.w_act=1,2 --out DIR\n"
    "      (a finished run: every value re-localized from runs/sfnet/raw/, in seconds)\n"
    "  pointtal sweep CONFIG --grid train.lr=0.001,0.0003 --jobs 2 --out DIR     (two runs at once)\n"
    "  pointtal sweep CONFIG --grid train.lr=0.001,0.0003 --launcher slurm --partition gpu --gpus 1 \\\n"
    "      --time 120 --jobs 8 --out DIR   (each run a Slurm job; the table fills in as jobs finish)\n"
    "  Rerunning the same command reuses finished runs, resumes interrupted ones, retries failed ones."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        metavar="CONFIG.yaml|RUN_DIR",
        help="the config every run starts from, or a finished run: then only inference-only keys "
        "are swept, each value re-localized from the run's raw outputs (nothing trained)",
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a key and its values (repeatable; a list value is written in brackets: "
        "method.thresholds=[0.1,0.2],[0.3])",
    )
    parser.add_argument(
        "--zip",
        action="store_true",
        help="pair the i-th values of every --grid (same lengths) instead of the full grid",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        metavar="K",
        help="seeds 0..K-1 per variant: train.seed = data.point_seed = k (default 3; not with "
        "RUN_DIR, whose seed stays)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for the runs and table_<name>.md")
    parser.add_argument(
        "--name", default="sweep", help="the sweep's name: OUT/<name>/ and table_<name>.md (default sweep)"
    )
    parser.add_argument(
        "--metric",
        default="average",
        help="sort rows by this metric, best first (default average; also mAP@<tIoU>, "
        "average_0.3_0.7, frame_mAP, cmAP)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key for every run, e.g. --set train.steps=500 (repeatable)",
    )
    launch.add_arguments(parser)
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their overrides, train nothing")
    parser.add_argument("--progress", action="store_true", help="show each run's progress bar and step logs")


def _source(args: argparse.Namespace) -> Path | None:
    """The finished run swept (CONFIG given as a run directory), or None."""
    return Path(args.config) if Path(args.config).is_dir() else None


def _plan(args: argparse.Namespace):
    """(study, base raw config, seeds, tasks): everything a sweep checks before it starts."""
    from pointtal.config import apply_overrides, read_config, read_yaml
    from pointtal.studies.ablation import check_metric, run_variant_configs, study_configs
    from pointtal.studies.runner import check_run_dirs, plan_tasks
    from pointtal.studies.sweep import grid_study

    study = grid_study(args.grid, args.zip, args.name, args.set)
    source = _source(args)
    if source is not None:
        base = read_yaml(source / "config.yaml")
        seeds = [int((base.get("train") or {}).get("seed", 0))]
        configs = run_variant_configs(study, base, source, seeds[0], args.set)
    else:
        base = read_config(args.config)
        apply_overrides(base, args.set)  # malformed --set fails here
        seeds = list(range(args.seeds or 3))
        configs = study_configs(study, base, seeds, args.set, str(args.config))
    check_metric(args.metric, next(iter(configs.values())))
    tasks = plan_tasks(study, configs, Path(args.out), seeds, source)
    check_run_dirs(tasks)
    return study, base, seeds, tasks


def check_args(args: argparse.Namespace) -> None:
    """Every option, every run's config and every run directory, before any run trains (also --dry-run)."""
    checks.number(args, "seeds", 1, why="seeds per variant")
    checks.only_with(
        args,
        ("seeds",),
        _source(args) is None,
        f"{args.config} is a finished run: its variants are re-localized at its own seed",
    )
    if not args.grid:
        raise InputError("sweep: give at least one --grid KEY=V1,V2,...")
    if not args.name or args.name != Path(args.name).name or args.name.startswith("."):
        raise InputError(f"--name {args.name!r}: a plain directory name (no '/', not hidden)")
    checks.only_with(args, ("progress",), not args.dry_run, "--dry-run trains nothing, so there is no progress")
    launch.check_args(args)
    checks.not_a_file(args, "out", "the directory for the runs and tables")
    for ext in ("md", "json", "png"):
        check_outputs(
            {"--out": Path(args.out) / f"table_{args.name}.{ext}"},
            {"CONFIG": args.config},
            remedy="choose another --out or --name",
        )
    _plan(args)


def run(args: argparse.Namespace) -> int:
    study, base, seeds, tasks = _plan(args)
    if args.dry_run:
        for task in tasks:
            what = " ".join(task.variant.overrides)
            how = f" (derived from {task.source}: re-localized, not trained)" if task.kind == "derive" else ""
            print(f"{task.run_dir}: train.seed={task.seed} data.point_seed={task.seed} {what}{how}")
        return 0
    overrides = list(args.set)
    if not args.progress:
        overrides.append("train.progress=false")
        if not getattr(args, "verbose", False):
            for name in ("pointtal.engine", "pointtal.data", "pointtal.methods"):  # one line per run
                logging.getLogger(name).setLevel(logging.WARNING)
    result = run_study(
        study,
        base,
        args.out,
        seeds,
        overrides,
        on_run=lambda o: print(launch.progress_line(o), flush=True),
        config_name=str(args.config),
        launch=launch.launch_from(args),
        metric=args.metric,
        source=_source(args),
    )
    for path in (result.table_path, result.json_path, result.plot_path):
        if path is not None:
            record_output(path, "sweep")
    print(f"table: {result.table_path}")
    if result.plot_path is not None:
        print(f"plot:  {result.plot_path}")
    failed = [o for o in result.outcomes if o.failed]
    if failed:
        print(f"{len(failed)} run(s) failed (see the table); rerun the same command to retry them")
        return 1
    return 0
