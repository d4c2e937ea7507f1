"""`pointtal annotate --agreement`: tables, JSON and the consensus file (figures: pointtal.data.agreement)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pointtal.atomic import write_text_atomic
from pointtal.data.agreement import BINS, match_pairs, merge_clicks, snippet_alpha, truth_report
from pointtal.data.points import write_points
from pointtal.outputs import record_output


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def report(args: argparse.Namespace, gt, annotators: list, default_tolerance: float) -> int:
    tolerance = args.tolerance if args.tolerance is not None else default_tolerance
    min_agree = args.min_agree if args.min_agree is not None else 2
    names = list(args.agreement)
    if args.subset:
        videos = {v.video_id: v for v in gt.subset(args.subset, args.ground_truth)}
    else:  # the videos the annotators clicked on that the ground truth holds
        clicked = {p.video_id for points in annotators for p in points}
        videos = {k: gt.videos[k] for k in sorted(clicked & set(gt.videos))}
    console = Console()
    truth = [truth_report(points, videos, args.background_label) for points in annotators]
    table = Table(
        title=f"against {escape(str(args.ground_truth))}: {len(videos)} videos, {truth[0].instances} instances"
    )
    for column in (
        "annotator",
        "clicks",
        "hit rate",
        "outside",
        "other class",
        f"position histogram ({BINS} bins, start -> end)",
    ):
        table.add_column(column, justify="left" if column in ("annotator",) else "right")
    for i, (name, stats) in enumerate(zip(names, truth, strict=True)):
        share = [c / max(sum(stats.histogram), 1) for c in stats.histogram]
        table.add_row(
            f"#{i + 1} {escape(Path(name).name)}",
            str(stats.clicks),
            _pct(stats.hit_rate),
            f"{stats.outside} ({_pct(stats.outside / stats.clicks if stats.clicks else math.nan)})",
            str(stats.other_class),
            " ".join(f"{100 * s:.0f}" for s in share),
        )
    console.print(table)
    classes = sorted({c for s in truth for c in s.per_class})
    per_class = Table(title="hit rate per class")
    per_class.add_column("class")
    for i in range(len(names)):
        per_class.add_column(f"#{i + 1}", justify="right")
    for label in classes:
        cells = []
        for stats in truth:
            row = stats.per_class.get(label, {})
            cells.append(_pct(row["hit"] / row["instances"]) if row.get("instances") else "-")
        per_class.add_row(escape(label), *cells)
    console.print(per_class)
    pairs = {}
    pair_table = Table(title=f"pairwise matching (same video and class, within {tolerance:g} s, one to one)")
    for column in ("a", "b", "matched", "of a", "of b", "mean offset (s)"):
        pair_table.add_column(column, justify="right")
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            stats = match_pairs(annotators[i], annotators[j], tolerance).as_dict()
            pairs[f"{i + 1}-{j + 1}"] = stats
            pair_table.add_row(
                f"#{i + 1}",
                f"#{j + 1}",
                str(stats["matched"]),
                _pct(stats["share_a"]),
                _pct(stats["share_b"]),
                f"{stats['mean_offset_sec']:.2f}",
            )
    console.print(pair_table)
    durations = {k: v.duration_sec for k, v in videos.items()}
    alpha, units = snippet_alpha(annotators, durations, args.fps, args.stride, tolerance)
    console.print(
        f"Krippendorff's alpha (nominal) on snippet labels: {alpha:.3f} over {units} snippets "
        f"(fps {args.fps:g}, stride {args.stride}, a click labels snippets within {tolerance:g} s)"
    )
    result = {
        "ground_truth": str(args.ground_truth),
        "tolerance_sec": tolerance,
        "fps": args.fps,
        "stride": args.stride,
        "videos": len(videos),
        "annotators": [{"file": n, **s.as_dict()} for n, s in zip(names, truth, strict=True)],
        "pairs": pairs,
        "alpha": {"value": alpha, "units": units},
    }
    if args.merge:
        merged, merge_report = merge_clicks(annotators, tolerance, min_agree)
        write_points(merged, args.merge)
        record_output(args.merge, "annotate")
        result["merge"] = {"file": args.merge, "min_agree": min_agree, **merge_report.as_dict()}
        dropped = ", ".join(f"{v} group(s) of {k}" for k, v in sorted(merge_report.dropped_groups.items()))
        print(
            f"wrote {args.merge}: {merge_report.kept} consensus clicks of {merge_report.groups} groups "
            f"(>= {min_agree} annotators within {tolerance:g} s); dropped {dropped or 'none'}; dropped clicks "
            f"per annotator {list(merge_report.dropped_clicks)}"
        )
    if args.json:
        write_text_atomic(args.json, json.dumps(_json_safe(result), indent=1, allow_nan=False) + "\n")
        record_output(args.json, "annotate")
        print(f"wrote {args.json}")
    return 0
