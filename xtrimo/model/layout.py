"""The token layout of every input mode, built in this one module: ids, positions, prefix length and masks.

Three modes (xTrimoPGLM paper section 2; the released collator; the upstream Hugging Face modeling code):

* ``mlm``: ``residues + <eos>``, positions ``(arange, 0)``, bidirectional (``division = n``). Embeddings, masked
  marginals, the MLM objective.
* ``glm``: ``prefix + <gmask> + <sop> + target[:-1]`` with labels ``ignore * (P + 1) + target``; absolute positions
  ``0..P-1, P, P, ..., P``, block positions ``0..0, 0, 1..g+1``; bidirectional over ``prefix + <gmask>``
  (``division = P + 1``), causal after it. The pre-training layout of this project and of the 100B model.
* ``clm``: ``<gmask> <sop> <eos> + residues``, causal from the first token (``division = 0``), positions
  ``(0, arange)``: the upstream causal checkpoints (``is_causal: true``), whose 2-D RoPE counts in the block half.

The 1-D RoPE reads ``absolute + block`` (one continuous count), so ``(arange, 0)`` and ``(0, arange)`` are the same
1-D positions and one layout serves both RoPE forms.

Masks: ``allowed[i, j] = valid[j] and (j < division or j <= i)``, the collator's ``build_mask_matrix``; a query
also always sees itself, so the softmax row of a padding query is never empty (real queries are unaffected).
Labels are aligned with the inputs: the logits at position ``j`` are scored against ``labels[j]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Literal, get_args

import numpy as np
import torch

from xtrimo.tokenizer import EOS_ID, GMASK_ID, PAD_ID, SOP_ID, ResidueTokenizer

IGNORE_INDEX = -100
Mode = Literal["mlm", "glm", "clm"]
MODES: tuple[str, ...] = get_args(Mode)
ReadMode = Literal["mlm", "clm"]
CLM_PREFIX = np.array([GMASK_ID, SOP_ID, EOS_ID], dtype=np.int64)


@dataclass
class Sample:
    """One sequence laid out for the model (host arrays).

    Attributes:
        input_ids: ``[n]`` token ids.
        labels: ``[n]`` target ids, ``IGNORE_INDEX`` where no loss is taken.
        position_ids: ``[2, n]`` (absolute, block) positions.
        division: leading positions every query may attend to (``n`` for MLM, 0 for CLM).
        kind: the objective that built it (``xtrimo.objectives.MLM`` / ``GLM``), for the loss breakdown.
    """

    input_ids: np.ndarray
    labels: np.ndarray
    position_ids: np.ndarray
    division: int
    kind: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class ModelInput:
    """A padded batch: what the model reads.

    Attributes:
        input_ids: ``[B, L]`` ids, ``<pad>`` on padding.
        position_ids: ``[B, 2, L]`` (absolute, block) positions.
        division: ``[B]`` bidirectional-prefix length in columns (``L`` or more: fully bidirectional; 0: causal).
        valid: ``[B, L]`` bool, False on padding.
        labels: ``[B, L]`` targets or None.
        kinds: ``[B]`` objective of each sample or None; epoch: 0-d data-stream epoch or None (training batches).
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    division: torch.Tensor
    valid: torch.Tensor
    labels: torch.Tensor | None = None
    kinds: torch.Tensor | None = None
    epoch: torch.Tensor | None = None

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor], batch_only: bool = False) -> ModelInput:
        values = {}
        for f in fields(self):
            v = getattr(self, f.name)
            values[f.name] = None if v is None else (v if batch_only and v.ndim == 0 else fn(v))
        return ModelInput(**values)

    def to(self, device: torch.device | str) -> ModelInput:
        return self._map(lambda t: t.to(device))

    def rows(self, index: torch.Tensor) -> ModelInput:
        """The batch rows in ``index``."""
        return self._map(lambda t: t.index_select(0, index.to(t.device)), batch_only=True)

    def columns(self, start: int, end: int) -> ModelInput:
        """Columns ``start:end`` (the prefix length keeps counting from column 0)."""
        out = self._map(lambda t: t, batch_only=True)
        for name in ("input_ids", "valid", "labels"):
            if getattr(out, name) is not None:
                setattr(out, name, getattr(out, name)[:, start:end])
        out.position_ids = out.position_ids[:, :, start:end]
        return out


