"""Token-budget bucketing of samples (collation into padded batches: :func:`xtrimo.model.layout.collate`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np

from xtrimo.model.layout import Sample

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
