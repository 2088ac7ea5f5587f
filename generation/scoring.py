"""Sequence likelihood under the GLM objective, and zero-shot variant effects by ESM's masked-marginal method.

* :func:`sequence_log_likelihoods`: ``log p(residues + <eos>)`` autoregressively, the whole sequence generated
  after ``<gmask><sop>`` (empty prefix), in exactly the layout of pre-training (``glm_layout``).
* :func:`masked_marginal_scores`: Meier et al. 2021 (ESM-1v), masked marginals: each mutated position is masked
  in the wild type once, and a variant scores ``sum_i log p_i(mut) - log p_i(wt)`` over its mutations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from xtrimo.generation.sampling import token_log_probs
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.objectives.glm import glm_layout
from xtrimo.objectives.sample import IGNORE_INDEX
from xtrimo.tokenizer import EOS_ID, MASK_ID, PAD_ID, ResidueTokenizer

_MUTATION = re.compile(r"^([A-Za-z])(\d+)([A-Za-z])$")


@dataclass
class SequenceScore:
    """Log-likelihood of one sequence (residues and the final ``<eos>``) under the autoregressive objective."""

    log_likelihood: float
    num_tokens: int

    @property
    def mean_log_likelihood(self) -> float:
        return self.log_likelihood / self.num_tokens

    @property
    def perplexity(self) -> float:
        return math.exp(-self.mean_log_likelihood)


def _device(model: XTrimoPGLM) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def glm_token_log_probs(
    model: XTrimoPGLM, sequences: Sequence[np.ndarray], prefix_lengths: Sequence[int]
) -> list[np.ndarray]:
    """Per-token log-probabilities of ``seq[p:] + <eos>`` given the bidirectional prefix ``seq[:p]``.

    Args:
        model: the backbone.
        sequences: residue ids ``[L_i]`` each.
        prefix_lengths: ``p_i`` per sequence (0 scores the whole sequence).

    Returns:
        one float array ``[L_i - p_i + 1]`` per sequence.
    """
    samples = [glm_layout(s[:p], np.append(s[p:], EOS_ID)) for s, p in zip(sequences, prefix_lengths)]
    b, n = len(samples), max(len(x[0]) for x in samples)
    tokens = torch.full((b, n), PAD_ID, dtype=torch.long)
    labels = torch.full((b, n), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((b, 2, n), dtype=torch.long)
    division = torch.tensor([x[3] for x in samples])
    for i, (ids, lab, pos, _) in enumerate(samples):
        tokens[i, : len(ids)], labels[i, : len(ids)], positions[i, :, : len(ids)] = (
            torch.from_numpy(ids), torch.from_numpy(lab), torch.from_numpy(pos))
    dev = _device(model)
    logits = model(tokens.to(dev), position_ids=positions.to(dev), division=division.to(dev))["logits"].float()
    keep = labels != IGNORE_INDEX
    lp = token_log_probs(logits, labels.clamp_min(0).to(dev)).cpu()
    return [lp[i][keep[i]].numpy() for i in range(b)]


def sequence_log_likelihoods(
    model: XTrimoPGLM, sequences: Sequence[str], batch_size: int = 16, names: Sequence[str] | None = None
) -> list[SequenceScore]:
    """Autoregressive log-likelihood of each sequence (``<eos>`` included), batched by similar length.

    Raises:
        InvalidResidueError: naming the record (``names[i]`` or ``#i``) and the position.
    """
    tok = ResidueTokenizer()
    ids = [tok.encode(s, names[i] if names else f"#{i}") for i, s in enumerate(sequences)]
    out: list[SequenceScore | None] = [None] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for lo in range(0, len(order), batch_size):
        chunk = order[lo : lo + batch_size]
        for i, lp in zip(chunk, glm_token_log_probs(model, [ids[i] for i in chunk], [0] * len(chunk))):
            out[i] = SequenceScore(float(lp.sum()), len(lp))
    return out  # type: ignore[return-value]


def parse_variant(variant: str, wildtype: str) -> list[tuple[int, str, str]]:
    """``"A23G:K45R"`` (1-based, ``:``-separated) -> ``[(22, "A", "G"), (44, "K", "R")]``, checked against the WT.

    Raises:
        ValueError: a malformed mutation, a position outside the wild type, or a wild-type residue mismatch.
    """
    out = []
    for m in variant.strip().split(":"):
        hit = _MUTATION.match(m.strip())
        if not hit:
            raise ValueError(f"malformed mutation {m!r} in variant {variant!r} (expected e.g. A23G)")
        wt, pos, mt = hit.group(1).upper(), int(hit.group(2)), hit.group(3).upper()
        if not 1 <= pos <= len(wildtype):
            raise ValueError(f"mutation {m!r}: position {pos} outside the {len(wildtype)}-residue wild type")
        if wildtype[pos - 1].upper() != wt:
            raise ValueError(f"mutation {m!r}: the wild type has {wildtype[pos - 1]!r} at position {pos}, not {wt!r}")
        ResidueTokenizer().encode(mt, name=f"mutation {m}")
        out.append((pos - 1, wt, mt))
    return out


@torch.no_grad()
def masked_marginals(model: XTrimoPGLM, wildtype: str, positions: Sequence[int], batch_size: int = 16) -> np.ndarray:
    """``log p(token | wild type with position i masked)`` for each 0-based ``i``: ``[len(positions), V]``.

    The input is the MLM layout of pre-training: residues + ``<eos>``, positions ``(arange, 0)``, bidirectional.
    """
    tok = ResidueTokenizer()
    wt = torch.from_numpy(tok.encode_mlm(wildtype, name="wild type"))
    dev, rows = _device(model), []
    for lo in range(0, len(positions), batch_size):
        pos = torch.as_tensor(positions[lo : lo + batch_size], dtype=torch.long)
        x = wt.repeat(len(pos), 1)
        x[torch.arange(len(pos)), pos] = MASK_ID
        logits = model(x.to(dev))["logits"].float()
        rows.append(logits[torch.arange(len(pos)), pos.to(dev)].log_softmax(-1).cpu())
    return torch.cat(rows).numpy() if rows else np.zeros((0, model.config.padded_vocab_size), np.float32)


def masked_marginal_scores(
    model: XTrimoPGLM, wildtype: str, variants: Sequence[str], batch_size: int = 16
) -> list[float]:
    """Zero-shot effect of each variant: ``sum over its mutations of log p(mut) - log p(wt)`` at the masked site.

    Higher means more favourable than the wild type (ESM-1v masked-marginal scoring).
    """
    tok = ResidueTokenizer()
    parsed = [parse_variant(v, wildtype) for v in variants]
    sites = sorted({p for muts in parsed for p, _, _ in muts})
    table = masked_marginals(model, wildtype, sites, batch_size)
    row = {p: i for i, p in enumerate(sites)}
    scores = []
    for muts in parsed:
        s = 0.0
        for p, wt, mt in muts:
            lp = table[row[p]]
            s += float(lp[tok.token_to_id[mt]] - lp[tok.token_to_id[wt]])
        scores.append(s)
    return scores
