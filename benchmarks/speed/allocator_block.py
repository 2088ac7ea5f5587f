"""One ESMFold trunk block (ESMFold v1's widths: c_s 1024, c_z 128, head widths 32; random weights, float32, no
gradients): xtrimo's fused block and transformers' ``EsmFoldTriangularSelfAttentionBlock``, each with glibc's
allocator as it ships and with freed memory kept in the heap (``xtrimo.structure.allocator``, what ``xtrimo-fold``
does). Per case, in a fresh process: the median time of ``--repeats`` calls after a first one, and the page faults
(minor) per call. A script, not a test: it shows how much of a speed-up is the allocator's.

    python benchmarks/speed/allocator_block.py --lengths 256 512 --threads 2
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

from _fresh import esmfold_v1_block, run_in_fresh_process


def _measure(queue, impl: str, retain: bool, length: int, chunk: int, repeats: int, threads: int) -> None:
    import torch

    from xtrimo.structure.allocator import retain_freed_memory

    if retain:
        retain_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    block = esmfold_v1_block(fused=impl == "xtrimo")
    s, z, mask = torch.randn(1, length, 1024), torch.randn(1, length, length, 128), torch.ones(1, length)
    times, faults = [], []
    with torch.no_grad():
        for i in range(repeats + 1):
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            out = block(s, z, mask=mask, chunk_size=chunk)
            if i:  # the first call also pages in the weights and the heap
                times.append(time.perf_counter() - t0)
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
            del out
    queue.put((statistics.median(times), min(times), max(times), statistics.median(faults)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[256, 512])
    p.add_argument("--chunk", type=int, default=64, help="rows per attention chunk, both sides")
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    print(f"one ESMFold v1 trunk block, chunk {args.chunk}, float32, {args.threads} thread(s), median of "
          f"{args.repeats} calls after a first; 'shipped' = glibc as it ships, 'heap kept' = retain_freed_memory()")
    print(f"{'L':>5} {'block':>13} {'allocator':>10} {'s (median)':>11} {'range':>13} {'faults/call':>12}")
    for length in args.lengths:
        for impl in ("xtrimo", "transformers"):
            for retain in (False, True):
                med, lo, hi, faults = run_in_fresh_process(_measure, impl, retain, length, args.chunk, args.repeats,
                                                           args.threads)
                print(f"{length:>5} {impl:>13} {'heap kept' if retain else 'shipped':>10} {med:>11.2f} "
                      f"{f'{lo:.2f}-{hi:.2f}':>13} {faults:>12,.0f}", flush=True)


if __name__ == "__main__":
    main()
