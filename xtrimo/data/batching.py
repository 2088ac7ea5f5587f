"""Token-budget bucketing and collation of objective samples into padded batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np
import torch

from xtrimo.objectives.sample import IGNORE_INDEX, Sample
from xtrimo.tokenizer import PAD_ID

T = TypeVar("T", Sample, np.ndarray)


def bucket_batches(
    samples: Sequence[T], max_tokens: int, rng: np.random.Generator | None, extra_tokens: int = 0
) -> list[list[T]]:
    """Group samples of similar length so that ``batch_size * (longest + extra_tokens) <= max_tokens``.

    Sorting by length keeps padding small; the batch order is shuffled when ``rng`` is given. ``extra_tokens``
    lets residue arrays be bucketed before the objective adds its special tokens.
    """
    order = sorted(range(len(samples)), key=lambda i: len(samples[i]))
    batches: list[list[T]] = []
    current: list[T] = []
    for i in order:
        s = samples[i]
        if current and (len(current) + 1) * (len(s) + extra_tokens) > max_tokens:
            batches.append(current)
            current = []
        current.append(s)
    if current:
        batches.append(current)
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def collate(samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
    """Right-pad samples into a batch.

    Returns:
        ``input_ids``, ``labels`` ``[B, L]``; ``position_ids`` ``[B, 2, L]``; ``division``, ``kinds`` ``[B]``;
        ``valid`` ``[B, L]`` bool.
    """
    b, length = len(samples), max(len(s) for s in samples)
    input_ids = np.full((b, length), PAD_ID, dtype=np.int64)
    labels = np.full((b, length), IGNORE_INDEX, dtype=np.int64)
    position_ids = np.zeros((b, 2, length), dtype=np.int64)
    valid = np.zeros((b, length), dtype=bool)
    for i, s in enumerate(samples):
        n = len(s)
        input_ids[i, :n], labels[i, :n], position_ids[i, :, :n], valid[i, :n] = s.input_ids, s.labels, s.position_ids, True
    return {
        "input_ids": torch.from_numpy(input_ids),
        "labels": torch.from_numpy(labels),
        "position_ids": torch.from_numpy(position_ids),
        "division": torch.tensor([s.division for s in samples], dtype=torch.long),
        "kinds": torch.tensor([s.kind for s in samples], dtype=torch.long),
        "valid": torch.from_numpy(valid),
    }


def shuffle_buffer(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """Bounded-memory shuffle: keep ``size`` items, emit a random one as each new item arrives."""
    buf: list = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = int(rng.integers(size))
        yield buf[j]
        buf[j] = item
    for j in rng.permutation(len(buf)):
        yield buf[j]
