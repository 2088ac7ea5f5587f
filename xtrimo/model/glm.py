"""The xTrimoPGLM backbone with its (untied) language-model head.

Module names equal Hugging Face ProteinGLM's, so its checkpoints load through a key table
(``xtrimo/checkpoint.py``) and LoRA targets match the paper's scripts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from xtrimo.config import ModelConfig
from xtrimo.model.layers import GLMBlock, KVCache, TokenLayout
from xtrimo.model.masks import glm_attention_mask, needs_mask
from xtrimo.model.rope import RotaryEmbedding
from xtrimo.tokenizer import PAD_ID


class _ShrinkGrad(torch.autograd.Function):
    """Identity forward, gradient scaled by alpha (GLM-130B embedding-gradient shrink)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.alpha, None


class Embedding(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.padded_vocab_size, config.hidden_size)


class Encoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(GLMBlock(config, i) for i in range(config.num_layers))
        self.final_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embedding = Embedding(config)
        self.encoder = Encoder(config)
        self.output_layer = nn.Linear(config.hidden_size, config.padded_vocab_size)


def default_position_ids(tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """MLM positions ``(arange, 0)``, ``[B, 2, L]``."""
    b, length = tokens.shape
    pos = torch.arange(offset, offset + length, device=tokens.device).expand(b, length)
    return torch.stack((pos, torch.zeros_like(pos)), dim=1)


class XTrimoPGLM(nn.Module):
    """GLM protein language model (xTrimoPGLM, Chen et al.).

    Args:
        config: the architecture.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = Transformer(config)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_mode, config.rope_base)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GLM-130B init: normal(std) everywhere, DeepNorm's xavier-normal gain beta on V, attention output and FFN."""
        cfg, beta = self.config, self.config.deepnorm_beta
        for name, p in self.named_parameters():
            if p.device.type == "meta":
                continue
            if "layernorm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            elif name.endswith(("dense.weight", "dense_h_to_4h.weight", "dense_4h_to_h.weight")):
                nn.init.xavier_normal_(p, gain=beta)
            else:
                p.normal_(0.0, cfg.init_method_std)
        for block in self.transformer.encoder.layers:
            w = block.self_attention.query_key_value.weight
            if w.device.type == "meta":
                continue
            v_rows = w.view(cfg.num_attention_heads, 3, cfg.head_dim, cfg.hidden_size)[:, 2]
            std = beta * (2.0 / (2 * cfg.hidden_size)) ** 0.5  # xavier-normal of the [H, H] value map
            v_rows.normal_(0.0, std)

    def forward(
        self,
        tokens: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        division: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        return_logits: bool = True,
    ) -> dict[str, Any]:
        """Run the model.

        Args:
            tokens: ``[B, L]`` ids.
            position_ids: ``[B, 2, L]`` (absolute, block) positions; default ``(arange, 0)`` (after the cache).
            division: ``[B]`` bidirectional-prefix length; None means fully bidirectional (MLM).
            valid: ``[B, L]`` False on padding; default ``tokens != <pad>``.
            attention_mask: explicit ``[B, 1, L, L_keys]`` bool (True = attend); overrides division/valid masking.
            cache: a :class:`KVCache` for incremental decoding (advanced by ``L``).
            output_hidden_states: also return every layer's states (embedding output first), ``[B, L, H]`` each.
            output_attentions: also return attention maps ``[B, nh, L, L_keys]`` per layer.
            return_logits: False skips the output head (embedding extraction).

        Returns:
            dict with ``logits`` ``[B, L, V]``, ``last_hidden_state`` ``[B, L, H]`` (after the final LayerNorm)
            and, on request, ``hidden_states`` and ``attentions``.
        """
        b, length = tokens.shape
        if valid is None:
            valid = tokens != PAD_ID
        if position_ids is None:
            position_ids = default_position_ids(tokens, cache.length if cache is not None else 0)
        mask = attention_mask
        layout = TokenLayout.from_valid(valid if cache is None and attention_mask is None else None, b, length)
        varlen = (
            layout.index is not None and tokens.device.type == "cpu" and not output_attentions
            and layout.use_varlen(valid, division)
        )
        if mask is None and not varlen and needs_mask(division, valid, length):
            div = division if division is not None else torch.full((b,), length, device=tokens.device)
            mask = glm_attention_mask(div, valid)
        rope = self.rotary(position_ids)

        x = self.transformer.embedding.word_embeddings(layout.to_flat(tokens[..., None]).squeeze(-1))
        if self.config.embedding_grad_shrink < 1.0 and self.training:
            x = _ShrinkGrad.apply(x, self.config.embedding_grad_shrink)
        hidden, attentions = [], []
        for block in self.transformer.encoder.layers:
            if output_hidden_states:
                hidden.append(x)
            x, probs = block(x, layout, rope, mask, cache, output_attentions)
            if output_attentions:
                attentions.append(probs)
        x = self.transformer.encoder.final_layernorm(x)
        if cache is not None:
            cache.length += length
        out: dict[str, Any] = {"last_hidden_state": layout.to_padded(x)}
        if return_logits:
            out["logits"] = layout.to_padded(self.transformer.output_layer(x))
        if output_hidden_states:
            out["hidden_states"] = [layout.to_padded(h) for h in hidden] + [out["last_hidden_state"]]
        if output_attentions:
            out["attentions"] = attentions
        return out

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu") -> XTrimoPGLM:
        """Load a checkpoint directory (model.safetensors + config.yaml) with strict key checking."""
        from xtrimo.checkpoint import load_model

        return load_model(path, map_location)

    def save_pretrained(self, path: str | Path) -> None:
        """Write model.safetensors + config.yaml atomically into ``path``."""
        from xtrimo.checkpoint import save_model

        save_model(self, path)
