"""Trained protocols on per-protein tasks: MLP on frozen pooled features, LoRA (peft) and full fine-tuning.

LoRA follows the paper's scripts: adapters on ``query_key_value``, ``dense``, ``dense_h_to_4h`` and
``dense_4h_to_h`` with r = 16, alpha = 16, dropout 0; only the adapters and the head train.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from xtrimo.benchmarks import metrics
from xtrimo.benchmarks.heads import MLPHead, TrainSettings, count_parameters, evaluate, fit
from xtrimo.model.layout import read_batch

log = logging.getLogger(__name__)
LORA_TARGETS = ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]


@dataclass
class TrainedResult:
    value: float
    valid_value: float
    best_epoch: int
    trainable_params: int
    total_params: int
    test_scores: np.ndarray = field(repr=False, default_factory=lambda: np.array([]))


def _targets(problem: str, ytr: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Regression targets are standardised for training (predictions are mapped back before scoring)."""
    if problem != "regression":
        return ytr, 0.0, 1.0
    mu, sd = float(np.mean(ytr)), float(np.std(ytr) or 1.0)
    return ((ytr - mu) / sd).astype(np.float32), mu, sd


def train_mlp(problem: str, out_dim: int, metric: str, xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray,
              yva: np.ndarray, xte: np.ndarray, yte: np.ndarray, settings: TrainSettings, hidden: int,
              seed: int) -> TrainedResult:
    """MLP head (hidden 128, ReLU) on standardised frozen features."""
    torch.manual_seed(seed)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    tensors = [torch.as_tensor((a - mu) / sd, dtype=torch.float32) for a in (xtr, xva, xte)]
    head = MLPHead(xtr.shape[1], out_dim, hidden)
    y_fit, _, _ = _targets(problem, ytr)
    on = lambda t: (lambda idx: head(t[idx]))  # noqa: E731
    higher = metrics.HIGHER_IS_BETTER[metric]
    valid_eval = lambda: evaluate(on(tensors[1]), len(yva), yva, metric, problem, 256)[0]  # noqa: E731
    best, epoch = fit(head, on(tensors[0]), y_fit, valid_eval, problem, settings, seed, higher)
    value, scores = evaluate(on(tensors[2]), len(yte), yte, metric, problem, 256)
    trainable, total = count_parameters(head)
    return TrainedResult(value, best, epoch, trainable, total, scores)


class PooledModel(nn.Module):
    """Backbone + masked mean pool over residues (special tokens and padding excluded) + MLP head."""

    def __init__(self, backbone: nn.Module, out_dim: int, hidden: int = 128, pair: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        width = backbone.config.hidden_size * (2 if pair else 1)
        self.head = MLPHead(width, out_dim, hidden)

    def pooled(self, seqs: list[str]) -> torch.Tensor:
        """The backbone's last hidden states averaged over each sequence's residues: ``[B, H]``."""
        inputs, first = read_batch(seqs, self.backbone.config.read_mode)
        inputs = inputs.to(next(self.parameters()).device)
        states = self.backbone(inputs, return_logits=False)["last_hidden_state"]
        keep = torch.zeros(states.shape[:2], dtype=states.dtype, device=states.device)
        for i, s in enumerate(seqs):
            keep[i, first : first + len(s)] = 1.0
        keep = keep.unsqueeze(-1)
        return (states * keep).sum(1) / keep.sum(1).clamp(min=1.0)

    def forward(self, seqs: list[str], seqs2: list[str] | None = None) -> torch.Tensor:
        """``[B, out]`` for ``B`` sequences (pairs: the two pooled vectors side by side, ``[B, 2H]`` into the head)."""
        x = self.pooled(seqs)
        if seqs2 is not None:
            x = torch.cat([x, self.pooled(seqs2)], dim=-1)
        return self.head(x)


def apply_lora(model: nn.Module, r: int = 16, alpha: int = 16, dropout: float = 0.0) -> nn.Module:
    """Inject peft LoRA adapters into the backbone's linear layers and freeze everything else of it."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS, bias="none")
    model = inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name
    return model


def train_backbone(mode: str, backbone: nn.Module, problem: str, out_dim: int, metric: str, splits: tuple,
                   settings: TrainSettings, hidden: int, seed: int, lora: tuple[int, int, float]) -> TrainedResult:
    """LoRA (``mode='lora'``) or full fine-tuning (``'finetune'``) of ``backbone`` + head.

    Args:
        splits: ``(train, valid, test)`` :class:`~xtrimo.benchmarks.data.Examples`.
        lora: ``(r, alpha, dropout)``.
    """
    torch.manual_seed(seed)
    if mode == "lora":
        backbone = apply_lora(backbone, *lora)
    else:
        for p in backbone.parameters():
            p.requires_grad = True
    train, valid, test = splits
    device = next(backbone.parameters()).device
    model = PooledModel(backbone, out_dim, hidden, pair=train.seqs2 is not None).to(device)
    trainable, total = count_parameters(model)
    log.info("%s: trainable parameters %s of %s (%.2f%%)", mode, f"{trainable:,}", f"{total:,}",
             100 * trainable / total)

    def predictor(ex):  # noqa: ANN001, ANN202
        return lambda idx: model([ex.seqs[i] for i in idx], [ex.seqs2[i] for i in idx] if ex.seqs2 else None)

    y_fit, mu, sd = _targets(problem, np.asarray(train.targets))
    higher = metrics.HIGHER_IS_BETTER[metric]
    valid_eval = lambda: evaluate(predictor(valid), len(valid), valid.targets, metric, problem, 16)[0]  # noqa: E731
    best, epoch = fit(model, predictor(train), y_fit, valid_eval, problem, settings, seed, higher)
    value, scores = evaluate(predictor(test), len(test), test.targets, metric, problem, 16)
    return TrainedResult(value, best, epoch, trainable, total, scores)
