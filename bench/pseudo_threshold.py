"""Pseudo-label threshold study: how `predict --pseudo-threshold R` trades precision for recall.

    python bench/pseudo_threshold.py [--steps 200] [--work /tmp/pointtal_pseudo]

On the `tiny` synthetic preset (seed 0): trains SF-Net and SODA for --steps, writes each run's validation
pseudo-labels for several R, and reports per R the instances per video, precision and recall at tIoU 0.5
against the true validation segments (one-to-one, class-aware, highest score first), and the test average
mAP of an SF-Net trained on the pseudo-labels with the `full` scheme (same steps).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from pointtal.cli import main
from pointtal.config import build_config
from pointtal.data.annotations import load_ground_truth
from pointtal.data.synthetic import generate
from pointtal.engine.pseudo_labels import pseudo_ground_truth
from pointtal.engine.trainer import train
from pointtal.localization.nms import pairwise_tiou

THRESHOLDS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)


def config(data: Path, method: str, steps: int, annotations: Path | None = None) -> dict:
    points = "full" if annotations else ("soda" if method == "soda" else
                                         [str(p) for p in sorted((data / "points").glob("annotator*.csv"))])
    raw = {
        "data": {"annotations": str(annotations or data / "annotations.json"), "features": str(data / "features"),
                 "points": points},
        "method": {"name": method, "hidden": 16, **({"resample_t": 64} if method == "soda" else {})},
        "train": {"steps": steps, "batch_size": 4, "lr": 1e-3, "eval_every": 0, "checkpoint_every": steps,
                  "log_every": steps, "device": "cpu", "progress": False, "report": False},
        "eval": {"batch_size": 8},
    }
    if method == "sfnet":
        raw["method"]["expand_step"] = steps // 2
    return raw


def matches(truth, pseudo: list[dict]) -> int:
    """True positives at tIoU 0.5: each true instance matched once, pseudo instances by descending score."""
    hits = 0
    for label in {a["label"] for a in pseudo}:
        gt = np.array([[i.start_sec, i.end_sec] for i in truth.instances if i.label == label]).reshape(-1, 2)
        used = np.zeros(len(gt), bool)
        for a in sorted((a for a in pseudo if a["label"] == label), key=lambda a: -a["score"]):
            iou = np.where(used, -1.0, pairwise_tiou(np.array([a["segment"]]), gt)[0]) if len(gt) else []
            if len(gt) and iou.max() >= 0.5:
                used[int(iou.argmax())] = True
                hits += 1
    return hits


def final_average(run: Path) -> float:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["average"]


def study(work: Path, steps: int) -> None:
    data = work / "data"
    if not data.exists():
        generate(data, "tiny", seed=0, progress=False)
    gt = load_ground_truth(data / "annotations.json")
    videos = gt.subset("validation")
    n_true = sum(len(v.instances) for v in videos)
    print(f"| source | R | instances / video (truth {n_true / len(videos):.2f}) | P@0.5 | R@0.5 | "
          "full-scheme SF-Net test avg mAP |")
    print("|---|---:|---:|---:|---:|---:|")
    for method in ("sfnet", "soda"):
        run = work / f"run_{method}"
        if not (run / "predictions.json").is_file():
            train(build_config(config(data, method, steps)), run)
        predicted = work / f"validation_{method}.json"
        main(["predict", str(run), "--subset", "validation", "--out", str(predicted), "--no-progress",
              "--overwrite"])
        segments = json.loads(predicted.read_text())["results"]
        print(f"| {method} run itself | | | | | {final_average(run):.2f} |")
        for r in THRESHOLDS:
            truth = pseudo_ground_truth(gt, segments, "validation", r, {})
            pseudo = {v.video_id: truth["database"][v.video_id]["annotations"] for v in videos}
            n = sum(len(p) for p in pseudo.values())
            hits = sum(matches(v, pseudo[v.video_id]) for v in videos)
            path = work / f"pseudo_{method}_{r}.json"
            path.write_text(json.dumps(truth))
            full = work / f"full_{method}_{r}"
            if not (full / "predictions.json").is_file():
                train(build_config(config(data, "sfnet", steps, annotations=path)), full)
            print(f"| {method} | {r:g} | {n / len(videos):.2f} | {hits / max(n, 1):.2f} | {hits / n_true:.2f} | "
                  f"{final_average(full):.2f} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path("/tmp/pointtal_pseudo"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in ("pointtal",):
        logging.getLogger(name).setLevel(logging.WARNING)
    study(args.work, args.steps)
