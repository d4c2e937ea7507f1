"""`pointtal evaluate`: segment (or single-frame) mAP of a predictions file, by the ActivityNet rules."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pointtal.atomic import write_text_atomic
from pointtal.cli import checks
from pointtal.data.layouts import load_truth
from pointtal.errors import InputError
from pointtal.evaluation import (
    ANET_TIOUS,
    FRAME_DISTANCES,
    THUMOS_TIOUS,
    DetectionResult,
    RecallResult,
    SegmentTable,
    average_recall,
    frame_map,
    load_ambiguous,
    load_frame_predictions,
    load_proposals,
    load_segment_predictions,
    segment_map,
)
from pointtal.evaluation.protocol import (
    Protocol,
    ambiguous_path,
    excluded_videos,
    read_protocol,
    recorded_protocol,
)
from pointtal.outputs import check_outputs, record_output

HELP = (
    "Score predictions against ground truth: segment mAP per tIoU (official ActivityNet rules), "
    "single-frame mAP, or average recall at AN of proposals; all numbers in percent (0-100)."
)
EXAMPLE = (
    "pointtal evaluate pointtal/data/vendor/thumos14/groundtruth.json predictions.json --subset test "
    "--json metrics.json\n"
    "  pointtal evaluate GT.json predictions.json --recall       # mAP and AR@1,5,10,100 (class-agnostic)\n"
    "  pointtal evaluate GT.json proposals.json --proposals     # AR@AN only; entries need no 'label'\n"
    "  pointtal evaluate HR-Pro/dataset/THUMOS14 runs/lacp/predictions.json runs/hrpro/predictions.json "
    "--protocol runs/hrpro   # one table, both runs, HR-Pro's protocol"
)

NAMED_TIOUS = {"thumos": THUMOS_TIOUS, "anet": ANET_TIOUS}


def add_arguments(parser) -> None:
    parser.add_argument(
        "ground_truth",
        metavar="GT.json",
        help="ground truth, ActivityNet JSON layout; LACP's gt.json (no durations: the metrics "
        "need none) and HR-Pro's gt_full.json work, and a dataset folder or a file with "
        "split_train.txt / split_test.txt beside it takes its subsets from them, as training does",
    )
    parser.add_argument(
        "predictions",
        metavar="PREDICTIONS.json",
        nargs="+",
        help="ActivityNet results JSON ('segment' entries, or 'frame' entries with --frames); "
        "several files (say two runs' predictions.json): one table, a row per file, under "
        "one protocol",
    )
    parser.add_argument(
        "--subset",
        default="test",
        help="ground-truth subset to evaluate on (default: test; matched regardless of case, "
        "so 'test' finds HR-Pro's 'Test')",
    )
    parser.add_argument(
        "--tiou",
        metavar="LIST",
        help="tIoU thresholds: comma list (0.3,0.5), range START:STOP:STEP (0.1:0.7:0.1), "
        "'thumos' = 0.1:0.7:0.1 or 'anet' = 0.5:0.95:0.05 (default: the protocol's, else "
        "thumos)",
    )
    parser.add_argument(
        "--frames", action="store_true", help="single-frame predictions ('frame': seconds); mAP per distance threshold"
    )
    parser.add_argument(
        "--distance", metavar="LIST", help="distance thresholds for --frames (default: 0.25,0.5,0.75,1.0)"
    )
    parser.add_argument(
        "--json",
        metavar="OUT",
        type=Path,
        help='also write {"tiou" (or "distance"), "map", "average", "per_class", ...} to OUT; '
        "values in percent (0-100), like the table",
    )
    parser.add_argument(
        "--protocol",
        metavar="RUN_DIR|FILE|none",
        help="evaluation protocol (excluded videos, ambiguous segments, tIoU): a run directory "
        "(its protocol.json) or a JSON file with a 'protocol' entry; by default the one "
        "PREDICTIONS.json records (`pointtal train` and `predict` write it), so a run's "
        "predictions score as the run reported; 'none': every video, no ambiguous filter. "
        "--exclude-videos, --ambiguous and --tiou replace its parts",
    )
    parser.add_argument(
        "--exclude-videos",
        metavar="IDS",
        help="drop these videos from ground truth and predictions: id,id,..., @FILE "
        "(ids separated by commas or whitespace), a named list (thumos14 = thumos14-lacp = "
        "thumos14-hrpro = test videos 270, 1292, 1496, as LACP/HR-Pro; thumos14-opentad = "
        "270, 1292, as OpenTAD) or none; default: the protocol's",
    )
    parser.add_argument(
        "--ambiguous",
        metavar="FILE",
        help="discard predictions overlapping (intersection > 0 s) a segment listed in FILE "
        "('video_id start end' lines, THUMOS14 Ambiguous_test.txt), as HR-Pro does; "
        "with --frames, points inside one; 'thumos14' = the shipped THUMOS14 file, 'none' = "
        "off; default: the protocol's",
    )
    parser.add_argument(
        "--class-list",
        metavar="FILE",
        type=Path,
        help="class names, one per line (default: the ground truth's sorted labels)",
    )
    parser.add_argument(
        "--recall",
        action="store_true",
        help="also report average recall at an average number of proposals per video (AR@1, "
        "AR@5, AR@10, AR@100 and the area under AR-AN), ActivityNet proposal protocol, "
        "class-agnostic: segments ranked by score per video, labels ignored",
    )
    parser.add_argument(
        "--proposals",
        action="store_true",
        help="PREDICTIONS.json holds class-agnostic proposals ({score, segment}; a label, if "
        "any, is ignored): report AR@AN only",
    )
    parser.add_argument(
        "--recall-tiou",
        metavar="LIST",
        help="tIoU thresholds averaged by --recall / --proposals, same forms as --tiou (default: anet = 0.5:0.95:0.05)",
    )
    parser.add_argument("--per-class", action="store_true", help="also print AP per class")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing --json / --plots files that pointtal did not write"
    )
    parser.add_argument(
        "--plots",
        metavar="DIR",
        type=Path,
        help="also write DIR/pr_curves.png (precision-recall per tIoU, mean over classes) and "
        "DIR/class_ap.png (AP per class); segment predictions only",
    )


def check_args(args) -> None:
    """Threshold lists parsed, and options that cannot apply refused, before anything is read."""
    if args.tiou is not None:
        parse_thresholds(args.tiou, "--tiou", upper=1.0)
    if args.distance is not None:
        parse_thresholds(args.distance, "--distance", upper=None)
    if args.recall_tiou is not None:
        parse_thresholds(args.recall_tiou, "--recall-tiou", upper=1.0)
    checks.only_with(
        args,
        ("recall_tiou",),
        args.recall or args.proposals,
        "sets the thresholds of --recall / --proposals; give one of them",
    )
    checks.only_with(
        args,
        ("overwrite",),
        args.json is not None or args.plots is not None,
        "applies to the files --json and --plots write; give one of them",
    )
    checks.not_a_file(args, "plots", "a directory for pr_curves.png and class_ap.png")


def run(args) -> int:
    files = [Path(p) for p in args.predictions]
    if len(files) > 1:
        return compare(args, files)
    args.predictions = files[0]
    if args.frames and args.tiou is not None:
        raise InputError("--tiou applies to segment predictions; with --frames use --distance")
    if not args.frames and args.distance is not None:
        raise InputError("--distance applies to single-frame predictions (--frames); for segments use --tiou")
    if args.frames and args.plots is not None:
        raise InputError("--plots applies to segment predictions; drop it with --frames")
    if args.frames and (args.recall or args.proposals):
        raise InputError("--recall/--proposals apply to segment predictions; drop them with --frames")
    if args.proposals and (args.tiou is not None or args.per_class or args.plots is not None):
        raise InputError(
            "--proposals reports AR@AN only: drop --tiou, --per-class and --plots "
            "(use --recall-tiou for the recall thresholds)"
        )
    check_outputs(_outputs(args), _inputs(args), overwrite=args.overwrite)
    console = Console(highlight=False, soft_wrap=True)
    protocol, origin = resolve_protocol(args)  # options first: the ground truth may be large
    exclude = set(protocol.exclude_videos) or None
    ambiguous = _protocol_ambiguous(protocol, origin)
    args.ambiguous = protocol.ambiguous
    # durations are not needed for the metrics: a LACP gt.json (none) is read as it is; a published dataset's
    # split files beside the file decide the subsets, as in training
    gt = load_truth(args.ground_truth, args.class_list, need_duration=False)
    args.subset = gt.subset_name(args.subset, source=str(args.ground_truth))  # HR-Pro's 'Test' for 'test'
    videos = gt.subset(args.subset, source=str(args.ground_truth))
    ground_truth = SegmentTable.from_ground_truth(videos, gt.classes)
    if len(ground_truth) == 0:
        raise InputError(f"{args.ground_truth}: subset '{args.subset}' has no annotated instances to evaluate")
    if args.proposals:
        recall = _recall(args, ground_truth, load_proposals(args.predictions, gt.classes), exclude, ambiguous)
        return _report_recall_only(console, args, recall, len(videos))
    try:
        if args.frames:
            thresholds = parse_thresholds(args.distance or _as_list(FRAME_DISTANCES), "--distance", upper=None)
            predictions = load_frame_predictions(args.predictions, gt.classes)
            result = frame_map(ground_truth, predictions, thresholds, exclude_videos=exclude, ambiguous=ambiguous)
        else:
            thresholds = (
                parse_thresholds(args.tiou, "--tiou", upper=1.0) if args.tiou else (protocol.tiou or THUMOS_TIOUS)
            )
            predictions = load_segment_predictions(args.predictions, gt.classes)
            result = segment_map(ground_truth, predictions, thresholds, exclude_videos=exclude, ambiguous=ambiguous)
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"{args.predictions}: {err}") from None
    recall = _recall(args, ground_truth, predictions, exclude, ambiguous) if args.recall else None
    _print_notes(console, args, result, len(videos))
    kind = "Single-frame" if args.frames else "Segment detection"
    shown = Protocol(protocol.exclude_videos, protocol.ambiguous, () if args.frames else tuple(thresholds))
    console.print(
        f"[bold]{kind} mAP (%)[/bold], subset '{escape(args.subset)}', {escape(shown.describe())} ({escape(origin)})"
    )
    console.print(summary_table(result))
    if recall is not None:
        console.print(recall_table(recall))
    if args.per_class:
        console.print(per_class_table(result))
    if args.json:
        doc = result_json(result, args)
        doc["protocol"] = {**shown.to_json(), "from": origin}
        if recall is not None:
            doc["recall"] = recall_json(recall)
        _write_json(console, args.json, doc)
    if args.plots:
        for path in write_plots(args.plots, ground_truth, predictions, result, exclude, ambiguous):
            record_output(path, "evaluate")
            console.print(f"wrote {escape(str(path))}")
    return 0


def _protocol_ambiguous(protocol: Protocol, origin: str):
    """The protocol's ambiguous segments (None: no filter); a missing file says where the path came from."""
    try:
        return load_ambiguous(protocol.ambiguous) if protocol.ambiguous else None
    except InputError as err:
        raise InputError(
            f"{err} (the protocol's ambiguous-segments file, {origin}; --ambiguous FILE or none replaces it)"
        ) from None


