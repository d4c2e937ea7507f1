"""SODA's ablation studies (paper Tables 4-9, Fig. 12, aggregation) rerun on any dataset.

A study is a list of variants; a variant is a set of `--set` overrides. The config of one run is

    CONFIG file  <-  the user's --set overrides  <-  seed overrides  <-  the variant's overrides

with seed overrides `train.seed=k` (plus the variant's `seed_offset`) and `data.point_seed=k`, so both the
initialisation and the simulated point draws vary across seeds. Runs live in

    OUT/<table>/<variant>/seed<k>/     an ordinary `pointtal train` run directory

and the table is written to OUT/table_<table>.md (plus OUT/table_<table>.json with every run's numbers, and
OUT/table_<table>.png where the paper has a figure).

Runs are planned, run and reused by the study engine (pointtal.studies.runner, shared with `pointtal sweep`):
rerunning the same command continues an interrupted study. A run directory that already holds
`predictions.json` and `metrics.jsonl` is reused as is (no retraining); one with only a `checkpoint.pt` is
resumed from it; a finished run of an identical resolved config elsewhere under OUT (another table's row
at the same seed) is copied instead of retrained; each run is trained under a lock, so two study processes
never train the same run. A run directory whose `config.yaml` differs from the config the study would train
is an error (choose another OUT; nothing is deleted).

A table definition is a `Study` (key, title, variants; `source` names the paper in the heading, `method` the
method every run must be, None for any) of `Variant`s (name, label, `--set` overrides, optional seed offset,
fusion or plot position); register it in STUDIES to make it a `--table`.

Fused ensembles (table 7) are not trained: two finished member runs are scored on the test set, fused per
video with `ensemble_scores`, localized and evaluated; the fused run directory holds `fusion.json`,
`predictions.json` and `metrics.jsonl`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from pointtal.atomic import write_text_atomic
from pointtal.config import (
    Config,
    apply_overrides,
    build_config,
    check_applicable,
    explicit_keys,
    read_yaml,
    set_keys,
)
from pointtal.errors import InputError
from pointtal.outputs import record_output
from pointtal.studies.job import final_record

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- study definitions
@dataclass(frozen=True)
class Variant:
    """One row of a study table."""

    name: str  # directory name under OUT/<table>/
    label: str  # row label in the table
    overrides: tuple[str, ...] = ()  # `--set` strings applied last
    seed_offset: int = 0  # train.seed = k + seed_offset (an independently initialised twin; point draws keep k)
    fuse: str | None = None  # ensemble rule: not trained, fuses the runs of `members` at inference
    members: tuple[str, ...] = ()  # the two variant names fused (trained rows of the same study)
    x: float | None = None  # position on the study's plot
    method: str | None = None  # switch to this method (CONFIG's method keys that it lacks are dropped)


@dataclass(frozen=True)
class Study:
    key: str  # the --table value
    title: str
    variants: tuple[Variant, ...]
    plot_x: str | None = None  # x-axis label where the paper has a figure (variants then carry `x`)
    note: str = ""
    paper: str = "SODA"  # whose study: the heading's prefix ("" for a sweep)
    methods: tuple[str, ...] | None = ("soda",)  # the method names the study's runs may use (None: any)
    extra_columns: tuple[str, ...] = ()  # metrics shown after segment mAP (keys of the run's final record)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


def _row(points: str, background_label: int, n_networks: int, frame_loss: bool = True) -> tuple[str, ...]:
    return (
        f"data.points={points}",
        f"method.frame_loss={str(frame_loss).lower()}",
        f"method.background_label={background_label}",
        f"method.n_networks={n_networks}",
    )


SECOND_SEED_OFFSET = 1000  # train.seed of the second model of an ensemble: k + 1000

STUDIES: dict[str, Study] = {
    "4": Study(
        "4",
        "Table 4: contribution of each component",
        (
            Variant("weak", "weak (video labels only, bg label 1, M=1)", _row("weak", 1, 1, frame_loss=False)),
            Variant("points-bg1", "points, bg label 1 (M=1)", _row("soda", 1, 1)),
            Variant("points-bg0", "points, bg label 0 (M=1)", _row("soda", 0, 1)),
            Variant("points-bg0-sd", "points, bg label 0 + self-distillation (M=2)", _row("soda", 0, 2)),
            Variant("weak-sd", "self-distillation alone (weak, bg label 1, M=2)", _row("weak", 1, 2, frame_loss=False)),
        ),
        note="Weak rows use background label 1: the 'astute background response' (label 0) is a point-supervised "
        "component, and without background points label 0 gives the background column no positive signal.",
    ),
    "5": Study(
        "5",
        "Table 5: kinds of point annotation",
        (
            Variant("action", "action points only", ("data.points=soda-action",)),
            Variant("background", "background points only", ("data.points=soda-background",)),
            Variant("both", "action + background points", ("data.points=soda",)),
        ),
        note="Other settings (M, lambda, background label) come from CONFIG.",
    ),
    "6": Study(
        "6",
        "Table 6: number of networks M",
        tuple(Variant(f"M{m}", f"M = {m}", (f"method.n_networks={m}",), x=m) for m in (1, 2, 3, 4)),
        plot_x="number of networks M",
    ),
    "7": Study(
        "7",
        "Table 7: self-distillation vs ensembles of two independent networks",
        (
            Variant("single", "single network (M=1)", ("method.n_networks=1",)),
            Variant(
                "single-b",
                f"single network (M=1), second init (train.seed + {SECOND_SEED_OFFSET})",
                ("method.n_networks=1",),
                seed_offset=SECOND_SEED_OFFSET,
            ),
            *(
                Variant(
                    f"ens-{rule}",
                    f"ensemble: {rule.replace('_', ' ')}",
                    ("method.n_networks=1",),
                    fuse=rule,
                    members=("single", "single-b"),
                )
                for rule in (
                    "score_mean_cas_max",
                    "score_mean_cas_mean",
                    "score_max_cas_max",
                    "score_max_cas_mean",
                    "cas_mean_then_scores",
                )
            ),
            Variant("sd", "self-distillation (M=2)", ("method.n_networks=2",)),
        ),
        note="Ensembles fuse the two M=1 networks above at inference (same points, different initialisation).",
    ),
    "8": Study(
        "8",
        "Table 8: distillation distance",
        tuple(
            Variant(d, name, ("method.n_networks=2", f"method.distill_distance={d}"))
            for d, name in (("l1", "L1"), ("l2", "L2"), ("kl", "KL"))
        ),
    ),
    "9": Study(
        "9",
        "Table 9: self-distillation of the CAS vs of the video-level scores",
        (
            Variant("none", "no self-distillation (M=1)", ("method.n_networks=1",)),
            Variant(
                "video", "distil the video-level scores (M=2)", ("method.n_networks=2", "method.distill_target=video")
            ),
            Variant("cas", "distil the CAS (M=2)", ("method.n_networks=2", "method.distill_target=cas")),
        ),
        note="`distill_target=video` applies the distance (distill_distance, L1 by default) to the softmax of "
        "each network's aggregated video scores instead of to every snippet's CAS; other settings "
        "(distance, lambda, aggregation) come from CONFIG. The M=1 row is the reference without "
        "distillation.",
    ),
    "12": Study(
        "12",
        "Fig. 12: distillation weight lambda",
        tuple(
            Variant(
                f"lambda{lam:g}", f"lambda = {lam:g}", ("method.n_networks=2", f"method.distill_weight={lam:g}"), x=lam
            )
            for lam in (0.2, 0.4, 0.6, 0.8, 1.0)
        ),
        plot_x="distillation weight lambda",
    ),
    "agg": Study(
        "agg",
        "Aggregation strategies",
        tuple(
            Variant(a, name, (f"method.aggregation={a}",))
            for a, name in (
                ("topk", "top-k mean"),
                ("average", "global average pooling"),
                ("temporal_softmax", "temporal-softmax weighted sum"),
                ("category_softmax", "category-softmax weighted mean"),
            )
        ),
    ),
}


def get_study(key: str) -> Study:
    if key not in STUDIES:
        raise InputError(f"--table {key!r} is unknown; valid tables: {', '.join(STUDIES)}")
    return STUDIES[key]


def seed_overrides(variant: Variant, seed: int) -> list[str]:
    return [f"train.seed={seed + variant.seed_offset}", f"data.point_seed={seed}"]


def variant_raw(base: dict, user_overrides: Sequence[str], variant: Variant, seed: int) -> dict:
    """The raw config mapping of one run: CONFIG <- user --set <- seed <- variant overrides (then the variant's
    method switch, which keeps only the method keys the new method has)."""
    raw = apply_overrides(base, [*user_overrides, *seed_overrides(variant, seed), *variant.overrides])
    if variant.method is not None:
        import dataclasses

        from pointtal.methods import METHODS

        fields = {f.name for f in dataclasses.fields(METHODS[variant.method].Options)}
        raw["method"] = {"name": variant.method, **{k: v for k, v in (raw.get("method") or {}).items() if k in fields}}
    return raw


def variant_config(base: dict, user_overrides: Sequence[str], variant: Variant, seed: int) -> Config:
    """One run's config. Keys that cannot apply are refused (`check_applicable`): CONFIG's non-default keys and
    the user's --set in CONFIG with --set, the variant's own overrides in the variant; a CONFIG key that a variant
    switches off (a SODA preset's distill_* keys in an M=1 row) stays: it applies to the other rows."""
    base_config = build_config(apply_overrides(base, user_overrides), "CONFIG and --set")
    check_applicable(base_config, explicit_keys(base_config, base, user_overrides), "CONFIG and --set")
    where = f"table variant {variant.name}"
    config = build_config(variant_raw(base, user_overrides, variant, seed), where)
    check_applicable(config, set_keys(variant.overrides), where)
    return config


def _header_variant(study: Study) -> Variant:
    """The first row that keeps CONFIG's method and points (else the first row)."""
    own = [
        v
        for v in study.variants
        if v.method is None and not v.fuse and not any(o.startswith("data.points=") for o in v.overrides)
    ]
    return (own or list(study.variants))[0]


def check_methods(study: Study, methods: set[str], config_name: str) -> None:
    """Refuse a CONFIG whose runs would use a method the study is not about."""
    if study.methods is not None and not methods <= set(study.methods):
        raise InputError(
            f"{config_name}: table {study.key} reruns {study.paper}'s study and needs "
            f"method.name={' or '.join(study.methods)}, got {', '.join(sorted(methods))}"
        )


# ----------------------------------------------------------------------------- running
@dataclass
class RunOutcome:
    """One (variant, seed) of a study."""

    variant: Variant
    seed: int
    run_dir: Path
    metrics: dict  # the final evaluation record ({} when the run failed)
    status: str  # trained | resumed | reused | copied from ... | derived from ... | fused | failed
    seconds: float
    log: Path | None = None  # the run's log (where a failed run says why)
    error: str = ""  # a failed run's last error line

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class StudyResult:
    study: Study
    seeds: tuple[int, ...]
    outcomes: list[RunOutcome] = field(default_factory=list)
    table_path: Path | None = None
    json_path: Path | None = None
    plot_path: Path | None = None


def _canonical(config: Config) -> dict:
    """The config as `config.yaml` stores it, read back (tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(config.to_dict(), sort_keys=False))


_COSMETIC = ("progress", "report")  # train keys that cannot change a run's results


def _same_config(run_dir: Path, config: Config) -> bool:
    """Same resolved config as the saved one, ignoring cosmetic keys (progress bar, report figures).

    The saved config is re-validated first, so a key added to pointtal since the run (with its default)
    does not make an old run look different; a saved config that no longer validates is different.
    """
    path = run_dir / "config.yaml"
    try:
        saved = _canonical(build_config(read_yaml(path), str(path)))
    except InputError:
        return False
    wanted = _canonical(config)
    for raw in (saved, wanted):
        for key in _COSMETIC:
            raw.get("train", {}).pop(key, None)
    return saved == wanted


def _find_twin(out_dir: Path, run_dir: Path, config: Config, seed: int) -> Path | None:
    """A finished run of the same resolved config elsewhere under OUT (same seed directory name)."""
    for candidate in sorted(out_dir.glob(f"*/*/seed{seed}/config.yaml")):
        other = candidate.parent
        if (other / "derived.json").is_file():  # re-localized, not trained: no weights to copy
            continue
        if other != run_dir and final_record(other) is not None and _same_config(other, config):
            return other
    return None


def _fused_run(run_dir: Path, variant: Variant, members: dict[str, Path], pair_cache: dict) -> tuple[dict, str]:
    from pointtal.atomic import write_json
    from pointtal.studies.ensemble import evaluate_fusions, load_pair

    spec = {"rule": variant.fuse, "members": [str(members[name].resolve()) for name in variant.members]}
    spec_path = run_dir / "fusion.json"
    finished = final_record(run_dir)
    if finished is not None and spec_path.is_file() and json.loads(spec_path.read_text()) == spec:
        return finished, "reused"
    key = tuple(spec["members"])
    if key not in pair_cache:
        pair_cache.clear()  # keep one pair's scores in memory
        pair_cache[key] = load_pair(*key)
    a, b, data = pair_cache[key]
    ((predictions, record),) = evaluate_fusions(a, b, data, [variant.fuse]).values()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(spec_path, spec)
    (run_dir / "metrics.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    write_json(run_dir / "frames.json", predictions.results_json(frames=True))
    write_json(run_dir / "predictions.json", predictions.results_json())  # last: marks the run finished
    return record, "fused"


def run_study(
    study: Study,
    base: dict,
    out_dir: str | Path,
    seeds: Sequence[int],
    user_overrides: Sequence[str] = (),
    on_run: Callable[[RunOutcome], None] | None = None,
    config_name: str = "CONFIG",
    launch=None,
    metric: str | None = None,
    source: Path | None = None,
) -> StudyResult:
    """Train (or reuse, resume, copy, derive, fuse) every (seed, variant) run with the study engine
    (pointtal.studies.runner; `launch`: a runner.Launch, default one run at a time here) and rewrite the table
    as each run ends. `metric` sorts the table's rows (best first); None keeps the study's order. With
    `source` (a finished run whose config is `base`; `seeds` = its seed) every variant is derived from it."""
    from pointtal.studies.runner import Launch, check_run_dirs, execute, plan_tasks

    out_dir = Path(out_dir)
    configs = (
        study_configs(study, base, seeds, user_overrides, config_name)
        if source is None
        else run_variant_configs(study, base, source, seeds[0], user_overrides)
    )
    tasks = plan_tasks(study, configs, out_dir, seeds, source)
    check_run_dirs(tasks)
    first = configs.get((_header_variant(study).name, seeds[0]), configs[next(iter(configs))])  # header's budget
    check_metric(metric, first)
    result = StudyResult(study, tuple(seeds))

    def report(done, seconds: float) -> None:
        outcome = RunOutcome(
            done.task.variant,
            done.task.seed,
            done.task.run_dir,
            done.metrics or {},
            done.status,
            seconds,
            done.log,
            done.error,
        )
        result.outcomes.append(outcome)
        if on_run is not None:
            on_run(outcome)
        write_outputs(result, out_dir, first, user_overrides, config_name, plot=False, metric=metric)

    execute(tasks, out_dir, launch or Launch(), report)
    write_outputs(result, out_dir, first, user_overrides, config_name, plot=True, metric=metric)
    return result


def study_configs(
    study: Study, base: dict, seeds: Sequence[int], user_overrides: Sequence[str], config_name: str = "CONFIG"
) -> dict[tuple[str, int], Config]:
    """(variant, seed) -> config of every trained or derived run (checked: values, applicability, the method
    the study needs)."""
    configs = {(v.name, k): variant_config(base, user_overrides, v, k) for k in seeds for v in study.variants}
    check_methods(study, {c.method for c in configs.values()}, config_name)
    return configs


def run_variant_configs(
    study: Study, base: dict, source: Path, seed: int, user_overrides: Sequence[str]
) -> dict[tuple[str, int], Config]:
    """(variant, seed) -> config of each variant derived from the finished run `source` (config `base`): only
    inference-only keys may change (pointtal.engine.raw), and the run's seeds stay."""
    from pointtal.engine.raw import inference_keys

    if final_record(source) is None:
        raise InputError(f"{source}: not a finished run (no predictions.json / metrics.jsonl); train it first")
    configs = {}
    for variant in study.variants:
        where = f"variant {variant.name}"
        config = build_config(apply_overrides(base, [*user_overrides, *variant.overrides]), where)
        allowed = inference_keys(config)
        cosmetic = tuple(f"train.{key}" for key in _COSMETIC)
        changed = [k for k in set_keys([*user_overrides, *variant.overrides]) if k not in (*allowed, *cosmetic)]
        if changed:
            raise InputError(
                f"{changed[0]}: changes training, so it cannot be swept on the finished run {source} "
                f"(inference-only keys of {config.method}: {', '.join(allowed)}); sweep a CONFIG "
                "instead"
            )
        check_applicable(config, set_keys(variant.overrides), where)
        configs[(variant.name, seed)] = config
    return configs


# ----------------------------------------------------------------------------- summaries
@dataclass(frozen=True)
class RowSummary:
    variant: Variant
    n: int  # finished seeds
    mean: dict[str, float]
    std: dict[str, float]  # sample standard deviation (n - 1); nan when n == 1
    asked: int = 0  # seeds asked for
    failed: int = 0  # seeds whose run failed


def metric_columns(config: Config, study: Study | None = None) -> list[str]:
    return [f"mAP@{t:g}" for t in config.eval.tiou] + ["average"] + list(study.extra_columns if study else ())


EXTRA_METRICS = ("average_0.3_0.7", "frame_mAP", "cmAP")  # in every final record besides the mAP columns


def check_metric(metric: str | None, config: Config) -> None:
    valid = [*metric_columns(config), *EXTRA_METRICS]
    if metric is not None and metric not in valid:
        raise InputError(f"--metric {metric}: not a metric of these runs; valid: {', '.join(valid)}")


def summarize(
    outcomes: Sequence[RunOutcome],
    study: Study,
    columns: Sequence[str],
    seeds: Sequence[int] = (),
    metric: str | None = None,
) -> list[RowSummary]:
    """Mean and sample std (ddof=1) over the finished seeds of each column, per variant (variants without any
    finished or failed run skipped); sorted by `metric`, best (highest) first, when given."""
    rows = []
    for variant in study.variants:
        mine = [o for o in outcomes if o.variant.name == variant.name]
        records = [o.metrics for o in mine if not o.failed]
        if not mine:
            continue
        values = {c: np.array([float(r[c]) for r in records if c in r]) for c in columns}  # eval.tiou may vary
        rows.append(
            RowSummary(
                variant,
                len(records),
                {c: float(v.mean()) if len(v) else math.nan for c, v in values.items()},
                {c: float(v.std(ddof=1)) if len(v) > 1 else math.nan for c, v in values.items()},
                len(seeds) or len(mine),
                sum(o.failed for o in mine),
            )
        )
    if metric is not None:
        rows.sort(key=lambda r: (r.n == 0, -r.mean[metric] if r.n else 0.0))  # stable: ties keep study order
    return rows


def best_row(rows: Sequence[RowSummary], metric: str) -> RowSummary | None:
    finished = [r for r in rows if r.n]
    return max(finished, key=lambda r: r.mean[metric]) if finished else None


def format_cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def runs_cell(row: RowSummary) -> str:
    """Finished seeds of those asked ("3" when all finished), and failures."""
    cell = str(row.n) if row.n == row.asked else f"{row.n}/{row.asked}"
    return cell + (f" ({row.failed} failed)" if row.failed else "")


def markdown_table(
    study: Study,
    rows: Sequence[RowSummary],
    columns: Sequence[str],
    seeds: Sequence[int],
    config_name: str,
    user_overrides: Sequence[str],
    metric: str | None = None,
    failures: Sequence[RunOutcome] = (),
    config: Config | None = None,
) -> str:
    ranked = metric or "average"
    best = best_row(rows, ranked)
    order = f"rows sorted by {metric}, best first" if metric else "rows in the study's order"
    lines = [
        f"# {study.paper + ' ' if study.paper else ''}{study.title}",
        "",
        f"CONFIG `{config_name}`"
        + (" with " + " ".join(f"`--set {o}`" for o in user_overrides) if user_overrides else "")
        + f"; seeds {', '.join(map(str, seeds))} (train.seed = data.point_seed = k).",
        *([setting_line(config)] if config is not None else []),
        "mAP in percent on the test subset, final model; mean ± sample standard deviation (n-1) over the finished "
        f"seeds (runs: finished seeds); {order}; **best** = highest {ranked}.",
        "",
        "| variant | " + " | ".join(columns) + " | runs |",
        "|---|" + "---:|" * len(columns) + "---:|",
    ]
    for row in rows:
        cells = [format_cell(row.mean[c], row.std[c]) for c in columns]
        label = f"**best** {row.variant.label}" if row is best else row.variant.label
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {runs_cell(row)} |")
    if failures:
        lines += ["", "Failed runs (rerun the same command to retry them; finished runs are kept):", ""]
        lines += [f"* `{o.variant.name}` seed {o.seed}: {o.error or 'failed'}; log `{o.log}`" for o in failures]
    lines += ["", "Variant overrides (applied after CONFIG, --set and the seed):", ""]
    for v in study.variants:
        what = (
            f"fuses `{'` + `'.join(v.members)}` by `{v.fuse}` at inference"
            if v.fuse
            else "`" + " ".join(v.overrides) + "`" + (f", train.seed = k + {v.seed_offset}" if v.seed_offset else "")
        )
        lines.append(f"* `{v.name}`: {what}")
    if study.note:
        lines += ["", study.note]
    return "\n".join(lines) + "\n"


def setting_line(config: Config) -> str:
    """The budget and the data of a study's runs (its first run's config)."""
    t, d = config.train, config.data
    points = d.points if isinstance(d.points, str) else f"{len(d.points)} click files"
    budget = f"{t.epochs} epochs" if t.epochs is not None else f"{t.steps} steps"
    return (
        f"Budget: {budget}, batch {t.batch_size}, lr {t.lr:g}, device {t.device}. "
        f"Data: `{d.annotations}`, features `{d.features}`, points {points} (unless a row sets data.points); "
        f"train on '{d.train_subset}', test on '{d.test_subset}'."
    )


_QUIET = tuple(f"train.{key}=" for key in _COSMETIC)  # overrides not shown in the table header


def write_outputs(
    result: StudyResult,
    out_dir: Path,
    config: Config,
    user_overrides: Sequence[str],
    config_name: str,
    plot: bool,
    metric: str | None = None,
) -> None:
    study = result.study
    swept = {k for o in result.outcomes for k in o.metrics if k.startswith("mAP@")}  # a sweep over eval.tiou
    columns = [
        *sorted(set(metric_columns(config)[:-1]) | swept, key=lambda c: float(c[4:])),
        "average",
        *study.extra_columns,
    ]
    if metric is not None and metric not in columns:
        columns.append(metric)
    user_overrides = [o for o in user_overrides if not o.startswith(_QUIET)]
    outcomes = sorted(result.outcomes, key=lambda o: (o.seed, [v.name for v in study.variants].index(o.variant.name)))
    rows = summarize(outcomes, study, columns, result.seeds, metric)
    failures = [o for o in outcomes if o.failed]
    best = best_row(rows, metric or "average")
    out_dir.mkdir(parents=True, exist_ok=True)
    result.table_path = out_dir / f"table_{study.key}.md"
    write_text_atomic(
        result.table_path,
        markdown_table(study, rows, columns, result.seeds, config_name, user_overrides, metric, failures, config),
    )
    record_output(result.table_path, "ablate")  # after every write: a rerun of an interrupted study may replace it
    result.json_path = out_dir / f"table_{study.key}.json"
    payload = {
        "table": study.key,
        "title": study.title,
        "config": config_name,
        "set": list(user_overrides),
        "seeds": list(result.seeds),
        "metric": metric or "average",
        "best": best.variant.name if best else None,
        "runs": [
            {
                "variant": o.variant.name,
                "seed": o.seed,
                "run_dir": str(o.run_dir),
                "status": o.status,
                "metrics": o.metrics,
                **({"log": str(o.log), "error": o.error} if o.failed else {}),
            }
            for o in outcomes
        ],
        "summary": {
            r.variant.name: {
                "n": r.n,
                "asked": r.asked,
                "failed": r.failed,
                "mean": {c: (None if math.isnan(m) else m) for c, m in r.mean.items()},
                "std": {c: (None if math.isnan(s) else s) for c, s in r.std.items()},
            }
            for r in rows
        },
    }
    write_text_atomic(result.json_path, json.dumps(payload, indent=1))
    record_output(result.json_path, "ablate")
    rows = [r for r in rows if r.n and r.variant.x is not None]
    if plot and study.plot_x and rows:
        from pointtal.viz import plot_study  # matplotlib: imported only when drawing

        rows.sort(key=lambda r: r.variant.x)
        shown = [c for c in dict.fromkeys(("mAP@0.5", "average", metric or "average")) if c in rows[0].mean]
        result.plot_path = plot_study(
            out_dir / f"table_{study.key}.png",
            x=[r.variant.x for r in rows],
            columns={c: ([r.mean[c] for r in rows], [r.std[c] for r in rows]) for c in shown},
            x_label=study.plot_x,
            title=f"{study.paper + ' ' if study.paper else ''}{study.title} (n = {max(r.n for r in rows)} seeds)",
        )
