"""Pure logits -> ids functions: temperature, top-k, top-p, repetition penalty, allowed ids, and seeded draws.

Every function takes ``[B, V]`` logits and returns new logits (``-inf`` marks a forbidden id) or ids ``[B]``.
Draws use a counter-based generator (:func:`uniform`): the random number of sequence ``r`` at step ``t`` depends
only on ``(seed, r, t)``, so a seed gives the same samples whatever the batch size, on CPU and GPU alike, and
whether or not finished rows were dropped from the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xtrimo.tokenizer import EOP_ID, EOS_ID, FIRST_RESIDUE_ID, LAST_RESIDUE_ID, PADDED_VOCAB_SIZE, ResidueTokenizer

STOP_IDS = (EOP_ID, EOS_ID)
_MASK32 = 0xFFFFFFFF


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling controls, validated on construction (one-line ``ValueError`` naming the field).

    Attributes:
        temperature: softmax temperature; 0 means greedy (argmax).
        top_k: keep the k most likely ids (0: off).
        top_p: nucleus sampling, keep the smallest set of ids whose probability reaches p; in (0, 1], 1 is off.
        repetition_penalty: CTRL-style penalty (Keskar et al. 2019) on ids already in the sequence; 1 is off.
        ban: residue letters that are never sampled.
        allow_nonstandard: also allow X, B, U, Z, O (never ``.`` and ``-`` gap symbols).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    ban: str = ""
    allow_nonstandard: bool = False

    def __post_init__(self) -> None:
        if not self.temperature >= 0.0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top-k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top-p must be in (0, 1], got {self.top_p}")
        if not self.repetition_penalty > 0.0:
            raise ValueError(f"repetition penalty must be > 0, got {self.repetition_penalty}")
        ResidueTokenizer().encode(self.ban, name="--ban")
        if not residue_mask(self).any():
            raise ValueError(f"ban {self.ban!r} leaves no residue to sample")

    @property
    def banned_residues(self) -> str:
        return "".join(sorted(set(self.ban.upper())))


def residue_mask(config: SamplingConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[V]`` bool, True for the residue ids that may be sampled (standard 20, or all letters; minus the ban)."""
    tok = ResidueTokenizer()
    allowed = torch.zeros(PADDED_VOCAB_SIZE, dtype=torch.bool)
    if config.allow_nonstandard:
        allowed[FIRST_RESIDUE_ID : LAST_RESIDUE_ID - 1] = True  # every letter, not the gap symbols '.' and '-'
    else:
        allowed[tok.standard_ids] = True
    if config.ban:
        allowed[torch.from_numpy(tok.encode(config.ban, name="--ban"))] = False
    return allowed.to(device)


def allowed_ids(config: SamplingConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[V]`` bool: the sampleable residues plus the stop tokens ``<eop>`` and ``<eos>``."""
    allowed = residue_mask(config, device)
    allowed[list(STOP_IDS)] = True
    return allowed


def restrict(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Set ids outside ``allowed`` (``[V]`` or ``[B, V]`` bool) to ``-inf``."""
    return logits.masked_fill(~allowed, float("-inf"))


def forbid(logits: torch.Tensor, ids: tuple[int, ...], rows: torch.Tensor) -> torch.Tensor:
    """Set ``ids`` to ``-inf`` in the rows where ``rows`` (``[B]`` bool) is True (minimum length: no stop yet)."""
    blocked = torch.zeros_like(logits, dtype=torch.bool)
    blocked[:, list(ids)] = True
    return logits.masked_fill(blocked & rows[:, None], float("-inf"))


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL penalty: logits of ids already present (``seen`` ``[B, V]`` bool) are divided by ``penalty`` if
    positive and multiplied by it if negative, so a penalty > 1 always lowers their probability."""
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide by the temperature (0 is handled by :func:`draw` as greedy and leaves logits unchanged)."""
    return logits if temperature in (0.0, 1.0) else logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits per row (ties at the k-th value are kept); ``k = 0`` keeps all."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter (Holtzman et al. 2020): keep the most likely ids until their mass reaches ``p``.

    The most likely id is always kept, so the result is never empty.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    mass_before = probs.cumsum(-1) - probs  # probability of the ids ranked above each one
    drop_sorted = mass_before >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def process_logits(logits: torch.Tensor, config: SamplingConfig, seen: torch.Tensor | None = None) -> torch.Tensor:
    """Repetition penalty, temperature, top-k then top-p, in the order of Hugging Face's logits processors.

    Args:
        logits: ``[B, V]`` already restricted to the allowed ids.
        config: the controls.
        seen: ``[B, V]`` bool, ids present in each sequence so far (for the repetition penalty).
    """
    x = logits.float()
    if seen is not None:
        x = apply_repetition_penalty(x, seen, config.repetition_penalty)
    x = apply_temperature(x, config.temperature)
    x = top_k_filter(x, config.top_k)
    return top_p_filter(x, config.top_p)


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``(x * c) mod 2**32`` for ``x < 2**32`` without overflowing int64 (split ``c`` in 16-bit halves)."""
    lo = x * (c & 0xFFFF)
    hi = ((x * (c >> 16)) & 0xFFFF) << 16
    return (lo + hi) & _MASK32


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """Integer mixer 'lowbias32' (C. Wellons): a bijection on 32-bit values with good avalanche."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def uniform(seed: int | torch.Tensor, rows: torch.Tensor, step: int | torch.Tensor, stream: int = 0) -> torch.Tensor:
    """Counter-based uniform numbers in ``[0, 1)``: one per entry of ``rows`` (``[B]`` int64 sequence ids).

    The value depends only on ``(seed, row, step, stream)``, never on the batch it is drawn in. ``seed`` and
    ``step`` may be 0-d int64 tensors (a compiled decoding step).
    """
    base = seed.expand(rows.shape) if isinstance(seed, torch.Tensor) else torch.full_like(rows, seed)
    x = _hash32(base ^ _hash32(torch.full_like(rows, stream)))
    x = _hash32(x ^ (rows & _MASK32))
    x = _hash32(x ^ (step & _MASK32))
    return (x >> 8).double() / float(1 << 24)


def draw(logits: torch.Tensor, u: torch.Tensor, greedy: bool = False) -> torch.Tensor:
    """One id per row by inverse-CDF sampling of ``softmax(logits)`` with the uniforms ``u`` ``[B]``.

    Returns:
        ``[B]`` int64; greedy takes the argmax instead.
    """
    if greedy:
        return logits.argmax(-1)
    probs = logits.double().softmax(-1)
    cdf = probs.cumsum(-1)
    target = (u.to(cdf.dtype) * cdf[:, -1]).unsqueeze(-1)
    idx = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    # rounding can push the target to the total mass: fall back to the last id with non-zero probability
    last = (probs > 0).to(torch.int64).cumsum(-1).argmax(-1)
    return torch.minimum(idx, last)
