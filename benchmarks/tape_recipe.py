"""TAPE's one-hot baseline with TAPE's own head and training recipe, on our copies of its data.

A script, not part of the suite: it checks where TAPE's published One Hot rows (fluorescence 0.14, stability 0.19
Spearman; Rao et al. 2019, Table 2) come from. Features: ``pool(..., "tape")`` (the bag of tokens over
``<cls> seq <sep>``, ``tape/models/modeling_onehot.py``); head: TAPE's ``ValuePredictionHead`` (weight-normed
Linear -> ReLU -> weight-normed Linear, 512 hidden); MSE, AdamW, gradient clipping at 1, a linear warm-up then linear
decay, the epoch with the lowest validation loss evaluated on test. ``--recipe tape`` is TAPE's ``tape-train``
defaults (10 epochs, lr 1e-4, batch 1024, 10,000 warm-up steps); ``--recipe converged`` trains the same head to
convergence (100 epochs, lr 1e-3, batch 256, no warm-up).

    XTRIMO_DATA_DIR=../shared/data python benchmarks/tape_recipe.py --recipe tape --seeds 0
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from xtrimo.benchmarks.backbones import OneHotBackbone
from xtrimo.benchmarks.data import load_splits
from xtrimo.benchmarks.embed import pool
from xtrimo.benchmarks.tasks import load_task

RECIPES = {"tape": (10, 1e-4, 1024, 10_000), "converged": (100, 1e-3, 256, 0)}  # epochs, lr, batch, warm-up


def run(task: str, recipe: str, seed: int) -> tuple[float, float, int]:
    """(best validation MSE, test Spearman at that epoch, the epoch)."""
    epochs, lr, batch, warmup = RECIPES[recipe]
    splits = load_splits(load_task(task), 0)
    onehot = OneHotBackbone()
    x = [torch.from_numpy(pool(onehot.embed(e.seqs), "tape")) for e in (splits.train, splits.valid, splits.test)]
    y = [torch.as_tensor(np.asarray(e.targets, np.float32)) for e in (splits.train, splits.valid, splits.test)]
    torch.manual_seed(seed)
    head = nn.Sequential(weight_norm(nn.Linear(x[0].shape[1], 512), dim=None), nn.ReLU(),
                         weight_norm(nn.Linear(512, 1), dim=None))
    opt = torch.optim.AdamW(head.parameters(), lr=lr)
    steps = (len(x[0]) + batch - 1) // batch
    total = epochs * steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / warmup if s < warmup else max(0.0, (total - s) / max(1.0, total - warmup)))
    best = (float("inf"), float("nan"), -1)
    for epoch in range(epochs):
        order = torch.randperm(len(x[0]))
        for k in range(steps):
            idx = order[k * batch : (k + 1) * batch]
            loss = nn.functional.mse_loss(head(x[0][idx]).squeeze(-1), y[0][idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            opt.step()
            sched.step()
        with torch.no_grad():
            valid = nn.functional.mse_loss(head(x[1]).squeeze(-1), y[1]).item()
            if valid < best[0]:
                best = (valid, float(spearmanr(head(x[2]).squeeze(-1).numpy(), y[2].numpy())[0]), epoch)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["fluorescence", "stability"])
    p.add_argument("--recipe", choices=sorted(RECIPES), default="tape")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args()
    torch.set_num_threads(1)
    for task in args.tasks:
        rows = [run(task, args.recipe, s) for s in args.seeds]
        rho = [r[1] for r in rows]
        print(f"{task}: recipe {args.recipe}, test Spearman {np.mean(rho):.3f} +- {np.std(rho):.3f} over seeds "
              f"{args.seeds}: {[round(r, 3) for r in rho]} (best epochs {[r[2] for r in rows]}, valid MSE "
              f"{[round(r[0], 3) for r in rows]})")


if __name__ == "__main__":
    main()
