"""`pointtal ablate`: rerun one of SODA's ablation studies (Tables 4-9, Fig. 12, aggregation) on CONFIG's data."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pointtal.cli import checks, launch
from pointtal.config import apply_overrides, read_config
from pointtal.errors import InputError
from pointtal.outputs import check_outputs, record_output
from pointtal.studies.ablation import STUDIES, RunOutcome, get_study, run_study, seed_overrides

HELP = "rerun a SODA ablation table (mean ± std over seeds) on any dataset"
EXAMPLE = (
    "pointtal ablate configs/thumos14_soda.yaml --table 4 --seeds 3 --out runs/ablate \\\n"
    "      --set data.annotations=GT.json --set data.features=FEATURES/\n"
    "  -> runs/ablate/table_4.md (and .json); runs in runs/ablate/4/<variant>/seed<k>/\n"
    "  tables: 4 components, 5 point kinds, 6 M (plot), 7 ensembles vs self-distillation,\n"
    "          8 distillation distance, 9 distillation of the CAS vs the video scores,\n"
    "          12 lambda (plot), agg aggregation strategies\n"
    "  Rerunning the same command continues an interrupted ablation: finished runs are reused,\n"
    "  unfinished ones resume from their checkpoint.pt (each run is locked while it trains).\n"
    "  pointtal ablate CONFIG --table 6 --seeds 3 --jobs 3 --out DIR          # three runs at once\n"
    "  pointtal ablate CONFIG --table 6 --launcher slurm --partition gpu --gpus 1 --time 60 --out DIR"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG.yaml", help="a SODA config (its data is the dataset studied)")
    parser.add_argument("--table", required=True, metavar="N",
                        help=f"which study: {', '.join(STUDIES)} (12 = Fig. 12, the lambda study)")
    parser.add_argument("--seeds", type=int, default=3, metavar="K",
                        help="seeds 0..K-1 per variant: train.seed = data.point_seed = k (default 3)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for runs and table_<N>.md")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key for every run, e.g. --set train.steps=500 (repeatable)")
    parser.add_argument("--metric", help="sort the rows by this metric, best first (default: the paper's order; "
                                         "the best average is marked)")
    launch.add_arguments(parser)
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their overrides, train nothing")
    parser.add_argument("--progress", action="store_true", help="show each run's progress bar and step logs")


def progress_line(outcome: RunOutcome) -> str:
    return launch.progress_line(outcome)


def check_args(args: argparse.Namespace) -> None:
    """The study, the seeds, and every run's config (CONFIG with --set and the variant's overrides), before
    any run trains (also with --dry-run)."""
    from pointtal.studies.ablation import check_metric, study_configs
    from pointtal.studies.runner import check_run_dirs, plan_tasks

    study = get_study(str(args.table))
    if args.seeds < 1:
        raise InputError(f"--seeds {args.seeds}: give at least 1 seed")
    checks.only_with(args, ("progress",), not args.dry_run, "--dry-run trains nothing, so there is no progress")
    launch.check_args(args)
    checks.not_a_file(args, "out", "the directory for the runs and tables")
    for ext in ("md", "json", "png"):  # the table files run_study writes
        check_outputs({"--out": Path(args.out) / f"table_{study.key}.{ext}"}, {"CONFIG": args.config},
                      remedy="choose another --out")
    base = read_config(args.config)
    apply_overrides(base, args.set)  # malformed --set fails here
    seeds = list(range(args.seeds))
    configs = study_configs(study, base, seeds, args.set, str(args.config))
    check_metric(args.metric, next(iter(configs.values())))
    check_run_dirs(plan_tasks(study, configs, Path(args.out), seeds))


def run(args: argparse.Namespace) -> int:
    study = get_study(str(args.table))
    base = read_config(args.config)  # relative data paths: read from the config file's directory
    apply_overrides(base, args.set)  # malformed --set fails here, before anything runs
    overrides = list(args.set)
    seeds = list(range(args.seeds))
    if args.dry_run:
        for k in seeds:
            for v in study.variants:
                what = f"fuse {' + '.join(v.members)} by {v.fuse}" if v.fuse else \
                    " ".join([*seed_overrides(v, k), *v.overrides])
                print(f"{args.out}/{study.key}/{v.name}/seed{k}: {what}")
        return 0
    if not args.progress:
        overrides.append("train.progress=false")
        if not getattr(args, "verbose", False):
            for name in ("pointtal.engine", "pointtal.data"):  # one line per run instead of step logs
                logging.getLogger(name).setLevel(logging.WARNING)
    result = run_study(study, base, args.out, seeds, overrides,
                       on_run=lambda o: print(progress_line(o), flush=True), config_name=str(args.config),
                       launch=launch.launch_from(args), metric=args.metric)
    for path in (result.table_path, result.json_path, result.plot_path):
        if path is not None:
            record_output(path, "ablate")
    print(f"table: {result.table_path}")
    if result.plot_path is not None:
        print(f"plot:  {result.plot_path}")
    failed = [o for o in result.outcomes if o.failed]
    if failed:
        print(f"{len(failed)} run(s) failed (see the table); rerun the same command to retry them")
        return 1
    return 0
