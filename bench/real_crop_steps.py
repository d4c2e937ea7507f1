"""Training-step time on real crops: the engine's own batches of a synthesised dataset, not random shapes.

    python bench/real_crop_steps.py DATA_DIR [--config configs/thumos14_sfnet.yaml] [--steps 20] [--warmup 2]
                                    [--set KEY=VALUE ...]

DATA_DIR is a `pointtal synth` output (annotations.json, features/, points/annotator*.csv). Each step is the
trainer's own `_train_step`: sampler gather + forward + loss + backward + Adam, on the deterministic batches
of `train.seed`, so two checkouts timed with the same arguments run the same batches. Prints the mean and
median seconds per step (even = t_max crops, odd = t_max_alt crops) and the share of padded snippets.

To compare with an older checkout: copy this file into its bench/ and run it there (the script puts its own
checkout first on sys.path).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, even where another one is installed

import torch  # noqa: E402

from pointtal.config import load_config  # noqa: E402
from pointtal.engine.setup import load_run_data  # noqa: E402
from pointtal.engine.trainer import Trainer  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a `pointtal synth` output directory")
    parser.add_argument("--config", default=str(ROOT / "configs" / "thumos14_sfnet.yaml"))
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clicks = ",".join(str(p) for p in sorted((args.data / "points").glob("annotator*.csv")))
    overrides = [
        f"data.annotations={args.data / 'annotations.json'}",
        f"data.features={args.data / 'features'}",
        f"data.points=[{clicks}]",
        "train.device=cpu",
        "train.progress=false",
        "train.eval_every=0",
        "train.report=false",
        *args.overrides,
    ]
    config = load_config(args.config, overrides)
    data = load_run_data(config)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, data=data)
        seconds, real, padded = [], 0, 0
        for step in range(args.warmup + args.steps):
            started = time.perf_counter()
            trainer._train_step(step)
            if step >= args.warmup:
                seconds.append(time.perf_counter() - started)
                mask = trainer.sampler(step).mask
                real, padded = real + int(mask.sum()), padded + mask.numel()
    even, odd = seconds[(args.warmup % 2) :: 2], seconds[(1 - args.warmup % 2) :: 2]
    print(
        f"{ROOT}: torch {torch.__version__}, {torch.get_num_threads()} threads, batch {config.train.batch_size}, "
        f"D {data.train.dim}, hidden {getattr(config.method_options, 'hidden', None)}"
    )
    print(
        f"s per step: mean {statistics.mean(seconds):.3f}, median {statistics.median(seconds):.3f} "
        f"(t_max crops {statistics.mean(even):.3f}, t_max_alt crops {statistics.mean(odd):.3f}); "
        f"padding {100 * (1 - real / padded):.0f}% of the batch snippets"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
