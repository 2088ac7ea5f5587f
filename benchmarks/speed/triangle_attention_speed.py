"""The float32 triangle attention kernel (structure/triangle_attention.cpp) against the path it replaces
(``scaled_dot_product_attention`` with the bias, then the gate in place), at ESMFold v1's widths (4 heads of 32,
a chunk of 64 rows); then one fused ESMFold trunk block (c_s 1024, c_z 128, random weights, heap kept as
``xtrimo-fold`` keeps it) with and without the kernel. Same process, interleaved, median of ``--repeats``; the
float32 matmul rate of the same run (2048^3) for scale. A script, not a test.

    python benchmarks/speed/triangle_attention_speed.py --lengths 256 512 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _fresh import esmfold_v1_block


def _median(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[256, 512])
    p.add_argument("--rows", type=int, default=64, help="rows per chunk (ESMFold's chunk size)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    from xtrimo.structure import triangle_attention as ta
    from xtrimo.structure.allocator import retain_freed_memory
    from xtrimo.structure.fused import SdpaTriangleAttention

    if ta.unavailable_reason() is not None:
        raise SystemExit(f"triangle attention kernel not built here: {ta.unavailable_reason()}")
    retain_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    peak = 2 * 2048 ** 3 / _median(lambda: a @ b, args.repeats) / 1e9
    print(f"float32, {args.threads} thread(s), median of {args.repeats}; 2048^3 matmul {peak:.0f} GFLOP/s")
    heads, dim = 4, 32
    fused = SdpaTriangleAttention(128, dim, heads, starting=True).requires_grad_(False)
    for w in fused.parameters():
        w.normal_(0, 0.02)
    gate_bias = fused.mha.linear_g.bias  # the SDPA path reads the module's own
    block = esmfold_v1_block(fused=True)
    print(f"{'L':>5} {'attention, ' + str(args.rows) + ' rows':>22} {'kernel ms':>10} {'GFLOP/s':>8} "
          f"{'SDPA + gate ms':>14} {'GFLOP/s':>8} {'speed-up':>8} {'block, kernel s':>16} {'block, SDPA s':>14} "
          f"{'speed-up':>8}")
    for length in args.lengths:
        proj = torch.randn(args.rows * length, 4 * heads * dim)
        bias = torch.randn(heads, length, length)
        flop = 4 * args.rows * heads * length * length * dim  # q k^T and p v
        kernel = _median(lambda: ta.gated_attention_(proj.clone(), args.rows, heads, bias, gate_bias), args.repeats)
        sdpa = _median(lambda: fused._sdpa_gated(proj.clone(), args.rows, length, bias[None]), args.repeats)
        s, z, mask = torch.randn(1, length, 1024), torch.randn(1, length, length, 128), torch.ones(1, length)
        per_path = {}
        with torch.no_grad():
            for use in (True, False, True, False):
                SdpaTriangleAttention.kernel = use
                per_path.setdefault(use, []).append(
                    _median(lambda: block(s, z, mask=mask, chunk_size=args.rows), max(1, args.repeats // 2)))
        SdpaTriangleAttention.kernel = True
        with_k, without = min(per_path[True]), min(per_path[False])
        print(f"{length:>5} {f'[{args.rows}, {length}, {heads}, {dim}]':>22} {kernel * 1e3:>10.1f} "
              f"{flop / kernel / 1e9:>8.0f} {sdpa * 1e3:>14.1f} {flop / sdpa / 1e9:>8.0f} {sdpa / kernel:>7.2f}x "
              f"{with_k:>16.3f} {without:>14.3f} {without / with_k:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