def compare(args, files: list[Path]) -> int:
    """Several predictions files: one segment-mAP table, a row per file, under one protocol (the one they all
    record, or the one given); --json writes {"protocol", "subset", "rows": [{"file", "label", ...}]}."""
    refused = [
        name
        for name, on in (
            ("--frames", args.frames),
            ("--proposals", args.proposals),
            ("--recall", args.recall),
            ("--per-class", args.per_class),
            ("--plots", args.plots is not None),
            ("--distance", args.distance is not None),
        )
        if on
    ]
    if refused:
        raise InputError(
            f"{refused[0]} applies to one predictions file; with {len(files)} files evaluate compares segment mAP only"
        )
    args.predictions = files[0]
    check_outputs(
        {"--json": args.json},
        {**_inputs(args), **{f"predictions {i + 1}": f for i, f in enumerate(files)}},
        overwrite=args.overwrite,
    )
    resolved = []
    for path in files:
        args.predictions = path
        resolved.append(resolve_protocol(args))
    protocol, origin = resolved[0]
    for (other, where), path in zip(resolved[1:], files[1:], strict=True):
        if other != protocol:
            raise InputError(
                f"{path}: its protocol ({other.describe()}; {where}) differs from {files[0]}'s "
                f"({protocol.describe()}); give --protocol RUN_DIR|none to score both under one"
            )
    exclude = set(protocol.exclude_videos) or None
    ambiguous = _protocol_ambiguous(protocol, origin)
    thresholds = parse_thresholds(args.tiou, "--tiou", upper=1.0) if args.tiou else (protocol.tiou or THUMOS_TIOUS)
    gt = load_truth(args.ground_truth, args.class_list, need_duration=False)
    args.subset = gt.subset_name(args.subset, source=str(args.ground_truth))
    videos = gt.subset(args.subset, source=str(args.ground_truth))
    ground_truth = SegmentTable.from_ground_truth(videos, gt.classes)
    if len(ground_truth) == 0:
        raise InputError(f"{args.ground_truth}: subset '{args.subset}' has no annotated instances to evaluate")
    labels = _row_labels(files)
    shown = Protocol(protocol.exclude_videos, protocol.ambiguous, tuple(thresholds))
    table = Table(title=f"Segment detection mAP (%), subset '{escape(args.subset)}', {escape(shown.describe())}")
    table.add_column("predictions")
    for t in thresholds:
        table.add_column(f"@{t:g}", justify="right")
    rows = []
    for path, label in zip(files, labels, strict=True):
        try:
            result = segment_map(
                ground_truth,
                load_segment_predictions(path, gt.classes),
                thresholds,
                exclude_videos=exclude,
                ambiguous=ambiguous,
            )
        except ValueError as err:
            if isinstance(err, InputError):
                raise
            raise InputError(f"{path}: {err}") from None
        averages = _averages(result)
        if not rows:
            for name in averages:
                table.add_column(name, justify="right")
        table.add_row(
            escape(label), *(f"{100 * v:.2f}" for v in result.map), *(f"{100 * v:.2f}" for v in averages.values())
        )
        rows.append(
            {
                "file": str(path),
                "label": label,
                "map": [100 * float(v) for v in result.map],
                "averages": {k: 100 * v for k, v in averages.items()},
            }
        )
    needed = max(map(len, labels)) + 10 * (len(thresholds) + len(rows[0]["averages"])) + 8  # never cut a cell
    console = Console(highlight=False, soft_wrap=True)
    console = Console(highlight=False, soft_wrap=True, width=max(console.width, needed))
    console.print(
        f"{len(files)} predictions files on {len(videos)} videos of subset '{escape(args.subset)}'; "
        f"the protocol: {escape(origin)}"
    )
    console.print(table)
    if args.json:
        _write_json(
            console,
            args.json,
            {
                "tiou": [float(t) for t in thresholds],
                "unit": "percent",
                "subset": args.subset,
                "protocol": {**shown.to_json(), "from": origin},
                "rows": rows,
            },
        )
    return 0


