"""Training speed at the THUMOS14 reference shape: steps/s, FLOPs, fraction of matmul throughput, loss cost.

    python bench/train_speed.py [--method sfnet|soda|hrpro|lacp|actionformer|all] [--batch 32 --t 750 --dim 2048]
                                [--classes 20 --steps 3 --warmup 1 --device cpu|cuda] [--profile]
    python bench/train_speed.py --method actionformer --t 2304     # the detector at its reference shape
    python bench/train_speed.py --method actionformer --t 20000 --batch 1 --steps 1   # memory stays linear in T

For each method, one training step = forward + loss + backward + Adam step on a random batch of the
reference shape (sfnet: batch 32, T 750, D 2048, 20 classes, random crop lengths T/2..T with points;
soda: batch 16, T 750 resampled, M = 2 networks; hrpro: its stage 1, batch 16 whole videos of T/2..T snippets,
2 attention blocks over the snippets and 20 prototype tokens; lacp: batch 16 whole videos of T/2..T snippets, one
point per ~20 snippets, with random dense pseudo labels installed so the completeness losses run as after a
search; actionformer: batch 2 clips of T/2..T feature steps (the official training shape is 2 x 2304 x 2048)
with one random instance per ~40 steps, the official network and losses). FLOPs of forward + loss + backward are counted with
`torch.utils.flop_counter.FlopCounterMode`; achieved GFLOP/s is compared with a large square matmul of the
same dtype measured in the same run (fp32 on CPU; bf16 on CUDA, where training runs under bf16 autocast).
On a shared machine the matmul reference is re-measured right after every timed step and the fraction is
the median of the per-step ratios. The batched losses are timed against the per-video loop reference (`reference_losses` in
tests/methods/test_<method>.py, imported via sys.path) on the same forward output.

The table also gives the peak memory of a training step: `torch.cuda.max_memory_allocated` on CUDA, the
process's peak resident set on CPU.
Prints a markdown table. Uses torch's default thread count.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "methods"))

from pointtal.data.batch import Batch, make_batch  # noqa: E402

DEFAULT_BATCH = {"sfnet": 32, "soda": 16, "hrpro": 16, "lacp": 16, "actionformer": 2}
CLASS_NAMES = {"sfnet": "SFNet", "soda": "SODA", "hrpro": "HRPro", "lacp": "LACP", "actionformer": "ActionFormer"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=[*CLASS_NAMES, "all"], default="all")
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="videos per step (default: sfnet 32, soda 16, hrpro 16, lacp 16, actionformer 2)",
    )
    parser.add_argument("--t", type=int, default=750, help="snippets per (padded) video")
    parser.add_argument("--dim", type=int, default=2048, help="feature width D")
    parser.add_argument("--classes", type=int, default=20, help="action classes C")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--loss-reps", type=int, default=5, help="repetitions of each loss timing")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="print the top operators of one step")
    parser.add_argument(
        "--losses-only", action="store_true", help="only time the batched losses against the per-video loop references"
    )
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- inputs


def build_method(name: str, dim: int, classes: int):
    """The method with its default (paper) options, or None with a reason when it cannot be imported."""
    try:
        module = importlib.import_module(f"pointtal.methods.{name}")
    except ImportError as err:
        return None, f"pointtal.methods.{name} not importable ({err})"
    cls = CLASS_NAMES[name]
    if not hasattr(module, cls):
        return None, f"pointtal.methods.{name} has no {cls}"
    method_cls = getattr(module, cls)
    return method_cls(method_cls.Options(), dim, classes), ""


def random_batch(method_name: str, b: int, t: int, dim: int, classes: int, g: torch.Generator) -> Batch:
    """Crops of T/2..T snippets (sfnet) or a fixed T (soda); one action point per ~20 snippets and, for soda,
    as many background points; video labels = the classes of the points."""
    if method_name in ("sfnet", "hrpro", "lacp", "actionformer"):  # whole videos of varied length, padded
        lengths = torch.randint(t // 2, t + 1, (b,), generator=g)
        lengths[0] = t
    else:
        lengths = torch.full((b,), t)
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    features = torch.randn(b, t, dim, generator=g) * mask.unsqueeze(-1)
    point_labels = torch.zeros(b, t, classes + 1)  # (B, T, C+1)
    n_points = (lengths // 20).clamp(min=1)  # (B,)
    rank = torch.rand(b, t, generator=g).masked_fill(~mask, 2.0).argsort(dim=1)  # random snippet order
    for kind, offset in (("action", 0), ("background", 1)):
        if kind == "background" and method_name != "soda":
            continue
        chosen = rank[:, offset::2][:, : int(n_points.max())]  # (B, P) disjoint action/background snippets
        keep = torch.arange(chosen.shape[1]).unsqueeze(0) < n_points.unsqueeze(1)  # (B, P)
        cls = torch.randint(1, classes + 1, chosen.shape, generator=g) if kind == "action" else torch.zeros_like(chosen)
        rows = torch.arange(b).unsqueeze(1).expand_as(chosen)
        point_labels[rows[keep], chosen[keep], cls[keep]] = 1.0
    video_labels = (point_labels.sum(1) > 0).float()  # (B, C+1)
    video_labels[:, 0] = 0
    batch = make_batch(features, mask, video_labels, point_labels)
    if method_name == "actionformer":
        batch.targets = random_instances(lengths, classes, g)
    return batch


def random_instances(lengths: torch.Tensor, classes: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """ActionFormer's targets: one instance per ~40 feature steps, 2..60 steps long, random classes."""
    count = int((lengths // 40).clamp(min=1).max())
    start = torch.rand(len(lengths), count, generator=g) * (lengths[:, None] - 2).float()  # (B, M)
    end = torch.minimum(start + 2 + torch.rand(len(lengths), count, generator=g) * 58, lengths[:, None].float())
    labels = torch.randint(1, classes + 1, (len(lengths), count), generator=g)
    labels[torch.arange(count)[None, :] >= (lengths // 40).clamp(min=1)[:, None]] = 0  # padding rows
    return {"segments": torch.stack([start, end], -1), "labels": labels, "weights": torch.ones(len(lengths), count)}


def install_pseudo_labels(method, batch: Batch, g: torch.Generator) -> None:
    """LACP: dense pseudo labels of a search (runs of ~30 snippets) for the batch's videos, so the score- and
    feature-contrastive losses take part as they do after the first search. Other methods: nothing."""
    if method.name != "lacp":
        return
    b, t = batch.mask.shape
    runs = (torch.rand(b, t, method.n_classes, generator=g) < 1 / 30).cumsum(1) % 2 == 1  # (B, T, C)
    method.pseudo = runs.reshape(b * t, -1).to(batch.mask.device)
    method.offsets = (torch.arange(b + 1) * t).to(batch.mask.device)


# ----------------------------------------------------------------------------- measurements


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(method, optimizer, batch: Batch, device: torch.device) -> None:
    with autocast(device):
        output = method(batch.features, batch.mask)
        losses = method.loss(output, batch, 0)
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    optimizer.step()


def count_flops(method, batch: Batch, device: torch.device) -> float:
    """FLOPs of forward + loss + backward (the optimizer step is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        with autocast(device):
            output = method(batch.features, batch.mask)
            losses = method.loss(output, batch, 0)
        losses["total"].backward()
    method.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def time_steps(method, batch: Batch, device: torch.device, steps: int, warmup: int) -> tuple[list, list]:
    """Seconds of each timed training step, and the matmul GFLOP/s measured right after each one.

    Interleaving the matmul reference with the steps keeps the ratio meaningful on a shared machine whose
    speed drifts during the run."""
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-4, weight_decay=5e-4)
    for _ in range(warmup):
        train_step(method, optimizer, batch, device)
    seconds, matmul = [], []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        train_step(method, optimizer, batch, device)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
        matmul.append(matmul_gflops(device, reps=1)[0])
    return seconds, matmul


def peak_memory(device: torch.device) -> float:
    """Bytes: the CUDA allocator's peak since the last reset, or on CPU the process's peak resident set (which
    also holds the features, the model and the reference matmul: run one method and shape per process)."""
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device))
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux reports KiB


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


def matmul_gflops(device: torch.device, reps: int = 3) -> tuple[float, str]:
    """GFLOP/s of a large square matmul in the training dtype (fp32 on CPU, bf16 on CUDA); median of reps."""
    n, dtype = (4096, torch.float32) if device.type == "cpu" else (8192, torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    a @ b
    rates = []
    for _ in range(reps):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return median(rates), f"{n}x{n} {str(dtype).replace('torch.', '')}"


def time_losses(method, batch: Batch, device: torch.device, reps: int) -> tuple[float | None, float | None]:
    """Milliseconds of the batched `method.loss` and of the loop reference on the same detached output."""
    try:
        reference = importlib.import_module(f"test_{method.name}").reference_losses
    except (ImportError, AttributeError):
        return None, None
    with torch.no_grad(), autocast(device):
        output = method(batch.features, batch.mask)
    timings = []
    for fn in (method.loss, lambda o, b, s: reference(method, o, b, s)):
        fn(output, batch, 0)
        runs = []
        for _ in range(reps):
            synchronize(device)
            start = time.perf_counter()
            fn(output, batch, 0)
            synchronize(device)
            runs.append((time.perf_counter() - start) * 1e3)
        timings.append(median(runs))
    return timings[0], timings[1]


def profile_step(method, batch: Batch, device: torch.device) -> None:
    from torch.profiler import ProfilerActivity, profile

    optimizer = torch.optim.Adam(method.parameters(), lr=1e-4)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        train_step(method, optimizer, batch, device)
        synchronize(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=15))


# ----------------------------------------------------------------------------- main


def bench_method(name: str, args: argparse.Namespace, device: torch.device) -> str | None:
    method, why = build_method(name, args.dim, args.classes)
    if method is None:
        print(f"skipping {name}: {why}")
        return None
    b = args.batch or DEFAULT_BATCH[name]
    g = torch.Generator().manual_seed(args.seed)
    batch = random_batch(name, b, args.t, args.dim, args.classes, g).to(device)
    method = method.to(device).train()
    install_pseudo_labels(method, batch, g)
    flops = count_flops(method, batch, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds, matmul = time_steps(method, batch, device, args.steps, args.warmup)
    peak = f"{peak_memory(device) / 2**30:.2f}"
    step = median(seconds)
    fraction = median([flops / s / 1e9 / m for s, m in zip(seconds, matmul, strict=True)])
    batched_ms, loop_ms = time_losses(method, batch, device, args.loss_reps)
    if args.profile:
        profile_step(method, batch, device)
    losses = "n/a (no reference_losses)" if batched_ms is None else f"{batched_ms:.1f} / {loop_ms:.1f}"
    ratio = "n/a" if batched_ms is None else f"{loop_ms / batched_ms:.1f}x"
    shape = f"{b}x{args.t}x{args.dim}, C={args.classes}"
    steps = ", ".join(f"{s:.2f}" for s in seconds)
    return (
        f"| {name} | {shape} | {1 / step:.3f} | {steps} | {flops / 1e9:.0f} | {flops / step / 1e9:.1f} | "
        f"{median(matmul):.1f} | {100 * fraction:.0f}% | {losses} | {ratio} | {peak} |"
    )


def losses_only(names: list[str], args: argparse.Namespace, device: torch.device) -> int:
    """Batched loss vs loop reference on the same forward output, without the (slow) step timings."""
    print("| method | batch x T x D | loss batched ms | loop ms | speed-up |\n|---|---|---|---|---|")
    for name in names:
        method, why = build_method(name, args.dim, args.classes)
        if method is None:
            print(f"skipping {name}: {why}")
            continue
        b = args.batch or DEFAULT_BATCH[name]
        batch = random_batch(name, b, args.t, args.dim, args.classes, torch.Generator().manual_seed(args.seed))
        method, batch = method.to(device).train(), batch.to(device)
        install_pseudo_labels(method, batch, torch.Generator().manual_seed(args.seed))
        batched_ms, loop_ms = time_losses(method, batch, device, args.loss_reps)
        print(f"| {name} | {b}x{args.t}x{args.dim} | {batched_ms:.1f} | {loop_ms:.1f} | {loop_ms / batched_ms:.1f}x |")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    names = list(CLASS_NAMES) if args.method == "all" else [args.method]
    if args.losses_only:
        return losses_only(names, args, device)
    rows = [row for name in names if (row := bench_method(name, args, device)) is not None]
    _, matmul_shape = matmul_gflops(device, reps=1)
    print(
        f"\ndevice {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; reference matmul "
        f"{matmul_shape}, timed right after each step; {args.warmup} warm-up + {args.steps} timed steps; "
        "medians\n"
    )
    print(
        "| method | batch x T x D | steps/s | s per step | GFLOP/step (fwd+loss+bwd) | GFLOP/s | matmul GFLOP/s "
        "| of matmul | loss batched / loop ms | loss speed-up | peak GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
