"""``xtrimo-generate`` and ``xtrimo-score``: sampling, template design and scoring from the command line.

    xtrimo-generate --checkpoint DIR -n 100 -o samples.fasta [--prompt M] [--temperature T] [--top-k K] [--top-p P]
                    [--repetition-penalty R] [--min-length A] [--max-length B] [--ban C] [--seed S] [--batch-size N]
    xtrimo-generate --checkpoint DIR --template "MKT????????GSSG??????LE" -n 20 -o designs.fasta
    xtrimo-score --checkpoint DIR seqs.fasta -o scores.csv [--method auto|autoregressive|pseudo]
    xtrimo-score --checkpoint DIR --wildtype WT.fasta --mutations variants.csv -o effects.csv
                 [--method auto|masked-marginals|log-likelihood-ratio]

Scores follow the checkpoint's mode by default (``--method auto``): sequences are scored left to right in its
generation layout (GLM after ``<gmask><sop>``; causal checkpoints after ``<gmask><sop><eos>``), or by
pseudo-log-likelihood for MLM-only checkpoints; variants by masked marginals where the checkpoint was trained
with MLM, else by the log-likelihood ratio. The sequence CSV has both sums: ``log_likelihood_residues`` (the
residues) and ``log_likelihood_with_eos`` (plus the final ``<eos>``), and a perplexity for each.

Every FASTA written by xtrimo-generate gets a JSON report next to it (``samples.report.json``).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from xtrimo.cli_utils import entry_point, make_parser
from xtrimo.data.fasta import read_fasta, write_fasta
from xtrimo.io import refuse_existing, write_csv

if TYPE_CHECKING:
    from xtrimo.config import ModelConfig


def _generate_parser() -> argparse.ArgumentParser:
    p = make_parser("xtrimo-generate", "Sample or design protein sequences.", [
        "xtrimo-generate --checkpoint ckpt/ -n 100 -o samples.fasta --prompt M --temperature 0.9 --top-p 0.8",
        "xtrimo-generate --checkpoint ckpt/ -n 20 -o designs.fasta --template 'MKT????GSSG??LE'"])
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (model.safetensors + config.yaml)")
    p.add_argument("-n", "--num-sequences", type=int, required=True, help="sequences to write")
    p.add_argument("-o", "--output", required=True, help="output FASTA (a .report.json is written next to it)")
    p.add_argument("--prompt", default="", help="residues every sample starts with")
    p.add_argument("--template", default=None, help="design mode: residues kept, '?' designed")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (0: greedy)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely residues (0: off)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1: off)")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="CTRL-style penalty (1: off)")
    p.add_argument("--min-length", type=int, default=0, help="residues at least (prompt included)")
    p.add_argument("--max-length", type=int, default=None, help="residues at most (prompt included)")
    p.add_argument("--max-new-tokens", type=int, default=512, help="residues generated at most")
    p.add_argument("--ban", default="", help="residue letters never sampled, e.g. C")
    p.add_argument("--allow-nonstandard", action="store_true", help="also sample X B U Z O")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same samples)")
    p.add_argument("--batch-size", type=int, default=16, help="sequences decoded together")
    p.add_argument("--num-candidates", type=int, default=None, help="sample this many, keep the n most likely")
    p.add_argument("--iterations", type=int, default=0, help="template refinement rounds (0: min(10, #?))")
    p.add_argument("--reference", default=None, help="FASTA for the report's max identity (e.g. the training set)")
    p.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda, ...")
    p.add_argument("--stream", action="store_true", help="print tokens to stderr as they are produced")
    p.add_argument("--compile", action="store_true",
                   help="decode with one compiled graph per token (AOTInductor on the CPU, torch.compile "
                        "elsewhere): it compiles first, then pays on long jobs (docs/generation.md has the speeds)")
    return p


def _run_generate(args: argparse.Namespace) -> None:
    from xtrimo.generation.generator import Generator
    from xtrimo.generation.identity import KmerIndex
    from xtrimo.generation.report import report_path, sample_report, write_report

    if args.template is not None and args.prompt:
        raise ValueError("--prompt and --template cannot be combined (put the fixed residues in the template)")
    out = Path(args.output)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {out.parent}")
    refuse_existing(out)
    refuse_existing(report_path(out))
    reference = KmerIndex([r.sequence for r in read_fasta(args.reference)]) if args.reference else None
    gen = Generator.from_pretrained(args.checkpoint, args.device, compile=args.compile)
    common = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, ban=args.ban, seed=args.seed,
                  batch_size=args.batch_size, num_candidates=args.num_candidates,
                  allow_nonstandard=args.allow_nonstandard, progress=not args.stream)
    if args.template is not None:
        samples = gen.design(args.template, args.num_sequences, iterations=args.iterations, **common)
    else:
        stream = (lambda i, t: print(f"{i}\t{t}", file=sys.stderr)) if args.stream else None
        samples = gen.generate(args.num_sequences, args.prompt, args.max_new_tokens,
                               repetition_penalty=args.repetition_penalty, min_length=args.min_length,
                               max_length=args.max_length, callback=stream, **common)
    if not any(s.sequence for s in samples):
        raise RuntimeError(f"no sample has a residue: all {len(samples)} stopped at once (nothing was written)")
    records = [(f"sample_{s.index} mean_log_likelihood={s.mean_log_likelihood:.4f} length={len(s.sequence)} "
                f"stopped={str(s.stopped).lower()}", s.sequence) for s in samples]
    report = sample_report([s.sequence for s in samples], gen.model, reference, args.reference or "",
                           args.batch_size)
    report["settings"] = {k: v for k, v in vars(args).items() if k not in ("output", "stream")}
    write_fasta(records, out)
    write_report(report, report_path(out))
    print(f"wrote {len(samples)} sequences to {out} (report: {report_path(out)}); "
          f"perplexity {report['perplexity']:.2f}")


def _score_parser() -> argparse.ArgumentParser:
    p = make_parser("xtrimo-score", "Log-likelihood of sequences, or variant effects.", [
        "xtrimo-score --checkpoint ckpt/ seqs.fasta -o scores.csv",
        "xtrimo-score --checkpoint ckpt/ --wildtype wt.fasta --mutations variants.csv -o effects.csv"])
    p.add_argument("--checkpoint", required=True, help="checkpoint directory")
    p.add_argument("fasta", nargs="?", default=None, help="sequences to score (log-likelihood, perplexity)")
    p.add_argument("--wildtype", default=None, help="FASTA with the wild type (first record)")
    p.add_argument("--mutations", default=None, help="CSV with a 'mutant' column (e.g. A23G or A23G:K45R)")
    p.add_argument("-o", "--output", required=True, help="output CSV")
    p.add_argument("--method", default="auto", choices=["auto", *SEQUENCE_METHODS, *VARIANT_METHODS],
                   help="how to score (auto: follow the checkpoint, see above)")
    p.add_argument("--batch-size", type=int, default=16, help="sequences (or masked copies) per forward pass")
    p.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda, ...")
    return p


def _read_variants(path: str) -> tuple[list[dict[str, str]], str]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"mutations file not found: {path}")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: no variants")
    column = "mutant" if "mutant" in rows[0] else next(iter(rows[0]))
    return rows, column


SEQUENCE_METHODS = ("autoregressive", "pseudo")
VARIANT_METHODS = ("masked-marginals", "log-likelihood-ratio")


def _score_method(model_config: ModelConfig, method: str, variants: bool) -> str:
    """The scoring rule: the user's, checked against the checkpoint, or the one its mode calls for."""
    valid = VARIANT_METHODS if variants else SEQUENCE_METHODS
    if method != "auto" and method not in valid:
        raise ValueError(f"--method {method} scores {'sequences' if not variants else 'variants'}; with "
                         f"{'--mutations' if variants else 'a FASTA'} use one of: auto, {', '.join(valid)}")
    if method == "auto":
        if variants:
            method = "masked-marginals" if model_config.can_fill_masks else "log-likelihood-ratio"
        else:
            method = "autoregressive" if model_config.generation_mode else "pseudo"
            if method == "pseudo":
                print(f"xtrimo-score: {model_config.name!r} was trained with MLM only: scoring the "
                      "pseudo-log-likelihood (one masked pass per residue)", file=sys.stderr)
    return method