def _row_labels(files: list[Path]) -> list[str]:
    """A row's name: the run directory of RUN/predictions.json, else the file name; the path where that repeats."""
    names = [f.parent.name if f.name == "predictions.json" and f.parent.name else f.name for f in files]
    return [name if names.count(name) == 1 else str(f) for name, f in zip(names, files, strict=True)]


def resolve_protocol(args) -> tuple[Protocol, str]:
    """The protocol in force and where it came from: --protocol (a run directory, a file, or none), else the
    one PREDICTIONS.json records, else none; --exclude-videos / --ambiguous / --tiou replace its parts."""
    if args.protocol is not None and args.protocol.strip().lower() == "none":
        protocol, origin = Protocol(), "--protocol none"
    elif args.protocol is not None:
        path = Path(args.protocol)
        path = path / "protocol.json" if path.is_dir() else path
        protocol, origin = read_protocol(path), f"from {path}"
    else:
        recorded = recorded_protocol(args.predictions)
        protocol, origin = (
            (recorded, f"recorded in {args.predictions}")
            if recorded is not None
            else (Protocol(), "none recorded in the predictions file")
        )
    changed = []
    if args.exclude_videos is not None:
        text = args.exclude_videos.strip()
        ids = () if text.lower() == "none" else excluded_videos(parse_video_list(text))
        protocol, changed = dataclasses.replace(protocol, exclude_videos=ids), [*changed, "--exclude-videos"]
    if args.ambiguous is not None:
        path = None if args.ambiguous.strip().lower() == "none" else ambiguous_path(args.ambiguous)
        protocol, changed = dataclasses.replace(protocol, ambiguous=path), [*changed, "--ambiguous"]
    if args.tiou is not None:
        changed.append("--tiou")
    return protocol, origin + (f", {', '.join(changed)} given" if changed else "")


