"""Where ActionFormer's training targets land: positive points per pyramid level, and instances without any.

    python bench/detector_levels.py CONFIG [--set key=value ...]

Loads the config's training videos and their segments (`data.segments`), pads each whole video as training
does (no truncation), assigns targets with the config's `method.regression_ranges` and `center_radius`, and
prints the positive points per level and how many instances get no positive point at all. Used for the stride-16
preset (configs/thumos14_actionformer.yaml): the official ranges are in steps of stride-4 features.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pointtal.config import load_config  # noqa: E402
from pointtal.engine.setup import load_run_data  # noqa: E402
from pointtal.methods.actionformer.method import GRID_OFFSET  # noqa: E402
from pointtal.methods.actionformer.targets import assign_targets, pyramid_points  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.set)
    o = config.method_options
    data = load_run_data(config, test=False)
    table, levels = data.train.segments, o.pyramid_layers + 1
    positives, covered = np.zeros(levels, dtype=np.int64), 0
    for v in range(len(data.train)):  # one video at a time: instances of a video only compete with each other
        n, rows = int(data.train.n_snippets[v]), table.rows(v)
        divisor = o.scale ** (levels - 1)
        lengths = tuple(math.ceil(n / divisor) * divisor // o.scale**level for level in range(levels))
        points = pyramid_points(lengths, o.regression_ranges, o.scale, "cpu")
        segments = torch.tensor(np.stack([table.start[rows], table.end[rows]], 1) - GRID_OFFSET, dtype=torch.float32)[
            None
        ]  # (1, K, 2)
        labels = torch.from_numpy(table.label[rows])[None]  # (1, K)
        targets = assign_targets(points, segments, labels, torch.ones(labels.shape), len(data.classes), o.center_radius)
        real = points.position < n  # (P,)
        positive = (targets.classes[0].sum(-1) > 0) & real
        bounds = np.cumsum((0, *lengths))
        positives += [int(positive[bounds[i] : bounds[i + 1]].sum()) for i in range(levels)]
        # an instance is covered when some positive point regresses onto it (its own offsets match)
        start = points.position - targets.offsets[0, :, 0] * points.stride  # (P,)
        end = points.position + targets.offsets[0, :, 1] * points.stride
        hit = (
            positive[:, None]
            & ((start[:, None] - segments[0, :, 0]).abs() < 1e-4)
            & ((end[:, None] - segments[0, :, 1]).abs() < 1e-4)
        )  # (P, K)
        covered += int(hit.any(0).sum())
    print(f"ranges {[list(r) for r in o.regression_ranges]}, centre radius {o.center_radius}")
    print(f"positive points per level: {' / '.join(str(int(p)) for p in positives)}")
    print(f"instances with no positive point: {len(table) - covered} of {len(table)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
