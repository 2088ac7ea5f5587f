"""Wires a :class:`TrainConfig` into Lightning: model, data, strategy, callbacks, resume, final report."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from xtrimo.checkpoint import CheckpointError
from xtrimo.config import ModelConfig
from xtrimo.data.registry import resolve_data_file
from xtrimo.io import write_json, write_text
from xtrimo.precision import resolve_precision
from xtrimo.train.config import TrainConfig

if TYPE_CHECKING:
    import lightning as L

log = logging.getLogger("xtrimo")


def flops_per_token(cfg: ModelConfig, context: int) -> float:
    """Training FLOPs per token (forward + backward = 3x forward): 6N for the matmuls plus attention."""
    n = cfg.num_parameters() - cfg.padded_vocab_size * cfg.hidden_size  # the embedding lookup is no matmul
    attention = 2 * 2 * cfg.num_layers * context * cfg.hidden_size  # QK^T and PV, forward
    return 6 * n + 3 * attention


def dry_run(cfg: TrainConfig) -> None:
    """Compose the model on the meta device and report its size; nothing is allocated."""
    from xtrimo.model.glm import XTrimoPGLM

    with torch.device("meta"):
        model = XTrimoPGLM(cfg.model)
    n = model.num_parameters()
    assert n == cfg.model.num_parameters()
    m = cfg.model
    print(f"model {m.name}: {n:,} parameters ({n / 1e9:.2f}B) on the meta device, nothing allocated")
    print(f"  layers {m.num_layers}, hidden {m.hidden_size}, heads {m.num_attention_heads} (head dim {m.head_dim}), "
          f"GeGLU FFN {m.ffn_hidden_size}, context {m.seq_length}, RoPE {m.rope_mode}, vocab {m.padded_vocab_size}")
    print(f"  bf16 weights {n * 2 / 2**30:.1f} GiB; AdamW training state (fp32 master + 2 moments) "
          f"{n * 16 / 2**30:.1f} GiB")
    print(f"  training FLOPs per token at context {m.seq_length}: {flops_per_token(m, m.seq_length):.3e}")
    print(f"  strategy {cfg.trainer.strategy}, devices {cfg.trainer.devices} x nodes {cfg.trainer.num_nodes}")


def _check_inputs(cfg: TrainConfig) -> None:
    """Fail before any process starts on inputs that cannot work (one line each)."""
    if not cfg.data.train_files:
        raise ValueError("data.train_files is empty")
    for f in (*cfg.data.train_files, *cfg.data.valid_files):
        path = resolve_data_file(f)
        if not path.is_file():
            raise FileNotFoundError(f"data file not found: {path}")
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: empty file (no FASTA records)")


def _init_weights(cfg: TrainConfig) -> tuple[ModelConfig, dict[str, torch.Tensor] | None]:
    if not cfg.init_from:
        return cfg.model, None
    from xtrimo.model.glm import XTrimoPGLM

    model = XTrimoPGLM.from_pretrained(cfg.init_from)
    return model.config, model.state_dict()


def check_output_dir(out: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from, or None for a new run; a folder holding anything else is refused.

    Raises:
        FileExistsError: ``out`` holds files and ``resume`` is false (nothing of the earlier run is touched).
        CheckpointError: ``resume`` is true but there is no checkpoint to continue.
    """
    from xtrimo.train.callbacks import TRAINER_STATE

    last = out / "checkpoints" / "last"
    if resume:
        if not (last / TRAINER_STATE).exists():
            raise CheckpointError(f"resume=true but there is no checkpoint to resume at {last / TRAINER_STATE}")
        return last / TRAINER_STATE
    if out.is_dir() and any(out.iterdir()):
        held = f"its last checkpoint is {last.resolve().name}" if last.exists() else "it is not empty"
        raise FileExistsError(f"output_dir {out} holds an earlier run ({held}): continue it with resume=true, or "
                              "choose a new output_dir (nothing was changed)")
    return None


