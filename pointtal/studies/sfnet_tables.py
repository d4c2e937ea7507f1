"""SF-Net's studies (issue 22): the component ablation, where the points come from, and hyper-parameter
sensitivity, as `Study` / `Variant` definitions of `pointtal.studies.ablation` (run by `pointtal ablate`).

CONFIG is an SF-Net config whose `data.points` lists the human annotators' click files (the THUMOS14 / GTEA /
BEOID presets, or the `train.yaml` that `pointtal synth` writes beside its data). Each table:

* `sfnet-components` (the paper's component ablation, "SF / SFB / SFBA / SFBAE"): SF = single-frame
  classification only (no background mining, no actionness branch, no anchor expansion), then each component
  added in turn; the weakly supervised row (`method.name=weak`: video labels only, the method's shared keys
  kept) below them and the fully supervised row (every snippet of an instance labelled) above.
* `sfnet-points` (the paper's annotation-source study): each annotator's file alone (`data.annotator=i`), a
  random annotator per video (the paper's protocol: `data.annotator=null`, drawn with `data.point_seed`), the
  simulated schemes of `pointtal.data.points` and the consensus of the annotators' files (`pointtal annotate
  --agreement FILES --merge`, written by `prepare_study` beside the study's directory); `sfnet-consensus` is
  its two rows that issue 23 compares (consensus file vs random annotator).
* `sfnet-sensitivity`: one table and plot per knob (eta, alpha, beta, the expansion ratio, the expansion radius),
  each over the range the paper discusses, the preset value included; the tables `sfnet-eta`, `sfnet-alpha`,
  `sfnet-beta`, `sfnet-ratio` and `sfnet-radius` run alone too.

Every table reports segment mAP at each tIoU of CONFIG and the single-frame mAP at each distance of
`pointtal.evaluation.FRAME_DISTANCES` with their mean (the run's `frame_mAP@d` records).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from pointtal.errors import InputError
from pointtal.evaluation.frames import FRAME_DISTANCES
from pointtal.studies.ablation import Study, StudyResult, Variant, format_cell, summarize

SFNET_METHODS = ("sfnet", "weak")
FRAME_COLUMNS = (*(f"frame_mAP@{d:g}" for d in FRAME_DISTANCES), "frame_mAP")
CONSENSUS = "{consensus}"  # placeholder in a variant's overrides: the consensus file `prepare_study` writes
CONSENSUS_TOLERANCE = 1.0  # seconds; `pointtal annotate --agreement`'s default
CONSENSUS_MIN_AGREE = 2  # `pointtal annotate --merge`'s default
N_ANNOTATORS = 4  # THUMOS14 and GTEA publish four annotators' clicks


def _components(background: bool, actionness: bool, expand: bool) -> tuple[str, ...]:
    return (
        f"method.background={str(background).lower()}",
        f"method.actionness={str(actionness).lower()}",
        f"method.expand={str(expand).lower()}",
    )


WEAK = Variant(
    "weak", "weakly supervised (video labels only)", ("data.points=weak", "data.annotator=null"), method="weak"
)
FULL = Variant(
    "full",
    "fully supervised (every snippet of an instance)",
    ("data.points=full", "data.annotator=null", *_components(True, True, False)),
)

COMPONENTS = Study(
    "sfnet-components",
    "component ablation (SF, SFB, SFBA, SFBAE)",
    (
        WEAK,
        Variant("SF", "SF: single-frame classification only", _components(False, False, False)),
        Variant("SFB", "SFB: + background mining", _components(True, False, False)),
        Variant("SFBA", "SFBA: + actionness", _components(True, True, False)),
        Variant("SFBAE", "SFBAE: + anchor expansion (SF-Net)", _components(True, True, True)),
        FULL,
    ),
    paper="SF-Net",
    methods=SFNET_METHODS,
    extra_columns=FRAME_COLUMNS,
    note="Point rows train on CONFIG's click files, one annotator drawn per video (data.point_seed = k). "
    "The weak row is `method.name=weak` (video loss + centre loss, SF-Net's network and inference "
    "without actionness); the full row is SF-Net with every snippet of an instance labelled (no "
    "expansion: nothing is left to expand).",
)

SCHEMES = (  # simulated points: (scheme, row label)
    ("sfnet-uniform", "simulated: uniform within the instance"),
    ("sfnet-center", "simulated: centre of the instance"),
    ("sfnet-center-jitter", "simulated: centre ± up to 20% of the length"),
    ("sfnet-start", "simulated: first part of the instance"),
    ("sfnet-custom", "simulated: human-shaped 10-bin distribution"),
    ("gaussian", "simulated: gaussian around the centre (std 0.01 x length)"),
)


def points_study(n_annotators: int = N_ANNOTATORS) -> Study:
    """The annotation-source table for `n_annotators` click files in CONFIG's `data.points`."""
    return Study(
        "sfnet-points",
        "where the points come from (annotators, random annotator, simulated)",
        (
            Variant("random", "random annotator per video (the paper's protocol)", ("data.annotator=null",)),
            *(
                Variant(f"annotator{i + 1}", f"annotator {i + 1} alone", (f"data.annotator={i}",))
                for i in range(n_annotators)
            ),
            *(Variant(scheme, label, (f"data.points={scheme}", "data.annotator=null")) for scheme, label in SCHEMES),
            Variant(
                "consensus",
                f"consensus of the annotators (>= {CONSENSUS_MIN_AGREE} agree within "
                f"{CONSENSUS_TOLERANCE:g} s, median time)",
                (f"data.points={CONSENSUS}", "data.annotator=null"),
            ),
        ),
        paper="SF-Net",
        methods=SFNET_METHODS,
        extra_columns=FRAME_COLUMNS,
        note="Full SF-Net (mining, actionness, anchor expansion) in every row; only the points change. "
        "The consensus file is `pointtal annotate GT --agreement FILES --merge consensus.csv` with its "
        f"defaults (tolerance {CONSENSUS_TOLERANCE:g} s, --min-agree {CONSENSUS_MIN_AGREE}), written "
        "beside the table's directory (OUT/consensus.csv).",
    )


