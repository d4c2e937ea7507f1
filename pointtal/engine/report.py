"""Run reports and figures: `report.md` in a run directory, one video's timeline, PR curves and class AP.

`write_report` runs on rank 0 once training has finished: the report lists the configuration, every
evaluation of `metrics.jsonl` and links to `figures/timeline_<video>.png` (the first test video),
`figures/pr_curves.png` and `figures/class_ap.png` (from the final `predictions.json`). Training's own files
are written before it, so a figure that cannot be drawn is logged as a warning and noted in the report,
never fatal. `draw_timeline` and `training_points` also serve `pointtal visualize`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import torch

from pointtal import __version__
from pointtal.atomic import write_text_atomic
from pointtal.config import Config
from pointtal.data.annotations import BACKGROUND, GroundTruth, Video
from pointtal.data.dataset import geometry_for
from pointtal.data.features import FeatureStore
from pointtal.data.layouts import feature_length
from pointtal.engine.inference import detect_videos
from pointtal.engine.setup import RunData, load_points, point_sources
from pointtal.methods import METHODS, Method

log = logging.getLogger(__name__)

FIGURES = "figures"
REPORT = "report.md"
RUN_FILES = (
    ("config.yaml", "fully resolved configuration"),
    ("protocol.json", "the evaluation protocol of every number here (excluded videos, ambiguous segments, tIoU)"),
    ("metrics.jsonl", "one JSON object per evaluation"),
    ("checkpoint.pt", "latest weights, optimizer and RNG (resume with --resume)"),
    ("best.pt", "inference weights of the best average mAP"),
    ("predictions.json", "segment predictions of the final model on the test subset"),
    ("frames.json", "single-frame predictions of the final model"),
    ("tensorboard", "TensorBoard events (`tensorboard --logdir RUN_DIR`)"),
)


# ----------------------------------------------------------------------------- figures of one video


@dataclass(frozen=True)
class _TrainVideos:
    """What `load_points` reads of a training subset, without loading its features into memory."""

    video_ids: list[str]
    n_snippets: np.ndarray  # (V,) int64 feature lengths T


def training_points(config: Config, gt: GroundTruth, store: FeatureStore, video_id: str) -> list[tuple[float, str]]:
    """(time_sec, class name or "background") of the run's training points on `video_id`, at snippet centres.

    The points are those training used: simulated with the run's scheme and seed, or drawn from its click
    files (see `setup.load_points`); pseudo labels mined during training are not included. Empty for a
    video outside the training subset and for weak supervision.
    """
    scheme, _ = point_sources(config)
    d = config.data
    if scheme == "weak" or d.train_subset.casefold() not in {s.casefold() for s in gt.subsets}:
        return []
    ids = [v.video_id for v in gt.subset(d.train_subset) if v.video_id in store]
    if video_id not in ids:
        return []
    lengths = np.array([feature_length(store, v) for v in ids], dtype=np.int64)  # (V,) from file headers
    mapped = load_points(config, gt, _TrainVideos(ids, lengths))
    if mapped is None:
        return []
    snippets, columns = mapped.by_video().get(video_id, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
    geometry = geometry_for(gt.videos[video_id], d.fps, d.stride)
    names = (BACKGROUND, *gt.classes)
    return [(float(geometry.to_seconds(s + 0.5)), names[int(c)]) for s, c in zip(snippets, columns, strict=True)]


def draw_timeline(
    path: str | Path,
    method: Method,
    config: Config,
    classes: Sequence[str],
    video: Video,
    features: np.ndarray,
    points: Sequence[tuple[float, str]],
    device: torch.device,
) -> Path:
    """Score one video (features (T, D)), localize, and draw its timeline PNG with ground truth and points."""
    from pointtal.viz import plot_timeline  # matplotlib: imported only when drawing

    geometry = geometry_for(video, config.data.fps, config.data.stride)
    was_training = method.training
    try:
        ((scored, found),) = list(
            detect_videos(
                method, [(video.video_id, np.asarray(features))], batch_size=1, device=device, amp=config.train.amp
            )
        )
    finally:
        method.train(was_training)
    found = found.in_seconds(geometry)
    n_snippets = scored.length
    return plot_timeline(
        path,
        video_id=video.video_id,
        duration_sec=max(video.duration_sec, n_snippets * geometry.snippet_sec),  # features may outrun the GT
        classes=classes,
        ground_truth=[(i.start_sec, i.end_sec, i.label) for i in video.instances],
        points=points,
        cas=scored.cas,
        actionness=actionness_probability(config, scored.actionness),
        segments=[
            (start, end, classes[int(c) - 1], score)
            for start, end, c, score in zip(
                found.start.tolist(), found.end.tolist(), found.label.tolist(), found.score.tolist(), strict=True
            )
        ],
        snippet_sec=geometry.snippet_sec,
    )


def actionness_probability(config: Config, actionness: np.ndarray | None) -> np.ndarray | None:
    """Actionness as a probability for the figure: a sigmoid of the logits a method scores in logit space."""
    if actionness is None or getattr(config.method_options, "score_space", "logit") == "prob":
        return actionness
    return 1.0 / (1.0 + np.exp(-np.asarray(actionness, dtype=np.float64)))


def draw_detection_figures(
    out_dir: Path,
    gt: GroundTruth,
    video_ids: Sequence[str],
    predictions_path: Path,
    tious: Sequence[float],
    ambiguous=None,
) -> tuple[Path, Path]:
    """`pr_curves.png` and `class_ap.png` of a predictions file on `video_ids` (the same matching as mAP,
    under the run's protocol: `ambiguous` segments discard the predictions overlapping them)."""
    from pointtal.evaluation import SegmentTable, load_segment_predictions, segment_map, segment_pr_curves
    from pointtal.viz import plot_class_ap, plot_pr_curves

    truth = SegmentTable.from_ground_truth([gt.videos[v] for v in video_ids], gt.classes)
    predictions = load_segment_predictions(predictions_path, gt.classes)
    result = segment_map(truth, predictions, tious, ambiguous=ambiguous)
    curves = segment_pr_curves(truth, predictions, tious, ambiguous=ambiguous)
    return (
        plot_pr_curves(out_dir / "pr_curves.png", curves, None),
        plot_class_ap(out_dir / "class_ap.png", result.classes, result.ap, result.thresholds, gt.classes),
    )


# ----------------------------------------------------------------------------- the report


@dataclass
class _Figure:
    title: str
    file: str  # relative to the run directory
    error: str | None = None


def _attempt(figures: list[_Figure], titles: Sequence[str], files: Sequence[str], draw: Callable[[], object]) -> None:
    """Run `draw`; on any failure log a warning and record it against each figure it should have written."""
    error = None
    try:
        draw()
    except Exception as err:  # matplotlib and the evaluation raise many types: none may fail a finished run
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        error = f"{type(err).__name__}: {first_line}".rstrip(": ")
        log.warning("report: could not draw %s (%s)", ", ".join(files), error)
    figures.extend(_Figure(t, f, error) for t, f in zip(titles, files, strict=True))


def timeline_name(video_id: str) -> str:
    """`timeline_<id>.png`, or `timeline_<hash of id>.png` where the id is too long for that file name."""
    name = f"timeline_{video_id}.png"
    if len(name.encode("utf-8")) <= 255:
        return name
    return f"timeline_{hashlib.sha1(video_id.encode('utf-8')).hexdigest()[:16]}.png"


def write_report(
    run_dir: str | Path,
    config: Config,
    records: Sequence[dict],
    data: RunData,
    method: Method,
    device: torch.device,
    *,
    world: int = 1,
) -> Path | None:
    """Draw the run's figures and write `RUN_DIR/report.md`; returns its path, or None if it could not be
    written (logged). Never raises for a figure or report failure."""
    run_dir = Path(run_dir)
    figures: list[_Figure] = []
    test = data.test
    if test is not None and len(test):
        video_id = test.video_ids[0]
        file = f"{FIGURES}/{timeline_name(video_id)}"
        _attempt(
            figures,
            [f"Timeline of test video `{video_id}`"],
            [file],
            lambda: draw_timeline(
                run_dir / file,
                method,
                config,
                data.classes,
                data.gt.videos[video_id],
                test.video_features(0).numpy(),
                [],
                device,
            ),
        )
        titles = ["Precision-recall per tIoU (final predictions)", "AP per class (final predictions)"]
        _attempt(
            figures,
            titles,
            [f"{FIGURES}/pr_curves.png", f"{FIGURES}/class_ap.png"],
            lambda: draw_detection_figures(
                run_dir / FIGURES,
                data.gt,
                test.video_ids,
                run_dir / "predictions.json",
                config.eval.tiou,
                data.ambiguous,
            ),
        )
    try:
        text = render_report(run_dir, config, records, data, figures, device=device, world=world)
        write_text_atomic(run_dir / REPORT, text)
    except Exception as err:  # a report is a convenience: the run's files are already written
        log.warning("report: could not write %s (%s: %s)", run_dir / REPORT, type(err).__name__, err)
        return None
    return run_dir / REPORT


def render_report(
    run_dir: Path,
    config: Config,
    records: Sequence[dict],
    data: RunData,
    figures: Sequence[_Figure],
    *,
    device: torch.device | str = "cpu",
    world: int = 1,
) -> str:
    """The markdown text of `report.md`."""
    lines = [f"# Run report: `{run_dir.name}`", ""]
    last = records[-1] if records else None
    if last is not None:
        lines += [
            f"Final evaluation at step {last['step']}: average mAP {_final_averages(last, config.eval.tiou)} "
            f"on subset `{config.data.test_subset}`.",
            "",
        ]
    lines += [
        f"Every number here is under the evaluation {data.protocol.describe()} "
        "([protocol.json](protocol.json); `pointtal evaluate` applies it to this run's predictions).",
        "",
    ]
    lines += [
        "## Configuration",
        "",
        *_config_table(config, data, device, world),
        "",
        "Full configuration: [config.yaml](config.yaml).",
        "",
    ]
    lines += ["## Evaluations", "", *_metrics_table(records, config.eval.tiou), ""]
    if figures:
        lines += ["## Figures", ""]
        for fig in figures:
            if fig.error is None:
                lines += [f"### {fig.title}", "", f"![{fig.title}]({quote(fig.file)})", ""]  # ids may hold spaces
            else:
                lines += [f"### {fig.title}", "", f"Not drawn: {_cell(fig.error)}", ""]
    lines += ["## Files", ""]
    lines += [f"* [{name}]({name}): {what}" for name, what in RUN_FILES if (run_dir / name).exists()]
    lines += ["", f"_Written by pointtal {__version__}._", ""]
    return "\n".join(lines)


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _method_options(config: Config) -> str:
    """Method options that differ from the method's defaults, as `key=value`."""
    options = config.method_options
    if options is None or not dataclasses.is_dataclass(options):
        return "defaults"
    defaults = METHODS[config.method].Options()
    changed = [
        f"{f.name}={getattr(options, f.name)!r}"
        for f in dataclasses.fields(options)
        if getattr(options, f.name) != getattr(defaults, f.name)
    ]
    return ", ".join(changed) or "defaults"


def _config_table(config: Config, data: RunData, device, world: int) -> list[str]:
    d, t = config.data, config.train
    n_train = len(data.train) if data.train is not None else 0
    n_test = len(data.test) if data.test is not None else 0
    points = d.points if isinstance(d.points, str) else ", ".join(d.points)
    rows = [
        ("method", f"`{config.method}` ({_method_options(config)})"),
        ("ground truth", d.annotations),
        ("features", d.features),
        ("points", points),
        ("train / test subsets", f"`{d.train_subset}` ({n_train} videos) / `{d.test_subset}` ({n_test} videos)"),
        ("fps / stride", f"{d.fps:g} / {d.stride}"),
        ("steps", t.steps if not t.epochs else f"{t.epochs} epochs"),
        ("batch size", f"{t.batch_size} videos per step" + (f" ({world} DDP ranks)" if world > 1 else "")),
        (
            "optimizer",
            f"Adam, lr {t.lr:g}, weight decay {t.weight_decay:g}"
            + (f", grad clip {t.grad_clip:g}" if t.grad_clip else ""),
        ),
        ("seed", t.seed),
        ("device", f"{device}" + (", bf16 autocast" if t.amp and str(device).startswith("cuda") else "")),
        ("evaluation tIoU", ", ".join(f"{x:g}" for x in config.eval.tiou)),
        ("evaluation protocol", data.protocol.describe().removeprefix("protocol: ")),
    ]
    return ["| setting | value |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in rows)]


def average_names(tiou: Sequence[float]) -> dict[str, str]:
    """Record key -> the field's name of each average a run records: `average` over the run's thresholds
    (mAP@0.1:0.7 of the point-supervised papers on THUMOS14) and `average_0.3_0.7` (the fully supervised
    papers'); the second is left out where the thresholds are 0.3:0.7 already (the two are one number)."""
    if not tiou:
        return {"average": "average"}
    span = f"avg {min(tiou):g}:{max(tiou):g}"
    if math.isclose(min(tiou), 0.3) and math.isclose(max(tiou), 0.7):
        return {"average": span}
    return {"average": span, "average_0.3_0.7": "avg 0.3:0.7"}


def _final_averages(record: dict, tiou: Sequence[float]) -> str:
    """'45.10% (avg 0.1:0.7), 38.20% (avg 0.3:0.7)': each field average the record holds."""
    if not tiou:
        return f"{record['average']:.2f}%"
    names = average_names(tiou)
    return ", ".join(
        f"{record[k]:.2f}% ({name})" for k, name in names.items() if isinstance(record.get(k), (int, float))
    )


def _metrics_table(records: Sequence[dict], tiou: Sequence[float] = ()) -> list[str]:
    """One row per evaluation; the best average is marked; both field averages are named (`average_names`)."""
    if not records:
        return ["No evaluation recorded."]
    names = average_names(tiou)
    hidden = {"step"} | ({"average_0.3_0.7"} if "average_0.3_0.7" not in names else set())
    columns = list(dict.fromkeys(k for r in records for k in r if k not in hidden))
    best = max(range(len(records)), key=lambda i: records[i].get("average", float("-inf")))
    headers = [names.get(k, k) for k in columns]
    lines = ["| step | " + " | ".join(headers) + " |", "|---:|" + "---:|" * len(columns)]
    for i, r in enumerate(records):
        cells = [f"{r[k]:.2f}" if isinstance(r.get(k), (int, float)) else "" for k in columns]
        step = f"**{r['step']}** (best)" if i == best and len(records) > 1 else str(r["step"])
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return lines
