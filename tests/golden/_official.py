"""Shared helpers of the golden-fixture drivers (make_*.py): load an official checkout on CPU.

Nothing here is official code. The drivers import the official modules from the checkout path given on their
command line (it must lie outside this repository) after `cpu_only()` has turned `.cuda()` into a no-op.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent


def cpu_only() -> None:
    """The official code calls .cuda() on tensors and modules: make both return their receiver (CPU run)."""
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def official_path(path: str) -> Path:
    """The checkout: must exist and lie outside this repository (its code is never copied in)."""
    root = Path(path).resolve()
    if not root.is_dir():
        sys.exit(f"official checkout {root}: not a directory")
    if HERE.parent.parent in root.parents or root == HERE.parent.parent:
        sys.exit(f"official checkout {root}: must lie outside this repository")
    sys.path.insert(0, str(root))
    os.chdir(root)  # some official modules read relative paths at import time
    return root


def head_commit(root: Path, given: str | None) -> str:
    """The commit the checkout was exported from (`--commit`, else `git rev-parse HEAD` in it, else 'unknown')."""
    if given:
        return given
    try:
        return subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save(name: str, arrays: dict[str, np.ndarray]) -> None:
    """Write tests/golden/<name>.npz (compressed, plain arrays only: loadable with allow_pickle=False)."""
    out = HERE / f"{name}.npz"
    clean = {}
    for key, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"{name}.npz: {key} is an object array")
        clean[key] = arr
    np.savez_compressed(out, **clean)
    print(f"{out.relative_to(HERE.parent.parent)}: {out.stat().st_size / 1024:.1f} KiB, {len(clean)} arrays")


def ragged(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """List of (T_i, ...) arrays -> concatenated (sum T_i, ...) and offsets (V+1,)."""
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    return np.concatenate(rows, axis=0), offsets
