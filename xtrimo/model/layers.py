"""Transformer block of xTrimoPGLM: fused-QKV attention with RoPE, GeGLU MLP, post-LN DeepNorm residuals.

The residual stream is kept as a flat ``[T, H]`` tensor of the real (non-padding) tokens, so the linear layers,
which hold nearly all FLOPs, never compute on padding; only attention sees the padded ``[B, L]`` layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from xtrimo.config import ModelConfig
from xtrimo.model.layout import span_mask
from xtrimo.model.rope import ROTARY
from xtrimo.model.span_attention import span_attention


@dataclass
class TokenLayout:
    """Maps between the flat real-token layout ``[T, ...]`` and the padded ``[B, L, ...]`` one.

    ``index`` holds the flat positions (in ``B * L``) of the real tokens; None means there is no padding and the
    two layouts are views of each other. ``extra`` filler rows (zeros) round the flat count up to a multiple, so
    that the matrix products see few distinct shapes: on the CPU in bf16, oneDNN builds kernels and buffers for
    every new shape, and with a new token count every step they pile up (peak memory 3.8 GB after one minute of
    the quickstart instead of 1.9 GB in fp32).
    """

    batch: int
    length: int
    index: torch.Tensor | None = None
    extra: int = 0
    # set for variable-length attention: per-sequence lengths and bidirectional-prefix lengths (python ints)
    lengths: list[int] | None = None
    divisions: list[int] | None = None

    @classmethod
    def from_valid(cls, valid: torch.Tensor | None, batch: int, length: int, multiple: int = 1) -> TokenLayout:
        index = None if valid is None or bool(valid.all()) else valid.reshape(-1).nonzero().squeeze(1)
        tokens = batch * length if index is None else len(index)
        return cls(batch, length, index, round_rows(tokens, multiple) - tokens)

    def use_varlen(self, valid: torch.Tensor, division: torch.Tensor | None) -> bool:
        """Switch attention to one call per sequence over its real tokens only.

        Pays where padding is large and kernels are cheap to launch (the CPU): a padded, masked attention spends
        time on every pad position, while for length-sorted buckets of many short sequences the per-call cost
        dominates. Needs right-padded rows.
        """
        lengths = valid.sum(1)
        # worth it only where most of the padded attention is waste; with sorted buckets one padded call is faster
        if float((lengths.double() ** 2).sum()) > 0.5 * self.batch * self.length**2:
            return False
        if right_padded_lengths(valid) is None:
            return False
        self.lengths = lengths.tolist()
        self.divisions = (division.clamp(max=self.length) if division is not None else lengths).tolist()
        return True

    def to_padded(self, x: torch.Tensor) -> torch.Tensor:
        if self.extra:
            x = x[: x.shape[0] - self.extra]
        if self.index is None:
            return x.view(self.batch, self.length, *x.shape[1:])
        out = x.new_zeros(self.batch * self.length, *x.shape[1:]).index_copy(0, self.index, x)
        return out.view(self.batch, self.length, *x.shape[1:])

    def to_flat(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(self.batch * self.length, *x.shape[2:])
        flat = flat if self.index is None else flat.index_select(0, self.index)
        return self.fill(flat)

    def fill(self, flat: torch.Tensor) -> torch.Tensor:
        """Append the ``extra`` filler rows to real-token rows ``[T, ...]``."""
        return pad_rows(flat, self.extra)


def right_padded_lengths(valid: torch.Tensor) -> torch.Tensor | None:
    """``[B]`` real-token counts when every row of ``valid`` ``[B, L]`` is real tokens then padding, else None."""
    lengths = valid.sum(1)
    if not bool((valid == (torch.arange(valid.shape[1], device=valid.device) < lengths[:, None])).all()):
        return None
    return lengths


def round_rows(n: int, multiple: int) -> int:
    """``n`` rounded up to a step of ``n``'s power of two / 8, at most ``multiple`` (1: no rounding).

    Bounds both the filler work (under 12.5%; a fixed step of 1024 added 22% on 3,350-token batches) and the number
    of distinct row counts (8 per doubling): on the CPU a new count every bf16 step grows the heap (docs/training.md).
    """
    step = min(multiple, 1 << max(n.bit_length() - 4, 0))
    return -(-n // step) * step


def pad_rows(x: torch.Tensor, extra: int) -> torch.Tensor:
    """``x`` ``[N, ...]`` with ``extra`` rows of zeros appended, ``[N + extra, ...]``."""
    return torch.cat((x, x.new_zeros(extra, *x.shape[1:]))) if extra else x


class KVCache:
    """Pre-allocated key/value buffers ``[B, nh, max_len, hd]`` per layer, for incremental decoding.

    ``length`` counts the positions filled; only the model advances it (:meth:`advance`, after all its layers ran).
    """

    def __init__(self, config: ModelConfig, batch: int, max_len: int, device: torch.device, dtype: torch.dtype):
        shape = (batch, config.num_attention_heads, max_len, config.head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_layers)]
        self.length = 0
        self.max_len = max_len

    def window(self, new: int) -> KVWindow:
        """Where a forward pass of ``new`` tokens per row writes (raises ``ValueError`` past ``max_len``)."""
        end = self.length + new
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: {end} positions > max_len {self.max_len}")
        return KVWindow(self.keys, self.values, end)

    def advance(self, new: int) -> None:
        self.length += new

    def reorder(self, index: torch.Tensor) -> None:
        """Keep only the batch rows in ``index`` (e.g. finished sequences dropped)."""
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]


@dataclass
class KVWindow:
    """The cache slots one forward pass writes: the new keys go to ``end - n .. end - 1``, attention reads ``:end``.

    ``end`` may be a traced size (a compiled decoding step derives it from the attended keys' width), so one graph
    serves every cache length.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    end: int

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start = self.end - k.shape[2]
        self.keys[layer][:, :, start : self.end] = k
        self.values[layer][:, :, start : self.end] = v
        return self.keys[layer][:, :, : self.end], self.values[layer][:, :, : self.end]


@dataclass
class AttentionInputs:
    """What a block's attention reads besides the residual stream.

    Attributes:
        layout: where the real tokens sit in the padded batch.
        rope: the ``(cos, sin)`` tables ``[B, 1, L, head_dim]``.
        mask: ``[B, 1, Lq, Lk]`` bool (True = attend) or None (every key).
        cache: the KV-cache slots of this pass, or None.
        need_weights: also return the attention maps.
        spans: ``(lengths, divisions)``, ``[B]`` int32 each, where attention runs through the bf16 kernel of
            :mod:`xtrimo.model.span_attention` (the mask it implies replaces ``mask``).
    """

    layout: TokenLayout
    rope: tuple[torch.Tensor, torch.Tensor]
    mask: torch.Tensor | None
    cache: KVWindow | None = None
    need_weights: bool = False
    spans: tuple[torch.Tensor, torch.Tensor] | None = None


def attention_dtype(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """On the CPU, attention runs in fp32 even under bf16 autocast (see :func:`attention`); RoPE then needs no
    casts."""
    if q.device.type == "cpu" and q.dtype != torch.float32:
        return q.float(), k.float(), v.float()
    return q, k, v


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
              dropout: float) -> torch.Tensor:
    """``scaled_dot_product_attention``; on the CPU outside autocast, in fp32.

    CPU autocast would run it in bf16, whose kernel keeps memory for every new ``[B, L]`` shape: the quickstart's
    allocations grew by about 4 MB per step. The fp32 kernel holds none and is as fast here.
    """
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


def _compiling_on_cpu(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and torch.compiler.is_compiling()


class Linear(nn.Linear):
    """``nn.Linear`` with the products a compiled decoding step on the CPU wants (eager runs are plain ``F.linear``).

    A cached decoding step multiplies a few rows by every weight, so it streams all weights once per token. Under
    ``torch.compile`` on the CPU one row is written as a multiply-reduce over the ``[out, in]`` weight, which
    inductor turns into one streaming dot product per output (faster than MKL's matrix-vector product through
    ``nn.Linear``); with ``weight_left`` (set by :meth:`XTrimoPGLM.decode_step` when more than one thread runs) a
    few rows (a decoding batch) as ``(W @ x^T)^T``, which MKL splits better over threads.
    """

    decode_rows = 64  # up to this many rows a product counts as a decoding batch
    weight_left = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[*, in]`` -> ``[*, out]``."""
        if x.dim() == 2 and _compiling_on_cpu(x):
            if x.shape[0] == 1:
                y = (x[:, None, :] * self.weight).sum(-1)
                return y if self.bias is None else y + self.bias
            if self.weight_left and x.shape[0] <= self.decode_rows:
                y = (self.weight @ x.t()).t()
                return y if self.bias is None else y + self.bias
        return F.linear(x, self.weight, self.bias)


def _one_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, nh, 1, hd]`` against ``[B, nh, Lk, hd]`` as a multiply-reduce, softmax and product: under
    ``torch.compile`` these fuse into a few loops, cheaper than the attention kernel's set-up for one query."""
    scores = (q * k).sum(-1)[:, :, None] / math.sqrt(q.shape[-1])  # [B, nh, 1, Lk]
    return scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v


class SelfAttention(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.rotate = ROTARY[config.rope_mode].rotate
        self.dropout = config.attention_dropout
        self.query_key_value = Linear(config.hidden_size, 3 * config.hidden_size)
        self.dense = Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, inputs: AttentionInputs) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Args: x ``[T, H]``. Returns ``[T, H]`` and, with ``need_weights``, the maps ``[B, nh, Lq, Lk]``."""
        layout, rope, mask, cache = inputs.layout, inputs.rope, inputs.mask, inputs.cache
        if inputs.spans is not None:
            return self._spans(x, layout, rope, inputs.spans), None
        if layout.lengths is not None:
            return self._varlen(x, layout, rope), None
        # fused QKV laid out per head, [h0: q|k|v, h1: q|k|v, ...], as Megatron and HF ProteinGLM
        qkv = layout.to_padded(self.query_key_value(x))  # [B, L, 3H]
        b, length = qkv.shape[:2]
        q, k, v = qkv.view(b, length, self.num_heads, 3, self.head_dim).permute(3, 0, 2, 1, 4).unbind(0)
        q, k, v = attention_dtype(q, k, v)
        q, k = self.rotate(q, *rope), self.rotate(k, *rope)
        if cache is not None:
            k, v = (t.to(q.dtype) for t in cache.update(self.layer_idx, k, v))
        probs = None
        if inputs.need_weights:
            # explicit softmax only when attention maps are asked for (contacts, fold pair features)
            scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(self.head_dim)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            probs = scores.softmax(-1)
            ctx = (probs.to(v.dtype) @ v)
        elif length == 1 and mask is not None and _compiling_on_cpu(q):
            ctx = _one_query_attention(q, k, v, mask)
        else:
            ctx = attention(q, k, v, mask, self.dropout if self.training else 0.0)
        ctx = ctx.to(qkv.dtype).transpose(1, 2).reshape(b, length, -1)
        return self.dense(layout.to_flat(ctx)), probs

    def _spans(self, x: torch.Tensor, layout: TokenLayout, rope: tuple[torch.Tensor, torch.Tensor],
               spans: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Attention in bf16 through the span kernel: RoPE in fp32, products in bf16, softmax in fp32."""
        qkv = layout.to_padded(self.query_key_value(x))  # [B, L, 3H]
        b, length = qkv.shape[:2]
        q, k, v = qkv.view(b, length, self.num_heads, 3, self.head_dim).unbind(3)  # [B, L, nh, hd]
        cos, sin = (t.transpose(1, 2) for t in rope)  # [B, L, 1, hd]
        q, k = (self.rotate(t.float(), cos, sin).to(torch.bfloat16) for t in (q, k))
        ctx = span_attention(q, k, v.to(torch.bfloat16), *spans)
        return self.dense(layout.to_flat(ctx.reshape(b, length, -1)))

    def _varlen(self, x: torch.Tensor, layout: TokenLayout, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Attention sequence by sequence on the flat ``[T, H]`` layout: no pad position is ever computed."""
        qkv = self.query_key_value(x)
        outs, start = [], 0
        for i, (n, div) in enumerate(zip(layout.lengths, layout.divisions)):
            heads = qkv[start : start + n].view(1, n, self.num_heads, 3, self.head_dim)
            q, k, v = heads.permute(3, 0, 2, 1, 4).unbind(0)
            q, k, v = attention_dtype(q, k, v)
            cos, sin = rope[0][i : i + 1, :, :n], rope[1][i : i + 1, :, :n]
            q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
            mask = span_mask(n, div, x.device) if div < n else None  # GLM / CLM sample: causal after the prefix
            ctx = attention(q, k, v, mask, self.dropout if self.training else 0.0)
            outs.append(ctx[0].to(qkv.dtype).transpose(0, 1).reshape(n, -1))
            start += n
        return self.dense(layout.fill(torch.cat(outs)))


class GeGLU(nn.Module):
    """``dense_4h_to_h(x1 * gelu(x2))`` with ``x1, x2`` the two halves of ``dense_h_to_4h(x)``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense_h_to_4h = Linear(config.hidden_size, 2 * config.ffn_hidden_size)
        self.dense_4h_to_h = Linear(config.ffn_hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[*, H]`` -> ``[*, H]``."""
        x1, x2 = self.dense_h_to_4h(x).chunk(2, dim=-1)
        return self.dense_4h_to_h(x1 * F.gelu(x2))


class GLMBlock(nn.Module):
    """Post-LN DeepNorm block: ``y = LN_in(x); z = LN_post(a*y + Attn(y)); out = a*z + MLP(z)``."""

    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.alpha = config.deepnorm_alpha
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)
        self.self_attention = SelfAttention(config, layer_idx)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)
        self.mlp = GeGLU(config)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, x: torch.Tensor, inputs: AttentionInputs) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Args: x ``[T, H]``. Returns ``[T, H]`` and maybe the attention maps."""
        y = self.input_layernorm(x)
        a, probs = self.self_attention(y, inputs)
        z = self.post_attention_layernorm(self.alpha * y + self.dropout(a))
        return self.alpha * z + self.dropout(self.mlp(z)), probs