def _knob(key: str, name: str, label: str, values: Sequence[float], fmt: str = "g") -> Study:
    return Study(
        f"sfnet-{name}",
        f"sensitivity to {label}",
        tuple(
            Variant(f"{name}{v:{fmt}}", f"{label} = {v:{fmt}}", (f"method.{key}={v:{fmt}}",), x=float(v))
            for v in values
        ),
        plot_x=label,
        paper="SF-Net",
        methods=SFNET_METHODS,
        extra_columns=FRAME_COLUMNS,
        note=f"Full SF-Net on CONFIG's click files; only method.{key} changes (the preset's value is one row).",
    )


# Ranges: eta 5 is the paper's THUMOS14 setting and 7 the reference code's default; alpha = beta = 1 in the
# paper, which calls the method insensitive to them; radius 3 and ratio 0.95 are the paper's expansion setting.
SENSITIVITY = (
    _knob("eta", "eta", "background mining ratio eta", (1, 3, 5, 7)),
    _knob("alpha", "alpha", "video loss weight alpha", (0.5, 1, 2)),
    _knob("beta", "beta", "actionness loss weight beta", (0.5, 1, 2)),
    _knob("expand_ratio", "ratio", "expansion ratio", (0.9, 0.95, 1.0)),
    _knob("radius", "radius", "expansion radius", (1, 3, 5)),
)


def consensus_study() -> Study:
    """The two rows of `sfnet-points` that issue 23 compares: the consensus file vs the paper's protocol."""
    rows = points_study()
    return dataclasses.replace(
        rows,
        key="sfnet-consensus",
        title="consensus file vs random annotator per video",
        variants=(rows.variant("random"), rows.variant("consensus")),
    )


STUDIES: dict[str, Study] = {s.key: s for s in (COMPONENTS, points_study(), consensus_study(), *SENSITIVITY)}
GROUPS: dict[str, tuple[str, ...]] = {"sfnet-sensitivity": tuple(s.key for s in SENSITIVITY)}


