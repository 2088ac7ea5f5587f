"""Cross-entropy over the labelled positions, with a per-objective breakdown."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xtrimo.objectives.sample import IGNORE_INDEX, OBJECTIVE_NAMES


def lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, kinds: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean token cross-entropy and, per objective, the summed NLL and token count.

    Args:
        logits: ``[B, L, V]``, or ``[K, V]`` at the labelled positions only (row-major; the model's
            ``logits_at=labels != IGNORE_INDEX``).
        labels: ``[B, L]`` with ``IGNORE_INDEX`` on unlabelled positions.
        kinds: ``[B]`` objective of each sample (``MLM`` / ``GLM``).

    Returns:
        ``(loss, breakdown)`` with ``breakdown["<name>_nll"]`` and ``breakdown["<name>_tokens"]`` (float tensors,
        detached) for each objective.
    """
    keep = labels != IGNORE_INDEX
    selected = logits if logits.ndim == 2 else logits[keep]
    nll = F.cross_entropy(selected.float(), labels[keep], reduction="none")
    loss = nll.sum() / keep.sum().clamp_min(1)
    token_kind = kinds[:, None].expand_as(labels)[keep]
    breakdown = {}
    for k, name in enumerate(OBJECTIVE_NAMES):
        sel = token_kind == k
        breakdown[f"{name}_nll"] = nll.detach()[sel].sum()
        breakdown[f"{name}_tokens"] = sel.sum().float()
    return loss, breakdown
