"""Process memory settings for CPU work: keep freed blocks for reuse instead of returning each large one to the OS.

glibc's malloc serves every block above its mmap threshold (at most 32 MiB by its own adjustment) with a fresh
`mmap` and returns it with `munmap` on free. A training step on CPU makes and frees tens of activations of
75-225 MB (a THUMOS14 batch of 9,000 snippets x 2,048 channels is 75 MB), so every one of them is page-faulted in
again, zero-filled by the kernel, on its first write: on a LACP step at the official shape that was 27 % of the
step (4.70 -> 3.41 s, `bench/vs_official.py`), and 100 elementwise passes over a (9000, 2048) tensor take 5.4 s
instead of 1.0 s. Raising the mmap and trim thresholds to 1 GiB lets malloc hand the same pages back to the next
tensor, as PyTorch's CUDA caching allocator does on the GPU. The cost: the process keeps its peak heap until it
exits (it does not grow it).

`POINTTAL_MALLOC=system` leaves malloc as it is. Elsewhere than glibc (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30  # 1 GiB: blocks above it still come from mmap
_state = {"done": False, "kept": False}


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True where they are now raised."""
    if _state["done"]:
        return _state["kept"]
    _state["done"] = True
    if os.environ.get("POINTTAL_MALLOC", "").strip().lower() == "system":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _state["kept"] = bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))
    return _state["kept"]
