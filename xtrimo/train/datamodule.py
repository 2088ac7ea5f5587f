"""LightningDataModule over the streaming pre-training data."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from xtrimo.data.pretrain import PretrainStream, StreamSpec, ValidationSet, unigram_log_probs
from xtrimo.objectives.mixture import ObjectiveConfig
from xtrimo.train.config import DataConfig


class PretrainDataModule(L.LightningDataModule):
    """Training stream (infinite, resumable at ``start_batch``) and deterministic validation batches.

    ``full_validation`` switches validation from the first ``valid_max_sequences`` sequences to the whole split.
    """

    def __init__(self, data: DataConfig, objective: ObjectiveConfig, accumulate: int = 1) -> None:
        super().__init__()
        self.data, self.objective, self.accumulate = data, objective, accumulate
        self.start_batch = 0
        self.full_validation = False

    def _spec(self, files: list[str]) -> StreamSpec:
        d = self.data
        return StreamSpec(tuple(files), d.max_length, d.max_tokens, d.shuffle_buffer, d.bucket_pool, d.seed)

    def _loader(self, dataset: torch.utils.data.IterableDataset) -> DataLoader:
        workers = self.data.num_workers
        return DataLoader(dataset, batch_size=None, num_workers=workers, persistent_workers=False,
                          prefetch_factor=4 if workers else None)

    def train_dataloader(self) -> DataLoader:
        stream = PretrainStream(self._spec(self.data.train_files), self.objective, self.accumulate, self.start_batch)
        return self._loader(stream)

    def val_dataloader(self) -> DataLoader:
        limit = 0 if self.full_validation else self.data.valid_max_sequences
        return DataLoader(ValidationSet(self._spec(self.data.valid_files), self.objective, limit), batch_size=None)

    def unigram(self, vocab_size: int) -> torch.Tensor:
        return unigram_log_probs(tuple(self.data.train_files), vocab_size)