def read_positions(n: int, mode: ReadMode, offset: int = 0) -> np.ndarray:
    """``[2, n]`` positions of a sequence read in ``mode``: ``(arange, 0)`` for MLM, ``(0, arange)`` for CLM."""
    count = np.arange(offset, offset + n, dtype=np.int64)
    zero = np.zeros(n, dtype=np.int64)
    return np.stack((count, zero) if mode == "mlm" else (zero, count))


def mlm_sample(residues: np.ndarray, eos: bool = True) -> Sample:
    """``residues (+ <eos>)``, bidirectional, no labels (the MLM objective sets them)."""
    ids = np.append(residues, EOS_ID).astype(np.int64) if eos else np.asarray(residues, dtype=np.int64)
    return Sample(ids, np.full(len(ids), IGNORE_INDEX, np.int64), read_positions(len(ids), "mlm"), len(ids))


def glm_sample(prefix: np.ndarray, target: np.ndarray) -> Sample:
    """``prefix`` then the generated ``target`` (which ends with its stop token), see the module docstring."""
    p, g = len(prefix), len(target) - 1
    input_ids = np.concatenate((prefix, [GMASK_ID, SOP_ID], target[:-1])).astype(np.int64)
    labels = np.concatenate((np.full(p + 1, IGNORE_INDEX), target)).astype(np.int64)
    absolute = np.concatenate((np.arange(p), np.full(g + 2, p))).astype(np.int64)
    block = np.concatenate((np.zeros(p + 1), np.arange(1, g + 2))).astype(np.int64)
    return Sample(input_ids, labels, np.stack((absolute, block)), p + 1)


def clm_sample(residues: np.ndarray, eos: bool = True) -> Sample:
    """``<gmask> <sop> <eos> + residues``, causal; labels: each residue, then ``<eos>`` after the last if ``eos``."""
    residues = np.asarray(residues, dtype=np.int64)
    input_ids = np.concatenate((CLM_PREFIX, residues))
    targets = np.append(residues, EOS_ID) if eos else np.append(residues, IGNORE_INDEX)
    labels = np.concatenate((np.full(2, IGNORE_INDEX), targets)).astype(np.int64)
    return Sample(input_ids, labels, read_positions(len(input_ids), "clm"), 0)


def read_sample(residues: np.ndarray, mode: ReadMode) -> tuple[Sample, int]:
    """The sample that reads every residue in ``mode``, and the column of the first residue (0 or 3)."""
    if mode == "mlm":
        return mlm_sample(residues), 0
    return clm_sample(residues, eos=False), len(CLM_PREFIX)


def read_batch(sequences: Sequence[str | np.ndarray], mode: ReadMode) -> tuple[ModelInput, int]:
    """Every residue of each sequence (a string, or residue ids ``[L_i]``) read in ``mode``, right-padded; and the
    column of the first residue (residue ``k`` of row ``i`` is column ``first + k``).

    Raises:
        InvalidResidueError: a string with a character that is no residue (naming ``#i`` and the position).
    """
    tok = ResidueTokenizer()
    ids = [tok.encode(s, f"#{i}") if isinstance(s, str) else s for i, s in enumerate(sequences)]
    samples = [read_sample(x, mode)[0] for x in ids]
    return collate(samples), 0 if mode == "mlm" else len(CLM_PREFIX)


def collate(samples: Sequence[Sample]) -> ModelInput:
    """Right-pad samples into a :class:`ModelInput` (``labels`` and ``kinds`` included)."""
    b, length = len(samples), max(len(s) for s in samples)
    input_ids = np.full((b, length), PAD_ID, dtype=np.int64)
    labels = np.full((b, length), IGNORE_INDEX, dtype=np.int64)
    position_ids = np.zeros((b, 2, length), dtype=np.int64)
    valid = np.zeros((b, length), dtype=bool)
    for i, s in enumerate(samples):
        n = len(s)
        input_ids[i, :n], labels[i, :n], position_ids[i, :, :n] = s.input_ids, s.labels, s.position_ids
        valid[i, :n] = True
    return ModelInput(
        torch.from_numpy(input_ids), torch.from_numpy(position_ids),
        torch.tensor([s.division for s in samples], dtype=torch.long), torch.from_numpy(valid),
        torch.from_numpy(labels), torch.tensor([s.kind for s in samples], dtype=torch.long),
    )


