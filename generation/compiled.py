"""A compiled decoding step: one ``torch.compile`` graph per generated token (model step, sampling and draw).

A cached decoding step of a small model spends most of its time between operators: the eager step of a 6-layer,
320-wide model runs about 440 of them (counted) for 7.5M multiply-adds per token. Compiled, the step becomes a few
fused loops. A one-row linear layer is written here as a multiply-reduce over the ``[out, in]`` weight, which
inductor turns into one streaming dot product per output on the CPU: 26 GB/s of weights on one core of this
machine, against 15 GB/s for MKL's matrix-vector product through ``nn.Linear`` (a step's weights: 1.13 vs 2.0 ms).

The batch, the cache length and the attended length are traced as symbols and the step number and seed are
tensors, so a process compiles once for a one-row batch and once for larger ones, whatever the lengths asked for
(and again for another :class:`SamplingConfig`, whose values are constants of the graph).
The math is that of :class:`xtrimo.model.layers.GLMBlock` for one new token per row against a :class:`KVCache`;
tests hold the two to 1e-5.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import sysconfig
from pathlib import Path

import torch
import torch.nn.functional as F

from xtrimo.generation.decode import StepFn, choose
from xtrimo.generation.sampling import SamplingConfig, token_log_probs
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.model.layers import attention_dtype
from xtrimo.model.rope import apply_rotary

# Inductor inlines cheap element-wise producers into the reductions that read them. For the GeGLU activation that
# means evaluating erf once per (output, input) pair inside the next layer's dot products; a lower threshold keeps
# it (and the layer norms) computed once per element (whole step 1.9 ms vs 2.5 ms, one core, 6 x 320 model).
# A C++ wrapper without size asserts calls the kernels with less host work per step (0.91 instead of 1.32 ms a step
# on two cores).
_INDUCTOR_OPTIONS = {"realize_opcount_threshold": 6, "size_asserts": False, "cpp_wrapper": True}


def _linear(x: torch.Tensor, layer: torch.nn.Linear, weight_left: bool) -> torch.Tensor:
    """``[B, in] -> [B, out]``: one row as a multiply-reduce (see the module docstring), more rows through BLAS,
    as ``(W @ x^T)^T`` when ``weight_left``: MKL splits that product better over several threads (all 25 products
    of a 16-row step: 3.7-4.2 vs 4.5-4.6 ms on two cores, but 6.5-6.8 vs 6.1 ms on one)."""
    if x.shape[0] == 1:
        y = (x[:, None, :] * layer.weight).sum(-1)
    elif weight_left:
        y = (layer.weight @ x.t()).t()
    else:
        return F.linear(x, layer.weight, layer.bias)
    return y if layer.bias is None else y + layer.bias


def forward_one(
    model: XTrimoPGLM,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    valid: torch.Tensor,
    keys: list[torch.Tensor],
    values: list[torch.Tensor],
    weight_left: bool = False,
) -> torch.Tensor:
    """Logits ``[B, V]`` (fp32) after one new token per row, whose keys and values go into the cache.

    Args:
        model: the backbone.
        tokens: ``[B]`` ids; positions: ``[B, 2]`` (absolute, block).
        valid: ``[B, end]`` bool over the keys to attend, False on padding; the new token is written to cache
            position ``end - 1`` (the GLM prefix is bidirectional and lies before it, so a generated token sees all
            of it and every earlier generated token). Passing the length as a size keeps it a traced symbol.
        keys, values: per layer ``[B, nh, max_len, hd]`` buffers (:class:`KVCache`), updated in place.
        weight_left: how products of several rows are laid out (see ``_linear``).
    """
    cfg, b = model.config, tokens.shape[0]
    end = valid.shape[1]
    slot = end - 1
    x = model.transformer.embedding.word_embeddings(tokens)
    cos, sin = model.rotary(positions[:, :, None])
    mask = valid[:, None, None, :]
    for layer, block in enumerate(model.transformer.encoder.layers):
        attn = block.self_attention
        y = block.input_layernorm(x)
        qkv = _linear(y, attn.query_key_value, weight_left)
        q, k, v = qkv.reshape(b, cfg.num_attention_heads, 3, 1, cfg.head_dim).unbind(2)
        q, k, v = attention_dtype(q, k, v)
        q, k = apply_rotary(q, cos, sin, attn.rope_mode), apply_rotary(k, cos, sin, attn.rope_mode)
        keys[layer][:, :, slot:end] = k
        values[layer][:, :, slot:end] = v
        cached_k, cached_v = keys[layer][:, :, :end].to(q.dtype), values[layer][:, :, :end].to(q.dtype)
        scores = (q * cached_k).sum(-1)[:, :, None] / math.sqrt(cfg.head_dim)  # [B, nh, 1, end]
        ctx = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ cached_v  # [B, nh, 1, hd]
        a = _linear(ctx.to(y.dtype).reshape(b, -1), attn.dense, weight_left)
        z = block.post_attention_layernorm(block.alpha * y + a)
        x1, x2 = _linear(z, block.mlp.dense_h_to_4h, weight_left).chunk(2, dim=-1)
        x = block.alpha * z + _linear(x1 * F.gelu(x2), block.mlp.dense_4h_to_h, weight_left)
    x = model.transformer.encoder.final_layernorm(x)
    return _linear(x, model.transformer.output_layer, weight_left).float()


def next_token(
    model: XTrimoPGLM, tokens: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, keys: list[torch.Tensor],
    values: list[torch.Tensor], allowed: torch.Tensor, seen: torch.Tensor, rows: torch.Tensor, config: SamplingConfig,
    seed: torch.Tensor, step: torch.Tensor, too_short: torch.Tensor, weight_left: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step: :func:`forward_one` (first six arguments), then the sampling controls and the seeded draw
    of :func:`generation.decode.choose` (the rest). Returns the ids ``[B]`` and their log-probabilities ``[B]``."""
    logits = forward_one(model, tokens, positions, valid, keys, values, weight_left)
    ids = choose(logits, seen, rows, allowed, config, seed, step, too_short)
    return ids, token_log_probs(logits, ids)


