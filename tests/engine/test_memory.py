"""CPU work keeps freed memory for reuse: large activations are not page-faulted in again on every step."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import resource, torch
from pointtal.engine.inference import resolve_device
resolve_device("cpu")
x = torch.ones(4096, 4096)  # 64 MiB, above glibc's own largest mmap threshold (32 MiB)
for _ in range(5):
    y = x * 2.0  # the heap settles in a few steps
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    y = x * 2.0  # each product is a fresh 64 MiB block; the last one is freed as the next is made
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(env_value: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "POINTTAL_MALLOC"}
    if env_value is not None:
        env["POINTTAL_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_cpu_device_reuses_freed_blocks_and_system_leaves_malloc_alone():
    pages = 64 * 2**20 // 4096  # one 64 MiB block in 4 KiB pages
    kept = faults(None)
    system = faults("system")
    assert system > 15 * pages  # glibc alone: each of the 20 products faults its block in again
    assert kept < 5 * pages  # kept: freed blocks are reused (0 faults in most runs; the kernel may take a few)
