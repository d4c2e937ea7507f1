"""Predict speed: SF-Net inference (`engine.inference.predict`, what `pointtal predict` and the evaluation
inside training run) against the time of its own matmuls, and against a baseline commit, in one run.

    python bench/predict_speed.py --data DIR [--every 4] [--hidden 512] [--batch 16] [--baseline e310551]

DIR is `pointtal synth DIR --preset thumos14 --dim 2048` (written if absent). The bench predicts the
`test` videos (every `--every`-th one, in ground-truth order; their lengths keep THUMOS14's spread) with a
randomly initialised SF-Net (inference time does not depend on the weights) and times:

* `predict`: scores + localization of every video, features already in memory (no disk);
* `matmuls`: the same network's matmuls alone (both streams: fused first projection, second FC, second
  actionness conv, classifier, actionness head) on the same real snippets, no padding, no other op;
* `predict (baseline)`: `predict` of the `--baseline` commit (its `pointtal/` extracted with `git archive`)
  in a child process on the same machine, right after.

Ratios are what to compare: the machine is shared, absolute seconds are not.
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

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def load_videos(data: Path, every: int) -> list[tuple[str, np.ndarray]]:
    """(video_id, (T, D) float32) of every `every`-th test video, in ground-truth order."""
    database = json.loads((data / "annotations.json").read_text(encoding="utf-8"))["database"]
    ids = [v for v, e in database.items() if e["subset"] == "test"][::every]
    return [(v, np.load(data / "features" / f"{v}.npy").astype(np.float32)) for v in ids]


def build(dim: int, hidden: int, n_classes: int, device: str, seed: int = 0):
    from pointtal.methods import build_method
    from pointtal.methods.sfnet import Options

    torch.manual_seed(seed)
    return build_method("sfnet", Options(hidden=hidden), dim, n_classes).to(device).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_predict(method, videos, batch: int, repeats: int, device: torch.device, amp: bool) -> float:
    """Best wall time of `predict` over `repeats` runs (features in host memory, as `pointtal predict`)."""
    from pointtal.data.features import SnippetGeometry
    from pointtal.engine.inference import predict

    geometries = {v: SnippetGeometry(25.0, 16) for v, _ in videos}
    classes = tuple(f"c{i}" for i in range(method.n_classes))
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        predict(method, videos, geometries, classes, batch_size=batch, device=device, amp=amp)
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return best


def time_matmuls(method, videos, batch: int, repeats: int, device: torch.device, amp: bool) -> float:
    """Best wall time of the network's matmuls alone on the real snippets of the same batches (inputs
    already on the device)."""
    from pointtal.engine.inference import autocast

    net = method.net
    lengths = [a.shape[0] for _, a in videos]
    order = sorted(range(len(videos)), key=lambda i: -lengths[i])
    batches = [np.concatenate([videos[i][1] for i in order[s : s + batch]]) for s in range(0, len(order), batch)]
    with torch.no_grad(), autocast(device, amp):
        plan = []
        for stream in (net.rgb, net.flow):
            first = torch.cat([stream.cls_layers[0].weight.t(), stream.act_layers[0].weight.flatten(1)], 1)
            later = [
                stream.cls_layers[1].weight.t(),
                stream.act_layers[1].weight.flatten(1),
                stream.classifier.weight.t(),
                stream.act_head.weight.t(),
            ]
            plan.append((first, later))
        inputs = [torch.from_numpy(rows).to(device) for rows in batches]
        hidden = [torch.rand(rows.shape[0], net.rgb.classifier.weight.shape[1], device=device) for rows in batches]
        best = float("inf")
        for _ in range(repeats):
            _sync(device)
            started = time.perf_counter()
            for rows, h in zip(inputs, hidden, strict=True):
                for half, (first, later) in zip((rows[:, : net.half], rows[:, net.half :]), plan, strict=True):
                    half @ first
                    for weight in later:
                        h @ weight
            _sync(device)
            best = min(best, time.perf_counter() - started)
    return best


def baseline_predict(rev: str, args) -> float:
    """`predict` time of commit `rev`, in a child process importing that commit's `pointtal`."""
    with tempfile.TemporaryDirectory(prefix="pointtal_base_") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev, "pointtal"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": tmp}
        cmd = [
            sys.executable,
            __file__,
            "--data",
            str(args.data),
            "--every",
            str(args.every),
            "--hidden",
            str(args.hidden),
            "--batch",
            str(args.batch),
            "--repeats",
            str(args.repeats),
            "--device",
            args.device,
            *(["--amp"] if args.amp else []),
            "--child",
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=tmp)
        return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a `pointtal synth --preset thumos14` directory")
    parser.add_argument("--dim", type=int, default=2048, help="feature width when DIR is synthesised here")
    parser.add_argument("--every", type=int, default=4, help="predict every n-th test video (1: all 212)")
    parser.add_argument("--hidden", type=int, default=512, help="SF-Net hidden width H (paper: 1024)")
    parser.add_argument("--batch", type=int, default=16, help="videos per inference batch (eval.batch_size)")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many timed runs")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA (train.amp, the default there)")
    parser.add_argument("--baseline", metavar="REV", help="also time `predict` of this commit (e.g. e310551)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
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
                str(args.dim),
                "--dtype",
                "float16",
                "--no-progress",
            ],
            check=True,
            cwd=REPO,
        )
    videos = load_videos(args.data, args.every)
    dim = videos[0][1].shape[1]
    device = torch.device(args.device)
    method = build(dim, args.hidden, 20, args.device)
    time_predict(method, videos[:2], args.batch, 1, device, args.amp)  # warm-up (CUDA context, kernels)
    if args.child:
        print(time_predict(method, videos, args.batch, args.repeats, device, args.amp))
        return
    n = sum(a.shape[0] for _, a in videos)
    padded = sum(
        max(a.shape[0] for _, a in videos[s : s + args.batch]) * len(videos[s : s + args.batch])
        for s in range(0, len(videos), args.batch)
    )
    predict_s = time_predict(method, videos, args.batch, args.repeats, device, args.amp)
    matmul_s = time_matmuls(method, videos, args.batch, args.repeats, device, args.amp)
    base_s = baseline_predict(args.baseline, args) if args.baseline else None
    print(
        f"{len(videos)} test videos, {n} snippets (list-order batches of {args.batch} pad to {padded}, "
        f"{padded / n:.2f}x), D {dim}, H {args.hidden}, device {args.device}{' bf16' if args.amp else ''}, "
        f"CPU threads {torch.get_num_threads()}"
    )
    print("\n| path | wall (s) | / matmuls |")
    print("|---|---|---|")
    print(f"| matmuls only | {matmul_s:.2f} | 1.00 |")
    print(f"| predict (this tree) | {predict_s:.2f} | {predict_s / matmul_s:.2f} |")
    if base_s is not None:
        print(f"| predict ({args.baseline}) | {base_s:.2f} | {base_s / matmul_s:.2f} |")


if __name__ == "__main__":
    main()
