"""Batched, KV-cached autoregressive decoding in the GLM ``[gMASK]`` layout of pre-training.

Context of one sequence (``xtrimo/objectives/glm.py``): ``prompt + <gmask> + <sop>``, absolute positions
``0..P-1, P, P`` and block positions ``0..0, 0, 1``; attention is bidirectional over ``prompt + <gmask>`` and causal
after it. The token generated at step ``t`` is fed back with absolute position ``P`` and block position ``t + 2``.
Prompts of different lengths are left-padded, so every row's ``<sop>`` sits in the same column and one cache
position serves the whole batch; padding keys are masked out. A row stops at ``<eop>`` / ``<eos>`` or at its
token budget and is then dropped from the batch (and from the cache).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from xtrimo.generation.sampling import (
    STOP_IDS, SamplingConfig, allowed_ids, draw, forbid, process_logits, restrict, token_log_probs, uniform,
)
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.model.layers import KVCache
from xtrimo.tokenizer import GMASK_ID, PAD_ID, PADDED_VOCAB_SIZE, SOP_ID, ResidueTokenizer

StepFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""A decoding step with the signature of :func:`generation.compiled.next_token`: returns ids and log-probs ``[B]``."""

TokenCallback = Callable[[int, str], None]
"""Called as ``callback(index, token)`` for every produced token: a residue letter, or ``<eos>`` / ``<eop>``."""


@dataclass
class Decoded:
    """One decoded sequence.

    Attributes:
        index: the sequence's number (its random stream).
        tokens: generated residue ids ``[n]`` (the stop token excluded).
        log_probs: ``[n]`` or ``[n + 1]`` log-probabilities under the model (before temperature and filters)
            of each generated token, the stop token included when one was produced.
        stopped: True when the model emitted a stop token, False when the token budget ran out.
    """

    index: int
    tokens: np.ndarray
    log_probs: np.ndarray
    stopped: bool


class _Batch:
    """Per-row decoding state, full width ``C + max_new`` so that rows can be dropped by indexing."""

    def __init__(self, prompts: Sequence[np.ndarray], max_new: int, device: torch.device, indices: Sequence[int]):
        b = len(prompts)
        self.context = max(len(p) for p in prompts) + 2
        width = self.context + max_new
        self.tokens = torch.full((b, width), PAD_ID, dtype=torch.long)
        self.positions = torch.zeros((b, 2, width), dtype=torch.long)
        self.valid = torch.ones((b, width), dtype=torch.bool)
        self.seen = torch.zeros((b, PADDED_VOCAB_SIZE), dtype=torch.bool)
        for r, p in enumerate(prompts):
            pad = self.context - 2 - len(p)
            ids = torch.as_tensor(p, dtype=torch.long)
            self.tokens[r, pad : self.context] = torch.cat((ids, torch.tensor([GMASK_ID, SOP_ID])))
            self.valid[r, :pad] = False
            self.positions[r, 0, pad : self.context] = torch.cat((torch.arange(len(p)), torch.tensor([len(p), len(p)])))
            self.positions[r, 0, self.context :] = len(p)
            self.seen[r, ids] = True
        self.positions[:, 1, self.context - 1 :] = torch.arange(1, max_new + 2)  # <sop> 1, step t -> t + 2
        self.seen[:, PAD_ID] = False
        self.rows = torch.as_tensor(list(indices), dtype=torch.long)
        for name in ("tokens", "positions", "valid", "seen", "rows"):
            setattr(self, name, getattr(self, name).to(device))
        self.log_probs = torch.zeros((b, max_new), dtype=torch.float32, device=device)

    def mask(self, start: int, end: int) -> torch.Tensor:
        """``[B, 1, end - start, end]`` bool for the queries ``start:end`` against keys ``0:end``.

        ``key j`` is visible to ``query i`` when ``j`` is in the bidirectional part (before ``<sop>``) or ``j <= i``,
        and ``j`` is no padding (``xtrimo.model.masks.glm_attention_mask`` restricted to the new queries).
        """
        device = self.valid.device
        q = torch.arange(start, end, device=device)[:, None]
        k = torch.arange(end, device=device)[None, :]
        allowed = ((k < self.context - 1) | (k <= q))[None] & self.valid[:, None, :end]
        # a padding query attends to itself, so no row of the softmax is empty (NaN would reach the cache)
        return (allowed | (k == q)[None])[:, None]

    def keep(self, index: torch.Tensor) -> None:
        for name in ("tokens", "positions", "valid", "seen", "rows", "log_probs"):
            setattr(self, name, getattr(self, name).index_select(0, index))


def _next_logits(model: XTrimoPGLM, batch: _Batch, cache: KVCache | None, length: int, start: int) -> torch.Tensor:
    """Logits ``[B, V]`` for the token after position ``length - 1``; feeds ``start:length`` (cache) or all."""
    lo = start if cache is not None else 0
    out = model(
        batch.tokens[:, lo:length],
        position_ids=batch.positions[:, :, lo:length],
        attention_mask=batch.mask(lo, length),
        cache=cache,
    )
    return out["logits"][:, -1].float()