def _outputs(args) -> dict:
    names = ("pr_curves.png", "class_ap.png")  # what write_plots writes
    plots = {f"--plots {name}": args.plots / name for name in names} if args.plots else {}
    return {"--json": args.json, **plots}


def _inputs(args) -> dict:
    listed = args.exclude_videos[1:] if args.exclude_videos and args.exclude_videos.startswith("@") else None
    ambiguous = ambiguous_path(args.ambiguous) if args.ambiguous and args.ambiguous.lower() != "none" else None
    protocol = args.protocol if args.protocol and args.protocol.lower() != "none" else None
    return {
        "ground truth": args.ground_truth,
        "predictions": args.predictions,
        "--class-list": args.class_list,
        "--ambiguous": ambiguous,
        "--exclude-videos": listed,
        "--protocol": protocol,
    }


def _recall(args, ground_truth, proposals, exclude, ambiguous) -> RecallResult:
    """AR@AN of the segments in `proposals` (labels ignored), at the --recall-tiou thresholds."""
    thresholds = parse_thresholds(args.recall_tiou or "anet", "--recall-tiou", upper=1.0)
    try:
        return average_recall(ground_truth, proposals, thresholds, exclude_videos=exclude, ambiguous=ambiguous)
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"{args.predictions}: {err}") from None


