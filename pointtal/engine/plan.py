"""Plausibility of a run's plan, checked once before the first step.

* `warn_plan`: settings that are valid one by one but together do not do what they say are logged once, as
  warnings (nothing is changed: the user may mean it, but should not find out from the results).
* `check_batch_memory`: a crop or resampling length so extreme that one batch of features cannot fit the
  device's memory is refused with one line (instead of an allocation traceback or hours of swapping).
"""

from __future__ import annotations

import logging
import os

import torch

from pointtal.config import Config
from pointtal.limits import refuse_estimate
from pointtal.methods.base import Method

log = logging.getLogger(__name__)


def plan_notes(config: Config, n_train_videos: int, steps: int, method: Method) -> list[str]:
    """The surprising parts of training `steps` steps on `n_train_videos` videos (one message each)."""
    t, notes = config.train, list(method.plan_notes(steps))
    if t.batch_size > n_train_videos:
        notes.append(
            f"train.batch_size={t.batch_size} is larger than the {n_train_videos} training videos: "
            f"every batch repeats videos; a batch of at most {n_train_videos} covers each once"
        )
    return notes


def warn_plan(config: Config, n_train_videos: int, steps: int, method: Method) -> None:
    for note in plan_notes(config, n_train_videos, steps, method):
        log.warning("%s", note)


def device_memory(device: torch.device) -> int:
    """Total memory of `device` in bytes: the GPU's, or the machine's RAM for the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_batch_memory(config: Config, dim: int, longest: int, method: Method, device: torch.device) -> None:
    """Refuse snippets per video x batch size x feature width that cannot fit `device` (features alone)."""
    t = config.train
    length, key = method.training_length(longest)
    batch = max(t.batch_size, config.eval.batch_size)
    size = float(batch) * length * dim * 4  # float32 features of one batch, before any activation
    what = f"{key}={length}" if key else f"whole videos of up to {length} snippets"
    lower = f"lower {key} or the batch size" if key else "lower the batch size"
    refuse_estimate(
        size,
        device_memory(device),
        f"{what}: one batch of {batch} videos x {length} snippets x {dim} features",
        f"the {device.type} memory holds less; {lower}",
    )
