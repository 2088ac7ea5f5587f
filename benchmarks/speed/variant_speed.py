"""Zero-shot variant scoring speed: xtrimo-bench's scorer (the production path of ``suite=proteingym
protocol=zeroshot``) vs fair-esm's variant-prediction logic (``esm/examples/variant-prediction/predict.py``: masked
marginals mask every position of the wild type once, batch 1; wild-type marginals one pass) on an ESM-2 of the
same shape with random weights. Same assays, float32, same threads, one run. A script, not a test.

    XTRIMO_DATA_DIR=../shared/data python benchmarks/speed/variant_speed.py runs/quickstart/checkpoints/last
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _fresh import peak_rss_gb, run_in_fresh_process, start_peak

from xtrimo.benchmarks.datasets import register_all
from xtrimo.benchmarks.proteingym import model_scorer, read_mutants, read_reference
from xtrimo.data.registry import dataset_path
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.scoring import parse_variant


def esm_scores(model, alphabet, wildtype: str, codes: list[str], masked: bool) -> np.ndarray:
    """predict.py's rule: log p(mut) - log p(wt) summed over a variant's sites (``<cls>`` shifts positions by 1)."""
    _, _, tokens = alphabet.get_batch_converter()([("wt", wildtype)])
    with torch.no_grad():
        if masked:
            rows = []
            for i in range(tokens.size(1)):
                x = tokens.clone()
                x[0, i] = alphabet.mask_idx
                rows.append(torch.log_softmax(model(x)["logits"], dim=-1)[:, i])
            probs = torch.cat(rows, dim=0)
        else:
            probs = torch.log_softmax(model(tokens)["logits"], dim=-1)[0]
    idx = alphabet.get_idx
    return np.array([sum(float(probs[1 + p, idx(mt)] - probs[1 + p, idx(wt)]) for p, wt, mt in
                         parse_variant(code, wildtype)) for code in codes])


def _side(queue, side: str, rule: str, args: argparse.Namespace) -> None:
    """One side's scoring of every assay in a fresh process: (seconds, mutants, peak GB = resident growth
    over the scoring, so that each side's peak is its own)."""
    import esm

    torch.set_num_threads(args.threads)
    register_all()
    root = dataset_path("proteingym_single_site")
    assays = [a for a in read_reference(root) if a.dms_id in args.assays.split(",")]
    model = XTrimoPGLM.from_pretrained(args.checkpoint).eval()
    c = model.config
    if side == "fair-esm":
        alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
        model = esm.ESM2(num_layers=c.num_layers, embed_dim=c.hidden_size, attention_heads=c.num_attention_heads,
                         alphabet=alphabet, token_dropout=True).eval()
    mutants = [read_mutants(a) for a in assays]
    before = start_peak()
    t0 = time.perf_counter()
    for assay, m in zip(assays, mutants):
        if side == "xtrimo":
            model_scorer(model, rule)(assay, m)
        else:
            esm_scores(model, alphabet, assay.target_seq, m.codes, rule == "masked_marginals")
    seconds = time.perf_counter() - t0
    peak = peak_rss_gb() - before
    queue.put((seconds, sum(len(m.codes) for m in mutants), peak))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="xtrimo MLM checkpoint directory")
    p.add_argument("--assays", default="BLAT_ECOLX_Firnberg_2014,SUMO1_HUMAN_Weile_2017,IF1_ECOLI_Kelsic_2016")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    c = XTrimoPGLM.from_pretrained(args.checkpoint).config
    print(f"{args.threads} threads; xtrimo {c.num_layers} x {c.hidden_size} ({c.num_attention_heads} heads) vs "
          f"fair-esm ESM2 of the same shape; float32; assays: {args.assays}; each side in its own process, peak = "
          f"RSS growth while scoring")
    for rule in ("masked_marginals", "wt_marginals"):
        ours_t, n, ours_gb = run_in_fresh_process(_side, "xtrimo", rule, args)
        theirs_t, _, theirs_gb = run_in_fresh_process(_side, "fair-esm", rule, args)
        print(f"{rule:>17}: xtrimo {n / ours_t:8.0f} mutants/s ({ours_gb:.2f} GB), fair-esm predict.py logic "
              f"{n / theirs_t:8.0f} mutants/s ({theirs_gb:.2f} GB), ratio {theirs_t / ours_t:.2f}x ({n} mutants)",
              flush=True)


if __name__ == "__main__":
    main()
