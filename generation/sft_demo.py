"""Programmable generation, end to end: pick a protein family from the corpus, fine-tune on it, compare.

    python -m xtrimo.generation.sft_demo --base runs/quickstart/checkpoints/last [--out runs/sft_family]

1. Family: sequences of the pre-training corpus are linked when they share at least ``--min-shared`` 6-mers;
   the connected components are candidate families. The largest one with a median length in
   ``[--min-length, --max-length]`` and a mean pairwise alignment identity of at least ``--min-identity`` is taken.
2. A fixed random ``--heldout`` fraction of its members is kept aside (never trained on); the rest is written to
   ``OUT/train.fasta`` and the held-out members to ``OUT/heldout.fasta``.
3. Fine-tuning runs the training CLI: ``xtrimo-train experiment=sft init_from=BASE ...``.
4. Before and after: mean log-likelihood per token of the held-out members (GLM, whole sequence generated), and
   the nearest identity of ``--samples`` generated sequences to the family members (k-mer shortlist, alignment).
   Results go to ``OUT/results.json`` and are printed as a table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from xtrimo.data.fasta import FastaRecord, read_fasta, write_fasta
from xtrimo.data.registry import resolve_data_file
from xtrimo.generation.generator import Generator
from xtrimo.generation.identity import KmerIndex
from xtrimo.generation.report import mean_pairwise_identity
from xtrimo.scoring import sequence_log_likelihoods
from xtrimo.io import write_json
from xtrimo.tokenizer import ResidueTokenizer

KMER = 6
MAX_GROUP = 30  # a 6-mer shared by more sequences than this is low-complexity, not a family signal


def kmer_links(records: list[FastaRecord], k: int = KMER) -> Counter:
    """Number of distinct shared ``k``-mers for every pair of records that shares any (rare k-mers only)."""
    tok = ResidueTokenizer()
    codes, owners = [], []
    for i, r in enumerate(records):
        ids = tok.encode(r.sequence, r.name).astype(np.int64)
        if len(ids) >= k:
            windows = np.lib.stride_tricks.sliding_window_view(ids, k)
            c = np.unique((windows * (32 ** np.arange(k - 1, -1, -1))).sum(1))
            codes.append(c)
            owners.append(np.full(len(c), i))
    code, owner = np.concatenate(codes), np.concatenate(owners)
    order = np.argsort(code, kind="stable")
    code, owner = code[order], owner[order]
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    counts = np.diff(np.r_[starts, len(code)])
    pairs: Counter = Counter()
    for s, c in zip(starts[(counts >= 2) & (counts <= MAX_GROUP)], counts[(counts >= 2) & (counts <= MAX_GROUP)]):
        group = owner[s : s + c].tolist()
        pairs.update((a, b) for i, a in enumerate(group) for b in group[i + 1 :])
    return pairs


def components(n: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components (union-find), largest first, members in corpus order."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def select_family(records: list[FastaRecord], args: argparse.Namespace) -> tuple[list[FastaRecord], float]:
    """The largest k-mer component passing the size, length and identity criteria (see the module docstring)."""
    links = kmer_links(records)
    edges = [pair for pair, shared in links.items() if shared >= args.min_shared]
    for group in components(len(records), edges):
        if len(group) < args.min_members:
            break
        members = [records[i] for i in group]
        if not args.min_length <= np.median([len(r.sequence) for r in members]) <= args.max_length:
            continue
        identity = mean_pairwise_identity([r.sequence for r in members])
        if identity >= args.min_identity:
            return members, identity
    raise ValueError("no family in the corpus passes the criteria; relax --min-members / --min-identity")


def evaluate(checkpoint: str | Path, heldout: list[str], family: KmerIndex, args: argparse.Namespace) -> dict[str, Any]:
    """Held-out log-likelihood and the samples' nearest identity to the family (all members, and the held-out
    ones alone, which training never saw) under one checkpoint."""
    gen = Generator.from_pretrained(checkpoint, args.device)
    scores = sequence_log_likelihoods(gen.model, heldout)
    tokens = sum(s.num_tokens for s in scores)
    mean_ll = sum(s.log_likelihood for s in scores) / tokens
    samples = gen.generate(args.samples, args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                           top_p=args.top_p, seed=args.seed, batch_size=16)
    seqs = [s.sequence for s in samples]
    nearest = family.max_identity(seqs)
    nearest_held = KmerIndex(heldout).max_identity(seqs)
    return {
        "heldout_mean_log_likelihood": mean_ll, "heldout_perplexity": float(np.exp(-mean_ll)),
        "sample_nearest_identity_mean": float(nearest.mean()),
        "sample_nearest_identity_median": float(np.median(nearest)),
        "sample_nearest_heldout_identity_mean": float(nearest_held.mean()),
        "sample_length_median": float(np.median([len(s) for s in seqs])),
        "samples": seqs[:8],
    }


def fine_tune(args: argparse.Namespace, out: Path) -> Path:
    """Run ``xtrimo-train experiment=sft`` on the split; returns the final checkpoint directory."""
    run_dir = out / "run"
    cmd = [sys.executable, "-m", "xtrimo.train.cli", "experiment=sft", f"init_from={args.base}",
           f"data.train_files=[{out / 'train.fasta'}]", f"data.valid_files=[{out / 'heldout.fasta'}]",
           f"output_dir={run_dir}", f"trainer.max_steps={args.steps}", f"trainer.max_minutes={args.max_minutes}",
           "trainer.progress_bar=false", *args.train_override]
    print("fine-tuning:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return run_dir / "checkpoints" / "last"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="pre-trained checkpoint directory")
    p.add_argument("--out", default="runs/sft_family")
    p.add_argument("--corpus", default="registry:pretrain_corpus/train.fasta.gz")
    p.add_argument("--min-shared", type=int, default=10, help="shared 6-mers that link two sequences")
    p.add_argument("--min-members", type=int, default=15)
    p.add_argument("--min-length", type=int, default=60)
    p.add_argument("--max-length", type=int, default=250)
    p.add_argument("--min-identity", type=float, default=0.35)
    p.add_argument("--heldout", type=float, default=0.2)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--max-minutes", type=float, default=0.0)
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--prompt", default="M")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.9)  # the released chat() defaults
    p.add_argument("--top-p", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--train-override", nargs="*", default=[], help="extra xtrimo-train overrides")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = list(read_fasta(resolve_data_file(args.corpus)))
    members, identity = select_family(records, args)
    order = np.random.default_rng(args.seed).permutation(len(members))
    n_held = max(1, int(round(args.heldout * len(members))))
    held, train = [members[i] for i in order[:n_held]], [members[i] for i in order[n_held:]]
    write_fasta([(r.description, r.sequence) for r in train], out / "train.fasta")
    write_fasta([(r.description, r.sequence) for r in held], out / "heldout.fasta")
    print(f"family: {len(members)} members (mean pairwise identity {identity:.2f}, e.g. {members[0].name}); "
          f"{len(train)} for training, {len(held)} held out", flush=True)
    family = KmerIndex([r.sequence for r in members])
    heldout = [r.sequence for r in held]
    before = evaluate(args.base, heldout, family, args)
    after = evaluate(fine_tune(args, out), heldout, family, args)
    result = {"family": [r.name for r in members], "heldout": [r.name for r in held],
              "family_mean_pairwise_identity": identity, "before": before, "after": after, "settings": vars(args)}
    write_json(out / "results.json", result, default=str)
    print(f"\n{'':<40}{'before SFT':>12}{'after SFT':>12}")
    for key in ("heldout_mean_log_likelihood", "heldout_perplexity", "sample_nearest_identity_mean",
                "sample_nearest_identity_median", "sample_nearest_heldout_identity_mean", "sample_length_median"):
        print(f"{key:<40}{before[key]:>12.3f}{after[key]:>12.3f}")
    return result


if __name__ == "__main__":
    main()
