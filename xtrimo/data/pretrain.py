"""Streaming pre-training data: FASTA -> shuffled -> cropped -> token-budget batches -> MLM/GLM samples.

Every random choice is seeded by (seed, epoch, shard, pool), so the stream is a pure function of its position:
resuming after ``start_batch`` batches replays the identical batches that follow.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from xtrimo.data.batching import length_batches, shuffle_buffer
from xtrimo.data.fasta import read_fasta
from xtrimo.data.registry import resolve_data_file
from xtrimo.model.layout import ModelInput, collate
from xtrimo.objectives.mixture import ObjectiveConfig, build_sample, draw_kind
from xtrimo.objectives.sample import GLM, IGNORE_INDEX, MLM, Sample
from xtrimo.tokenizer import ResidueTokenizer

SPECIALS_PER_SAMPLE = 2  # GLM adds <gmask> + <sop>; MLM adds <eos>


@dataclass
class StreamSpec:
    files: tuple[str, ...]
    max_length: int  # tokens per sample, special tokens included
    max_tokens: int  # padded tokens per batch
    shuffle_buffer: int = 32768
    bucket_pool: int = 2048
    seed: int = 0


def iter_residues(files: tuple[str, ...], tokenizer: ResidueTokenizer) -> Iterator[np.ndarray]:
    for f in files:
        path = resolve_data_file(f)
        for rec in read_fasta(path):
            yield tokenizer.encode(rec.sequence, f"{path}:{rec.name}")


def _shard() -> tuple[int, int]:
    """(shard index, number of shards) over ranks x data-loader workers."""
    info = get_worker_info()
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if distributed else 0
    world = torch.distributed.get_world_size() if distributed else 1
    wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * nw + wid, world * nw


class PretrainStream(IterableDataset):
    """Infinite stream of collated batches for training (epochs repeat with new shuffles).

    Args:
        spec: files and sizes.
        objective: MLM/GLM mixture and curriculum.
        accumulate: micro-batches per optimizer step (to map batch index -> step for the curriculum).
        start_batch: batches already consumed by this rank (resume).
    """

    def __init__(self, spec: StreamSpec, objective: ObjectiveConfig, accumulate: int = 1, start_batch: int = 0):
        super().__init__()
        self.spec, self.objective, self.accumulate, self.start_batch = spec, objective, accumulate, start_batch
        self.tokenizer = ResidueTokenizer()

    def _crop(self, residues: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        room = self.spec.max_length - SPECIALS_PER_SAMPLE
        if len(residues) <= room:
            return residues
        start = int(rng.integers(0, len(residues) - room + 1))
        return residues[start : start + room]

    def __iter__(self) -> Iterator[ModelInput]:
        shard, n_shards = _shard()
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        skip = max(0, math.ceil((self.start_batch - wid) / nw))
        produced = 0  # batches this worker has emitted (or skipped) so far
        for epoch in itertools.count():
            rng = np.random.default_rng([self.spec.seed, epoch, shard])
            files = tuple(self.spec.files[i] for i in rng.permutation(len(self.spec.files)))
            mine = (r for i, r in enumerate(iter_residues(files, self.tokenizer)) if i % n_shards == shard)
            stream = shuffle_buffer(mine, self.spec.shuffle_buffer, rng)
            for pool_idx in itertools.count():
                pool = list(itertools.islice(stream, self.spec.bucket_pool))
                if not pool:
                    break
                prng = np.random.default_rng([self.spec.seed, epoch, shard, pool_idx, 1])
                crops = [self._crop(r, prng) for r in pool]
                # bucket first, then draw each batch's objectives at that batch's own optimizer step, so the
                # curriculum's stage boundary and ramp hold to the step (not to the pool's first step)
                groups = length_batches([len(c) for c in crops], self.spec.max_tokens, SPECIALS_PER_SAMPLE, prng)
                for b, residues in enumerate([crops[i] for i in g] for g in groups):
                    produced += 1
                    if produced <= skip:
                        continue
                    step = ((produced - 1) * nw + wid) // self.accumulate
                    brng = np.random.default_rng([self.spec.seed, epoch, shard, pool_idx, 2, b])
                    batch = [build_sample(r, brng, self.objective, draw_kind(brng, self.objective, step))
                             for r in residues]
                    out = collate(batch)
                    out.epoch = torch.tensor(epoch)
                    yield out


def validation_samples(residues: np.ndarray, index: int, max_length: int, objective: ObjectiveConfig,
                       seed: int) -> list[Sample]:
    """Deterministic MLM and GLM samples for every window of one validation sequence.

    Long sequences are cut into consecutive windows (no residue is dropped, none evaluated twice).
    """
    room = max_length - SPECIALS_PER_SAMPLE
    n_win = max(1, math.ceil(len(residues) / room))
    out = []
    for w in range(n_win):
        window = residues[w * room : (w + 1) * room]
        rng = np.random.default_rng([seed, index, w])
        for kind in (MLM, GLM):
            out.append(build_sample(window, rng, objective, kind))
    return out


class ValidationSet(IterableDataset):
    """Finite, deterministic validation batches (both objectives on every window).

    Every rank builds the same batches and takes every ``world``-th one; a rank short of a batch gets a copy whose
    labels are all ignored, so all ranks run the same number of forward passes (FSDP and ZeRO-3 gather
    parameters inside forward: an uneven count would hang) and nothing is counted twice.
    """

    def __init__(self, spec: StreamSpec, objective: ObjectiveConfig, max_sequences: int = 0) -> None:
        super().__init__()
        self.spec, self.objective, self.max_sequences = spec, objective, max_sequences
        self.tokenizer = ResidueTokenizer()

    def _share(self, samples: list[Sample], rank: int, world: int) -> Iterator[ModelInput]:
        batches = [[samples[i] for i in g] for g in length_batches([len(s) for s in samples], self.spec.max_tokens)]
        for i in range(rank, math.ceil(len(batches) / world) * world, world):
            if i < len(batches):
                yield collate(batches[i])
            else:
                empty = collate(batches[0])
                empty.labels.fill_(IGNORE_INDEX)
                yield empty

    def __iter__(self) -> Iterator[ModelInput]:
        rank, world = _shard()
        seqs = iter_residues(self.spec.files, self.tokenizer)
        if self.max_sequences:
            seqs = itertools.islice(seqs, self.max_sequences)
        samples: list[Sample] = []
        for i, r in enumerate(seqs):
            samples.extend(validation_samples(r, i, self.spec.max_length, self.objective, self.spec.seed))
            if len(samples) >= self.spec.bucket_pool:
                yield from self._share(samples, rank, world)
                samples = []
        if samples:
            yield from self._share(samples, rank, world)


def unigram_log_probs(files: tuple[str, ...], vocab_size: int, max_sequences: int = 200_000) -> torch.Tensor:
    """Log-frequencies ``[V]`` of residues and ``<eos>`` over (the first ``max_sequences`` of) the training files.

    The baseline a model must beat: its perplexity on a split is ``exp(mean -log q(label))``.
    """
    tok = ResidueTokenizer()
    counts = np.zeros(vocab_size, dtype=np.float64)
    for i, r in enumerate(iter_residues(files, tok)):
        if i >= max_sequences:
            break
        counts += np.bincount(r, minlength=vocab_size)
        counts[tok.eos_id] += 1
    counts = np.where(counts > 0, counts, counts.sum() * 1e-6)  # unseen ids: a tiny mass, not -inf
    return torch.from_numpy(np.log(counts / counts.sum())).float()
