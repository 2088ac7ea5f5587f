"""ESMFold through xtrimo (``Folder.from_esmfold(...).fold``, the path ``xtrimo-fold --esmfold`` runs) vs transformers'
``EsmForProteinFolding.infer`` at its fastest chunk size: time and peak memory of one fold.

A script, not a test. The model is ESMFold v1's trunk and structure module (48 blocks, c_s 1024, c_z 128, head
widths 32, structure module 384 / 128, 8 IPA blocks) with random weights behind a small random ESM-2 (6 x 320, the
8M model's shape) so that the language model does not dominate; one pass (``max_recycles = 1``), batch 1, float32.
It is written once with ``save_pretrained`` and each measurement loads it in a fresh process; the peak is the
process's resident growth over loading and folding, above what it held after its imports: weights (both sides
read safetensors through a memory map, which loads pages as they are touched) plus activations. The peer runs at
each of ``--peer-chunks`` (0 = unchunked) in the first round and at its fastest in the others, interleaved with
xtrimo (the machine's speed drifts between minutes); xtrimo chooses its chunk from the length and
``--max-memory-gb``. xtrimo runs as ``xtrimo-fold`` does, with freed memory kept in the heap
(``xtrimo.structure.allocator``); the peer is measured with glibc's allocator as it ships and, for a ratio that
credits xtrimo's code alone, with the same setting.

    python benchmarks/speed/esmfold_speed.py --lengths 256 --threads 2                 # vs the peer, 3 rounds
    python benchmarks/speed/esmfold_speed.py --lengths 1000 2000 --blocks 1 --no-peer  # memory at long lengths
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from _fresh import peak_rss_gb, run_in_fresh_process, start_peak

if TYPE_CHECKING:
    from xtrimo.structure.config import TrunkConfig

AA = "ACDEFGHIKLMNPQRSTVWY"


def build(path: Path, blocks: int) -> None:
    """Write a random ESMFold (ESMFold v1's trunk config with ``blocks`` blocks, a 6 x 320 ESM-2) to ``path``."""
    import torch
    from transformers import EsmConfig, EsmForProteinFolding

    vocab = ["<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTIDPKQNFYMHWCXBUZO.-", "<null_1>", "<mask>"]
    cfg = EsmConfig(vocab_size=33, hidden_size=320, num_hidden_layers=6, num_attention_heads=20,
                    intermediate_size=1280, max_position_embeddings=1026, position_embedding_type="rotary",
                    pad_token_id=1, mask_token_id=32, token_dropout=True, emb_layer_norm_before=False,
                    vocab_list=vocab, is_folding_model=True, architectures=["EsmForProteinFolding"],
                    esmfold_config=dict(fp16_esm=False, trunk=dict(num_blocks=blocks, max_recycles=1)))
    torch.manual_seed(0)
    model = EsmForProteinFolding(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.01 if "structure_module" in name else 0.02))
    model.save_pretrained(path)


def _measure(queue, impl: str, path: str, sequence: str, chunk: int | None, retain: bool,
             args: argparse.Namespace) -> None:
    import torch

    from xtrimo.structure.allocator import retain_freed_memory

    torch.set_num_threads(args.threads)
    if retain:  # xtrimo-fold does this before it loads the model; the peer is measured both ways
        retain_freed_memory()
    before = start_peak()  # after the imports, before the weights
    if impl == "xtrimo":
        from xtrimo.structure import Folder

        folder = Folder.from_esmfold(path, device="cpu", max_memory_gb=args.max_memory_gb)

        def fold():
            return folder.fold(sequence)
    else:
        from transformers import EsmForProteinFolding

        model = EsmForProteinFolding.from_pretrained(path).eval()
        model.trunk.set_chunk_size(chunk)

        def fold():
            return model.infer(sequence)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fold()
        times.append(time.perf_counter() - t0)
    queue.put((min(times), peak_rss_gb() - before))


def run(impl: str, path: Path, sequence: str, chunk: int | None, retain: bool,
        args: argparse.Namespace) -> tuple[float, float]:
    return run_in_fresh_process(_measure, impl, str(path), sequence, chunk, retain, args)


def _spread(times: list[float]) -> str:
    """``median (min-max)`` of one side's fold times over the rounds."""
    return f"{statistics.median(times):.1f} ({min(times):.1f}-{max(times):.1f})"


