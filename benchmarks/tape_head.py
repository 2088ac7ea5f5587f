"""TAPE's sequence head and training recipe (``protocol=tape``): how TAPE's published table was made.

The code behind the TAPE paper's numbers is the TensorFlow release ``songlab-cal/tape-neurips2019`` (Rao et al.
2019), not the later PyTorch rewrite. For a per-protein task it puts, on the backbone's per-residue features:

- ``ComputeClassVector``: LayerNorm -> weight-normed Dense(1) -> Dropout(0.1) gives one attention logit per residue;
  a softmax over the residues (padding masked) weights the per-residue features into one vector;
- ``GlobalVectorPredictor``: LayerNorm -> weight-normed Dense(512, ReLU) -> Dropout(0.5) -> weight-normed Dense(out);

and trains it with Adam (learning rate 1e-6 -> 1e-4 linearly over the first 100 steps, then ``lr``), the loss summed
over the batch (MSE on raw targets, or cross-entropy), gradients clipped to global norm 1, epochs of 200 steps, the
validation key metric after each epoch (MAE for regression, accuracy for classification), early stopping after 10
epochs without improvement, and the best epoch's weights evaluated on test (``tape/__main__.py``,
``tape/experiments.py``, ``tape/tasks/Task.py``, ``tape/run_supervised_experiments.py``). The batch size there is
``5 x`` the GPU's memory in GB for sequences under 600 residues (``OneHotModel.get_optimal_batch_sizes``); 80 (a
16 GB card) is the default in ``configs/bench/protocol/tape.yaml``.

With the one-hot backbone this is TAPE's "One Hot" row: attention over one-hot vectors can only weight the residue
types, so the model sees a reweighted amino-acid composition (no positions).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn

from xtrimo.benchmarks.heads import TrainSettings, evaluate

log = logging.getLogger(__name__)


class WeightNormLinear(nn.Module):
    """rinokeras' ``WeightNormDense``: ``y = x (g * V / ||V||) + b`` with the norm per output unit, ``g`` starting
    at 1 (each unit's weight vector has norm 1 at initialisation), Glorot-uniform ``V``, zero bias."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.v = nn.Parameter(nn.init.xavier_uniform_(torch.empty(out_dim, in_dim)))
        self.g = nn.Parameter(torch.ones(out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[*, in]`` -> ``[*, out]``."""
        return nn.functional.linear(x, self.v * (self.g / self.v.norm(dim=1)).unsqueeze(1), self.bias)


class TapeHead(nn.Module):
    """``[B, L, H]`` per-residue features + ``[B, L]`` mask -> ``[B, out]``: attention pooling, then an MLP."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(in_dim)
        self.attention = WeightNormLinear(in_dim, 1)
        self.norm = nn.LayerNorm(in_dim)
        self.dense = WeightNormLinear(in_dim, hidden)
        self.out = WeightNormLinear(hidden, out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = nn.functional.dropout(self.attention(self.attention_norm(x)).squeeze(-1), 0.1, self.training)
        weights = logits.masked_fill(~mask, torch.finfo(logits.dtype).min).softmax(-1)  # [B, L]
        pooled = torch.einsum("bl,blh->bh", weights, x)
        hidden = nn.functional.dropout(torch.relu(self.dense(self.norm(pooled))), 0.5, self.training)
        return self.out(hidden)


def _batch(rows: list[np.ndarray], idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad the per-residue arrays ``rows[idx]`` to ``[b, L_max, H]`` with a ``[b, L_max]`` mask."""
    lengths = [len(rows[i]) for i in idx]
    x = torch.zeros(len(idx), max(lengths), rows[idx[0]].shape[1])
    for k, i in enumerate(idx):
        x[k, : lengths[k]] = torch.from_numpy(rows[i])
    return x, torch.arange(x.shape[1]) < torch.tensor(lengths).unsqueeze(1)


def _evaluate(head: TapeHead, rows: list[np.ndarray], y: np.ndarray, metric: str, problem: str
              ) -> tuple[float, np.ndarray]:
    """``metric`` and the scores of ``head`` in evaluation mode (see :func:`heads.evaluate`)."""
    head.eval()
    return evaluate(lambda idx: head(*_batch(rows, np.asarray(idx))), len(rows), y, metric, problem, 256)


def _key_metric(problem: str, y: np.ndarray, scores: np.ndarray) -> float:
    """TAPE's model-selection metric, as a score to maximise: -MAE (regression) or accuracy."""
    if problem == "regression":
        return -float(np.abs(scores - y).mean())
    return float((scores.argmax(1) == y).mean())


def train_tape(problem: str, out_dim: int, metric: str, train: tuple[list[np.ndarray], np.ndarray],
               valid: tuple[list[np.ndarray], np.ndarray], test: tuple[list[np.ndarray], np.ndarray],
               settings: TrainSettings, steps_per_epoch: int, hidden: int, seed: int
               ) -> tuple[float, float, int, TapeHead]:
    """Train :class:`TapeHead` on frozen per-residue features with TAPE's recipe.

    Args:
        problem: ``regression`` or ``classification``.
        train / valid / test: (per-residue ``[L_i, H]`` arrays, targets).
        settings: ``lr``, ``batch_size``, ``patience`` and ``epochs`` (the most epochs; ``weight_decay`` unused:
            TAPE's Adam has none).
        steps_per_epoch: optimizer steps between validations.

    Returns:
        (test ``metric`` of the best validation epoch, that epoch's validation key metric, the epoch, the head).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    (xtr, ytr), (xva, yva), (xte, yte) = train, valid, test
    head = TapeHead(xtr[0].shape[1], out_dim, hidden)
    opt = torch.optim.Adam(head.parameters(), lr=settings.lr)
    warm = lambda step: float(np.interp(step, [0, 100, 1000], [1e-6, 1e-4, settings.lr])) / settings.lr
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warm)
    targets = torch.as_tensor(np.asarray(ytr), dtype=torch.float32 if problem == "regression" else torch.long)
    order, pos = rng.permutation(len(xtr)), 0
    best, best_epoch, best_state, stale = -np.inf, -1, None, 0
    for epoch in range(settings.epochs):
        head.train()
        for _ in range(steps_per_epoch):
            if pos + settings.batch_size > len(order):  # the stream repeats, reshuffled, as tf.data's repeat() does
                order, pos = rng.permutation(len(xtr)), 0
            idx = order[pos : pos + settings.batch_size]
            pos += settings.batch_size
            out, y = head(*_batch(xtr, idx)), targets[idx]
            # TAPE's loss is the batch mean times the batch size (experiments.py)
            loss = ((out[:, 0] - y) ** 2).sum() if problem == "regression" else \
                nn.functional.cross_entropy(out, y, reduction="sum")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            opt.step()
            sched.step()
        scores = _evaluate(head, xva, np.asarray(yva), metric, problem)[1]
        score = np.nan_to_num(_key_metric(problem, np.asarray(yva), scores), nan=-np.inf)
        log.info("tape epoch %d: loss %.4f, valid key metric %.4f", epoch, loss.item(), score)
        if score > best or best_state is None:
            best, best_epoch, stale, best_state = score, epoch, 0, copy.deepcopy(head.state_dict())
        else:
            stale += 1
            if stale >= settings.patience:
                break
    head.load_state_dict(best_state)
    value = _evaluate(head, xte, np.asarray(yte), metric, problem)[0]
    return value, abs(best) if problem == "regression" else best, best_epoch, head