def _report_recall_only(console: Console, args, recall: RecallResult, n_videos: int) -> int:
    """--proposals: what was read, the AR@AN table, and the --json document."""
    counts = recall.counts
    n_videos -= len(counts.get("excluded_videos", []))
    console.print(
        f"{counts['predictions']} proposals vs {counts['ground_truth']} instances in {n_videos} "
        f"videos of subset '{escape(args.subset)}'; {counts.get('kept_proposals', 0)} kept on "
        "videos with ground truth"
    )
    console.print(recall_table(recall))
    if args.json:
        doc = {
            "recall": recall_json(recall),
            "unit": "percent",
            "subset": args.subset,
            "exclude_videos": counts.get("excluded_videos", []),
            "ambiguous": str(args.ambiguous) if args.ambiguous else None,
            "counts": {k: v for k, v in counts.items() if isinstance(v, int)},
        }
        _write_json(console, args.json, doc)
    return 0


def _write_json(console: Console, path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(doc, indent=1) + "\n")
    record_output(path, "evaluate")
    console.print(f"wrote {escape(str(path))}")


def recall_table(recall: RecallResult) -> Table:
    """AR (%) at AN 1, 5, 10, 100 and the area under AR-AN (%), over the recall thresholds."""
    low, high = float(recall.thresholds.min()), float(recall.thresholds.max())
    span = f"{low:g}:{high:g}" if recall.thresholds.size > 1 else f"{low:g}"
    table = Table(title=f"Average recall (%), class-agnostic, tIoU {span}")
    table.add_column("AN", justify="right")
    table.add_column("AR (%)", justify="right")
    for an, value in recall.reported.items():
        table.add_row(f"AR@{an}", f"{100 * value:.2f}")
    table.add_section()
    table.add_row("AUC", f"{100 * recall.auc:.2f}")
    return table


