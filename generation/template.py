"""Template design (infilling / motif scaffolding): fill the ``?`` positions, keep every other residue exactly.

Route: iterative MLM refinement (mask-predict, Ghazvininejad et al. 2019), not span infilling through ``[gMASK]``.
Why: the GLM objective of pre-training only ever generates a *suffix* after a bidirectional prefix
(``xtrimo/objectives/glm.py``; the 100B recipe sets the span-infilling probability to 0), so a ``[gMASK]`` span in
the middle of a template would be generated without seeing the fixed residues to its right, a condition the model
never trained on. The MLM objective trained exactly the needed condition: ``<mask>`` tokens at arbitrary positions
of a fixed-length sequence, read with bidirectional attention, so every designed residue sees the whole motif on
both sides, and the template fixes the length as ``?`` means one residue each.

Algorithm (``T`` iterations): all ``?`` start as ``<mask>``; at iteration ``t`` every masked position is sampled
(temperature / top-k / top-p / ban apply) and remembers the probability of its draw; then the
``floor(n * (T - 1 - t) / T)`` least confident designed positions are masked again. After the last iteration nothing
is masked. Only designed positions are ever written, so the fixed residues cannot change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from xtrimo.generation.sampling import (
    SamplingConfig, draw, process_logits, residue_mask, restrict, uniform,
)
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.model.layout import from_ids, mlm_sample
from xtrimo.scoring import token_log_probs
from xtrimo.tokenizer import MASK_ID, ResidueTokenizer

DESIGN_CHAR = "?"
_TEMPLATE_STREAM = 1  # random stream of template sampling (decoding uses stream 0)


def parse_template(template: str) -> tuple[np.ndarray, np.ndarray]:
    """Residue ids with ``<mask>`` at the ``?``, and the designed-position mask.

    Returns:
        ``ids`` int64 ``[L]`` and ``designed`` bool ``[L]``.

    Raises:
        ValueError: an empty template, or one without ``?`` (nothing to design).
        InvalidResidueError: any other character that is not a residue, with its 1-based position.
    """
    template = template.strip()
    if not template:
        raise ValueError("template is empty")
    designed = np.array([c == DESIGN_CHAR for c in template], dtype=bool)
    if not designed.any():
        raise ValueError(f"template {template!r} has no '?' position to design")
    # '?' is swapped for a valid letter only to validate the rest; error positions stay those of the template
    ids = ResidueTokenizer().encode(template.replace(DESIGN_CHAR, "A"), name="template")
    ids[designed] = MASK_ID
    return ids, designed


def _remask_count(n_designed: int, iteration: int, iterations: int) -> int:
    return (n_designed * (iterations - 1 - iteration)) // iterations


@torch.no_grad()
def design(
    model: XTrimoPGLM,
    ids: np.ndarray,
    designed: np.ndarray,
    config: SamplingConfig,
    seed: int,
    indices: Sequence[int],
    iterations: int = 0,
) -> list[np.ndarray]:
    """Fill the designed positions of one template for each sequence number in ``indices``.

    Args:
        model: the backbone.
        ids: ``[L]`` template ids from :func:`parse_template`.
        designed: ``[L]`` bool, True at the ``?``.
        config: sampling controls (the repetition penalty is not used: every position is sampled in parallel).
        seed: random seed; with the index it fixes every draw, whatever the batch.
        indices: sequence numbers, one design each.
        iterations: refinement rounds, 0 picks ``min(10, number of ?)``.

    Returns:
        one residue-id array ``[L]`` per index.
    """
    dev = next(model.parameters()).device
    n_design = int(designed.sum())
    iterations = iterations if iterations > 0 else min(10, n_design)
    b, length = len(indices), len(ids)
    x = torch.from_numpy(mlm_sample(ids).input_ids).to(dev).repeat(b, 1)  # residues + <eos>
    design_pos = torch.from_numpy(np.flatnonzero(designed)).to(dev)
    masked = torch.ones((b, n_design), dtype=torch.bool, device=dev)
    confidence = torch.zeros((b, n_design), device=dev)
    allowed = residue_mask(config, dev)
    rows = torch.as_tensor(list(indices), dtype=torch.long, device=dev)
    stream = rows[:, None] * length + design_pos[None, :]  # one random stream per (sequence, position)
    for it in range(iterations):
        logits = model(from_ids(x, "mlm"))["logits"][:, design_pos].float()  # [B, n, V]
        flat = process_logits(restrict(logits, allowed).flatten(0, 1), config)
        picked = draw(flat, uniform(seed, stream.flatten(), it, _TEMPLATE_STREAM), greedy=config.temperature == 0)
        prob = token_log_probs(flat, picked).view(b, n_design)
        picked = picked.view(b, n_design)
        current = x[:, design_pos]
        x[:, design_pos] = torch.where(masked, picked, current)
        confidence = torch.where(masked, prob, confidence)
        masked = _lowest(confidence, _remask_count(n_design, it, iterations))
        x[:, design_pos] = torch.where(masked, torch.full_like(current, MASK_ID), x[:, design_pos])
    return [row[:length].cpu().numpy() for row in x]


def _lowest(confidence: torch.Tensor, k: int) -> torch.Tensor:
    """``[B, n]`` bool marking the ``k`` least confident entries per row (ties: the lower position first)."""
    out = torch.zeros_like(confidence, dtype=torch.bool)
    if k > 0:
        order = torch.sort(confidence, dim=-1, stable=True).indices[:, :k]
        out.scatter_(1, order, True)
    return out
