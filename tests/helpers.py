"""Small helpers shared by the tests."""

from __future__ import annotations

import csv
import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts, the file closed before returning."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_corpus(path: Path, n: int, seed: int = 0, min_len: int = 21, max_len: int = 90) -> Path:
    rng = np.random.default_rng(seed)
    alphabet = list("ACDEFGHIKLMNPQRSTVWY")
    with gzip.open(path, "wt") as fh:
        for i in range(n):
            fh.write(f">seq{i}\n{''.join(rng.choice(alphabet, size=int(rng.integers(min_len, max_len))))}\n")
    return path


def tiny_overrides(tmp: Path, train: Path, valid: Path, **extra: object) -> list[str]:
    args = {
        "model": "debug", "output_dir": str(tmp / "run"),
        "data.train_files": f"[{train}]", "data.valid_files": f"[{valid}]",
        "data.max_length": 64, "data.max_tokens": 512, "data.bucket_pool": 64, "data.shuffle_buffer": 256,
        "trainer.max_steps": 8, "trainer.val_check_interval": 4, "trainer.checkpoint_every_n_steps": 4,
        "trainer.log_every_n_steps": 2, "trainer.progress_bar": "false", "trainer.accelerator": "cpu",
        "trainer.precision": "32-true", "optim.warmup_steps": 2, "objective.glm_prob": 0.5,
    }
    args.update({k: v for k, v in extra.items()})
    return [f"{k}={v}" for k, v in args.items()]


def run_cli(args: list[str], timeout: float = 600, **popen: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "xtrimo.train.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=popen.get("cwd", REPO))


def tiny_fold_run(plm: Path, out: Path, structures: Path) -> list[str]:
    """``xtrimo-train experiment=fold`` overrides for a 2-step run of a tiny head on ``plm`` (frozen)."""
    return [f"plm.checkpoint={plm}", f"output_dir={out}", f"data.structures={structures}", "data.val_percent=10",
            "data.crop_size=24", "data.max_eval_length=70", "trainer.max_steps=2", "trainer.max_minutes=0",
            "trainer.eval_recycles=0", "head.trunk.c_s=32", "head.trunk.c_z=16", "head.trunk.pairwise_head_width=8",
            "head.trunk.num_blocks=1", "head.trunk.structure_module.no_blocks=2",
            "head.trunk.structure_module.c_s=32", "head.trunk.structure_module.c_z=16"]
