"""HR-Pro's evaluation time beside LACP's on the same test videos, and what `method.max_per_class` changes.

    python bench/hrpro_eval_speed.py --hrpro RUN_DIR --lacp RUN_DIR [--caps none,1000,200,100]

Each run is loaded from its checkpoint and evaluated as training evaluates (`evaluate_model`: predictions on
the test subset, then segment mAP, frame mAP and cmAP); HR-Pro once per `max_per_class` value of --caps (the
weights are the same: the cap only stops soft-NMS early). For the uncapped setting a second line scores the
official output: the stage-2 rows with start >= end that pointtal drops (`valid_segments`) are kept as false
positives (moved to a far-away valid segment with their score, which is how the official evaluator counts them:
tIoU 0 with every ground truth). Reported: wall and CPU seconds, segments written (total and the most for one
video), average mAP over the run's tIoUs and mAP@0.5.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pointtal.methods.hrpro as hrpro_module  # noqa: E402
from pointtal.engine.evaluate import evaluate_predictions  # noqa: E402
from pointtal.engine.predictor import load_trained  # noqa: E402
from pointtal.engine.setup import load_run_data  # noqa: E402
from pointtal.engine.trainer import run_predictions  # noqa: E402

FAR = -1e6  # where an inverted row goes to be scored as the official evaluator scores it


def evaluate(run, data, video_ids) -> dict:
    test = data.test
    started, cpu = time.perf_counter(), time.process_time()
    predictions = run_predictions(run.method, test, run.config, torch.device("cpu"), data.classes)
    record = evaluate_predictions(data.gt, video_ids, predictions, run.config.eval.tiou)
    counts = [len(v) for v in predictions.segments.values()]
    return {
        "wall": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "segments": sum(counts),
        "max_video": max(counts),
        "average": record["average"],
        "map50": record.get("mAP@0.5", float("nan")),
    }


def as_official_false_positives(segments: np.ndarray) -> np.ndarray:
    """Rows valid_segments would drop, moved to [FAR, FAR + 1] with their score (a finite score stays)."""
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 4).copy()
    bad = ~(np.isfinite(segments[:, 0]) & np.isfinite(segments[:, 1]) & (segments[:, 0] < segments[:, 1]))
    segments[bad, 0], segments[bad, 1] = FAR, FAR + 1
    as_official_false_positives.moved += int(bad.sum())
    return segments[np.isfinite(segments[:, 3])]


as_official_false_positives.moved = 0


def load(run_dir: str):
    run = load_trained(run_dir)
    data = load_run_data(run.config, train=False)
    return run, data, list(data.test.video_ids)


def line(name: str, r: dict) -> str:
    return (
        f"| {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['segments']:,} | {r['max_video']:,} | "
        f"{r['average']:.2f} | {r['map50']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hrpro", required=True)
    parser.add_argument("--lacp", required=True)
    parser.add_argument("--caps", default="none,1000,200,100")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| run | wall s | CPU s | segments | most for one video | average mAP | mAP@0.5 |")
    print("|---|---|---|---|---|---|---|")
    run, data, ids = load(args.lacp)
    print(line("LACP", evaluate(run, data, ids)), flush=True)
    run, data, ids = load(args.hrpro)
    options = run.method.options
    for cap in args.caps.split(","):
        value = None if cap == "none" else int(cap)
        run.method.options = dataclasses.replace(options, max_per_class=value)
        print(line(f"HR-Pro, max_per_class {cap}", evaluate(run, data, ids)), flush=True)
        if value is None:
            keep = hrpro_module.method.valid_segments
            hrpro_module.method.valid_segments = as_official_false_positives
            try:
                result = evaluate(run, data, ids)
            finally:
                hrpro_module.method.valid_segments = keep
            print(
                line(
                    f"HR-Pro, max_per_class none, the {as_official_false_positives.moved:,} inverted rows kept "
                    "as false positives (official)",
                    result,
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
