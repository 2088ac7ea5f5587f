"""Prediction heads and the small training loop shared by the MLP, LoRA and full fine-tuning protocols.

The head mirrors the paper's scripts: an MLP with one hidden layer of 128 units and ReLU on pooled features.
Model selection: the epoch with the best validation metric is kept (early stopping with ``patience``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from xtrimo.benchmarks import metrics

log = logging.getLogger(__name__)


class MLPHead(nn.Module):
    """``[B, H] -> [B, out]``: Linear(H, hidden) - ReLU - Dropout - Linear(hidden, out)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H]`` -> ``[B, out]``."""
        return self.net(x)


@dataclass
class TrainSettings:
    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    patience: int = 4


def loss_fn(problem: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """MSE on standardised targets for regression, cross-entropy for classification."""
    if problem == "regression":
        return lambda out, y: nn.functional.mse_loss(out.squeeze(-1), y.float())
    return lambda out, y: nn.functional.cross_entropy(out, y.long())


def evaluate(predict: Callable[[list[int]], torch.Tensor], n: int, y: np.ndarray, metric: str, problem: str,
             batch_size: int) -> tuple[float, np.ndarray]:
    """Metric and raw scores of ``predict`` over ``n`` examples (in batches, no gradients)."""
    outs = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            out = predict(list(range(start, min(n, start + batch_size)))).float().cpu()
            outs.append(out.squeeze(-1) if problem == "regression" else out.softmax(-1))
    scores = torch.cat(outs).numpy()
    return metrics.compute(metric, y, scores), scores


def fit(
    module: nn.Module,
    predict: Callable[[list[int]], torch.Tensor],
    y_train: np.ndarray,
    valid_eval: Callable[[], float],
    problem: str,
    settings: TrainSettings,
    seed: int,
    higher_is_better: bool = True,
) -> tuple[float, int]:
    """Train the trainable parameters of ``module``; keep the state of the best validation epoch.

    Args:
        module: holds every trainable parameter (frozen ones have ``requires_grad=False``).
        predict: indices of training examples -> outputs ``[b, out]``.
        y_train: training targets (standardised for regression).
        valid_eval: validation metric of the current state.

    Returns:
        the best validation metric and its epoch.
    """
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    criterion, targets = loss_fn(problem), torch.as_tensor(y_train)
    best, best_epoch, best_state, stale = -np.inf, -1, None, 0
    for epoch in range(settings.epochs):
        module.train()
        for batch in torch.randperm(len(y_train), generator=gen).split(settings.batch_size):
            out = predict(batch.tolist())
            loss = criterion(out, targets[batch].to(out.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        module.eval()
        value = valid_eval()
        score = np.nan_to_num(value if higher_is_better else -value, nan=-np.inf)
        log.info("epoch %d: loss %.4f valid %.4f", epoch, loss.item(), value)
        if score > best:
            best, best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy({k: v for k, v in module.state_dict().items()})
        else:
            stale += 1
            if stale >= settings.patience:
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return float(best if higher_is_better else -best), best_epoch


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    return sum(p.numel() for p in module.parameters() if p.requires_grad), total
