"""`pointtal demo`: synthesise the tiny benchmark, train the weak baseline, SF-Net, SODA, LACP and HR-Pro, then
ActionFormer on SODA's pseudo labels (the route of configs/thumos14_hrpro_actionformer.yaml, reusing the SODA run
as its teacher), print a table."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from pointtal.cli import checks

HELP = (
    "end-to-end demo on the built-in tiny synthetic dataset: weak vs SF-Net vs SODA vs LACP vs HR-Pro vs "
    "ActionFormer on SODA's pseudo labels"
)
EXAMPLE = "pointtal demo --out runs/demo\n  pointtal demo --out /tmp/demo --quick   # fewer steps, for a smoke test"

MARKER = ".pointtal-demo.json"
ACTIONFORMER, TEACHER = "actionformer", "soda"  # the detector's row and the run whose pseudo labels it trains on


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", metavar="DIR", help="output directory (default runs/demo)")
    parser.add_argument("--quick", action="store_true", help="a few steps only (smoke test, numbers meaningless)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and training (default 0)")


def check_args(args: argparse.Namespace) -> None:
    checks.number(args, "seed", 0)
    checks.not_a_file(args, "out", "a directory for the demo's data and runs")


def demo_configs(data: Path, steps: int, seed: int) -> dict[str, dict]:
    """Raw configs of the demo's rows: small networks and a higher learning rate than the presets,
    since the tiny data has 24 training videos and 64-wide features."""
    common = {
        "annotations": str(data / "annotations.json"),
        "features": str(data / "features"),
        "fps": 25,
        "stride": 16,
        "train_subset": "validation",
        "test_subset": "test",
    }
    clicks = [str(p) for p in sorted((data / "points").glob("annotator*.csv"))]
    train = {
        "steps": steps,
        "batch_size": 8,
        "lr": 1e-3,
        "eval_every": 0,
        "checkpoint_every": max(steps // 4, 1),
        "seed": seed,
        "device": "auto",
        "progress": True,
    }
    return {
        "weak": {"data": {**common, "points": "weak"}, "method": {"name": "weak"}, "train": train},
        "sfnet": {
            "data": {**common, "points": clicks},
            "method": {"name": "sfnet", "expand_step": steps // 2},
            "train": train,
        },
        "soda": {
            "data": {**common, "points": "soda"},
            "method": {"name": "soda", "hidden": 64, "resample_t": 100},
            "train": {**train, "steps": steps // 2},
        },
        "lacp": {
            "data": {**common, "points": clicks},
            "method": {"name": "lacp", "hidden": 64},
            "train": {**train, "steps": steps // 2},
        },
        # stage 1 for steps // 2, then stage 2 for 20 epochs (3 steps each here) at the demo's stage-1 lr
        "hrpro": {
            "data": {**common, "points": clicks},
            "method": {"name": "hrpro", "stage2_lr": 1e-3},
            "train": {**train, "steps": steps // 2},
        },
        # the route with the SODA run above as its teacher (teacher.run): SODA's pseudo labels for the training
        # videos -> a 64-wide ActionFormer, 20 epochs of batch 2 (240 steps; 2 epochs with --quick), trained weights
        ACTIONFORMER: {
            "data": {**common, "segments": "teacher"},
            "teacher": {"run": str(data.parent / TEACHER)},
            "method": {
                "name": "actionformer",
                "embed_dim": 64,
                "head_dim": 64,
                "max_seq_len": 256,
                "warmup_epochs": 2,
                "ema": False,
            },
            "train": {
                **{k: v for k, v in train.items() if k != "steps"},
                "epochs": max(steps // 30, 2),
                "batch_size": 2,
            },
        },
    }


def _fresh_dir(out: Path, names: list[str]) -> None:
    """Remove run directories of an earlier demo in `out` (only those the marker lists)."""
    marker = out / MARKER
    if marker.is_file():
        for name in json.loads(marker.read_text(encoding="utf-8")).get("runs", []):
            if name in names:
                shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"runs": names}), encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from pointtal.config import build_config
    from pointtal.data.synthetic import generate
    from pointtal.engine.route import train_route
    from pointtal.engine.trainer import train
    from pointtal.evaluation import THUMOS_TIOUS

    # The tiny models gain nothing from intra-op threads, and on a busy machine spinning OpenMP threads
    # slow them down by an order of magnitude (measured: 30 s vs 9 min for the demo next to another job).
    torch.set_num_threads(1)
    out = Path(args.out)
    console = Console(stderr=False)
    steps = 40 if args.quick else 600
    data = out / "data"
    if out.exists() and not out.is_dir():
        from pointtal.errors import InputError

        raise InputError(f"--out {out}: is a file; give a directory")
    if out.exists() and not (out / MARKER).is_file() and any(out.iterdir()):
        from pointtal.errors import InputError

        raise InputError(f"{out}: exists and is not a demo directory; choose another --out")
    names = list(demo_configs(data, steps, args.seed))  # the rows (their click paths exist only after synthesis)
    _fresh_dir(out, names)
    console.print(f"[bold]1/2[/] synthesising the tiny benchmark in {data}")
    generate(data, "tiny", seed=args.seed, progress=False)
    configs = demo_configs(data, steps, args.seed)
    rows = {}
    for i, (name, raw) in enumerate(configs.items(), 1):
        console.print(f"[bold]2/2[/] training {name} ({i}/{len(configs)}) -> {out / name}")
        result = (train_route if "teacher" in raw else train)(build_config(raw, f"demo {name}"), out / name)
        rows[name] = result.metrics
    table = Table(title=f"segment mAP (%), tiny synthetic test set, {steps} steps")
    for col in ["method", *[f"@{t:g}" for t in THUMOS_TIOUS], "avg"]:
        table.add_column(col, justify="right" if col != "method" else "left")
    for name, record in rows.items():
        table.add_row(name, *[f"{record[f'mAP@{t:g}']:.1f}" for t in THUMOS_TIOUS], f"{record['average']:.1f}")
    console.print(table)
    for name in rows:
        console.print(f"  {name:6s} run directory: {out / name}")
    console.print("  each holds predictions.json, metrics.jsonl, checkpoint.pt, best.pt and tensorboard/")
    console.print(
        f"  {ACTIONFORMER}: a detector trained on {TEACHER}'s pseudo labels of the training videos "
        f"({out / ACTIONFORMER / 'pseudo_labels.json'}), the route to the best accuracy (README)"
    )
    return 0
