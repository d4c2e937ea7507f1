"""The pseudo-label route on synthetic THUMOS14: point method vs point method -> ActionFormer (issue 21).

    python bench/route_table.py --out /tmp/route_table            # every run, then OUT/route_table.md
    python bench/route_table.py --out /tmp/route_table --jobs 2   # two runs at a time
    python bench/route_table.py --out /tmp/route_table --table    # the table of the runs finished so far

Rows (3 seeds; seed k sets train.seed and data.point_seed): `full` SF-Net and ActionFormer on the ground truth;
SF-Net, LACP and HR-Pro on simulated Gaussian points (one per instance, the LACP / HR-Pro protocol), each followed
by ActionFormer trained on its pseudo labels (`pointtal predict TEACHER --pseudo-labels P.json --subset validation`,
then `data.segments=P.json`). Every row reads the same `pointtal synth --preset thumos14 --dim DIM` files; all test
videos are evaluated (`data.exclude_videos=[]`), final model, no selection on the test set. The table gives
mAP@0.1..0.7 and both field averages, each computed here from the per-tIoU numbers: 0.1:0.7 (point-supervised
papers) and 0.3:0.7 (fully supervised papers).

SCALED DOWN for a 2-core CPU shared by several people (BENCHMARKS.md says by how much): each run on 1 thread
under `nice -n 10`. Rerunning continues: a finished run (predictions.json) is reused, an unfinished one resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TIOUS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
TEACHERS = {
    "sfnet": "configs/thumos14_sfnet.yaml",
    "lacp": "configs/thumos14_lacp.yaml",
    "hrpro": "configs/thumos14_hrpro.yaml",
}
LABELS = {
    "full": "`full` SF-Net (ground truth)",
    "af-full": "ActionFormer (ground truth)",
    "hrpro": "HR-Pro",
    "hrpro-af": "HR-Pro -> ActionFormer",
    "lacp": "LACP",
    "lacp-af": "LACP -> ActionFormer",
    "sfnet": "SF-Net",
    "sfnet-af": "SF-Net -> ActionFormer",
}


def budgets(args) -> dict[str, list[str]]:
    """--set overrides per row kind (the scaled-down budget)."""
    steps = [
        "--set",
        "train.epochs=null",
        "--set",
        f"train.steps={args.steps}",
        "--set",
        "train.lr=1e-3",
        "--set",
        "train.batch_size=16",
    ]
    point = ["--set", "data.points=gaussian", "--set", f"method.hidden={args.hidden}"]
    return {
        "full": ["--set", f"method.hidden={args.hidden}", *steps],
        "sfnet": [*point, "--set", f"method.expand_step={args.steps // 2}", *steps],
        "lacp": [*point, "--set", f"method.num_segments={args.segments}", *steps],
        "hrpro": [
            "--set",
            "data.points=gaussian",
            "--set",
            f"method.num_segments={args.segments}",
            "--set",
            "method.stage2_lr=5e-4",
            "--set",
            f"method.stage2_epochs={args.stage2_epochs}",
            *steps,
        ],
        "af": [
            "--set",
            f"method.embed_dim={args.width}",
            "--set",
            f"method.head_dim={args.width}",
            "--set",
            f"method.max_seq_len={args.max_seq_len}",
            "--set",
            f"train.epochs={args.epochs}",
            "--set",
            "method.warmup_epochs=1",
            "--set",
            f"train.lr={args.af_lr}",
            "--set",
            "method.ema=false",
            "--set",
            "eval.tiou=[0.1,0.2,0.3,0.4,0.5,0.6,0.7]",
        ],
    }


def common(data: Path) -> list[str]:
    return [
        "--set",
        f"data.annotations={data}/annotations.json",
        "--set",
        f"data.features={data}/features",
        "--set",
        "train.device=cpu",
        "--set",
        "train.report=false",
        "--set",
        "train.eval_every=0",
        "--set",
        "data.exclude_videos=[]",
        "--set",
        "data.ambiguous=null",
        "--no-progress",
    ]


def run(cmd: list[str], log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with log.open("a") as handle:
        handle.write("$ " + " ".join(cmd) + "\n")
        handle.flush()
        done = subprocess.run(["nice", "-n", "10", *cmd], stdout=handle, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        raise RuntimeError(f"failed ({log}): {' '.join(cmd[:4])}")


def train(args, config: str, run_dir: Path, extra: list[str], seed: int) -> float:
    """Train one run (resumed when it holds a checkpoint); seconds taken, 0 when already finished."""
    if (run_dir / "predictions.json").is_file():
        return 0.0
    start = time.time()
    resume = ["--resume"] if (run_dir / "checkpoint.pt").is_file() else []
    run(
        [
            args.pointtal,
            "train",
            config,
            "--out",
            str(run_dir),
            *common(args.data),
            *extra,
            "--set",
            f"train.seed={seed}",
            "--set",
            f"data.point_seed={seed}",
            *resume,
        ],
        args.out / "logs" / f"{run_dir.parent.name}-{run_dir.name}.log",
    )
    return time.time() - start


def stream(args, name: str, seed: int) -> str:
    """One row's run for one seed (a teacher row also trains its ActionFormer student); a failure is reported."""
    try:
        return _stream(args, name, seed)
    except RuntimeError as err:
        return f"{name} seed {seed}: FAILED {err}"


