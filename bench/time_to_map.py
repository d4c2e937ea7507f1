"""Time to accuracy: wall time until an SF-Net run first reaches a fixed average mAP, this tree vs a baseline
commit, trained one after the other in one invocation.

    python bench/time_to_map.py --data DIR [--baseline e310551] [--target 3 5 7] [--hidden 64] [--batch 4]
                                [--steps 160] [--eval-every 40] [--t-max 256 --t-max-alt 512] [--test-every 4]

DIR is `pointtal synth DIR --preset thumos14 --dim 2048` (written if absent): 200 training videos with the
real human clicks, 212 test videos. Each tree runs `pointtal train` in a fresh process (its own
`pointtal/`; the baseline's is extracted with `git archive`) with the same config and seed; the bench polls
the run's `metrics.jsonl` and stamps each evaluation with the wall time since the process started, so the
figure is what a researcher waits for: data loading, training steps and the evaluations on the test videos
(all 212, or every --test-every-th), until `average` reaches each --target level. The machine is shared: compare the ratio, not the seconds.
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


def annotations(data: Path, test_every: int, out: Path) -> Path:
    """DIR's ground truth with every `test_every`-th test video only (all training videos), to keep the
    evaluations short on a CPU; the file the runs read."""
    raw = json.loads((data / "annotations.json").read_text(encoding="utf-8"))
    test = [v for v, e in raw["database"].items() if e["subset"] == "test"]
    dropped = set(test) - set(test[::test_every])
    raw["database"] = {v: e for v, e in raw["database"].items() if v not in dropped}
    path = out / "annotations.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def config(args, data: Path, gt: Path) -> dict:
    points = [str(p) for p in sorted((data / "points").glob("annotator*.csv"))]
    return {
        "data": {
            "annotations": str(gt),
            "features": str(data / "features"),
            "points": points,
            "fps": 25,
            "stride": 16,
            "train_subset": "validation",
            "test_subset": "test",
        },
        "method": {
            "name": "sfnet",
            "hidden": args.hidden,
            "t_max": args.t_max,
            "t_max_alt": args.t_max_alt,
            "expand": args.expand_step > 0,
            "expand_step": max(args.expand_step, 1),
        },
        "train": {
            "steps": args.steps,
            "batch_size": args.batch,
            "lr": 1e-3,
            "eval_every": args.eval_every,
            "checkpoint_every": 10**6,
            "log_every": args.log_every,
            "seed": args.seed,
            "device": "cpu",
            "progress": False,
            "report": False,
        },
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
            for line in lines[len(stamped) :]:
                stamped.append((time.perf_counter() - started, json.loads(line)))
            if done:
                break
            time.sleep(0.2)
    if child.returncode:
        raise SystemExit(f"{root}: training failed, see {out / 'train.log'}")
    return stamped, time.perf_counter() - started


def reach(stamped, target: float) -> str:
    """'seconds (step)' of the first evaluation with average mAP >= target."""
    hit = next(((t, r) for t, r in stamped if r["average"] >= target), None)
    return f"{hit[0]:.0f} s (step {hit[1]['step']})" if hit else "not reached"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a `pointtal synth --preset thumos14` directory")
    parser.add_argument("--baseline", default="e310551", metavar="REV", help="commit to compare with")
    parser.add_argument(
        "--target", type=float, nargs="+", default=[3.0, 5.0, 7.0], help="average mAP levels (percent) to time"
    )
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=160)
    parser.add_argument("--eval-every", type=int, default=40)
    parser.add_argument(
        "--expand-step", type=int, default=0, help="anchor expansion (and re-initialisation) at this step; 0: none"
    )
    parser.add_argument("--t-max", type=int, default=256)
    parser.add_argument("--t-max-alt", type=int, default=512)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-every", type=int, default=1, help="evaluate on every n-th test video (1: all 212)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "pointtal_time_to_map")
    args = parser.parse_args()
    if not (args.data / "annotations.json").is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pointtal",
                "synth",
                str(args.data),
                "--preset",
                "thumos14",
                "--dim",
                "2048",
                "--dtype",
                "float16",
                "--no-progress",
            ],
            check=True,
            cwd=REPO,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = args.out / "config.yaml"
    gt = annotations(args.data, args.test_every, args.out)
    n_test = sum(e["subset"] == "test" for e in json.loads(gt.read_text())["database"].values())
    cfg.write_text(yaml.safe_dump(config(args, args.data, gt)), encoding="utf-8")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="pointtal_base_") as base:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", args.baseline, "pointtal"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", base], input=archive, check=True)
        for name, root, folder in (("this tree", REPO, "this"), (args.baseline, Path(base), "baseline")):
            out = args.out / folder
            if out.exists():
                subprocess.run(["rm", "-rf", str(out)], check=True)
            runs[name] = run_tree(root, cfg, out)
            (out / "stamps.json").write_text(json.dumps(runs[name][0]), encoding="utf-8")
    expansion = f"expansion at {args.expand_step}" if args.expand_step else "no anchor expansion"
    print(
        f"SF-Net, D 2048, H {args.hidden}, batch {args.batch}, crops {args.t_max}/{args.t_max_alt}, "
        f"{args.steps} steps, {expansion}, eval every {args.eval_every} on {n_test} test videos, "
        f"seed {args.seed}"
    )
    heads = " | ".join(f"to avg mAP {t:g}" for t in args.target)
    print(f"\n| tree | {heads} | total wall | avg mAP by step |")
    print("|---|" + "---|" * len(args.target) + "---|---|")
    for name, (stamped, wall) in runs.items():
        cells = " | ".join(reach(stamped, t) for t in args.target)
        curve = ", ".join(f"{r['step']}: {r['average']:.2f}" for _, r in stamped)
        print(f"| {name} | {cells} | {wall:.0f} s | {curve} |")


if __name__ == "__main__":
    main()
