"""``xtrimo-train experiment=fold ...``: train the folding head on PDB structures, then score held-out chains.

    xtrimo-train experiment=fold plm.checkpoint=PLM_DIR [data.structures=DIR_OR_SET[,...]] [trainer.max_minutes=4]

PLM_DIR: an xtrimo checkpoint, or ESM-2 in transformers' format (e.g. a downloaded facebook/esm2_t33_650M_UR50D)
or fair-esm's file (esm2_t33_650M_UR50D.pt).

Hydra config root: ``configs/fold/fold.yaml`` (schema :class:`FoldTrainConfig`). The run writes
``output_dir/head`` (a folding checkpoint for ``Folder.from_pretrained`` / ``xtrimo-fold``) and
``output_dir/heldout.csv`` (the head vs an ideal helix and a straight chain on the held-out structures).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xtrimo.io import refuse_nonempty, write_json
from xtrimo.structure.config import FoldConfig

if TYPE_CHECKING:
    from xtrimo.structure.folder import Folder

log = logging.getLogger("xtrimo.structure")


@dataclass
class PLMConfig:
    checkpoint: str = "???"  # frozen PLM: an xtrimo checkpoint, or ESM-2 (a transformers folder, a fair-esm .pt)


@dataclass
class FoldDataConfig:
    structures: str = "structures_scope_domains,structures_pfam_domains"  # registered sets or folders, comma-separated
    val_percent: int = 20  # held out by md5(file name) % 100 < val_percent; never trained on
    crop_size: int = 96
    batch_size: int = 1
    max_length: int = 1100  # training chains longer than this are skipped
    max_eval_length: int = 400  # held-out chains longer than this are not folded (CPU time: L^3 trunk)
    seed: int = 0


@dataclass
class FoldOptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 50
    grad_clip: float = 1.0


@dataclass
class FoldTrainerConfig:
    max_steps: int = 2000
    max_minutes: float = 4.0  # wall-time limit of the optimisation (0: none)
    max_recycles_train: int = 1  # recycles drawn uniformly in [0, this] per step
    unclamped_fape_fraction: float = 0.1  # steps with unclamped backbone FAPE (AF2: 0.1)
    eval_recycles: int = 1
    log_every_n_steps: int = 20
    threads: int = 0  # torch intra-op threads (0: leave as is)
    accelerator: str = "cpu"  # Lightning's: "gpu", or "auto" (a GPU when there is one, Apple's MPS on a Mac)
    devices: int = 1
    precision: str = "32-true"  # Lightning's, e.g. "bf16-mixed" on a GPU
    init_from: str = ""  # folding checkpoint whose head weights start this run (continued training)


@dataclass
class FoldTrainConfig:
    experiment: str = "fold"
    output_dir: str = "runs/fold"
    seed: int = 0
    plm: PLMConfig = field(default_factory=PLMConfig)
    head: FoldConfig = field(default_factory=FoldConfig)
    data: FoldDataConfig = field(default_factory=FoldDataConfig)
    optim: FoldOptimConfig = field(default_factory=FoldOptimConfig)
    trainer: FoldTrainerConfig = field(default_factory=FoldTrainerConfig)


def compose(overrides: list[str]) -> FoldTrainConfig:
    """Compose ``configs/fold/fold.yaml`` with ``overrides``; a bad key or value raises ValueError (one line)."""
    from xtrimo.compose import compose as compose_config

    out = compose_config(FoldTrainConfig, "fold", overrides, subdir="fold")
    if out.plm.checkpoint == "???":
        raise ValueError("plm.checkpoint is required (the frozen PLM directory)")
    return out


def train(cfg: FoldTrainConfig) -> dict[str, float]:
    """Train the head, save ``output_dir/head`` and score the held-out structures; returns the mean TM-scores."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader
    from xtrimo.structure import data
    from xtrimo.structure.folder import Folder, load_plm, save_head
    from xtrimo.structure.lit import FoldModule

    from xtrimo.train.feedback import RunLimit, TrainProgress

    out = Path(cfg.output_dir)
    refuse_nonempty(out, "output_dir")
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    L.seed_everything(cfg.seed, verbose=False)
    plm_dir = Path(cfg.plm.checkpoint).resolve()
    plm = load_plm(plm_dir).eval().requires_grad_(False)
    head_cfg = FoldConfig.from_dict({**cfg.head.to_dict(), "plm": {
        "checkpoint": str(plm_dir), "num_layers": plm.config.num_layers, "hidden_size": plm.config.hidden_size,
        "num_heads": plm.config.num_attention_heads}})
    train_files, val_files, eval_files = _split(cfg)
    t0 = time.time()
    examples = data.load_examples(train_files, plm, head_cfg.use_attention_maps, cfg.data.max_length)
    log.info("PLM features of %d chains in %.1f s", len(examples), time.time() - t0)
    loader = DataLoader(data.CropDataset(examples, cfg.data.crop_size, repeats=1000, seed=cfg.data.seed),
                        batch_size=cfg.data.batch_size, shuffle=True, collate_fn=data.collate)
    module = FoldModule(head_cfg, cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.weight_decay,
                        cfg.trainer.max_recycles_train, cfg.seed, cfg.trainer.unclamped_fape_fraction)
    if cfg.trainer.init_from:
        from safetensors.torch import load_file
        from xtrimo.structure.config import FOLD_WEIGHTS_NAME

        module.head.load_state_dict(load_file(str(Path(cfg.trainer.init_from) / FOLD_WEIGHTS_NAME)), strict=True)
        log.info("head initialised from %s", cfg.trainer.init_from)
    limit = RunLimit(cfg.trainer.max_minutes)
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices, precision=cfg.trainer.precision,
        max_steps=cfg.trainer.max_steps,
        gradient_clip_val=cfg.optim.grad_clip or None, log_every_n_steps=cfg.trainer.log_every_n_steps,
        logger=L.pytorch.loggers.CSVLogger(str(out), name="logs"), enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[limit, TrainProgress(limit, count_tokens=None)],
    )
    t0 = time.time()
    trainer.fit(module, loader)
    train_s = time.time() - t0
    save_head(module.head, out / "head")
    folder = Folder(plm, module.head)
    summary = heldout_report(folder, eval_files, out / "heldout.csv", cfg.trainer.eval_recycles)
    summary.update(steps=int(trainer.global_step), train_seconds=round(train_s, 1), train_structures=len(examples),
                   heldout_structures=len(val_files), heldout_scored=len(eval_files))
    write_json(out / "summary.json", summary)
    return summary


