"""GLM attention masks: bidirectional over the prefix (and ``[gMASK]``), causal after it.

``mask[i, j] = key_valid[j] and (j < division or j <= i)``, the released collator's ``build_mask_matrix``.
A pure MLM sample has ``division = L`` (fully bidirectional).
"""

from __future__ import annotations

import torch


def glm_attention_mask(division: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
    """Boolean mask, True where attention is allowed.

    Args:
        division: ``[B]`` number of leading positions that every query may see.
        key_valid: ``[B, L]`` False on padding.

    Returns:
        ``[B, 1, L, L]`` bool.
    """
    length = key_valid.shape[1]
    idx = torch.arange(length, device=key_valid.device)
    causal = idx[None, :] <= idx[:, None]  # [L, L] j <= i
    prefix = idx[None, None, :] < division[:, None, None]  # [B, 1, L]
    allowed = (causal[None] | prefix) & key_valid[:, None, :]
    return allowed[:, None]


def needs_mask(division: torch.Tensor | None, key_valid: torch.Tensor | None, length: int) -> bool:
    """False when every query may see every key (pure MLM batch without padding)."""
    full = division is None or bool((division >= length).all())
    return not (full and (key_valid is None or bool(key_valid.all())))