def _run_score(args: argparse.Namespace) -> None:
    from xtrimo.generation.generator import Generator
    from xtrimo.scoring import (
        log_likelihood_ratio_scores,
        masked_marginal_scores,
        pseudo_log_likelihoods,
        sequence_log_likelihoods,
    )

    if (args.fasta is None) == (args.wildtype is None):
        raise ValueError("give either a FASTA to score or --wildtype with --mutations")
    if args.wildtype is not None and args.mutations is None:
        raise ValueError("--wildtype needs --mutations")
    out = Path(args.output)
    refuse_existing(out)
    model = Generator.from_pretrained(args.checkpoint, args.device).model
    method = _score_method(model.config, args.method, args.fasta is None)
    if args.fasta is not None:
        records = list(read_fasta(args.fasta))
        score = sequence_log_likelihoods if method == "autoregressive" else pseudo_log_likelihoods
        scores = score(model, [r.sequence for r in records], args.batch_size, [r.name for r in records],
                       progress=True)
        rows = [{"name": r.name, "length": len(r.sequence), "method": method,
                 "log_likelihood_residues": s.residue_log_likelihood,
                 "log_likelihood_with_eos": s.residue_log_likelihood + s.eos_log_prob if method != "pseudo" else "",
                 "perplexity_residues": math.exp(-s.residue_log_likelihood / max(1, s.num_residues)),
                 "perplexity_with_eos": math.exp(-(s.residue_log_likelihood + s.eos_log_prob) / (s.num_residues + 1))
                 if method != "pseudo" else ""}
                for r, s in zip(records, scores)]
    else:
        wildtype = next(read_fasta(args.wildtype)).sequence
        rows, column = _read_variants(args.mutations)
        score = masked_marginal_scores if method == "masked-marginals" else log_likelihood_ratio_scores
        effects = score(model, wildtype, [r[column] for r in rows], args.batch_size)
        rows = [{**r, method.replace("-", "_"): e} for r, e in zip(rows, effects)]
    write_csv(out, rows, list(rows[0]) if rows else ["name"])
    print(f"wrote {len(rows)} scores ({method}) to {out}")


generate_main = entry_point("xtrimo-generate", _generate_parser, _run_generate)
score_main = entry_point("xtrimo-score", _score_parser, _run_score)


if __name__ == "__main__":
    sys.exit(generate_main())
