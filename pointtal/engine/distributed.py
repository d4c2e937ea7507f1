"""Distributed training on PyTorch's own machinery: `torchrun` sets the environment, we read it.

NCCL on GPUs, gloo on CPU. Rank 0 alone writes checkpoints, logs and evaluations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group torchrun describes (no-op for a single process)."""
    if not launched_by_torchrun():
        return DistContext()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def local_device(device: torch.device, ctx: DistContext) -> torch.device:
    """Each rank on its own GPU."""
    if device.type == "cuda" and ctx.enabled:
        torch.cuda.set_device(ctx.local_rank)
        return torch.device("cuda", ctx.local_rank)
    return device


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def cleanup(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's `obj` (picklable Python data of our own making), in rank order."""
    if not ctx.enabled:
        return [obj]
    gathered: list = [None] * ctx.world
    dist.all_gather_object(gathered, obj)
    return gathered