# ----------------------------------------------------------------------------- preparing a study for CONFIG
def annotator_files(base: Mapping) -> tuple[str, ...]:
    """CONFIG's click files (`data.points` as a list)."""
    points = (base.get("data") or {}).get("points")
    return tuple(points) if isinstance(points, list | tuple) else ()


def prepare_study(study: Study, base: Mapping, study_dir: Path, write: bool = True) -> Study:
    """`study` made concrete for CONFIG: the points tables get one row per annotator file of CONFIG and the
    consensus file's path, study_dir/../consensus.csv (written unless `write` is False: checks and dry runs)."""
    if study.key not in ("sfnet-points", "sfnet-consensus"):
        return study
    files = annotator_files(base)
    if len(files) < 2:
        raise InputError(
            f"data.points={(base.get('data') or {}).get('points')!r}: the sfnet-points table needs "
            "CONFIG's data.points to list two or more annotators' click files"
        )
    concrete = points_study(len(files)) if study.key == "sfnet-points" else study
    consensus = study_dir.parent / "consensus.csv"  # shared by both tables: their runs are the same
    if write:
        write_consensus(files, consensus)
    return dataclasses.replace(
        concrete,
        variants=tuple(
            dataclasses.replace(v, overrides=tuple(o.replace(CONSENSUS, str(consensus)) for o in v.overrides))
            for v in concrete.variants
        ),
    )


def write_consensus(files: Sequence[str], path: Path) -> dict:
    """`pointtal annotate --agreement FILES --merge PATH` with its defaults; returns the merge report (also
    written to PATH with suffix .json)."""
    from pointtal.atomic import write_text_atomic
    from pointtal.data.agreement import merge_clicks
    from pointtal.data.points import read_points, write_points

    merged, report = merge_clicks([read_points(f) for f in files], CONSENSUS_TOLERANCE, CONSENSUS_MIN_AGREE)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_points(merged, path)
    record = {
        "files": [str(f) for f in files],
        "tolerance": CONSENSUS_TOLERANCE,
        "min_agree": CONSENSUS_MIN_AGREE,
        **report.as_dict(),
    }
    write_text_atomic(path.with_suffix(".json"), json.dumps(record, indent=1))
    return record


# ----------------------------------------------------------------------------- several datasets
COMBINED_COLUMNS = ("mAP@0.5", "average", "frame_mAP")


def dataset_name(config_path: str | Path) -> str:
    """A dataset's name from its config file: the directory of a `pointtal synth` train.yaml, else the stem."""
    path = Path(config_path)
    return path.parent.name if path.name == "train.yaml" else path.stem


def combined_table(results: Mapping[str, StudyResult], columns: Sequence[str] = COMBINED_COLUMNS) -> str:
    """One markdown table over datasets: a row per variant, `columns` (mean ± std over seeds) per dataset."""
    first = next(iter(results.values()))
    study = first.study
    summaries = {
        name: {r.variant.name: r for r in summarize(res.outcomes, res.study, columns)} for name, res in results.items()
    }
    header = " | ".join(f"{name} {c}" for name in results for c in columns)
    lines = [
        f"# {study.paper} {study.title}: {', '.join(results)}",
        "",
        f"Mean ± sample std over seeds; per-dataset tables (settings, every column): "
        f"{', '.join(f'{name}/table_{study.key}.md' for name in results)}.",
        "",
        f"| variant | {header} |",
        "|---|" + "---:|" * (len(columns) * len(results)),
    ]
    for variant in study.variants:
        cells = []
        for name in results:
            row = summaries[name].get(variant.name)
            cells += [format_cell(row.mean[c], row.std[c]) if row else "" for c in columns]
        if any(cells):
            lines.append(f"| {variant.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_combined(results: Mapping[str, StudyResult], out_dir: Path) -> Path:
    """OUT/table_<key>.md: `combined_table` of the datasets' results of one study."""
    from pointtal.atomic import write_text_atomic

    path = out_dir / f"table_{next(iter(results.values())).study.key}.md"
    write_text_atomic(path, combined_table(results))
    return path
