"""Training throughput of xtrimo vs Hugging Face EsmForMaskedLM and fair-esm ESM2, measured in one run.

All three models get the same layers, hidden size and heads (ESM-2 8M dimensions by default: 6 x 320, 20 heads;
xtrimo's GeGLU width 8/3 * H gives the same FFN FLOPs as ESM's 4H GELU MLP), the same batches of real sequences
from the pre-training corpus, the same MLM masking rate, the same precision, and a full training step
(forward, loss, backward, AdamW). Prints tokens/s, the ratio of xtrimo to the faster peer, and the achieved FLOP/s
as a fraction of this machine's matmul peak measured in the same run.

    python benchmarks/speed/train_throughput.py [--layers 6 --hidden 320 --heads 20 --batch 16 --steps 12]
"""

from __future__ import annotations

import argparse
import gzip
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from xtrimo.config import ModelConfig
from xtrimo.data.registry import dataset_path
from xtrimo.model import XTrimoPGLM
from xtrimo.objectives import build_mlm_sample
from xtrimo.model.layout import collate
from xtrimo.tokenizer import ResidueTokenizer


def real_batches(n_batches: int, batch: int, max_len: int, seed: int) -> list[list[str]]:
    """Random batches of real sequences (cropped to ``max_len`` residues) from the corpus' valid split."""
    seqs, cur = [], []
    with gzip.open(dataset_path("pretrain_corpus") / "valid.fasta.gz", "rt") as fh:
        for line in fh:
            if line.startswith(">"):
                if cur:
                    seqs.append("".join(cur)[:max_len])
                cur = []
            else:
                cur.append(line.strip())
    rng = np.random.default_rng(seed)
    return [[seqs[i] for i in rng.choice(len(seqs), batch, replace=False)] for _ in range(n_batches)]


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 6) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


def time_steps(step: Callable[[int], None], n_batches: int, warmup: int) -> float:
    for i in range(warmup):
        step(i % n_batches)
    t = time.perf_counter()
    for i in range(n_batches):
        step(i)
    return time.perf_counter() - t


