"""Time to accuracy: wall time until an SF-Net run first reaches a fixed average mAP, this tree vs a baseline
commit, trained one after the other in one invocation.

    python bench/time_to_map.py --data DIR [--baseline e310551] [--target 15] [--hidden 128] [--batch 4]
                                [--steps 400] [--eval-every 50] [--t-max 256 --t-max-alt 512]

DIR is `pointtal synth DIR --preset thumos14 --dim 2048` (written if absent): 200 training videos with the
real human clicks, 212 test videos. Each tree runs `pointtal train` in a fresh process (its own
`pointtal/`; the baseline's is extracted with `git archive`) with the same config and seed; the bench polls
the run's `metrics.jsonl` and stamps each evaluation with the wall time since the process started, so the
figure is what a researcher waits for: data loading, training steps and the evaluations on the 212 test
videos, until `average` >= --target. The machine is shared: compare the ratio, not the seconds.
The stderr of this tree's run (no terminal: one line per log_every steps) is kept as
OUT/this/train.log.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def config(args, data: Path) -> dict:
    points = [str(p) for p in sorted((data / "points").glob("annotator*.csv"))]
    return {
        "data": {"annotations": str(data / "annotations.json"), "features": str(data / "features"),
                 "points": points, "fps": 25, "stride": 16, "train_subset": "validation", "test_subset": "test",
                 "t_max": args.t_max, "t_max_alt": args.t_max_alt},
        "method": {"name": "sfnet", "hidden": args.hidden, "expand_step": args.expand_step},
        "train": {"steps": args.steps, "batch_size": args.batch, "lr": 1e-3, "eval_every": args.eval_every,
                  "checkpoint_every": 10**6, "log_every": args.log_every, "seed": args.seed, "device": "cpu",
                  "progress": False, "report": False},
    }


def run_tree(root: Path, cfg: Path, out: Path) -> tuple[list[tuple[float, dict]], float]:
    """Train with the `pointtal` under `root`; (seconds since start, record) per evaluation, total wall."""
    out.mkdir(parents=True, exist_ok=True)
    metrics = out / "run" / "metrics.jsonl"
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "pointtal", "train", str(cfg), "--out", str(out / "run"), "--no-progress"]
    stamped: list[tuple[float, dict]] = []
    started = time.perf_counter()
    with (out / "train.log").open("w") as log:
        child = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            done = child.poll() is not None
            lines = metrics.read_text().splitlines() if metrics.is_file() else []
            for line in lines[len(stamped):]:
                stamped.append((time.perf_counter() - started, json.loads(line)))
            if done:
                break
            time.sleep(0.2)
    if child.returncode:
        raise SystemExit(f"{root}: training failed, see {out / 'train.log'}")
    return stamped, time.perf_counter() - started


def summary(name: str, stamped, wall: float, target: float) -> str:
    reached = next(((t, r) for t, r in stamped if r["average"] >= target), None)
    when = f"{reached[0]:.0f} s (step {reached[1]['step']})" if reached else "not reached"
    curve = ", ".join(f"{r['step']}: {r['average']:.2f}" for _, r in stamped)
    return f"| {name} | {when} | {wall:.0f} s | {stamped[-1][1]['average']:.2f} | {curve} |", reached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a `pointtal synth --preset thumos14` directory")
    parser.add_argument("--baseline", default="e310551", metavar="REV", help="commit to compare with")
    parser.add_argument("--target", type=float, default=15.0, help="average mAP (percent) to reach")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--expand-step", type=int, default=200)
    parser.add_argument("--t-max", type=int, default=256)
    parser.add_argument("--t-max-alt", type=int, default=512)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "pointtal_time_to_map")
    args = parser.parse_args()
    if not (args.data / "annotations.json").is_file():
        subprocess.run([sys.executable, "-m", "pointtal", "synth", str(args.data), "--preset", "thumos14",
                        "--dim", "2048", "--dtype", "float16", "--no-progress"], check=True, cwd=REPO)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = args.out / "config.yaml"
    cfg.write_text(yaml.safe_dump(config(args, args.data)), encoding="utf-8")
    rows = []
    with tempfile.TemporaryDirectory(prefix="pointtal_base_") as base:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline, "pointtal"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", base], input=archive, check=True)
        for name, root in (("this tree", REPO), (args.baseline, Path(base))):
            out = args.out / ("this" if root == REPO else "baseline")
            if out.exists():
                subprocess.run(["rm", "-rf", str(out)], check=True)
            rows.append(summary(name, *run_tree(root, cfg, out), args.target))
    print(f"SF-Net, D 2048, H {args.hidden}, batch {args.batch}, crops {args.t_max}/{args.t_max_alt}, "
          f"{args.steps} steps, expansion at {args.expand_step}, eval every {args.eval_every} on 212 test videos; "
          f"target average mAP {args.target}")
    print("\n| tree | wall to target | total wall | final avg mAP | avg mAP by step |")
    print("|---|---|---|---|---|")
    for line, _ in rows:
        print(line)
    if rows[0][1] and rows[1][1]:
        print(f"\ntime to average mAP {args.target}: {rows[1][1][0] / rows[0][1][0]:.2f}x faster than {args.baseline}")


if __name__ == "__main__":
    main()
