"""Token-budget bucketing (collation into padded batches: :func:`xtrimo.model.layout.collate`) and shuffling."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

def length_batches(
    lengths: Sequence[int], max_tokens: int, extra_tokens: int = 0, rng: np.random.Generator | None = None,
    descending: bool = False, max_items: int | None = None,
) -> list[list[int]]:
    """Indices grouped by similar length so that ``batch size * (longest + extra_tokens) <= max_tokens``.

    The one bucketing routine: training batches, embedding, folding and scoring batches all come from it. Sorting by
    length keeps padding small; an item longer than the budget goes alone.

    Args:
        lengths: one length per item.
        max_tokens: padded tokens a batch may hold.
        extra_tokens: tokens each item gains later (special tokens added after bucketing).
        rng: shuffle the batch order with it (None: in length order).
        descending: longest items first (the first batch then shows the peak memory at once).
        max_items: at most this many items in a batch, whatever their length.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i] if descending else lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        grown = max(longest, lengths[i] + extra_tokens)
        if current and ((len(current) + 1) * grown > max_tokens or (max_items and len(current) == max_items)):
            batches.append(current)
            current, grown = [], lengths[i] + extra_tokens
        current.append(i)
        longest = grown
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