def _first_process() -> bool:
    """Rank 0 of the job, before the trainer exists (launchers set these for every other process)."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def _trainer(cfg: TrainConfig, out: Path) -> L.Trainer:
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from xtrimo.train.callbacks import CheckpointExporter, MetricsCSV, Throughput
    from xtrimo.train.feedback import RunLimit, TrainProgress
    from lightning.pytorch.strategies import DeepSpeedStrategy

    from xtrimo.train.strategies import build_strategy

    t = cfg.trainer
    strategy = build_strategy(t, cfg.deepspeed, cfg.optim.grad_clip)
    # DeepSpeed clips inside its engine (deepspeed_config's gradient_clipping); Lightning clips otherwise
    clip = None if isinstance(strategy, DeepSpeedStrategy) or not cfg.optim.grad_clip else cfg.optim.grad_clip
    limit = RunLimit(t.max_minutes)
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=strategy, precision=t.precision,
        max_steps=t.max_steps, accumulate_grad_batches=t.accumulate_grad_batches, gradient_clip_val=clip,
        val_check_interval=t.val_check_interval, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        log_every_n_steps=t.log_every_n_steps, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, use_distributed_sampler=False, deterministic=t.deterministic,
        logger=TensorBoardLogger(save_dir=str(out), name="tensorboard", version=""),
        # in this order at each step's end: the step's tok/s is logged, its metrics row is on disk, then the
        # checkpoint is written: a kill between the two leaves a row past the last checkpoint (dropped on resume),
        # never a checkpointed step without its row
        callbacks=[limit, Throughput(), MetricsCSV(out / "metrics.csv", t.log_every_n_steps),
                   CheckpointExporter(out / "checkpoints", t.checkpoint_every_n_steps, cfg.final_full_validation),
                   TrainProgress(limit, t.progress_seconds, t.progress_bar)],
    )


def _plan(cfg: TrainConfig, out: Path) -> str:
    t, d = cfg.trainer, cfg.data
    stop = f"{t.max_steps} steps" + (f" or {t.max_minutes:g} minutes, whichever comes first" if t.max_minutes else "")
    subset = f"the first {d.valid_max_sequences} valid sequences" if d.valid_max_sequences else "the whole valid split"
    final = "; then the whole valid split once" if cfg.final_full_validation else ""
    return (f"training {stop} ({d.max_tokens:,} tokens a step) into {out}; validation every {t.val_check_interval} "
            f"steps on {subset}{final}")


def train(cfg: TrainConfig) -> dict[str, float]:
    """Train as configured; returns the final validation metrics.

    Raises:
        FileExistsError: ``output_dir`` holds an earlier run and ``resume`` is false.
    """
    from xtrimo.compose import resolved
    from xtrimo.train.datamodule import PretrainDataModule
    from xtrimo.train.module import PretrainModule

    _check_inputs(cfg)
    cfg.trainer.precision, precision_note = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    out = Path(cfg.output_dir)
    # every rank resumes; only the first checks the folder (the others start once it has begun writing there)
    ckpt_path = check_output_dir(out, cfg.resume) if _first_process() or cfg.resume else None
    import lightning as L

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model_cfg, init_state = _init_weights(cfg)
    t = cfg.trainer
    datamodule = PretrainDataModule(cfg.data, cfg.objective, t.accumulate_grad_batches)
    module = PretrainModule(model_cfg, cfg.optim, cfg.stability, t.max_steps, t.max_minutes * 60,
                            datamodule.unigram(model_cfg.padded_vocab_size), init_state, cfg.objective,
                            t.token_multiple, t.compile)
    trainer = _trainer(cfg, out)
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", resolved(cfg))
        print(_plan(cfg, out) + (f"; {precision_note}" if precision_note else ""), flush=True)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None, weights_only=True)
    if not cfg.final_full_validation:
        return {}
    datamodule.full_validation = True
    trainer.limit_val_batches = 1.0
    if trainer.is_global_zero:
        print(f"validating the whole valid split after {trainer.global_step} steps (checkpoint already written)",
              flush=True)
    results = trainer.validate(module, datamodule=datamodule, verbose=False, weights_only=True)[0]
    metrics = {k: float(v) for k, v in results.items()}
    if trainer.is_global_zero:
        untrained = {"mlm", "glm"} - set(cfg.objective.trained_objectives(trainer.global_step))
        report(metrics, trainer.global_step, module.skipped_steps, out, untrained)
    return metrics


def report(metrics: dict[str, float], step: int, skipped: int, out: Path, untrained: Collection[str] = ()) -> None:
    """Print validation perplexity per objective next to the unigram baseline, and save results.json.

    An objective listed in ``untrained`` is still evaluated, and marked: its row shows what the run did not train.
    """
    print(f"\nvalidation after {step} steps ({skipped} skipped) on the whole valid split:")
    print(f"  {'objective':<10}{'perplexity':>12}{'unigram':>10}{'tokens':>10}")
    for o in ("mlm", "glm"):
        if metrics.get(f"val/{o}_tokens", 0) > 0:
            unigram = metrics.get(f"val/{o}_unigram_ppl", math.nan)
            print(f"  {o.upper():<10}{metrics[f'val/{o}_ppl']:>12.2f}{unigram:>10.2f}"
                  f"{int(metrics[f'val/{o}_tokens']):>10}" + ("   (not trained in this run)" if o in untrained else ""))
    write_json(out / "results.json", {"step": step, "skipped_steps": skipped, **metrics})
    last, best = out / "checkpoints" / "last", out / "checkpoints" / "best"
    print(f"wrote {last} -> {last.resolve().name} (best: {best.resolve().name if best.exists() else 'none'}), "
          f"{out / 'results.json'}, {out / 'metrics.csv'}, {out / 'tensorboard'}")