def recall_json(recall: RecallResult) -> dict:
    """The "recall" entry of --json, percent: AR at the reported AN, AUC, and the whole AR-AN curve."""
    return {
        "tiou": [float(t) for t in recall.thresholds],
        "max_avg_proposals": recall.max_avg_proposals,
        "ar": {str(an): 100 * value for an, value in recall.reported.items()},
        "auc": 100 * recall.auc,
        "an": [float(v) for v in recall.proposals_per_video],
        "average_recall": [100 * float(v) for v in recall.average_recall],
    }


def write_plots(out_dir: Path, ground_truth, predictions, result: DetectionResult, exclude, ambiguous):
    """--plots: PR curves (same matching as the table) and per-class AP; returns the written paths."""
    from pointtal.evaluation.curves import segment_pr_curves
    from pointtal.viz import plot_class_ap, plot_pr_curves  # matplotlib: imported only when asked

    curves = segment_pr_curves(
        ground_truth, predictions, result.thresholds, exclude_videos=exclude, ambiguous=ambiguous
    )
    return [
        plot_pr_curves(out_dir / "pr_curves.png", curves, None),
        plot_class_ap(out_dir / "class_ap.png", result.classes, result.ap, result.thresholds, ground_truth.classes),
    ]


def parse_thresholds(text: str, option: str, upper: float | None) -> tuple[float, ...]:
    """'0.3,0.5' | 'START:STOP:STEP' (inclusive) | 'thumos' | 'anet' -> thresholds, validated."""
    text = text.strip()
    if text.lower() in NAMED_TIOUS and option != "--distance":
        return NAMED_TIOUS[text.lower()]
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = tuple(round(start + i * step, 10) for i in range(count))
        else:
            values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(
            f"{option} {text!r}: expected a comma list (0.3,0.5), START:STOP:STEP"
            f"{' or thumos/anet' if option != '--distance' else ''}"
        ) from None
    if not values:
        raise InputError(f"{option} {text!r}: no thresholds given")
    for v in values:
        if not math.isfinite(v) or v <= 0 or (upper is not None and v > upper):
            bound = f"(0, {upper}]" if upper is not None else "> 0"
            raise InputError(f"{option} {text!r}: threshold {v} must be {bound}")
    return values


