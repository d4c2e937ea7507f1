"""`pointtal ablate`: rerun one of SODA's ablation studies (Tables 4-9, Fig. 12, aggregation) or SF-Net's
(components, point sources, sensitivity) on CONFIG's data; several CONFIGs run the same study on each dataset."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pointtal.cli import checks, launch
from pointtal.config import apply_overrides, build_config, read_config
from pointtal.errors import InputError
from pointtal.outputs import check_outputs, record_output
from pointtal.studies import sfnet_tables
from pointtal.studies.ablation import (
    STUDIES,
    RunOutcome,
    Study,
    StudyResult,
    check_methods,
    run_study,
    seed_overrides,
)

HELP = "rerun a SODA or SF-Net ablation table (mean ± std over seeds) on one or several datasets"
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
    "  pointtal ablate CONFIG --table 6 --launcher slurm --partition gpu --gpus 1 --time 60 --out DIR\n"
    "  pointtal ablate THUMOS/train.yaml GTEA/train.yaml --table sfnet-components --seeds 3 --out runs/sfnet\n"
    "  -> runs/sfnet/<dataset>/table_sfnet-components.md per dataset (the config's directory name for a\n"
    "     'pointtal synth' train.yaml, else its file name) and runs/sfnet/table_sfnet-components.md over all\n"
    "  SF-Net tables (CONFIG: an SF-Net config whose data.points lists the annotators' click files):\n"
    "          sfnet-components (SF, SFB, SFBA, SFBAE, weak, full), sfnet-points (each annotator, random\n"
    "          annotator, simulated schemes, consensus; sfnet-consensus: its consensus and random rows),\n"
    "          sfnet-sensitivity (= sfnet-eta, sfnet-alpha, sfnet-beta, sfnet-ratio, sfnet-radius; a plot each)"
)

ALL_STUDIES: dict[str, Study] = {**STUDIES, **sfnet_tables.STUDIES}
TABLES = (*ALL_STUDIES, *sfnet_tables.GROUPS)


def studies_of(table: str) -> list[Study]:
    """The studies `--table` names (a group names several)."""
    if table in sfnet_tables.GROUPS:
        return [ALL_STUDIES[key] for key in sfnet_tables.GROUPS[table]]
    if table not in ALL_STUDIES:
        raise InputError(f"--table {table!r} is unknown; valid tables: {', '.join(TABLES)}")
    return [ALL_STUDIES[table]]


def datasets(args: argparse.Namespace) -> dict[str, str]:
    """Dataset name -> CONFIG path; one CONFIG has the name '' (its tables go to --out itself)."""
    if args.dataset is not None:
        names = [n.strip() for n in args.dataset.split(",")]
        if len(names) != len(args.config) or not all(names):
            raise InputError(
                f"--dataset {args.dataset!r}: give one non-empty name per CONFIG ({len(args.config)}), comma-separated"
            )
    else:
        names = [sfnet_tables.dataset_name(c) for c in args.config] if len(args.config) > 1 else [""]
    if len(set(names)) != len(names):
        raise InputError(f"CONFIG: two configs share the dataset name {names!r}; name them with --dataset A,B,...")
    for name in names:
        if name and ("/" in name or name.startswith(".")):
            raise InputError(f"--dataset {name!r}: a dataset name is a directory name under --out (no '/')")
    return dict(zip(names, args.config, strict=True))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        metavar="CONFIG.yaml",
        nargs="+",
        help="a SODA or SF-Net config (its data is the dataset studied); several: the same study "
        "on each dataset, one table each and a combined one",
    )
    parser.add_argument(
        "--table", required=True, metavar="N", help=f"which study: {', '.join(TABLES)} (12 = Fig. 12, the lambda study)"
    )
    parser.add_argument(
        "--dataset",
        metavar="A,B,...",
        help="names of the CONFIGs' datasets (directories under --out), one per CONFIG "
        "(default: a synth train.yaml's directory name, else the file name)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        metavar="K",
        help="seeds 0..K-1 per variant: train.seed = data.point_seed = k (default 3)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for runs and table_<N>.md")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key for every run, e.g. --set train.steps=500 (repeatable)",
    )
    parser.add_argument(
        "--metric",
        help="sort the rows by this metric, best first (default: the paper's order; the best average is marked)",
    )
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

    studies = studies_of(str(args.table))
    if args.seeds < 1:
        raise InputError(f"--seeds {args.seeds}: give at least 1 seed")
    checks.only_with(args, ("progress",), not args.dry_run, "--dry-run trains nothing, so there is no progress")
    launch.check_args(args)
    checks.not_a_file(args, "out", "the directory for the runs and tables")
    named = datasets(args)
    inputs = {f"CONFIG {c}": c for c in args.config}
    for name, study in ((n, s) for n in named for s in studies):
        for ext in ("md", "json", "png"):  # the table files run_study writes (and the combined table)
            for where in [Path(args.out) / name] + ([Path(args.out)] if name else []):
                check_outputs({"--out": where / f"table_{study.key}.{ext}"}, inputs, remedy="choose another --out")
    seeds = list(range(args.seeds))
    for name, config in named.items():
        base = read_config(config)
        apply_overrides(base, args.set)  # malformed --set fails here
        method = build_config(apply_overrides(base, args.set), config).method
        for study in studies:
            check_methods(study, {method}, config)  # before the variants' keys are read as this method's
            study = sfnet_tables.prepare_study(study, base, Path(args.out) / name / study.key, write=False)
            configs = study_configs(study, base, seeds, args.set, str(config))
            check_metric(args.metric, next(iter(configs.values())))
            check_run_dirs(plan_tasks(study, configs, Path(args.out) / name, seeds))


def run(args: argparse.Namespace) -> int:
    named = datasets(args)
    overrides = list(args.set)
    seeds = list(range(args.seeds))
    if args.dry_run:
        for name, config in named.items():
            base = read_config(config)
            for study in studies_of(str(args.table)):
                out = Path(args.out) / name
                study = sfnet_tables.prepare_study(study, base, out / study.key, write=False)
                for k in seeds:
                    for v in study.variants:
                        what = (
                            f"fuse {' + '.join(v.members)} by {v.fuse}"
                            if v.fuse
                            else " ".join([*seed_overrides(v, k), *v.overrides])
                        )
                        what += f" (method {v.method})" if v.method else ""
                        print(f"{out / study.key / v.name / f'seed{k}'}: {what}")
        return 0
    if not args.progress:
        overrides.append("train.progress=false")
        if not getattr(args, "verbose", False):
            for name in ("pointtal.engine", "pointtal.data"):  # one line per run instead of step logs
                logging.getLogger(name).setLevel(logging.WARNING)
    failed = []
    for study in studies_of(str(args.table)):
        results: dict[str, StudyResult] = {}
        for name, config in named.items():
            base = read_config(config)  # relative data paths: read from the config file's directory
            out = Path(args.out) / name
            prepared = sfnet_tables.prepare_study(study, base, out / study.key)
            results[name] = result = run_study(
                prepared,
                base,
                out,
                seeds,
                overrides,
                on_run=lambda o: print(progress_line(o), flush=True),
                config_name=str(config),
                launch=launch.launch_from(args),
                metric=args.metric,
            )
            for path in (result.table_path, result.json_path, result.plot_path):
                if path is not None:
                    record_output(path, "ablate")
            print(f"table: {result.table_path}")
            if result.plot_path is not None:
                print(f"plot:  {result.plot_path}")
            failed += [o for o in result.outcomes if o.failed]
        if len(named) > 1:
            path = sfnet_tables.write_combined(results, Path(args.out))
            record_output(path, "ablate")
            print(f"table: {path} (all datasets)")
    if failed:
        print(f"{len(failed)} run(s) failed (see the table); rerun the same command to retry them")
        return 1
    return 0
