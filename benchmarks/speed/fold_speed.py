"""Folding-trunk speed and peak memory: xtrimo's FoldingTrunk vs transformers' EsmFoldingTrunk (ESMFold's trunk).

A script, not a test. Both trunks are built from the same config (transformers' ``TrunkConfig`` made by
``xtrimo.structure.trunk.trunk_config``), with random weights, on the CPU, one pass (no recycling), batch 1. The
peer runs at each of ``--peer-chunks`` and its fastest is reported; xtrimo runs with its length-chosen chunk size.
Each measurement runs in a fresh process so that peak memory (resident growth during the forward, ``_fresh.py``)
is its own.

    OMP_NUM_THREADS=1 python benchmarks/speed/fold_speed.py                          # 2 blocks, c_s 256, c_z 64
    python benchmarks/speed/fold_speed.py --blocks 8 --lengths 128 256 512 --threads 2
"""

from __future__ import annotations

import argparse
import time

from _fresh import peak_rss_gb, run_in_fresh_process, start_peak


def _measure(queue, impl: str, length: int, chunk: int | None, args: argparse.Namespace) -> None:
    import torch
    from transformers.models.esm.modeling_esmfold import EsmFoldingTrunk

    from xtrimo.structure.config import StructureModuleConfig, TrunkConfig
    from xtrimo.structure.outputs import Residues
    from xtrimo.structure.trunk import FoldingTrunk, trunk_config

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = TrunkConfig(c_s=args.c_s, c_z=args.c_z, num_blocks=args.blocks, sequence_head_width=32,
                      pairwise_head_width=32, max_recycles=0, chunk_size=None,
                      structure_module=StructureModuleConfig(c_s=args.c_s, c_z=args.c_z))
    trunk = FoldingTrunk(cfg) if impl == "xtrimo" else EsmFoldingTrunk(trunk_config(cfg))
    if impl != "xtrimo":
        trunk.set_chunk_size(chunk)
    trunk.eval()
    s = torch.randn(1, length, cfg.c_s)
    z = torch.randn(1, length, length, cfg.c_z) * 0.1
    aa = torch.randint(0, 20, (1, length))
    resid = torch.arange(length)[None]
    mask = torch.ones(1, length)
    times = []
    with torch.no_grad():
        before = start_peak()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            if impl == "xtrimo":
                trunk(s, z, Residues(aa, resid, mask), num_recycles=0)
            else:
                trunk(s, z, aa, resid, mask, no_recycles=0)
            times.append(time.perf_counter() - t0)
        peak = peak_rss_gb() - before
    queue.put((min(times), peak))


def run(impl: str, length: int, chunk: int | None, args: argparse.Namespace) -> tuple[float, float]:
    return run_in_fresh_process(_measure, impl, length, chunk, args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--c-s", type=int, default=256)
    p.add_argument("--c-z", type=int, default=64)
    p.add_argument("--peer-chunks", type=int, nargs="+", default=[0, 64, 128], help="0 = unchunked")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    print(f"trunk: {args.blocks} blocks, c_s {args.c_s}, c_z {args.c_z}, head width 32; structure module included; "
          f"{args.threads} thread(s), best of {args.repeats}")
    print(f"{'L':>5} {'xtrimo s':>9} {'xtrimo GB':>10} {'peer s (chunk)':>16} {'peer GB':>8} {'speed-up':>9}")
    for length in args.lengths:
        ours, ours_mem = run("xtrimo", length, None, args)
        peer = [(run("peer", length, c or None, args), c) for c in args.peer_chunks]
        (best, best_mem), best_chunk = min(peer, key=lambda r: r[0][0])
        print(f"{length:>5} {ours:>9.2f} {ours_mem:>10.2f} {best:>9.2f} ({best_chunk or 'none':>4}) {best_mem:>8.2f} "
              f"{best / ours:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
