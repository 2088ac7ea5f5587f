"""Attention alone, forward + backward: xtrimo's bf16 span kernel (``xtrimo.model.span_attention``, what a bf16
training step on an AVX512_BF16 CPU runs) against ``scaled_dot_product_attention`` in fp32 and in bf16 (PyTorch's
CPU flash kernel, what HF ESM with ``attn_implementation="sdpa"`` and the fp32 step run). Same inputs, bidirectional
attention over full rows, medians of interleaved repeats; GFLOP/s count the 4 products of a forward and backward
(QK^T, PV, then dV, dP, dQ, dK: 6 x 2 L^2 hd a head and row) without the recomputed scores. A script, not a test.

    python benchmarks/speed/attention_speed.py [--batch 16 --length 256 --heads 20 --head-dim 16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from xtrimo.model import span_attention


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--heads", type=int, default=20, help="ESM-2 8M: 20 heads of 16")
    p.add_argument("--head-dim", type=int, default=16)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    if not span_attention.usable(args.head_dim):
        reason = span_attention.unavailable_reason() or f"head width {args.head_dim}"
        raise SystemExit(f"the span kernel is not available here: {reason}")
    b, length, heads, dim = args.batch, args.length, args.heads, args.head_dim
    torch.manual_seed(0)
    qkv = torch.randn(b, length, heads, 3, dim)
    lengths = torch.full((b,), length, dtype=torch.int32)

    def kernel() -> None:  # [B, L, nh, hd] views of the fused projection, as in the model
        q, k, v = (qkv[..., i, :].to(torch.bfloat16).requires_grad_() for i in range(3))
        span_attention.span_attention(q, k, v, lengths, lengths).float().sum().backward()

    def sdpa(dtype: torch.dtype) -> None:
        q, k, v = (qkv[..., i, :].transpose(1, 2).to(dtype).requires_grad_() for i in range(3))
        F.scaled_dot_product_attention(q, k, v).float().sum().backward()

    runs = {"span kernel bf16": kernel, "sdpa fp32": lambda: sdpa(torch.float32),
            "sdpa bf16": lambda: sdpa(torch.bfloat16)}
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            t = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t)
    flops = 6 * 2 * b * heads * length**2 * dim
    print(f"[B, L, nh, hd] = [{b}, {length}, {heads}, {dim}], {torch.get_num_threads()} thread(s), forward + backward, "
          f"median of {args.repeats}")
    base = statistics.median(times["span kernel bf16"])
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"  {name:<18}{m * 1e3:9.2f} ms{flops / m / 1e9:9.1f} GFLOP/s{m / base:8.2f}x the kernel's time")


if __name__ == "__main__":
    main()