def measure_length(path: Path, trunk: TrunkConfig, weights: float, length: int, args: argparse.Namespace) -> str:
    """One table row: xtrimo and the peer (its fastest chunk, as shipped and with the heap kept) folding a random
    chain of ``length`` residues with the model at ``path``, interleaved over ``args.rounds`` rounds."""
    import random

    from xtrimo.structure.esmfold import chunk_for_memory, peak_bytes

    sequence = "".join(random.Random(length).choice(AA) for _ in range(length))
    chunk = chunk_for_memory(length, trunk, args.max_memory_gb)
    estimate = peak_bytes(length, trunk, chunk) / 2 ** 30
    ours, ours_mem = [], 0.0
    peers = {False: ([], 0.0, None), True: ([], 0.0, None)}  # heap kept -> (times, peak, fastest chunk)
    for round_ in range(args.rounds if not args.no_peer else 1):
        t, mem = run("xtrimo", path, sequence, None, True, args)
        ours.append(t)
        ours_mem = max(ours_mem, mem)
        for retain in () if args.no_peer else (False, True):
            times, peak, best_chunk = peers[retain]
            chunks = args.peer_chunks if round_ == 0 else [best_chunk]
            results = [(run("peer", path, sequence, c or None, retain, args), c) for c in chunks]
            (t, mem), best_chunk = min(results, key=lambda r: r[0][0])
            peers[retain] = ([*times, t], max(peak, mem), best_chunk)  # the peak at the fastest chunk
    line = (f"{length:>5} {chunk or 'none':>5} {_spread(ours):>17} {ours_mem:>9.2f} {weights:>13.2f} "
            f"{estimate:>11.2f}")
    for times, peak, best_chunk in [] if args.no_peer else (peers[False], peers[True]):
        ratios = [b / a for a, b in zip(ours, times)]
        median = statistics.median(times) / statistics.median(ours)
        speed = f"{median:.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"
        line += f" {_spread(times):>17} {best_chunk or 'none':>7} {peak:>5.2f} {speed:>19}"
    return line


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[256, 512])
    p.add_argument("--blocks", type=int, default=48)
    p.add_argument("--peer-chunks", type=int, nargs="+", default=[0, 64, 128], help="0 = unchunked")
    p.add_argument("--no-peer", action="store_true", help="xtrimo only (long chains: time and peak)")
    p.add_argument("--max-memory-gb", type=float, default=16.0)
    p.add_argument("--repeats", type=int, default=1, help="folds per process (the fastest counts)")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds: xtrimo, the peer at its fastest chunk as shipped, the peer with the heap "
                        "kept (the first round tries every --peer-chunks size to find the fastest)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    from xtrimo.structure.esmfold import xtrimo_trunk_config

    print(f"ESMFold v1 trunk ({args.blocks} blocks, c_s 1024, c_z 128, structure module 384/128 x 8), ESM-2 6 x 320, "
          f"random weights, one pass, float32, {args.threads} thread(s), best of {args.repeats} per process, "
          f"{args.rounds} interleaved round(s), each fold in a fresh process; xtrimo: --max-memory-gb "
          f"{args.max_memory_gb}; peer: EsmForProteinFolding.infer at its fastest of chunk sizes "
          f"{[c or 'none' for c in args.peer_chunks]} (found in round 1), with glibc's allocator as it ships "
          f"('peer') and with the heap kept as xtrimo-fold keeps it ('peer, heap kept': retain_freed_memory)")
    from xtrimo.structure.triangle_attention import unavailable_reason

    why_not = unavailable_reason()
    print("xtrimo's triangle attention: " + ("triangle_attention.cpp (float32, gate applied in the kernel)"
                                             if why_not is None else f"scaled_dot_product_attention ({why_not})"))
    print("times: median (min-max) over the rounds; speed-up: ratio of the medians [lowest-highest ratio within a "
          "round]; GB: highest peak over the rounds (the peer's at its fastest chunk); "
          "estimate: activations, peak_bytes")
    print(f"{'L':>5} {'chunk':>5} {'xtrimo s':>17} {'xtrimo GB':>9} {'of it weights':>13} {'estimate GB':>11} "
          f"{'peer s':>17} {'(chunk)':>7} {'GB':>5} {'speed-up':>19} {'peer, heap kept s':>17} {'(chunk)':>7} "
          f"{'GB':>5} {'speed-up':>19}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "esmfold"
        build(path, args.blocks)
        from safetensors import safe_open
        from transformers import EsmConfig

        trunk = xtrimo_trunk_config(EsmConfig.from_pretrained(path).esmfold_config.trunk)
        with safe_open(str(path / "model.safetensors"), "pt") as f:  # float32 weights, every part of the model
            weights = 4 * sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()) / 2 ** 30
        for length in args.lengths:
            print(measure_length(path, trunk, weights, length, args), flush=True)


if __name__ == "__main__":
    main()
