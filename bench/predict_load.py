"""Load benchmark: `pointtal predict` over many videos runs in bounded memory (memory-mapped features).

    python bench/predict_load.py [--videos 500 5000] [--dim 2048] [--snippets 300] [--work /tmp/pointtal_load]

Trains a tiny SF-Net for a few steps on synthetic features of width `--dim`, then writes a ground truth of N
test videos (each `--snippets` long, one feature file per video) and runs `pointtal predict` on it in a
fresh process for each N, reporting wall time and the child's peak RSS. Bounded memory means the peak RSS
barely grows from 500 to 5,000 videos (only the predictions themselves accumulate).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml


def write_dataset(root: Path, n_videos: int, n_train: int, dim: int, snippets: int, seed: int = 0) -> None:
    """N test + n_train validation videos of random non-negative features, 4 classes, one instance each."""
    rng = np.random.default_rng(seed)
    features = root / "features"
    features.mkdir(parents=True, exist_ok=True)
    classes = ["A", "B", "C", "D"]
    database = {}
    duration = snippets * 16 / 25
    for i in range(n_videos + n_train):
        subset = "test" if i < n_videos else "validation"
        video_id = f"v{i:06d}"
        label = classes[i % 4]
        start = float(rng.uniform(0, duration / 2))
        database[video_id] = {
            "subset": subset,
            "duration": duration,
            "fps": 25,
            "annotations": [{"segment": [round(start, 2), round(start + duration / 4, 2)], "label": label}],
        }
        array = rng.random((snippets, dim), dtype=np.float32)
        np.save(features / f"{video_id}.npy", array.astype(np.float16))
    (root / "gt.json").write_text(json.dumps({"database": database}), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--snippets", type=int, default=200)
    parser.add_argument("--work", default="/tmp/pointtal_load")
    args = parser.parse_args()
    rows = []
    for n in args.videos:  # each N in its own directory and child process: ru_maxrss is a running maximum
        root = Path(args.work) / f"n{n}"
        if not (root / "gt.json").is_file():
            write_dataset(root, n, 16, args.dim, args.snippets)
        config = {
            "data": {
                "annotations": str(root / "gt.json"),
                "features": str(root / "features"),
                "points": "sfnet-uniform",
            },
            "method": {"name": "sfnet", "hidden": 64, "expand": False},
            "train": {"steps": 3, "batch_size": 8, "eval_every": 0, "device": "cpu", "progress": False},
        }
        (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        run = root / "run"
        if not (run / "checkpoint.pt").is_file():
            code = f"""
import yaml
from pointtal.config import build_config
from pointtal.engine.trainer import train
raw = yaml.safe_load(open({str(root / "config.yaml")!r}))
raw['data']['test_subset'] = 'validation'   # keep the training run's own evaluation small
train(build_config(raw), {str(run)!r})
"""
            subprocess.run([sys.executable, "-c", code], check=True, stderr=subprocess.DEVNULL)
        cmd = [
            sys.executable,
            "-m",
            "pointtal",
            "predict",
            str(run),
            "--subset",
            "test",
            "--checkpoint",
            str(run / "checkpoint.pt"),
            "--out",
            str(root / "predictions.json"),
            "--no-progress",
        ]
        script = (
            "import resource, subprocess, sys, time; s = time.perf_counter(); "
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(time.perf_counter() - s, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
        )
        out = subprocess.run([sys.executable, "-c", script, *cmd], check=True, capture_output=True, text=True)
        wall, rss = map(float, out.stdout.split())
        feature_mb = sum(p.stat().st_size for p in (root / "features").glob("*.npy")) / 2**20
        rows.append((n, args.dim, args.snippets, feature_mb, wall, rss))
    print("\n| videos | D | T per video | features on disk (MiB) | predict wall (s) | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for n, dim, t, mb, wall, rss in rows:
        print(f"| {n} | {dim} | {t} | {mb:.0f} | {wall:.1f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
