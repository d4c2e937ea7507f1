"""A training step of pointtal's LACP, HR-Pro (stage 1) and SF-Net side by side with the official code, same inputs.

    python bench/vs_official.py --lacp /tmp/official/LACP --hrpro /tmp/official/HR-Pro \\
        [--videos 16 --t 750 --dim 2048 --classes 20 --reps 5 --threads 1 --profile --parts]
    python bench/vs_official.py --sfnet /tmp/official/SF-Net --videos 32 --t 750

The official code is imported from the given checkouts (outside this repository; `.cuda()` patched to a
no-op at run time) and driven through its own training-step functions: LACP's `train.train` (16 single-video
forwards of `model.Model`, `Total_loss`, one backward, Adam) and HR-Pro's `train.S_train` (16 single-video
forwards of `model_S.S_Model` with its criterion and memory updates, one backward, Adam) and SF-Net's
`train.train_SF` ("single" mode: one padded-batch forward of `model.SFNET`, the video, frame and actionness
losses of its three outputs, one backward, Adam; its batch comes from a stand-in for `load_frame_data` that
returns the same videos zero-padded to `--t`, as the official crop of `t_max` does, and centre-loss optimisers
with no parameters, which "single" mode never updates). pointtal runs the same step on the padded batch:
forward, `loss`, backward, Adam (HR-Pro with its preset's per-video forwards and memory updates,
`memory_update: video`, as the official). Both get the same videos (lengths T/2..T, random
features, one point per ~20 snippets, LACP dense pseudo labels as after a search), one thread each, in train
mode (dropout on). Repetitions interleave the two (the order alternates); the times are medians and the
speed-up is the median of the repetitions' own official / pointtal ratios (robust to the machine's drift).

"matmul time" = the step's FLOPs (forward + loss + backward, `torch.utils.flop_counter` on pointtal's step) at
the rate of an (N x D) @ (D x D) float32 matmul, N = the batch's real snippets, the faster of torch's (MKL) and
oneDNN's, timed next to every step: how far the step is from pure matmul throughput. Prints a markdown table.

`--malloc keep` (default) runs the whole process, both codes, with freed memory kept for reuse as pointtal's CPU
work does (`pointtal/engine/memory.py`); `--malloc system` times both with glibc's malloc as it is.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pointtal.data.batch import make_batch  # noqa: E402
from pointtal.engine.memory import keep_freed_memory  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lacp", help="official LACP checkout (Pilhyeon/Learning-Action-Completeness-from-Points)")
    p.add_argument("--hrpro", help="official HR-Pro checkout (pipixin321/HR-Pro)")
    p.add_argument("--sfnet", help="official SF-Net checkout (Flowerfan/SF-Net); official shape: --videos 32 --t 750")
    p.add_argument("--videos", type=int, default=16, help="videos per step (official: 16)")
    p.add_argument("--t", type=int, default=750, help="longest video; lengths are drawn from T/2..T")
    p.add_argument("--dim", type=int, default=2048, help="feature width D (LACP's hidden width is 2048 in its code)")
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--reps", type=int, default=5, help="timed repetitions of each (interleaved)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="print the top operators of one pointtal step")
    p.add_argument(
        "--parts", action="store_true", help="print pointtal's forward / loss / backward / optimiser seconds (3 steps)"
    )
    p.add_argument(
        "--malloc",
        choices=["keep", "system"],
        default="keep",
        help="keep (default): the whole process keeps freed memory for reuse, as pointtal's CPU work does "
        "(engine/memory.py), so the official step runs with it too; system: glibc's malloc as it is",
    )
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- shared inputs


def make_videos(args) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(args.seed)
    lengths = rng.integers(args.t // 2, args.t + 1, args.videos)
    lengths[0] = args.t
    videos = []
    for t in lengths:
        points = np.zeros((t, args.classes), np.float32)
        where = rng.choice(t, size=max(1, t // 20), replace=False)
        points[where, rng.integers(0, args.classes, len(where))] = 1
        labels = (points.max(0) > 0).astype(np.float32)
        flips = rng.random((t, args.classes)) < 1 / 30  # dense pseudo labels: runs of ~30 snippets
        pseudo = (np.cumsum(flips, 0) % 2 == 1).astype(np.float32)
        videos.append(
            {
                "features": rng.normal(size=(t, args.dim)).astype(np.float32),
                "points": points,
                "labels": labels,
                "pseudo": pseudo,
            }
        )
    return videos


def padded_batch(videos: list[dict[str, np.ndarray]]):
    t = max(len(v["features"]) for v in videos)
    b, d, c = len(videos), videos[0]["features"].shape[1], videos[0]["points"].shape[1]
    feats = torch.zeros(b, t, d)
    points = torch.zeros(b, t, c)
    mask = torch.zeros(b, t, dtype=torch.bool)
    for i, v in enumerate(videos):
        n = len(v["features"])
        feats[i, :n] = torch.from_numpy(v["features"])
        points[i, :n] = torch.from_numpy(v["points"])
        mask[i, :n] = True
    labels = torch.from_numpy(np.stack([v["labels"] for v in videos]))
    return make_batch(feats, mask, F.pad(labels, (1, 0)), F.pad(points, (1, 0)))


# ----------------------------------------------------------------------------- official steps


def load_official(path: str, names: list[str]) -> dict:
    root = Path(path).resolve()
    if ROOT in root.parents or root == ROOT:
        sys.exit(f"{root}: the official checkout must lie outside this repository")
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    sys.modules.setdefault("tensorboard_logger", types.SimpleNamespace(Logger=None, log_value=None))
    torch.set_default_tensor_type = lambda *a, **k: None  # SF-Net's modules switch to CUDA tensors at import
    for name in ["utils", "model", "train", "config", "options", "test"]:  # the repositories share these names
        sys.modules.pop(name, None)
    sys.path.insert(0, str(root))
    try:
        return {n: __import__(n) for n in names}
    finally:
        sys.path.remove(str(root))


def official_lacp(path: str, videos, args):
    mod = load_official(path, ["utils", "model", "train"])
    net = mod["model"].Model(args.dim, args.classes, r_act=8).train()
    criterion = mod["train"].Total_loss([1, 0.5, 1, 1, 1])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=5e-4)
    config = types.SimpleNamespace(batch_size=len(videos))
    logger = types.SimpleNamespace(log_value=lambda *a: None)
    items = [
        (
            i,
            torch.from_numpy(v["features"])[None],
            torch.from_numpy(v["labels"])[None],
            torch.from_numpy(v["points"])[None],
            {"new_dense_anno": torch.from_numpy(v["pseudo"])[None]},
            None,
            None,
        )
        for i, v in enumerate(videos)
    ]

    def step():
        mod["train"].train(net, config, iter(items), optimizer, criterion, logger, 20)

    return step


def official_hrpro(path: str, videos, args):
    mod = load_official(path, ["utils", "model_S", "train"])
    a = types.SimpleNamespace(
        feature_dim=args.dim,
        num_class=args.classes,
        r_act=8,
        dropout=0.7,
        dataset="THUMOS14",
        lambdas=[0, 0.5, 1, 1],
        device=torch.device("cpu"),
        batch_size=len(videos),
        RAB_args={"layer_num": 2, "drop_out": 0.3, "num_heads": 8, "dim_feedforward": 128},
    )
    net = mod["model_S"].S_Model(a).train()
    with torch.no_grad():
        net.memory.proto_vectors.copy_(
            torch.randn(args.classes, 1, args.dim, generator=torch.Generator().manual_seed(1))
        )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=5e-4)
    logger = types.SimpleNamespace(log_value=lambda *x: None)
    items = [
        {
            "data": torch.from_numpy(v["features"])[None],
            "vid_label": torch.from_numpy(v["labels"])[None],
            "point_label": torch.from_numpy(v["points"])[None],
        }
        for v in videos
    ]

    def step():
        mod["train"].S_train(1, a, net, iter(items), optimizer, logger)

    return step


def official_sfnet(path: str, videos, args):
    mod = load_official(path, ["utils", "model", "train"])
    net = mod["model"].SFNET(args.dim, args.classes + 1).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=5e-4)  # main.py's optimiser
    t = args.t

    def load_frame_data():  # the official return values for these videos, each zero-padded to t_max = --t
        ids = [np.flatnonzero(v["points"].any(1)).tolist() for v in videos]
        flabels = np.concatenate([v["points"][i] for v, i in zip(videos, ids, strict=True)])
        labels = np.stack([(v["points"].sum(0) > 0).astype(np.float32) for v in videos])
        feats = np.stack([np.pad(v["features"], ((0, t - len(v["features"])), (0, 0))) for v in videos])
        return feats, labels, labels.copy(), flabels, ids

    dataset = types.SimpleNamespace(load_frame_data=load_frame_data)
    a = types.SimpleNamespace(background=True, tm=7.0, mode="single")
    no_centres = [types.SimpleNamespace(parameters=lambda: [], zero_grad=lambda: None, step=lambda: None)] * 2
    logger = types.SimpleNamespace(log_value=lambda *x: None)
    mod["train"].log_value = lambda *x: None

    def step():
        mod["train"].train_SF(
            1,
            dataset,
            a,
            net,
            optimizer,
            no_centres,
            no_centres,
            logger,
            "cpu",
            None,
            {"alpha": 1, "beta": 1, "gamma": 0.1},
            mode="single",
        )

    return step


# ----------------------------------------------------------------------------- pointtal steps


def pointtal_lacp(videos, args):
    from pointtal.methods.lacp import LACP, Options

    method = LACP(Options(hidden=2048), args.dim, args.classes).train()
    batch = padded_batch(videos)
    method.pseudo = torch.from_numpy(np.concatenate([v["pseudo"] for v in videos])) > 0  # flat (N, C)
    method.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum([len(v["pseudo"]) for v in videos])]))
    return method, batch, torch.optim.Adam(method.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=5e-4)


def pointtal_hrpro(videos, args):
    from pointtal.methods.hrpro import HRPro, Options

    method = HRPro(Options(), args.dim, args.classes).train()
    method.snippet.prototypes = torch.randn(args.classes, args.dim, generator=torch.Generator().manual_seed(1))
    batch = padded_batch(videos)
    batch.extras = {  # as the preset's sampler (`WithPoints`): the default memory_update "video" runs per video
        "points": ((batch.point_labels[..., 1:] > 0) & batch.mask.unsqueeze(-1)).float(),
        "labels": batch.video_labels[:, 1:].float(),
    }
    params = list(method.snippet.parameters())
    return method, batch, torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.999), weight_decay=5e-4)


def pointtal_sfnet(videos, args):
    from pointtal.methods.sfnet import Options, SFNet

    method = SFNet(Options(), args.dim, args.classes).train()
    batch = padded_batch(videos)
    return method, batch, torch.optim.Adam(method.parameters(), lr=1e-4, weight_decay=5e-4)


def pointtal_step(method, batch, optimizer):
    def step():
        output = method(batch.features, batch.mask, **batch.extras)
        losses = method.loss(output, batch, 20)
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()

    return step


def print_parts(name: str, method, batch, optimizer) -> None:
    """pointtal's step split into forward, loss, backward and optimiser time, three steps after one warm-up."""
    for rep in range(4):
        marks = [time.perf_counter()]
        output = method(batch.features, batch.mask, **batch.extras)
        marks.append(time.perf_counter())
        losses = method.loss(output, batch, 20)
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        if rep:
            parts = ", ".join(
                f"{k} {b - a:.2f} s"
                for k, a, b in zip(["forward", "loss", "backward", "optimiser"], marks[:-1], marks[1:], strict=True)
            )
            print(f"  {name} pointtal step {rep}: {parts}", flush=True)


