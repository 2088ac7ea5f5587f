"""The JSON sample report written next to every output FASTA.

Fields: perplexity under the model (left to right in its generation layout, ``<eos>`` included; for an MLM-only
checkpoint the pseudo-perplexity, named in ``perplexity_method``), mean pairwise identity (diversity; lower
is more diverse), maximum identity to a reference set (k-mer shortlist then alignment, :mod:`generation.identity`),
the length distribution and the fraction of non-standard residues.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xtrimo.generation.identity import KmerIndex, align_identity
from xtrimo.scoring import pseudo_log_likelihoods, sequence_log_likelihoods
from xtrimo.io import write_json
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.tokenizer import STANDARD_RESIDUES, ResidueTokenizer

MAX_PAIRS = 1000  # pairwise identity on at most this many pairs (a fixed random subset beyond that)


def report_path(fasta: str | Path) -> Path:
    """``samples.fasta`` -> ``samples.report.json`` (same folder)."""
    fasta = Path(fasta)
    stem = fasta.name[: -len(fasta.suffix)] if fasta.suffix else fasta.name
    return fasta.with_name(f"{stem}.report.json")


def mean_pairwise_identity(sequences: Sequence[str], max_pairs: int = MAX_PAIRS, seed: int = 0) -> float:
    """Mean alignment identity over all pairs (or ``max_pairs`` random ones); NaN with fewer than 2 sequences."""
    n = len(sequences)
    if n < 2:
        return math.nan
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    if len(pairs) > max_pairs:
        pairs = pairs[np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False)]
    tok = ResidueTokenizer()
    ids = [tok.encode(s, f"sample #{i}") for i, s in enumerate(sequences)]
    values = []
    for lo in range(0, len(pairs), 256):  # bounded memory per sweep
        chunk = pairs[lo : lo + 256]
        values.append(align_identity([ids[i] for i, _ in chunk], [ids[j] for _, j in chunk]))
    return float(np.concatenate(values).mean())


def length_stats(sequences: Sequence[str]) -> dict[str, float]:
    lengths = np.array([len(s) for s in sequences], dtype=float)
    if not len(lengths):
        return {}
    q = np.percentile(lengths, [0, 25, 50, 75, 100])
    return {"min": q[0], "p25": q[1], "median": q[2], "p75": q[3], "max": q[4], "mean": float(lengths.mean())}


def nonstandard_fraction(sequences: Sequence[str]) -> float:
    """Fraction of residues outside the 20 standard amino acids."""
    total = sum(len(s) for s in sequences)
    standard = set(STANDARD_RESIDUES)
    return sum(c.upper() not in standard for s in sequences for c in s) / total if total else math.nan


def sample_report(
    sequences: Sequence[str],
    model: XTrimoPGLM | None = None,
    reference: KmerIndex | None = None,
    reference_name: str = "",
    batch_size: int = 16,
) -> dict[str, Any]:
    """Statistics of a sample set (see the module docstring); fields that need a missing input are null."""
    out: dict[str, Any] = {"num_sequences": len(sequences)}
    if model is not None and sequences:
        autoregressive = model.config.generation_mode is not None
        out["perplexity_method"] = "autoregressive" if autoregressive else "pseudo"
        score = sequence_log_likelihoods if autoregressive else pseudo_log_likelihoods
        scores = score(model, sequences, batch_size)
        tokens = sum(s.num_tokens for s in scores)
        mean_ll = sum(s.log_likelihood for s in scores) / tokens
        out["perplexity"] = math.exp(-mean_ll)
        out["mean_log_likelihood"] = mean_ll
    else:
        out["perplexity"] = out["mean_log_likelihood"] = None
    out["mean_pairwise_identity"] = _none_if_nan(mean_pairwise_identity(sequences))
    if reference is not None and sequences:
        ident = reference.max_identity(sequences)
        out["max_identity_to_reference"] = {
            "reference": reference_name, "num_reference": len(reference.ids), "kmer": reference.k,
            "mean": float(ident.mean()), "median": float(np.median(ident)), "max": float(ident.max()),
        }
    else:
        out["max_identity_to_reference"] = None
    out["length"] = length_stats(sequences)
    out["nonstandard_fraction"] = _none_if_nan(nonstandard_fraction(sequences))
    return out


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else x


def write_report(report: dict[str, Any], path: str | Path) -> None:
    """Write ``report`` as JSON atomically (temp file then rename)."""
    write_json(path, report, default=float)
