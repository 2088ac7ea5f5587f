"""LightningModule for MLM + GLM pre-training of :class:`XTrimoPGLM`."""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from typing import Any

import lightning as L
import numpy as np
import torch
from torchmetrics import SumMetric

from xtrimo.config import OBJECTIVES, ModelConfig
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.model.layout import ModelInput
from xtrimo.objectives.loss import lm_loss
from xtrimo.objectives.mixture import ObjectiveConfig
from xtrimo.objectives.sample import IGNORE_INDEX, OBJECTIVE_NAMES
from xtrimo.train.config import OptimConfig, StabilityConfig

log = logging.getLogger(__name__)


def warmup_cosine(step: int, warmup: int, progress: float, min_ratio: float) -> float:
    """LR multiplier: linear warmup over ``warmup`` steps, then cosine decay to ``min_ratio`` as ``progress`` -> 1."""
    if step < warmup:
        return (step + 1) / warmup
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class PretrainModule(L.LightningModule):
    """Trains the backbone on batches built by :mod:`xtrimo.data.pretrain`.

    Args:
        model_config: the architecture (the model itself is built in ``configure_model``, so sharded strategies
            can build it on the meta device and shard it).
        optim: optimizer and schedule.
        stability: step-skipping rules.
        max_steps: schedule length.
        max_seconds: training-time budget (0: none); the cosine then ends at whichever budget runs out first.
        unigram_log_probs: ``[V]`` train-split log-frequencies for the baseline perplexity (optional).
        init_state: weights to start from (fine-tuning), or None for a fresh init.
        objective: the sample mixture, recorded in the checkpoints' config (``objectives``).
        token_multiple: the largest step each batch's token count is rounded up to
            (:func:`xtrimo.model.layers.round_rows`).
        compile: run the transformer blocks through ``torch.compile`` (:meth:`XTrimoPGLM.compile_blocks`).
    """

    def __init__(
        self,
        model_config: ModelConfig,
        optim: OptimConfig,
        stability: StabilityConfig,
        max_steps: int,
        max_seconds: float = 0.0,
        unigram_log_probs: torch.Tensor | None = None,
        init_state: dict[str, torch.Tensor] | None = None,
        objective: ObjectiveConfig | None = None,
        token_multiple: int = 1,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.model_config, self.optim, self.stability, self.max_steps = model_config, optim, stability, max_steps
        self.max_seconds = max_seconds
        self.model: XTrimoPGLM | None = None
        self.init_state = init_state
        self.objective = objective or ObjectiveConfig()
        self.token_multiple = token_multiple
        self.use_compile = compile
        unigram = unigram_log_probs if unigram_log_probs is not None else torch.zeros(0)
        self.register_buffer("unigram", unigram, persistent=False)
        self.val_sums = torch.nn.ModuleDict(
            {f"{o}_{k}": SumMetric() for o in OBJECTIVE_NAMES for k in ("nll", "tokens", "unigram")}
        )
        self.batches_seen = 0  # micro-batches consumed (data position for resume)
        self.skipped_steps = 0
        self.loss_ema: float | None = None

    def configure_model(self) -> None:
        if self.model is not None:
            return
        self.model = XTrimoPGLM(self.model_config)
        self.model.token_multiple = self.token_multiple
        if self.init_state is not None:
            self.model.load_state_dict(self.init_state, strict=True)
            self.init_state = None
        if self.device_mesh is not None:  # ModelParallelStrategy (FSDP2)
            from xtrimo.train.strategies import parallelize

            parallelize(self.model, self.device_mesh)
        if self.use_compile:
            from xtrimo.toolchain import check_toolchain

            check_toolchain()
            self.model.compile_blocks()

    def checkpoint_config(self, step: int) -> ModelConfig:
        """The model config a checkpoint after ``step`` optimizer steps records: the starting weights' objectives
        and those this run has trained, in canonical order."""
        done = set(self.model_config.objectives) | set(self.objective.trained_objectives(step))
        return dataclasses.replace(self.model_config, objectives=tuple(o for o in OBJECTIVES if o in done))

    def _forward_loss(self, batch: ModelInput) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training / validation loss; the output head runs only where there is a label."""
        out = self.model(batch, logits_at=batch.labels != IGNORE_INDEX)
        return lm_loss(out["logits"], batch.labels, batch.kinds)

    def _is_bad(self, loss: torch.Tensor) -> tuple[bool, str]:
        value = float(loss.detach())
        reason = ""
        if self.stability.skip_nonfinite and not math.isfinite(value):
            reason = "non-finite loss"
        elif (
            self.stability.spike_factor > 0
            and self.loss_ema is not None
            and self.global_step >= self.stability.spike_warmup_steps
            and value > self.stability.spike_factor * self.loss_ema
        ):
            reason = f"loss spike {value:.3f} > {self.stability.spike_factor} x {self.loss_ema:.3f}"
        # every rank must take the same decision, or the gradient all-reduce would hang
        flag = torch.tensor(1.0 if reason else 0.0, device=loss.device)
        flag = self.trainer.strategy.reduce(flag, reduce_op="max") if self.trainer.world_size > 1 else flag
        return bool(flag > 0), reason or "skipped on another rank"

    def training_step(self, batch: ModelInput, batch_idx: int) -> torch.Tensor | None:
        self.batches_seen += 1
        loss, parts = self._forward_loss(batch)
        bad, reason = self._is_bad(loss)
        if bad:
            self.skipped_steps += 1
            log.warning("step %d: skipped (%s); %d skipped so far", self.global_step, reason, self.skipped_steps)
            self.log("train/skipped_steps", float(self.skipped_steps))
            return None
        value = float(loss.detach())
        self.loss_ema = value if self.loss_ema is None else 0.98 * self.loss_ema + 0.02 * value
        self.log("train/loss", loss, prog_bar=True)
        for name in OBJECTIVE_NAMES:
            n = parts[f"{name}_tokens"]
            if n > 0:
                self.log(f"train/{name}_ppl", torch.exp(parts[f"{name}_nll"] / n))
        self.log("train/skipped_steps", float(self.skipped_steps))
        self.log("train/epoch", batch.epoch.float() if batch.epoch is not None else 0.0)
        return loss

    def validation_step(self, batch: ModelInput, batch_idx: int) -> None:
        loss, parts = self._forward_loss(batch)
        labels, kinds = batch.labels, batch.kinds
        keep = labels != IGNORE_INDEX
        token_kind = kinds[:, None].expand_as(labels)[keep]
        base = (-self.unigram[labels[keep]] if self.unigram.numel()
                else torch.zeros(int(keep.sum()), device=labels.device))
        for k, name in enumerate(OBJECTIVE_NAMES):
            self.val_sums[f"{name}_nll"].update(parts[f"{name}_nll"])
            self.val_sums[f"{name}_tokens"].update(parts[f"{name}_tokens"])
            self.val_sums[f"{name}_unigram"].update(base[token_kind == k].sum())

    def on_validation_epoch_end(self) -> None:
        sums = {k: m.compute() for k, m in self.val_sums.items()}  # all-reduced over ranks by torchmetrics
        for m in self.val_sums.values():
            m.reset()
        total_nll = sum(sums[f"{o}_nll"] for o in OBJECTIVE_NAMES)
        total_tok = sum(sums[f"{o}_tokens"] for o in OBJECTIVE_NAMES)
        # the sums are already global, so every rank logs the same value (sync_dist only averages equal numbers)
        self.log("val/loss", total_nll / total_tok.clamp_min(1), prog_bar=True, sync_dist=True)
        for o in OBJECTIVE_NAMES:
            n = sums[f"{o}_tokens"].clamp_min(1)
            self.log(f"val/{o}_ppl", torch.exp(sums[f"{o}_nll"] / n), prog_bar=True, sync_dist=True)
            if self.unigram.numel():
                self.log(f"val/{o}_unigram_ppl", torch.exp(sums[f"{o}_unigram"] / n), sync_dist=True)
            self.log(f"val/{o}_tokens", sums[f"{o}_tokens"], sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            (decay if p.ndim >= 2 and "word_embeddings" not in name else no_decay).append(p)
        o = self.optim
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: warmup_cosine(s, o.warmup_steps, self._progress(s), o.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def _progress(self, step: int) -> float:
        """Fraction of the run done after warmup: by steps, or by the time limit if that runs out sooner."""
        warm = self.optim.warmup_steps
        progress = (step - warm) / max(1, self.max_steps - warm)
        if self.max_seconds and self._trainer is not None:
            from xtrimo.train.feedback import RunLimit

            limit = next((c for c in self.trainer.callbacks if isinstance(c, RunLimit)), None)
            if limit is not None:
                progress = max(progress, limit.elapsed() / self.max_seconds)
        return progress

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["xtrimo"] = {
            "batches_seen": self.batches_seen,
            "skipped_steps": self.skipped_steps,
            "loss_ema": self.loss_ema,
            "rng_torch": torch.get_rng_state(),
            "rng_numpy": np.random.get_state()[1].tolist(),
            "rng_python": random.getstate(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("xtrimo", {})
        self.batches_seen = int(state.get("batches_seen", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.loss_ema = state.get("loss_ema")
        if "rng_torch" in state:
            torch.set_rng_state(state["rng_torch"])
            np.random.seed(0)
            st = np.random.get_state()
            np.random.set_state((st[0], np.array(state["rng_numpy"], dtype=np.uint32), *st[2:]))
            version, internal, gauss = state["rng_python"]
            random.setstate((version, tuple(internal), gauss))
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None:
            datamodule.start_batch = self.batches_seen