def _as_list(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def parse_video_list(text: str) -> set[str]:
    """'id,id,...' or '@FILE' (ids separated by commas or whitespace); names of NAMED_EXCLUSIONS stay names
    (expanded by `excluded_videos`)."""
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise InputError(f"{path}: --exclude-videos file not found")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(f"{path}: --exclude-videos file is not UTF-8 text (byte {err.start})") from None
    ids = {v for v in text.replace(",", " ").split() if v}
    if not ids:
        raise InputError("--exclude-videos: no video ids given")
    return ids


def _print_notes(console: Console, args, result: DetectionResult, n_videos: int) -> None:
    """What was evaluated, and every option or rule that changed which predictions count."""
    counts = result.counts
    subset = escape(args.subset)
    kind = "single-frame" if args.frames else "segment"
    n_videos -= len(counts.get("excluded_videos", []))
    used = counts["predictions"]
    read = f" (of {counts['predictions_in']} read)" if used != counts["predictions_in"] else ""
    console.print(
        f"{used} {kind} predictions{read} vs {counts['ground_truth']} instances of "
        f"{len(result.classes)} classes in {n_videos} videos of subset '{subset}'"
    )
    if "excluded_videos" in counts:
        excluded = escape(", ".join(counts["excluded_videos"]) or "none")
        console.print(
            f"[bold]Excluding[/bold] {len(counts['excluded_videos'])} videos ({excluded}); "
            f"{counts['dropped_excluded']} predictions dropped"
        )
        if counts["excluded_unknown"]:
            unknown = escape(", ".join(counts["excluded_unknown"]))
            console.print(f"  not in the ground truth (nothing to exclude): {unknown}")
    if "dropped_ambiguous" in counts:
        what = "inside" if args.frames else "overlapping"
        console.print(
            f"[bold]Ambiguous segments on[/bold] ({escape(str(args.ambiguous))}): "
            f"{counts['dropped_ambiguous']} predictions {what} them discarded"
        )
    if counts.get("predictions_unknown_video"):
        console.print(
            f"note: {counts['predictions_unknown_video']} predictions are for videos outside subset "
            f"'{subset}' and count as false positives (official rule)"
        )
    if counts.get("ignored_class_without_gt"):
        console.print(
            f"note: {counts['ignored_class_without_gt']} predictions of classes without ground truth "
            f"in subset '{subset}' are ignored"
        )


def summary_table(result: DetectionResult) -> Table:
    """mAP (%) per threshold, then the averages the field reports."""
    table = Table()
    table.add_column("distance <=" if result.criterion == "distance" else "tIoU", justify="right")
    table.add_column("mAP (%)", justify="right")
    for threshold, value in zip(result.thresholds, result.map, strict=True):
        table.add_row(f"{threshold:g}", f"{100 * value:.2f}")
    table.add_section()
    for label, value in _averages(result).items():
        table.add_row(label, f"{100 * value:.2f}")
    return table


def per_class_table(result: DetectionResult) -> Table:
    table = Table(title="AP (%) per class")
    table.add_column("class")
    for threshold in result.thresholds:
        table.add_column(f"{threshold:g}", justify="right")
    for name, ap in result.per_class.items():
        table.add_row(name, *(f"{100 * v:.2f}" for v in ap))
    return table


def _averages(result: DetectionResult) -> dict[str, float]:
    """'average' over all thresholds; named for the THUMOS14 and ActivityNet sets (THUMOS: also 0.3:0.7)."""
    if result.criterion == "tiou" and _same(result.thresholds, THUMOS_TIOUS):
        return {"avg 0.1:0.7": result.average, "avg 0.3:0.7": result.average_over(0.3, 0.7)}
    if result.criterion == "tiou" and _same(result.thresholds, ANET_TIOUS):
        return {"avg 0.5:0.95": result.average}
    if result.criterion == "tiou" and _same(result.thresholds, THUMOS_TIOUS[2:]):  # the detectors' 0.3:0.7
        return {"avg 0.3:0.7": result.average}
    return {"average": result.average}


def _same(thresholds: np.ndarray, reference: tuple[float, ...]) -> bool:
    return len(thresholds) == len(reference) and bool(np.allclose(thresholds, reference, rtol=0, atol=1e-9))


def result_json(result: DetectionResult, args) -> dict:
    """The --json document (docs/evaluation.md), values in percent."""
    key = "distance" if result.criterion == "distance" else "tiou"
    out = {
        key: [float(t) for t in result.thresholds],
        "map": [100 * float(v) for v in result.map],
        "average": 100 * result.average,
        "per_class": {name: [100 * float(v) for v in ap] for name, ap in result.per_class.items()},
        "averages": {label: 100 * value for label, value in _averages(result).items()},
        "unit": "percent",
        "subset": args.subset,
        "exclude_videos": result.counts.get("excluded_videos", []),
        "ambiguous": str(args.ambiguous) if args.ambiguous else None,
        "counts": {k: v for k, v in result.counts.items() if isinstance(v, int)},
    }
    return out
