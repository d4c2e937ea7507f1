"""HR-Pro stage 1 on whole THUMOS14-length videos: attention in length groups vs one batch padded to its longest.

    python bench/hrpro_attention.py [--dim 256 --batch 16 --repeats 3 --seed 0]

A training step (forward + loss-free backward of the S-model) on batches of 16 videos whose lengths are those of
the THUMOS14 validation videos (the vendored ground truth: duration * 25 / 16 snippets), timed with
`SnippetModel`'s length groups (the default) and with every video in one group (what a padded batch costs);
the two are interleaved, batch by batch, so machine load hits both alike. Prints the median seconds per step
of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pointtal.methods import hrpro  # noqa: E402


def thumos_lengths() -> np.ndarray:
    truth = json.loads((ROOT / "pointtal/data/vendor/thumos14/groundtruth.json").read_text())["database"]
    return np.array([int(v["duration"] * 25 / 16) for v in truth.values() if v["subset"] == "validation"])


def step(model: torch.nn.Module, features: torch.Tensor, mask: torch.Tensor) -> float:
    started = time.perf_counter()
    embedded, scores = model(features, mask)
    (embedded.sum() + scores.sum()).backward()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = hrpro.SnippetModel(hrpro.Options(), args.dim, 20)
    model.prototypes.normal_()
    grouped = hrpro.length_groups
    times: dict[str, list[float]] = {"groups": [], "padded": []}
    all_lengths = thumos_lengths()
    for _ in range(args.repeats):
        lengths = torch.from_numpy(rng.choice(all_lengths, args.batch, replace=False))
        t = int(lengths.max())
        mask = torch.arange(t)[None, :] < lengths[:, None]  # (B, T)
        features = torch.randn(args.batch, t, args.dim) * mask[..., None]
        for name in ("groups", "padded"):
            hrpro.length_groups = grouped if name == "groups" else (lambda n, ratio=0: [torch.arange(len(n))])
            model.zero_grad()
            times[name].append(step(model, features, mask))
    hrpro.length_groups = grouped
    groups, padded = statistics.median(times["groups"]), statistics.median(times["padded"])
    print(
        f"S-model fwd+bwd, batch {args.batch} THUMOS14 validation lengths, D {args.dim}, {args.repeats} batches, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"| attention | s per step (median) |\n|---|---|\n| length groups | {groups:.2f} |\n"
        f"| one padded batch | {padded:.2f} |\n| ratio | {padded / groups:.1f}x |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