def step_flops(method, batch) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    available = torch.backends.mkldnn.is_available
    torch.backends.mkldnn.is_available = lambda: False  # layers.linear -> F.linear, which the counter sees
    try:
        with counter:
            method.loss(method(batch.features, batch.mask, **batch.extras), batch, 20)["total"].backward()
    finally:
        torch.backends.mkldnn.is_available = available
    method.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def matmul_rate(n: int, d: int) -> float:
    """FLOP/s of an (n x d) @ (d x d) float32 matmul, the faster of torch's (MKL) and oneDNN's (one timing each)."""
    from pointtal.methods.layers import _onednn_mm

    a, w = torch.randn(n, d), torch.randn(d, d)
    seconds = []
    for fn in (lambda: a @ w, lambda: _onednn_mm(a, w)):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return 2 * n * d * d / min(seconds)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- main


def compare(name: str, official, mine, method, batch, args) -> str:
    n = int(batch.mask.sum())
    flops = step_flops(method, batch)
    official(), mine()  # warm-up (allocations, first-call overheads)
    theirs, ours, matmul = [], [], []
    for rep in range(args.reps):
        order = [(official, theirs), (mine, ours)]
        for fn, out in order if rep % 2 == 0 else order[::-1]:
            out.append(timed(fn))
        matmul.append(flops / matmul_rate(n, args.dim))
        print(
            f"  {name} rep {rep}: official {theirs[-1]:.2f} s, pointtal {ours[-1]:.2f} s, matmul {matmul[-1]:.2f} s",
            flush=True,
        )
    med = {k: float(np.median(v)) for k, v in [("official", theirs), ("pointtal", ours), ("matmul", matmul)]}
    pair = float(np.median(np.array(theirs) / np.array(ours)))  # each repetition's two steps ran back to back
    shape = f"{args.videos} x {args.t // 2}..{args.t} x {args.dim}, C={args.classes}"
    return (
        f"| {name} | {shape} | {med['official']:.2f} | {med['pointtal']:.2f} | "
        f"**{pair:.2f}x** | {med['matmul']:.2f} | {med['pointtal'] / med['matmul']:.2f} | {flops / 1e9:.0f} |"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.malloc == "keep":
        keep_freed_memory()
    videos = make_videos(args)
    rows = []
    for name, path, build_official, build_mine in [
        ("LACP", args.lacp, official_lacp, pointtal_lacp),
        ("HR-Pro stage 1", args.hrpro, official_hrpro, pointtal_hrpro),
        ("SF-Net", args.sfnet, official_sfnet, pointtal_sfnet),
    ]:
        if not path:
            continue
        method, batch, optimizer = build_mine(videos, args)
        mine = pointtal_step(method, batch, optimizer)
        if args.parts:
            print_parts(name, method, batch, optimizer)
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            mine()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                mine()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
        rows.append(compare(name, build_official(path, videos, args), mine, method, batch, args))
    print(
        f"\ntorch {torch.__version__}, {args.threads} thread(s), malloc {args.malloc}, medians of {args.reps} "
        "interleaved repetitions\n"
    )
    print(
        "| method | videos x T x D | official s/step | pointtal s/step | speed-up (median of pairs) | matmul s | "
        "pointtal / matmul | GFLOP/step |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