@torch.no_grad()
def decode(
    model: XTrimoPGLM,
    prompts: Sequence[np.ndarray],
    config: SamplingConfig,
    max_new_tokens: int,
    min_new_tokens: int = 0,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    callback: TokenCallback | None = None,
    use_cache: bool = True,
    step_fn: StepFn | None = None,
) -> list[Decoded]:
    """Sample continuations of ``prompts`` (residue ids, possibly empty) with the GLM ``[gMASK]`` scheme.

    Args:
        model: the backbone; its device and dtype are used as they are.
        prompts: one residue-id array ``[P_i]`` per sequence.
        config: sampling controls.
        max_new_tokens: residues to generate at most (a row that reaches it is truncated, ``stopped=False``).
        min_new_tokens: the stop tokens are forbidden before this many residues.
        seed: random seed; with ``indices`` it fixes every draw (see :func:`generation.sampling.uniform`).
        indices: the sequences' numbers (default ``0..B-1``); the same number gives the same sample in any batch.
        callback: streams ``(index, token)`` as tokens are produced.
        use_cache: False recomputes the whole forward pass at every step (for the speed comparison).
        step_fn: after the prompt's pass, make each token with this step
            (:func:`generation.compiled.compiled_next_token`); None runs the eager model.

    Returns:
        one :class:`Decoded` per prompt, in input order.
    """
    indices = list(range(len(prompts))) if indices is None else list(indices)
    if max_new_tokens < 1 or not prompts:
        return [Decoded(i, np.zeros(0, np.int64), np.zeros(0, np.float32), False) for i in indices]
    param = next(model.parameters())
    batch = _Batch(prompts, max_new_tokens, param.device, indices)
    allowed = allowed_ids(config, param.device)
    cache = None
    if use_cache:
        cache = KVCache(model.config, len(prompts), batch.context + max_new_tokens, param.device, param.dtype)
    tok, done = ResidueTokenizer(), {}
    stop_ids = torch.tensor(STOP_IDS, device=param.device)
    length, start = batch.context, 0
    seed_t = torch.tensor(seed, device=param.device)
    for step in range(max_new_tokens):
        if step_fn is not None and cache is not None and start > 0:  # one token per row, compiled
            ids, batch.log_probs[:, step] = step_fn(
                model, batch.tokens[:, start], batch.positions[:, :, start], batch.valid[:, :length], cache.keys,
                cache.values, allowed, batch.seen, batch.rows, config, seed_t,
                torch.tensor(step, device=param.device), torch.tensor(step < min_new_tokens, device=param.device),
            )
            cache.length += 1
        else:
            logits = _next_logits(model, batch, cache, length, start)
            ids = choose(logits, batch.seen, batch.rows, allowed, config, seed, step, step < min_new_tokens)
            batch.log_probs[:, step] = token_log_probs(logits, ids)
        batch.tokens[:, length] = ids
        batch.seen.scatter_(1, ids[:, None], True)
        stop = torch.isin(ids, stop_ids)
        if callback is not None:
            for r, i in zip(batch.rows.tolist(), ids.tolist()):
                callback(r, tok.id_to_token[i])
        length, start = length + 1, length
        if step == max_new_tokens - 1:
            stop = torch.ones_like(stop)
        if bool(stop.any()):
            _collect(batch, stop, length, step, done)
            keep = (~stop).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            batch.keep(keep)
            if cache is not None:
                cache.reorder(keep)
    return [done[i] for i in indices]


def choose(
    logits: torch.Tensor, seen: torch.Tensor, rows: torch.Tensor, allowed: torch.Tensor, config: SamplingConfig,
    seed: int | torch.Tensor, step: int | torch.Tensor, too_short: bool | torch.Tensor,
) -> torch.Tensor:
    """Next ids ``[B]``: allowed ids only, no stop while ``too_short``, then the sampling controls and a draw.

    Args:
        logits: ``[B, V]``; seen: ``[B, V]`` bool ids in each sequence so far; rows: ``[B]`` sequence numbers.
        seed, step, too_short: python values, or 0-d tensors (so a compiled step does not specialise on them).
    """
    x = restrict(logits, allowed)
    if isinstance(too_short, torch.Tensor):
        x = forbid(x, STOP_IDS, too_short.expand(rows.shape))
    elif too_short:
        x = forbid(x, STOP_IDS, torch.ones_like(rows, dtype=torch.bool))
    x = process_logits(x, config, seen)
    return draw(x, uniform(seed, rows, step), greedy=config.temperature == 0)


def _collect(batch: _Batch, stop: torch.Tensor, length: int, step: int, done: dict[int, Decoded]) -> None:
    """Move the rows flagged in ``stop`` into ``done`` (host arrays)."""
    for r in stop.nonzero().squeeze(1).tolist():
        ids = batch.tokens[r, batch.context : length].cpu().numpy()
        lp = batch.log_probs[r, : step + 1].cpu().numpy()
        stopped = bool(np.isin(ids[-1], STOP_IDS))
        done[int(batch.rows[r])] = Decoded(int(batch.rows[r]), ids[:-1] if stopped else ids, lp, stopped)
