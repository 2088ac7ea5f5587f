"""Shared by the speed scripts: one measurement per fresh process, real corpus sequences, an ESMFold trunk block."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable


def run_in_fresh_process(target: Callable[..., None], *args: object) -> object:
    """``target(queue, *args)`` in a spawned process; what it puts on the queue. A fresh process makes the peak
    (:func:`peak_rss_gb` growth) that measurement's own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def _status_gb(field: str) -> float:
    """A ``/proc/self/status`` memory field in GiB; without ``/proc`` (not Linux), ``ru_maxrss``: only right in a
    process whose parent never held more."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 2 ** 20  # kB -> GiB
    except FileNotFoundError:
        import resource
        import sys

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
        return rss / (2 ** 30 if sys.platform == "darwin" else 2 ** 20)


def start_peak() -> float:
    """Start measuring a phase's peak: reset this process's resident high-water mark (Linux ``clear_refs``) and
    return the resident memory now, in GiB. :func:`peak_rss_gb` minus this is the phase's own growth.

    Not ``ru_maxrss``: a spawned child's ``ru_maxrss`` starts at its parent's peak (Linux carries it across
    ``execve``) and never goes down, so growth measured with it hides below whatever was held before."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except FileNotFoundError:
        pass
    return _status_gb("VmRSS")


def peak_rss_gb() -> float:
    """This process's resident high-water mark (``VmHWM``) in GiB, since :func:`start_peak`."""
    return _status_gb("VmHWM")


def corpus_sequences(max_len: int) -> list[str]:
    """Every sequence of the pre-training corpus' valid split, in file order, cropped to ``max_len`` residues."""
    from xtrimo.data.fasta import read_fasta
    from xtrimo.data.registry import dataset_path

    return [r.sequence[:max_len] for r in read_fasta(dataset_path("pretrain_corpus") / "valid.fasta.gz")]


def esmfold_v1_block(fused: bool):
    """One ESMFold v1 trunk block (c_s 1024, c_z 128, head widths 32), random weights N(0, 0.02), eval mode: xtrimo's
    fused block if ``fused`` (the same weights), else transformers' ``EsmFoldTriangularSelfAttentionBlock``."""
    import torch
    from transformers.models.esm.configuration_esm import TrunkConfig
    from transformers.models.esm.modeling_esmfold import EsmFoldTriangularSelfAttentionBlock

    from xtrimo.structure.fused import fuse_trunk_blocks

    cfg = TrunkConfig(sequence_state_dim=1024, pairwise_state_dim=128, sequence_head_width=32, pairwise_head_width=32)
    blocks = torch.nn.ModuleList([EsmFoldTriangularSelfAttentionBlock(cfg).eval()])
    with torch.no_grad():
        for p in blocks.parameters():
            p.normal_(0, 0.02)
    if fused:
        fuse_trunk_blocks(blocks)
    return blocks[0]
