"""Embedding speed and peak memory: ``xtrimo-embed``'s path (``build_backbone`` + ``stream_embeddings``, mean pooling,
shards written) vs fair-esm's ``scripts/extract.py`` logic (``FastaBatchedDataset.get_batch_indices(toks_per_batch,
extra_toks_per_seq=1)``, length-sorted batches, ``repr_layers=[last]``, mean over the residues) on an ESM2 of the same
shape with random weights. Same sequences, float32, same threads; each side in its own process, peak = RSS growth
while embedding. A script, not a test.

    XTRIMO_DATA_DIR=../shared/data python benchmarks/speed/embed_speed.py runs/quickstart/checkpoints/last
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
from _fresh import corpus_sequences, peak_rss_gb, run_in_fresh_process, start_peak


def chosen_records(n: int, max_len: int, seed: int) -> list[tuple[str, str]]:
    """``n`` random sequences of the corpus' valid split (cropped to ``max_len``, as extract.py truncates)."""
    seqs = corpus_sequences(max_len)
    pick = np.random.default_rng(seed).choice(len(seqs), n, replace=False)
    return [(f"s{i}", seqs[i]) for i in pick]


def _xtrimo(records, args):
    from xtrimo.benchmarks.backbones import build_backbone
    from xtrimo.benchmarks.cli import BackboneConfig
    from xtrimo.benchmarks.embed import stream_embeddings

    backbone = build_backbone(BackboneConfig(name="xtrimo", checkpoint=args.checkpoint, device="cpu",
                                             batch_tokens=args.toks_per_batch))

    def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:  # the shards xtrimo-embed writes, removed after each pass
            stream_embeddings(backbone, iter(records), f"{tmp}/out", "mean", args.toks_per_batch, 1_000_000, None,
                              progress=False)
    return run


def _fair_esm(records, args):
    import esm

    from xtrimo.model.glm import XTrimoPGLM

    c = XTrimoPGLM.from_pretrained(args.checkpoint).config
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = esm.ESM2(num_layers=c.num_layers, embed_dim=c.hidden_size, attention_heads=c.num_attention_heads,
                     alphabet=alphabet, token_dropout=True).eval()
    dataset = esm.data.FastaBatchedDataset([r[0] for r in records], [r[1] for r in records])
    batches = dataset.get_batch_indices(args.toks_per_batch, extra_toks_per_seq=1)
    loader = torch.utils.data.DataLoader(dataset, collate_fn=alphabet.get_batch_converter(1022),
                                         batch_sampler=batches)

    def run() -> None:
        means = {}
        with torch.no_grad():
            for labels, strs, toks in loader:
                rep = model(toks, repr_layers=[c.num_layers])["representations"][c.num_layers]
                for i, (label, s) in enumerate(zip(labels, strs)):
                    means[label] = rep[i, 1:len(s) + 1].mean(0).clone()
    return run


def _side(queue, side: str, records, args) -> None:
    torch.set_num_threads(args.threads)
    run = (_xtrimo if side == "xtrimo" else _fair_esm)(records, args)
    before = start_peak()  # the model is loaded: growth = embedding's own
    run()  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    queue.put((times, peak_rss_gb() - before))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="xtrimo checkpoint directory")
    p.add_argument("--sequences", type=int, default=1000)
    p.add_argument("--toks-per-batch", type=int, default=4096, help="both sides' token budget (extract.py's default)")
    p.add_argument("--max-len", type=int, default=1022)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    records = chosen_records(args.sequences, args.max_len, args.seed)
    residues = sum(len(s) for _, s in records)
    print(f"{len(records)} corpus sequences, {residues} residues; {args.threads} thread(s); toks_per_batch "
          f"{args.toks_per_batch}; mean pooling of the last layer; best and median of {args.repeats}, each side in "
          f"its own process")
    result = {side: run_in_fresh_process(_side, side, records, args) for side in ("xtrimo", "fair-esm")}
    for side, (times, peak) in result.items():
        print(f"{side:>9}: {residues / statistics.median(times):9.0f} residues/s (median; best "
              f"{residues / min(times):.0f}), peak {peak:.2f} GB")
    ratio = statistics.median(result["fair-esm"][0]) / statistics.median(result["xtrimo"][0])
    print(f"ratio xtrimo / fair-esm: {ratio:.2f}x (goal >= 1.5x, peak memory no higher)")


if __name__ == "__main__":
    main()
