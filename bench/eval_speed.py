"""Segment mAP speed: pointtal's vectorised evaluator vs the loop-by-loop transcription of the official
ActivityNet code (tests/reference_eval.py), on random predictions over the THUMOS14 test ground truth at
tIoU 0.1:0.7, and a check that both give the same APs.

    python bench/eval_speed.py [--n 200000] [--seed 0] [--repeats 15]

The reference runs on all predictions; only when a timed probe says it would take more than
--reference-budget seconds is it run on a subsample and its time extrapolated linearly (then said so).
Both wall-clock and CPU time (time.process_time) are reported: on a shared machine another process's load
stretches wall time unevenly, while the CPU time of these single-threaded computations moves much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from reference_eval import reference_map  # noqa: E402

from pointtal.data.annotations import load_ground_truth  # noqa: E402
from pointtal.evaluation import THUMOS_TIOUS, SegmentTable, load_segment_predictions, segment_map  # noqa: E402

GT_PATH = ROOT / "pointtal" / "data" / "vendor" / "thumos14" / "groundtruth.json"


def random_predictions(gt: SegmentTable, n: int, rng: np.random.Generator) -> SegmentTable:
    """Jittered ground truth (boundaries +-40% of the length), 20% wrong labels, 5% unknown videos."""
    base = rng.integers(0, len(gt), n)
    label = gt.label[base].copy()
    wrong = rng.random(n) < 0.2
    label[wrong] = rng.integers(0, len(gt.classes), int(wrong.sum()))
    video = gt.video[base].copy()
    unknown = rng.random(n) < 0.05
    video[unknown] = len(gt.video_ids)  # a video without ground truth
    length = gt.end_sec[base] - gt.start_sec[base]
    start = gt.start_sec[base] + rng.normal(0, 0.4, n) * length
    end = np.maximum(gt.end_sec[base] + rng.normal(0, 0.4, n) * length, start + 0.1)
    return SegmentTable((*gt.video_ids, "video_unknown"), gt.classes, video, start, end, label, rng.random(n))


def rows(table: SegmentTable, with_score: bool) -> list[tuple]:
    ids = np.asarray(table.video_ids, dtype=object)[table.video]
    labels = np.asarray(table.classes, dtype=object)[table.label]
    cols = [ids, table.start_sec.tolist(), table.end_sec.tolist(), labels]
    if with_score:
        cols.append(table.score.tolist())
    return list(zip(*cols, strict=True))


def to_json(table: SegmentTable, path: Path) -> None:
    results: dict = {}
    for video, start, end, label, score in rows(table, True):
        results.setdefault(video, []).append({"label": label, "score": score, "segment": [start, end]})
    path.write_text(json.dumps({"version": "bench", "external_data": {}, "results": results}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="number of predictions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=15, help="fast evaluator runs (best time reported)")
    parser.add_argument(
        "--reference-budget",
        type=float,
        default=120.0,
        help="run the full reference only if a probe predicts at most this many seconds",
    )
    args = parser.parse_args()

    gt_file = load_ground_truth(GT_PATH)
    gt = SegmentTable.from_ground_truth(gt_file.subset("test"), gt_file.classes)
    pred = random_predictions(gt, args.n, np.random.default_rng(args.seed))
    print(f"THUMOS14 test: {len(gt)} instances; {len(pred)} predictions; tIoU {THUMOS_TIOUS}")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.1f}"
    )

    fast_times, fast_cpu_times = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = segment_map(gt, pred, THUMOS_TIOUS)
        fast_times.append(time.perf_counter() - t0)
        fast_cpu_times.append(time.process_time() - c0)
    fast, fast_cpu = min(fast_times), min(fast_cpu_times)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.json"
        to_json(pred, path)
        t0 = time.perf_counter()
        loaded = load_segment_predictions(path, gt.classes)
        load_time = time.perf_counter() - t0
    assert len(loaded) == len(pred)

    gt_rows, pred_rows = rows(gt, False), rows(pred, True)
    probe = pred_rows[: max(1, len(pred_rows) // 20)]
    t0 = time.perf_counter()
    reference_map(gt_rows, probe, THUMOS_TIOUS)
    predicted = (time.perf_counter() - t0) * len(pred_rows) / len(probe)
    if predicted <= args.reference_budget:
        t0, c0 = time.perf_counter(), time.process_time()
        classes, ref_ap = reference_map(gt_rows, pred_rows, THUMOS_TIOUS)
        reference, reference_cpu = time.perf_counter() - t0, time.process_time() - c0
        fast_ap = result.ap[:, [result.classes.index(c) for c in classes]]
        diff = float(np.abs(fast_ap - ref_ap).max())
        ref_note, equal = "full run", f"max |AP fast - AP reference| = {diff:.1e}"
        assert diff <= 1e-12, diff
    else:
        reference, ref_note = predicted, f"extrapolated from {len(probe)} predictions (probe)"
        reference_cpu = float("nan")
        equal = "not checked on the full set (reference too slow); see tests/evaluation/test_evaluation.py"

    print()
    print(f"| {'predictions':>11} | {'time':>9} | {'fast s':>7} | {'reference s':>11} | {'speed-up':>8} |")
    print(f"|{'-' * 13}|{'-' * 11}|{'-' * 9}|{'-' * 13}|{'-' * 10}|")
    print(f"| {len(pred):>11} | {'wall':>9} | {fast:>7.3f} | {reference:>11.2f} | {reference / fast:>7.0f}x |")
    print(
        f"| {len(pred):>11} | {'CPU':>9} | {fast_cpu:>7.3f} | {reference_cpu:>11.2f} | "
        f"{reference_cpu / fast_cpu:>7.0f}x |"
    )
    print()
    print(
        f"fast: best of {args.repeats} runs (median {np.median(fast_times):.3f} s); reference: {ref_note}; "
        f"load average now {os.getloadavg()[0]:.1f}"
    )
    print(f"JSON loading of the same predictions (load_segment_predictions): {load_time:.2f} s")
    print(f"mAP@0.1:0.7 = {', '.join(f'{100 * v:.2f}' for v in result.map)} (average {100 * result.average:.2f})")
    print(equal)


if __name__ == "__main__":
    main()
