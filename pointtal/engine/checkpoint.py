"""Checkpoints: one file with weights, optimizer, step, RNG, config, classes and version; atomic writes.

Loading never unpickles arbitrary objects (`torch.load(..., weights_only=True)`); a truncated or corrupted
file is reported as such, with its path, instead of a pickle traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pointtal import __version__
from pointtal.atomic import write_atomic
from pointtal.errors import InputError

REQUIRED_KEYS = ("model", "step", "config", "classes", "version", "in_dim")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` to `path` atomically (a crash mid-save leaves the previous checkpoint intact)."""
    return write_atomic(path, lambda handle: torch.save({**state, "version": __version__}, handle))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; a missing, truncated, corrupted or foreign file is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for damaged files: all mean "not a usable checkpoint"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(
            f"{path}: not a loadable pointtal checkpoint (truncated, corrupted or not saved with "
            f"weights only): {reason[:200]}"
        ) from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a pointtal checkpoint (holds a {type(state).__name__})")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise InputError(f"{path}: not a pointtal checkpoint (missing '{missing[0]}')")
    return state