def _stream(args, name: str, seed: int) -> str:
    b, out = budgets(args), args.out
    times = []
    if name == "full":
        times.append(train(args, "configs/thumos14_sfnet_full.yaml", out / "full" / f"seed{seed}", b["full"], seed))
        times.append(train(args, "configs/thumos14_actionformer.yaml", out / "af-full" / f"seed{seed}", b["af"], seed))
    else:
        teacher = out / name / f"seed{seed}"
        times.append(train(args, TEACHERS[name], teacher, b[name], seed))
        pseudo = out / "pseudo" / f"{name}-seed{seed}.json"
        if not pseudo.is_file():
            pseudo.parent.mkdir(parents=True, exist_ok=True)
            run(
                [
                    args.pointtal,
                    "predict",
                    str(teacher),
                    "--pseudo-labels",
                    str(pseudo),
                    "--subset",
                    "validation",
                    "--no-progress",
                ],
                out / "logs" / f"pseudo-{name}-seed{seed}.log",
            )
        times.append(
            train(
                args,
                "configs/thumos14_actionformer.yaml",
                out / f"{name}-af" / f"seed{seed}",
                [*b["af"], "--set", f"data.segments={pseudo}"],
                seed,
            )
        )
    return f"{name} seed {seed}: " + " + ".join(f"{t:.0f} s" for t in times)


def final_row(run_dir: Path) -> dict | None:
    path = run_dir / "metrics.jsonl"
    if not (path.is_file() and (run_dir / "predictions.json").is_file()):
        return None
    return json.loads(path.read_text().splitlines()[-1])


def table(out: Path, seeds: int) -> str:
    head = [f"mAP@{t}" for t in TIOUS] + ["avg 0.1:0.7", "avg 0.3:0.7"]
    lines = ["| row | " + " | ".join(head) + " | runs |", "|---|" + "---:|" * len(head) + "---:|"]
    for name, label in LABELS.items():
        values = []
        for k in range(seeds):
            row = final_row(out / name / f"seed{k}")
            if row is not None:
                per = [row[f"mAP@{t}"] for t in TIOUS]
                values.append(per + [statistics.mean(per), statistics.mean(per[2:])])  # both averages from the tIoUs
        if not values:
            continue
        cells = []
        for column in zip(*values, strict=True):
            std = f" ± {statistics.stdev(column):.2f}" if len(column) > 1 else ""
            cells.append(f"{statistics.mean(column):.2f}{std}")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {len(values)} |")
    return (
        "mean ± sample std (n-1) over seeds, mAP in percent, test subset (all 212 videos), final model\n\n"
        + "\n".join(lines)
        + "\n"
    )


