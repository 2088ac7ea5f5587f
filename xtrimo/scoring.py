"""Sequence likelihoods and zero-shot variant effects, each in the layout the checkpoint was trained for.

* :func:`sequence_log_likelihoods`: ``log p(residues)`` and ``log p(<eos> | residues)`` left to right, in the
  checkpoint's generation layout (:mod:`xtrimo.model.layout`): GLM-trained checkpoints generate the whole sequence
  after ``<gmask><sop>`` (empty prefix, as in pre-training); causal (CLM) checkpoints read ``<gmask><sop><eos>``
  then the residues, as upstream does. Both sums are reported; whether the final ``<eos>`` counts is the caller's
  choice (the upstream code has no scoring routine).
* :func:`pseudo_log_likelihoods`: for MLM checkpoints, ``sum_i log p(x_i | x with position i masked)``
  (Salazar et al. 2020), one masked pass per residue.
* :func:`masked_marginal_scores`: Meier et al. 2021 (ESM-1v), masked marginals: each mutated position is masked
  in the wild type once, and a variant scores ``sum_i log p_i(mut) - log p_i(wt)`` over its mutations;
  ``wildtype_marginals=True``: the same difference read from one unmasked pass over the wild type (ESM-1v's
  "wild-type marginals"). Wild types longer than the model's context are read in a window around each site
  (ProteinGym's ``get_optimal_window``: centred on the site, shifted to stay inside the sequence).
* :func:`log_likelihood_ratio_scores`: for GLM / CLM checkpoints, ``log p(mutant) - log p(wild type)`` over the
  whole sequences, ``<eos>`` included (the autoregressive models' rule in ProteinGym, e.g. Tranception, ProGen2).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from xtrimo.config import ModelConfig
from xtrimo.data.batching import length_batches
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.model.layout import IGNORE_INDEX, clm_sample, collate, from_ids, glm_sample, mlm_sample
from xtrimo.progress import Progress
from xtrimo.tokenizer import EOS_ID, MASK_ID, ResidueTokenizer

_MUTATION = re.compile(r"^([A-Za-z])(\d+)([A-Za-z])$")


@dataclass
class SequenceScore:
    """Log-likelihood of one sequence under an autoregressive layout (or a pseudo-log-likelihood).

    Attributes:
        residue_log_likelihood: sum over the residues.
        eos_log_prob: ``log p(<eos>)`` after the last residue (0.0 for a pseudo-log-likelihood, which has none).
        num_residues: residues scored.
        with_eos: whether ``<eos>`` counts in :attr:`log_likelihood` and :attr:`num_tokens`.
    """

    residue_log_likelihood: float
    eos_log_prob: float
    num_residues: int
    with_eos: bool = True

    @property
    def log_likelihood(self) -> float:
        return self.residue_log_likelihood + (self.eos_log_prob if self.with_eos else 0.0)

    @property
    def num_tokens(self) -> int:
        return self.num_residues + int(self.with_eos)

    @property
    def mean_log_likelihood(self) -> float:
        return self.log_likelihood / self.num_tokens

    @property
    def perplexity(self) -> float:
        return math.exp(-self.mean_log_likelihood)


def generation_mode(config: ModelConfig) -> str:
    """The checkpoint's generation layout (``glm`` or ``clm``); a one-line ``ValueError`` for MLM-only weights."""
    if config.generation_mode is None:
        raise ValueError(
            f"checkpoint {config.name!r} was trained with MLM only (objectives: {', '.join(config.objectives)}): it "
            "cannot generate left to right; fill masked positions with Generator.design / xtrimo-generate "
            "--template, or train GLM first (objective=mixed, the paper's stage 2)")
    return config.generation_mode


