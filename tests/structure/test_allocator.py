"""``retain_freed_memory``: after it, a freed pair-sized tensor's pages are reused, not faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# In a child process: the setting is process-wide and stays. 48 MiB is above glibc's largest adaptive mmap
# threshold (32 MiB), so as glibc ships, each such tensor is a fresh mapping and every 4 KiB page faults anew.
CHILD = """
import resource, sys, torch
from xtrimo.structure.allocator import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
def faults():
    for _ in range(3):
        torch.ones(12 << 20)  # 48 MiB, freed at once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.ones(12 << 20)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(faults())
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's (mallopt)")
def test_retained_heap_reuses_pages_of_freed_pair_sized_tensors() -> None:
    as_shipped, retained = _faults("default"), _faults("retain")
    # as shipped: about 5 * 48 MiB / 4 KiB = 61,440 faults (about 120 where the kernel backs them with 2 MiB pages)
    assert as_shipped > 50, as_shipped
    assert retained * 20 < as_shipped, (retained, as_shipped)
