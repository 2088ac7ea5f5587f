"""Callbacks: atomic checkpoints (last / best), a metrics CSV that survives resume, token throughput."""

from __future__ import annotations

import csv
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from xtrimo.checkpoint import point_link, write_model_files
from xtrimo.io import write_csv
from xtrimo.train.feedback import is_last_step
from xtrimo.train.strategies import full_state_dict

TRAINER_STATE = "trainer.ckpt"


class CheckpointExporter(L.Callback):
    """Writes ``checkpoints/step_N/`` = model.safetensors + config.yaml + trainer.ckpt (full training state).

    Every ``every_n_steps`` steps and at the last step, before that step's validation. The directory is assembled
    under a temporary name and renamed into place; ``last`` and ``best`` are symlinks swapped atomically, so a kill
    at any moment leaves the previous checkpoint intact. With ``final_validation`` the last step's in-fit
    validation is skipped (the caller validates the whole split once after fit).
    """

    def __init__(self, root: str | Path, every_n_steps: int, final_validation: bool = False) -> None:
        self.root, self.every = Path(root), every_n_steps
        self.final_validation = final_validation
        self.best: float | None = None
        self.best_dir: str | None = None

    def _save(self, trainer: L.Trainer, module: L.LightningModule) -> str:
        name = f"step_{trainer.global_step:08d}"
        final, tmp = self.root / name, self.root / f".{name}.tmp"
        if final.exists():
            return name
        if trainer.is_global_zero:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        trainer.strategy.barrier("xtrimo_ckpt_mkdir")
        trainer.save_checkpoint(tmp / TRAINER_STATE, weights_only=False)  # the full training state
        state = full_state_dict(module.model, trainer.strategy)
        if trainer.is_global_zero:
            write_model_files(state, module.checkpoint_config(trainer.global_step), tmp)
            os.replace(tmp, final)
            point_link(self.root / "last", name)
            self._prune()
        trainer.strategy.barrier("xtrimo_ckpt_done")
        return name

    def _prune(self) -> None:
        keep = {os.readlink(self.root / n) for n in ("last", "best") if (self.root / n).is_symlink()}
        for d in self.root.glob("step_*"):
            if d.name not in keep:
                shutil.rmtree(d, ignore_errors=True)

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.root.mkdir(parents=True, exist_ok=True)
            for stale in self.root.glob(".step_*.tmp"):  # left by a killed run; never referenced
                shutil.rmtree(stale, ignore_errors=True)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        step, last = trainer.global_step, is_last_step(trainer)
        if step > 0 and (last or (self.every and step % self.every == 0)):
            self._save(trainer, module)  # before the validation of this boundary: a kill during it loses nothing
        if last and self.final_validation:
            trainer.limit_val_batches = 0  # the whole split is validated once after fit instead

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or trainer.global_step == 0:
            return
        loss = trainer.callback_metrics.get("val/loss")
        name = self._save(trainer, module)
        if loss is not None and math.isfinite(float(loss)) and (self.best is None or float(loss) < self.best):
            self.best, self.best_dir = float(loss), name
            if trainer.is_global_zero:
                point_link(self.root / "best", name)
                self._prune()

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._save(trainer, module)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_dir": self.best_dir}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_dir = state.get("best"), state.get("best_dir")


class MetricsCSV(L.Callback):
    """Appends logged metrics to ``metrics.csv``; on resume, rows past the restored step are dropped first."""

    def __init__(self, path: str | Path, every_n_steps: int) -> None:
        self.path, self.every = Path(path), every_n_steps
        self.fields: list[str] = []

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.path.exists():
            return
        with open(self.path) as fh:
            rows = list(csv.DictReader(fh))
        rows = [r for r in rows if int(r["step"]) <= trainer.global_step]
        self.fields = list(rows[0].keys()) if rows else []
        self._rewrite(rows)

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        write_csv(self.path, rows, self.fields, extrasaction="ignore")

    def _append(self, trainer: L.Trainer, kind: str) -> None:
        if not trainer.is_global_zero:
            return
        row = {"step": trainer.global_step, "kind": kind, "time": round(time.time(), 1)}
        for k, v in trainer.callback_metrics.items():
            if (kind == "val") == k.startswith("val/"):
                row[k] = round(float(v), 5) if torch.is_tensor(v) and v.numel() == 1 else v
        if set(row) - set(self.fields):
            old = []
            if self.path.exists():
                with open(self.path) as fh:
                    old = list(csv.DictReader(fh))
            self.fields = self.fields + sorted(set(row) - set(self.fields))
            self._rewrite(old)
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore").writerow(row)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step % self.every == 0 and trainer.global_step > 0:
            self._append(trainer, "train")

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._append(trainer, "val")


class Throughput(L.Callback):
    """Logs real (non-padding) tokens/s and the padding fraction of the batches."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.tokens = 0
        self.real = 0
        self.padded = 0
        self.paused: float | None = None

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.t0 is None:
            self.t0 = time.perf_counter()

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.paused = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.t0 is not None and getattr(self, "paused", None) is not None:
            self.t0 += time.perf_counter() - self.paused  # validation time is not training time
        self.paused = None

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        real = int(batch.valid.sum())
        self.tokens += real
        self.real += real
        self.padded += batch.valid.numel()
        elapsed = time.perf_counter() - (self.t0 or time.perf_counter())
        if elapsed > 0:
            module.log("tok/s", self.tokens * trainer.world_size / elapsed, prog_bar=True, rank_zero_only=True)
        module.log("train/padding_fraction", 1 - self.real / max(1, self.padded), rank_zero_only=True)
