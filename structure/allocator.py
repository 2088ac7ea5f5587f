"""Keep freed memory in the process heap while folding, so that pair-sized tensors are not paged in anew each time.

A trunk block at ESMFold's widths allocates and frees pair tensors of ``L * L * 128 * 4`` bytes (32 MiB at
L = 256, 128 MiB at 512) dozens of times. glibc serves every request at or above its mmap threshold (at most
32 MiB, however it adapts) with a fresh ``mmap`` and returns it with ``munmap`` when the tensor is freed, so the
next tensor of that size takes a page fault and a zeroed page for every 4 KiB it touches (the faults and times of
one block, as glibc ships and with the heap kept: ``benchmarks/speed/allocator_block.py``, docs/structure.md).

Requests below :data:`MMAP_THRESHOLD` then come from the heap and freed blocks are reused. Larger ones keep their
own mapping: reusing holes of several hundred MiB fragments the heap (with a 1 GiB threshold, the activation peak
at L = 1,000 rose from 3.4 to 5.1 GB, above the chunk chooser's estimate). The process keeps its peak resident
size until it exits, which suits a folding command and is why this is a call made by ``xtrimo-fold``, not a side
effect of importing xtrimo.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # pair tensors up to L = 724 (C_z = 128); larger ones keep their own mapping
TRIM_THRESHOLD = 2 ** 31 - 1  # an int: mallopt takes one


def retain_freed_memory() -> bool:
    """Make this process's glibc heap keep and reuse freed blocks below 256 MiB (see the module docstring).

    Returns whether it took effect: False where the C library is not glibc (macOS, musl), which allocate
    differently and are left as they are. Safe to call more than once."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
