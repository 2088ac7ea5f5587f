"""Batched, KV-cached autoregressive decoding in the checkpoint's generation layout.

GLM-trained checkpoints continue ``prompt + <gmask> + <sop>`` (the pre-training layout: the prompt is the
bidirectional prefix); causal (CLM) checkpoints continue ``<gmask> <sop> <eos> + prompt`` as upstream does. The
contexts, positions and masks come from :mod:`xtrimo.model.layout`; prompts of different lengths are left-padded,
so every row's last context token sits in the same column and one cache position serves the whole batch. A row
stops at ``<eop>`` / ``<eos>`` or at its token budget and is then dropped from the batch (and from the cache).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from xtrimo.generation.sampling import (
    STOP_IDS, SamplingConfig, allowed_ids, draw, forbid, process_logits, restrict, uniform,
)
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.model.layers import KVCache
from xtrimo.model.layout import prompt_batch
from xtrimo.scoring import generation_mode, token_log_probs
from xtrimo.tokenizer import PADDED_VOCAB_SIZE, ResidueTokenizer

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
    """Per-row decoding state, full width ``C + max_new`` (:func:`xtrimo.model.layout.prompt_batch`), so that rows
    can be dropped by indexing."""

    def __init__(self, prompts: Sequence[np.ndarray], mode: str, max_new: int, device: torch.device,
                 indices: Sequence[int]):
        inputs, self.context = prompt_batch(prompts, mode, max_new)
        self.inputs = inputs.to(device)
        self.seen = torch.zeros((len(prompts), PADDED_VOCAB_SIZE), dtype=torch.bool)
        for r, p in enumerate(prompts):
            self.seen[r, torch.as_tensor(p, dtype=torch.long)] = True
        self.seen = self.seen.to(device)
        self.rows = torch.as_tensor(list(indices), dtype=torch.long, device=device)
        self.log_probs = torch.zeros((len(prompts), max_new), dtype=torch.float32, device=device)

    def keep(self, index: torch.Tensor) -> None:
        self.inputs = self.inputs.rows(index)
        for name in ("seen", "rows", "log_probs"):
            setattr(self, name, getattr(self, name).index_select(0, index))


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
) -> list[Decoded]:
    """Sample continuations of ``prompts`` (residue ids, possibly empty) in the model's generation layout.

    Args:
        model: the backbone; its device and dtype are used as they are, and its decoding step
            (:meth:`XTrimoPGLM.decode_step`, compiled or not) makes every token after the first.
        prompts: one residue-id array ``[P_i]`` per sequence.
        config: sampling controls.
        max_new_tokens: residues to generate at most (a row that reaches it is truncated, ``stopped=False``).
        min_new_tokens: the stop tokens are forbidden before this many residues.
        seed: random seed; with ``indices`` it fixes every draw (see :func:`generation.sampling.uniform`).
        indices: the sequences' numbers (default ``0..B-1``); the same number gives the same sample in any batch.
        callback: streams ``(index, token)`` as tokens are produced.
        use_cache: False recomputes the whole forward pass at every step (for the speed comparison).

    Returns:
        one :class:`Decoded` per prompt, in input order.

    Raises:
        ValueError: the model cannot generate (an MLM-only checkpoint).
    """
    mode = generation_mode(model.config)
    indices = list(range(len(prompts))) if indices is None else list(indices)
    if max_new_tokens < 1 or not prompts:
        return [Decoded(i, np.zeros(0, np.int64), np.zeros(0, np.float32), False) for i in indices]
    param = next(model.parameters())
    batch = _Batch(prompts, mode, max_new_tokens, param.device, indices)
    allowed = allowed_ids(config, param.device)
    cache = None
    if use_cache:
        cache = KVCache(model.config, len(prompts), batch.context + max_new_tokens, param.device, param.dtype)
    tok, done = ResidueTokenizer(), {}
    stop_ids = torch.tensor(STOP_IDS, device=param.device)
    length = batch.context
    seed_t = torch.tensor(seed, device=param.device)
    for step in range(max_new_tokens):
        inputs = batch.inputs
        ids = _next_ids(model, batch, cache, length, step, allowed, config, seed_t, step < min_new_tokens)
        inputs.input_ids[:, length] = ids
        batch.seen.scatter_(1, ids[:, None], True)
        stop = torch.isin(ids, stop_ids)
        if callback is not None:
            for r, i in zip(batch.rows.tolist(), ids.tolist()):
                callback(r, tok.id_to_token[i])
        length += 1
        if step == max_new_tokens - 1:
            stop = torch.ones_like(stop)
        if bool(stop.any()) and not _drop_finished(batch, cache, stop, length, step, done):
            break
    return [done[i] for i in indices]


def _drop_finished(batch: _Batch, cache: KVCache | None, stop: torch.Tensor, length: int, step: int,
                   done: dict[int, Decoded]) -> bool:
    """Move the rows flagged in ``stop`` into ``done`` and out of the batch and the cache; False when none is left."""
    _collect(batch, stop, length, step, done)
    keep = (~stop).nonzero().squeeze(1)
    if keep.numel() == 0:
        return False
    batch.keep(keep)
    if cache is not None:
        cache.reorder(keep)
    return True


def _next_ids(
    model: XTrimoPGLM, batch: _Batch, cache: KVCache | None, length: int, step: int, allowed: torch.Tensor,
    config: SamplingConfig, seed: torch.Tensor, too_short: bool,
) -> torch.Tensor:
    """The ids ``[B]`` after the first ``length`` columns (their log-probabilities go to ``batch.log_probs``):
    one token per row against the cache (the model's decoding step, compiled or not), or a whole forward pass over
    the context (into the cache) or over every column so far (no cache)."""
    inputs, device = batch.inputs, seed.device
    if cache is not None and step > 0:
        col = length - 1
        ids, batch.log_probs[:, step] = model.decode_step(
            inputs.input_ids[:, col], inputs.position_ids[:, :, col], inputs.valid[:, :length], cache,
            sample_next, allowed, batch.seen, batch.rows, config, seed,
            torch.tensor(step, device=device), torch.tensor(too_short, device=device),
        )
        return ids
    logits = model(inputs.columns(0, length), cache=cache)["logits"][:, -1].float()
    ids = choose(logits, batch.seen, batch.rows, allowed, config, seed, step, too_short)
    batch.log_probs[:, step] = token_log_probs(logits, ids)
    return ids


@torch.no_grad()
def next_token_log_probs(model: XTrimoPGLM, prompts: Sequence[np.ndarray]) -> torch.Tensor:
    """``[B, V]`` log-probabilities of the first token after each prompt (before any sampling control)."""
    batch = _Batch(prompts, generation_mode(model.config), 0, next(model.parameters()).device, range(len(prompts)))
    return model(batch.inputs)["logits"][:, -1].float().log_softmax(-1)


def sample_next(
    logits: torch.Tensor, allowed: torch.Tensor, seen: torch.Tensor, rows: torch.Tensor, config: SamplingConfig,
    seed: torch.Tensor, step: torch.Tensor, too_short: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The head of a decoding step (run inside the model's compiled step): :func:`choose`, then the chosen ids'
    log-probabilities. Returns ids ``[B]`` and log-probabilities ``[B]``."""
    ids = choose(logits, seen, rows, allowed, config, seed, step, too_short)
    return ids, token_log_probs(logits, ids)


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
        ids = batch.inputs.input_ids[r, batch.context : length].cpu().numpy()
        lp = batch.log_probs[r, : step + 1].cpu().numpy()
        stopped = bool(np.isin(ids[-1], STOP_IDS))
        done[int(batch.rows[r])] = Decoded(int(batch.rows[r]), ids[:-1] if stopped else ids, lp, stopped)