def xtrimo_runner(cfg: ModelConfig, batches: list[list[str]], seed: int) -> Callable[[int], None]:
    model = XTrimoPGLM(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tok = ResidueTokenizer()
    rng = np.random.default_rng(seed)
    data = [collate([build_mlm_sample(tok.encode(s), rng) for s in b]) for b in batches]

    def step(i: int) -> None:
        d = data[i]
        out = model(d, return_logits=False)
        keep = d.labels != -100
        h = out["last_hidden_state"][keep]  # the head only where there is a loss, as in training
        loss = F.cross_entropy(model.transformer.output_layer(h).float(), d.labels[keep])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def esm_style_batches(batches: list[list[str]], encode: Callable[[list[str]], torch.Tensor], mask_id: int,
                      pad_id: int, specials: set[int], seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for b in batches:
        ids = encode(b)
        can = ~torch.isin(ids, torch.tensor(sorted(specials | {pad_id})))
        pick = (torch.rand(ids.shape, generator=gen) < 0.15) & can
        labels = torch.where(pick, ids, torch.full_like(ids, -100))
        out.append((ids.masked_fill(pick, mask_id), labels))
    return out


def hf_runner(layers: int, hidden: int, heads: int, batches: list[list[str]], seed: int) -> Callable[[int], None]:
    from transformers import EsmConfig, EsmForMaskedLM
    import esm

    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    conv = alphabet.get_batch_converter()
    cfg = EsmConfig(vocab_size=len(alphabet.all_toks), hidden_size=hidden, num_hidden_layers=layers,
                    num_attention_heads=heads, intermediate_size=4 * hidden, position_embedding_type="rotary",
                    pad_token_id=alphabet.padding_idx, mask_token_id=alphabet.mask_idx, token_dropout=False,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=1026)
    model = EsmForMaskedLM(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    encode = lambda b: conv([(str(i), s) for i, s in enumerate(b)])[2]  # noqa: E731
    specials = {alphabet.cls_idx, alphabet.eos_idx}
    data = esm_style_batches(batches, encode, alphabet.mask_idx, alphabet.padding_idx, specials, seed)

    def step(i: int) -> None:
        ids, labels = data[i]
        loss = model(input_ids=ids, attention_mask=ids != alphabet.padding_idx, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def fair_esm_runner(layers: int, hidden: int, heads: int, batches: list[list[str]], seed: int) -> Callable[[int], None]:
    import esm

    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = esm.ESM2(num_layers=layers, embed_dim=hidden, attention_heads=heads, alphabet=alphabet, token_dropout=False).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    conv = alphabet.get_batch_converter()
    encode = lambda b: conv([(str(i), s) for i, s in enumerate(b)])[2]  # noqa: E731
    data = esm_style_batches(batches, encode, alphabet.mask_idx, alphabet.padding_idx, {alphabet.cls_idx, alphabet.eos_idx}, seed)

    def step(i: int) -> None:
        ids, labels = data[i]
        logits = model(ids)["logits"]
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=6, help="transformer layers (ESM-2 8M: 6)")
    p.add_argument("--hidden", type=int, default=320, help="hidden size (ESM-2 8M: 320)")
    p.add_argument("--heads", type=int, default=20, help="attention heads (ESM-2 8M: 20)")
    p.add_argument("--batch", type=int, default=16, help="sequences per step")
    p.add_argument("--steps", type=int, default=6, help="timed steps per implementation")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--max-len", type=int, default=512, help="longest sequence (longer ones are cropped)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and sequences")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    batches = real_batches(args.steps, args.batch, args.max_len, args.seed)
    residues = sum(len(s) for b in batches for s in b)
    padded = sum(len(b) * max(len(s) for s in b) for b in batches)
    cfg = ModelConfig(num_layers=args.layers, hidden_size=args.hidden, num_attention_heads=args.heads,
                      ffn_hidden_size=round(8 * args.hidden / 3), seq_length=args.max_len + 2)
    # training FLOPs per residue: 6 x (matmul parameters) + attention (QK^T, PV) over the batch's mean length
    mean_len = residues / (args.batch * args.steps)
    flops_tok = 6 * (cfg.num_parameters() - 2 * 128 * args.hidden) + 12 * args.layers * mean_len * args.hidden
    print(f"{args.steps} batches x {args.batch} real sequences, {residues} residues, padding in peers' batches "
          f"{1 - residues / padded:.1%}; model {args.layers} layers x {args.hidden}, {args.heads} heads; "
          f"threads {torch.get_num_threads()}")
    rows = []
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak = matmul_peak(dtype)
        speeds = {}
        for name, make in (("xtrimo", lambda: xtrimo_runner(cfg, batches, args.seed)),
                           ("hf-esm", lambda: hf_runner(args.layers, args.hidden, args.heads, batches, args.seed)),
                           ("fair-esm", lambda: fair_esm_runner(args.layers, args.hidden, args.heads, batches, args.seed))):
            step = make()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                seconds = time_steps(step, args.steps, args.warmup)
            speeds[name] = residues / seconds
        peer = max(speeds["hf-esm"], speeds["fair-esm"])
        frac = speeds["xtrimo"] * flops_tok / peak
        rows.append((precision, speeds, speeds["xtrimo"] / peer, frac, peak))
    print(f"\n{'precision':<10}{'xtrimo tok/s':>14}{'hf-esm':>10}{'fair-esm':>10}{'ratio vs faster':>17}{'xtrimo FLOP/s / peak':>22}")
    for precision, s, ratio, frac, peak in rows:
        print(f"{precision:<10}{s['xtrimo']:>14.0f}{s['hf-esm']:>10.0f}{s['fair-esm']:>10.0f}{ratio:>16.2f}x"
              f"{frac:>15.1%} of {peak / 1e9:.0f} GFLOP/s")
    print("goal: ratio >= 1.5x the faster peer in fp32 and bf16")


if __name__ == "__main__":
    main()