def token_log_probs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Log-probabilities ``[*]`` of ``ids`` ``[*]`` under ``softmax(logits)`` ``[*, V]``."""
    return logits.log_softmax(-1).gather(-1, ids[..., None]).squeeze(-1)


def _device(model: XTrimoPGLM) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def continuation_log_probs(
    model: XTrimoPGLM, sequences: Sequence[np.ndarray], prefix_lengths: Sequence[int]
) -> list[np.ndarray]:
    """Per-token log-probabilities of ``seq[p:] + <eos>`` given ``seq[:p]``, in the checkpoint's generation layout.

    Args:
        model: the backbone.
        sequences: residue ids ``[L_i]`` each.
        prefix_lengths: ``p_i`` per sequence (0 scores the whole sequence): the bidirectional GLM prefix, or for
            a causal checkpoint the first residues of the causal stream (read, not scored).

    Returns:
        one float array ``[L_i - p_i + 1]`` per sequence (the last entry is ``<eos>``).
    """
    if generation_mode(model.config) == "glm":
        samples = [glm_sample(s[:p], np.append(s[p:], EOS_ID)) for s, p in zip(sequences, prefix_lengths)]
    else:
        samples = [clm_sample(s) for s in sequences]
        for x, p in zip(samples, prefix_lengths):
            x.labels[: 2 + p] = IGNORE_INDEX
    batch = collate(samples).to(_device(model))
    logits = model(batch)["logits"].float()
    keep = batch.labels != IGNORE_INDEX
    lp = token_log_probs(logits, batch.labels.clamp_min(0)).cpu()
    return [lp[i][keep[i].cpu()].numpy() for i in range(len(samples))]


def _encode(sequences: Sequence[str], names: Sequence[str] | None) -> list[np.ndarray]:
    tok = ResidueTokenizer()
    return [tok.encode(s, names[i] if names else f"#{i}") for i, s in enumerate(sequences)]


def sequence_log_likelihoods(
    model: XTrimoPGLM, sequences: Sequence[str], batch_size: int = 16, names: Sequence[str] | None = None,
    with_eos: bool = True, progress: bool = False,
) -> list[SequenceScore]:
    """Left-to-right log-likelihood of each sequence (see the module docstring), batched by similar length.

    Raises:
        InvalidResidueError: naming the record (``names[i]`` or ``#i``) and the position.
        ValueError: an MLM-only checkpoint (use :func:`pseudo_log_likelihoods`).
    """
    ids = _encode(sequences, names)
    out: list[SequenceScore | None] = [None] * len(ids)
    with Progress(len(ids), "score", "seq", enabled=progress) as bar:
        for chunk in length_batches([len(x) for x in ids], 1 << 62, max_items=batch_size):
            for i, lp in zip(chunk, continuation_log_probs(model, [ids[i] for i in chunk], [0] * len(chunk))):
                out[i] = SequenceScore(float(lp[:-1].sum()), float(lp[-1]), len(lp) - 1, with_eos)
            bar.update(len(chunk))
    return out  # type: ignore[return-value]


def _check_mlm(model: XTrimoPGLM, what: str) -> None:
    if not model.config.can_fill_masks:
        raise ValueError(f"{what} needs a checkpoint trained with MLM; {model.config.name!r} was trained with "
                         f"{', '.join(model.config.objectives)} (use the log-likelihood ratio instead)")


@torch.no_grad()
def _masked_rows(model: XTrimoPGLM, ids: torch.Tensor, positions: Sequence[int], batch_size: int) -> np.ndarray:
    """``log p(token | ids with position i masked)`` for each 0-based ``i``, in the MLM layout: ``[n, V]``."""
    dev, rows = _device(model), []
    for lo in range(0, len(positions), batch_size):
        pos = torch.as_tensor(positions[lo : lo + batch_size], dtype=torch.long)
        x = ids.repeat(len(pos), 1)
        x[torch.arange(len(pos)), pos] = MASK_ID
        logits = model(from_ids(x.to(dev), "mlm"))["logits"].float()
        rows.append(logits[torch.arange(len(pos)), pos.to(dev)].log_softmax(-1).cpu())
    return torch.cat(rows).numpy() if rows else np.zeros((0, model.config.padded_vocab_size), np.float32)


def pseudo_log_likelihoods(
    model: XTrimoPGLM, sequences: Sequence[str], batch_size: int = 16, names: Sequence[str] | None = None,
    progress: bool = False,
) -> list[SequenceScore]:
    """``sum_i log p(x_i | x_{-i})`` per sequence (MLM layout, residues + ``<eos>``, one masked pass per residue)."""
    _check_mlm(model, "the pseudo-log-likelihood")
    out = []
    encoded = _encode(sequences, names)
    with Progress(len(encoded), "pseudo-log-likelihood", "seq", enabled=progress) as bar:
        for ids in encoded:
            wt = torch.from_numpy(mlm_sample(ids).input_ids)
            table = _masked_rows(model, wt, range(len(ids)), batch_size)
            ll = float(table[np.arange(len(ids)), ids].sum()) if len(ids) else 0.0
            out.append(SequenceScore(ll, 0.0, len(ids), with_eos=False))
            bar.update(1)
    return out


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


def scoring_window(site: int, length: int, window: int) -> tuple[int, int]:
    """``[lo, hi)``: the residues read to score 0-based ``site`` of a ``length``-residue sequence when the model
    reads at most ``window`` residues (ProteinGym's ``get_optimal_window``, ``proteingym/utils/scoring_utils.py``:
    centred on the site, shifted to stay inside the sequence)."""
    half = window // 2
    if length <= window:
        return 0, length
    if site < half:
        return 0, window
    if site >= length - half:
        return length - window, length
    return max(0, site - half), min(length, site + half)


@torch.no_grad()
def masked_marginals(model: XTrimoPGLM, wildtype: str, positions: Sequence[int], batch_size: int = 16,
                     masked: bool = True) -> np.ndarray:
    """``log p(token | wild type with position i masked)`` for each 0-based ``i``: ``[len(positions), V]``;
    ``masked=False``: from one unmasked pass per window (wild-type marginals).

    The input is the MLM layout of pre-training: residues + ``<eos>``, positions ``(arange, 0)``, bidirectional;
    a wild type longer than the context is read in :func:`scoring_window` around each position.
    """
    _check_mlm(model, "masked-marginal scoring")
    ids = ResidueTokenizer().encode(wildtype, name="wild type")
    out = np.zeros((len(positions), model.config.padded_vocab_size), np.float32)
    groups: dict[tuple[int, int], list[int]] = {}
    for k, p in enumerate(positions):
        groups.setdefault(scoring_window(p, len(ids), model.config.seq_length - 1), []).append(k)
    for (lo, hi), ks in groups.items():
        wt = torch.from_numpy(mlm_sample(ids[lo:hi]).input_ids)
        local = [positions[k] - lo for k in ks]
        if masked:
            out[ks] = _masked_rows(model, wt, local, batch_size)
        else:
            logits = model(from_ids(wt[None].to(_device(model)), "mlm"))["logits"][0].float()
            out[ks] = logits[local].log_softmax(-1).cpu().numpy()
    return out


def masked_marginal_scores(
    model: XTrimoPGLM, wildtype: str, variants: Sequence[str], batch_size: int = 16, masked: bool = True
) -> list[float]:
    """Zero-shot effect of each variant: ``sum over its mutations of log p(mut) - log p(wt)`` at the masked site
    (``masked=False``: at the unmasked site, wild-type marginals).

    Higher means more favourable than the wild type (ESM-1v masked-marginal scoring).
    """
    tok = ResidueTokenizer()
    parsed = [parse_variant(v, wildtype) for v in variants]
    sites = sorted({p for muts in parsed for p, _, _ in muts})
    table = masked_marginals(model, wildtype, sites, batch_size, masked)
    row = {p: i for i, p in enumerate(sites)}
    return [sum(float(table[row[p], tok.token_to_id[mt]] - table[row[p], tok.token_to_id[wt]]) for p, wt, mt in muts)
            for muts in parsed]


def apply_variant(wildtype: str, mutations: list[tuple[int, str, str]]) -> str:
    """The mutant sequence of parsed ``mutations`` (:func:`parse_variant`)."""
    seq = list(wildtype.upper())
    for pos, _, mt in mutations:
        seq[pos] = mt
    return "".join(seq)


def log_likelihood_ratio_scores(
    model: XTrimoPGLM, wildtype: str, variants: Sequence[str], batch_size: int = 16
) -> list[float]:
    """``log p(mutant) - log p(wild type)`` per variant, whole sequences with ``<eos>``, left to right in the
    checkpoint's generation layout (GLM / CLM checkpoints). Higher means more favourable than the wild type."""
    mutants = [apply_variant(wildtype, parse_variant(v, wildtype)) for v in variants]
    scores = sequence_log_likelihoods(model, [wildtype, *mutants], batch_size, ["wild type", *variants])
    return [s.log_likelihood - scores[0].log_likelihood for s in scores[1:]]