def _split(cfg: FoldTrainConfig) -> tuple[list[Path], list[Path], list[Path]]:
    """Training files, held-out files, and the held-out ones short enough to fold in the report."""
    from xtrimo.structure import data
    from xtrimo.data.pdb import read_structure

    files = [f for src in cfg.data.structures.split(",") if src for f in data.structure_files(src.strip())]
    val_files = [f for f in files if data.is_validation(f.name, cfg.data.val_percent)]
    train_files = [f for f in files if f not in val_files]
    log.info("%d training / %d held-out structures", len(train_files), len(val_files))
    eval_files = [f for f in val_files if len(read_structure(f).aatype) <= cfg.data.max_eval_length]
    if len(eval_files) < len(val_files):
        log.info("held-out chains over %d residues not folded: %s", cfg.data.max_eval_length,
                 ", ".join(f.stem for f in val_files if f not in eval_files))
    return train_files, val_files, eval_files


def heldout_report(folder: Folder, files: list[Path], path: Path, num_recycles: int | None) -> dict[str, float]:
    """Fold each held-out chain and score it next to the helix / straight-chain baselines; writes ``path``."""
    from xtrimo.structure.evaluate import METRICS, baseline_scores, score_structures, write_csv
    from xtrimo.data.pdb import read_structure

    rows = []
    for f in files:
        ref = read_structure(f)
        pred = folder.fold(ref.sequence, num_recycles=num_recycles)
        rows.append({"id": f.stem, "length": len(ref.aatype), "model": "xtrimo-fold",
                     **score_structures(pred.structure, ref),
                     "status": f"pLDDT {pred.mean_plddt:.1f} pTM {pred.ptm:.3f}"})
        for name, scores in baseline_scores(ref).items():
            rows.append({"id": f.stem, "length": len(ref.aatype), "model": name, **scores, "status": "baseline"})
    write_csv([{**r, "id": f"{r['id']}/{r['model']}"} for r in rows], path)
    summary = {}
    for model in ("xtrimo-fold", "helix", "straight"):
        for m in METRICS:
            summary[f"{model}/{m}"] = float(np.mean([r[m] for r in rows if r["model"] == model]))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``xtrimo-train experiment=fold ...`` (group ``xtrimo.train_tasks``)."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        from xtrimo.compose import config_dir

        print(f"configs: {config_dir() / 'fold'}")
        return 0
    from xtrimo.cli_utils import run_command, setup_logging

    setup_logging()

    def body() -> int:
        cfg = compose(argv)
        print(json.dumps(train(cfg), indent=2))
        out = Path(cfg.output_dir)
        print(f"wrote {out / 'head'} (the folding checkpoint: xtrimo-fold --checkpoint {out / 'head'}), "
              f"{out / 'heldout.csv'}, {out / 'summary.json'}")
        return 0

    return run_command("xtrimo-train", body)
