"""Rotary position embeddings, 1-D (GLM-130B) and 2-D (xTrimoPGLM-100B).

2-D form: each head's dims are split in halves; the first half rotates with the absolute position
(``position_ids[:, 0]``), the second with the position inside the generated span (``position_ids[:, 1]``),
each with rotary dim ``head_dim / 2`` (HF ``get_position_ids``, "100b model").
"""

from __future__ import annotations

import torch
from torch import nn

from xtrimo.config import RopeMode


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """Produces the ``(cos, sin)`` tables ``[B, 1, L, head_dim]`` for given position ids and rotates by them; one
    subclass per form (:data:`ROTARY`), chosen once from ``ModelConfig.rope_mode``.

    Args:
        head_dim: per-head width.
        base: the RoPE base (10000).
    """

    rotary_fraction = 1  # 1 / (the share of each head one table rotates)

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        rot_dim = head_dim // self.rotary_fraction
        inv_freq = 1.0 / (base ** (torch.arange(0, rot_dim, 2, dtype=torch.float32) / rot_dim))
        # saved with the weights: converted checkpoints keep the frequencies they were trained with
        self.register_buffer("inv_freq", inv_freq)

    def _table(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = pos.float()[..., None] * self.inv_freq  # [B, L, rot/2]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: position_ids ``[B, 2, L]`` (absolute, block). Returns cos, sin ``[B, 1, L, head_dim]``."""
        raise NotImplementedError

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` ``[B, nh, L, hd]`` by the tables of :meth:`forward` (rotate-half convention)."""
        raise NotImplementedError


class Rotary1D(RotaryEmbedding):
    """GLM-130B: the whole head rotates with the flattened position."""

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the flattened GLM position: prefix 0..P-1, [gMASK] P, span tokens P+1.. (= absolute + block)
        cos, sin = self._table(position_ids[:, 0] + position_ids[:, 1])
        return cos[:, None], sin[:, None]

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        return x * cos + rotate_half(x) * sin


class Rotary2D(RotaryEmbedding):
    """xTrimoPGLM-100B: each half of the head rotates on its own, by the absolute and by the block position."""

    rotary_fraction = 2

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c0, s0 = self._table(position_ids[:, 0])
        c1, s1 = self._table(position_ids[:, 1])
        return torch.cat((c0, c1), dim=-1)[:, None], torch.cat((s0, s1), dim=-1)[:, None]

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        h = x1.shape[-1]
        return torch.cat(
            (x1 * cos[..., :h] + rotate_half(x1) * sin[..., :h], x2 * cos[..., h:] + rotate_half(x2) * sin[..., h:]),
            dim=-1,
        )


ROTARY: dict[RopeMode, type[RotaryEmbedding]] = {"1d": Rotary1D, "2d": Rotary2D}


def rotary_embedding(mode: RopeMode, head_dim: int, base: float = 10000.0) -> RotaryEmbedding:
    """The RoPE form named by ``ModelConfig.rope_mode``."""
    return ROTARY[mode](head_dim, base)