def check_toolchain() -> None:
    """Raise a one-line ``RuntimeError`` when inductor cannot build its C++ here (no compiler, no Python headers),
    instead of a long compiler log at the first token."""
    cxx = os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")
    if shutil.which(cxx) is None and not os.environ.get("TORCH_INDUCTOR_INSTALL_GXX"):  # inductor's own fallback
        raise RuntimeError(f"compiled decoding needs a C++ compiler: {cxx!r} not found (install one or set CXX)")
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.is_file():
        raise RuntimeError(f"compiled decoding needs the Python headers: {headers} not found (e.g. python3-dev)")


def compiled_next_token() -> StepFn:
    """:func:`next_token` under ``torch.compile`` (inductor), the batch and lengths traced as symbols.

    Compiles on first use (about 20 s here), again for a one-row batch and for another :class:`SamplingConfig`.
    Only the batch and length dimensions are dynamic: model widths stay constants of the kernels.
    Raises ``RuntimeError`` at once when the C++ toolchain is missing (:func:`check_toolchain`).
    """
    check_toolchain()
    step = torch.compile(next_token, options=_INDUCTOR_OPTIONS)

    def run(
        model: XTrimoPGLM, tokens: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor,
        keys: list[torch.Tensor], values: list[torch.Tensor], *rest: object,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for t in (tokens, positions, valid, *keys, *values, rest[1], rest[2]):  # rest: allowed, seen, rows, ...
            torch._dynamo.maybe_mark_dynamic(t, 0)
        torch._dynamo.maybe_mark_dynamic(valid, 1)
        for t in (*keys, *values):
            torch._dynamo.maybe_mark_dynamic(t, 2)
        weight_left = tokens.device.type == "cpu" and torch.get_num_threads() > 1
        return step(model, tokens, positions, valid, keys, values, *rest, weight_left)

    return run
