"""Shared by the speed scripts: one measurement per fresh process, and real corpus sequences."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable


def run_in_fresh_process(target: Callable[..., None], *args: object) -> object:
    """``target(queue, *args)`` in a spawned process; what it puts on the queue. A fresh process makes the peak
    (``ru_maxrss`` growth) that measurement's own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def corpus_sequences(max_len: int) -> list[str]:
    """Every sequence of the pre-training corpus' valid split, in file order, cropped to ``max_len`` residues."""
    from xtrimo.data.fasta import read_fasta
    from xtrimo.data.registry import dataset_path

    return [r.sequence[:max_len] for r in read_fasta(dataset_path("pretrain_corpus") / "valid.fasta.gz")]