def pseudo_table(out: Path, data: Path, seeds: int) -> str:
    """Per teacher: the pseudo labels' instances on the training videos and their precision / recall at tIoU 0.5
    against the true segments (bench/pseudo_threshold.py's one-to-one matching), mean over the seeds written."""
    sys.path.insert(0, str(Path(__file__).parent))
    from pseudo_threshold import matches

    from pointtal.data.annotations import load_ground_truth

    gt = load_ground_truth(data / "annotations.json")
    videos = [v for v in gt.videos.values() if v.subset == "validation"]
    n_true = sum(len(v.instances) for v in videos)
    lines = ["| teacher | seeds | instances (truth " + str(n_true) + ") | P@0.5 | R@0.5 |", "|---|---:|---:|---:|---:|"]
    for name in TEACHERS:
        rows = []
        for k in range(seeds):
            path = out / "pseudo" / f"{name}-seed{k}.json"
            if path.is_file():
                database = json.loads(path.read_text())["database"]
                n = sum(len(database[v.video_id]["annotations"]) for v in videos)
                hits = sum(matches(v, database[v.video_id]["annotations"]) for v in videos)
                rows.append((n, hits / max(n, 1), hits / n_true))
        if rows:
            n, p, r = (statistics.mean(c) for c in zip(*rows, strict=True))
            lines.append(f"| {LABELS[name]} | {len(rows)} | {n:.0f} | {p:.3f} | {r:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/route_table"))
    parser.add_argument("--data", type=Path, help="synth directory (default OUT/data, written when missing)")
    parser.add_argument("--dim", type=int, default=64, help="synthetic feature width")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", default="full,hrpro,lacp,sfnet", help="row groups to run")
    parser.add_argument("--only", help="NAME:SEED,... instead of every row and seed")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--steps", type=int, default=400, help="steps of the point methods and `full` SF-Net")
    parser.add_argument("--hidden", type=int, default=64, help="SF-Net / LACP hidden width")
    parser.add_argument("--segments", type=int, default=128, help="LACP / HR-Pro num_segments")
    parser.add_argument("--stage2-epochs", type=int, default=2, help="HR-Pro stage-2 epochs")
    parser.add_argument("--epochs", type=int, default=4, help="ActionFormer epochs (1 of warm-up)")
    parser.add_argument("--width", type=int, default=64, help="ActionFormer embed_dim and head_dim")
    parser.add_argument("--max-seq-len", type=int, default=576, help="ActionFormer's training crops (feature steps)")
    parser.add_argument("--af-lr", type=float, default=3e-4)
    parser.add_argument("--pointtal", default=str(Path(sys.executable).parent / "pointtal"))
    parser.add_argument("--table", action="store_true", help="only write the table of the finished runs")
    args = parser.parse_args(argv)
    args.data = args.data or args.out / "data"
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    if not args.table:
        if not (args.data / "annotations.json").is_file():
            run(
                [
                    args.pointtal,
                    "synth",
                    str(args.data),
                    "--preset",
                    "thumos14",
                    "--dim",
                    str(args.dim),
                    "--no-progress",
                ],
                args.out / "logs" / "synth.log",
            )
        jobs = [(name, k) for k in range(args.seeds) for name in args.rows.split(",")]
        if args.only:  # NAME:SEED,... (parallel invocations on one OUT must not share a run)
            jobs = [(name, int(k)) for name, k in (item.split(":") for item in args.only.split(","))]
        with ThreadPoolExecutor(args.jobs) as pool:
            for line in pool.map(lambda job: stream(args, *job), jobs):
                print(line, flush=True)
    text = table(args.out, args.seeds) + "\n" + pseudo_table(args.out, args.data, args.seeds)
    (args.out / "route_table.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