def from_ids(input_ids: torch.Tensor, mode: ReadMode, valid: torch.Tensor | None = None, offset: int = 0) -> ModelInput:
    """Read given ids ``[B, L]`` in ``mode`` (the positions start at ``offset``, e.g. after a KV cache)."""
    b, length = input_ids.shape
    pos = torch.from_numpy(read_positions(length, mode, offset)).to(input_ids.device).expand(b, 2, length)
    division = torch.full((b,), offset + length if mode == "mlm" else 0, device=input_ids.device)
    return ModelInput(input_ids, pos, division, input_ids != PAD_ID if valid is None else valid)


def prompt_batch(prompts: Sequence[np.ndarray], mode: Literal["glm", "clm"], max_new: int) -> tuple[ModelInput, int]:
    """Decoding contexts, left-padded so that every row's last context token sits in one column.

    The batch is ``C + max_new`` wide (``C`` the context width); the columns after the context hold ``<pad>`` and
    the positions each generated token will take: GLM ``(P, t + 2)`` for the ``t``-th new token (prompt of ``P``
    residues before ``<gmask> <sop>``); CLM ``(0, n + t)`` after the ``n`` context tokens. Generated columns are
    marked valid (they are filled as decoding goes).

    Returns:
        the batch and ``C``.
    """
    extra = 2 if mode == "glm" else len(CLM_PREFIX)
    context = max(len(p) for p in prompts) + extra
    width = context + max_new
    tokens = torch.full((len(prompts), width), PAD_ID, dtype=torch.long)
    positions = torch.zeros((len(prompts), 2, width), dtype=torch.long)
    valid = torch.ones((len(prompts), width), dtype=torch.bool)
    for r, p in enumerate(prompts):
        sample = glm_sample(p, np.array([SOP_ID])) if mode == "glm" else clm_sample(p)
        pad = context - len(sample)
        tokens[r, pad:context] = torch.from_numpy(sample.input_ids)
        positions[r, :, pad:context] = torch.from_numpy(sample.position_ids)
        valid[r, :pad] = False
        if mode == "glm":  # absolute P, block t + 2
            positions[r, 0, context:] = len(p)
            positions[r, 1, context:] = torch.arange(2, max_new + 2)
        else:
            positions[r, 1, context:] = torch.arange(len(sample), len(sample) + max_new)
    division = torch.full((len(prompts),), context - 1 if mode == "glm" else 0, dtype=torch.long)
    return ModelInput(tokens, positions, division, valid), context


def span_mask(n_keys: int, division: int | torch.Tensor, device: torch.device, query_start: int = 0) -> torch.Tensor:
    """``[Lq, Lk]`` (or ``[B, Lq, Lk]`` for a ``[B]`` division) bool: ``j < division or j <= i``, ``i`` from
    ``query_start``."""
    q = torch.arange(query_start, n_keys, device=device)[:, None]
    k = torch.arange(n_keys, device=device)[None, :]
    if isinstance(division, torch.Tensor):
        return (k <= q)[None] | (k[None] < division.to(device)[:, None, None])
    return (k <= q) | (k < division)


def attention_mask(division: torch.Tensor, key_valid: torch.Tensor, query_start: int = 0) -> torch.Tensor:
    """``[B, 1, Lq, Lk]`` bool, True where attention is allowed, for queries ``query_start..Lk-1``.

    Args:
        division: ``[B]`` prefix length in columns.
        key_valid: ``[B, Lk]`` False on padding keys.
        query_start: the first query's column (after a KV cache).
    """
    n_keys = key_valid.shape[1]
    allowed = span_mask(n_keys, division, key_valid.device, query_start) & key_valid[:, None, :]
    q = torch.arange(query_start, n_keys, device=key_valid.device)[:, None]
    return (allowed | (torch.arange(n_keys, device=key_valid.device)[None, :] == q)[None])[:, None]


def step_mask(key_valid: torch.Tensor) -> torch.Tensor:
    """``[B, 1, 1, Lk]`` for one new token per row at the end of a decoding context: it sees every valid key (the
    bidirectional prefix and every earlier token lie before it in every mode)."""
    return key_valid[:, None, None, :]


def needs_mask(division: torch.Tensor, key_valid: torch.Tensor) -> bool:
    """False when every query may see every key (a bidirectional batch without padding)."""
    return not (bool((division >= key_valid.shape[1]).all()) and bool(key_valid.all()))
