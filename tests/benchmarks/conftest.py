"""Fixtures for the benchmark tests: a tiny checkpoint and a small synthetic data set in the registry."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from xtrimo.benchmarks.tasks import DataSpec, TaskSpec
from xtrimo.config import ModelConfig
from xtrimo.data.registry import DatasetSpec, RemoteFile, register, sha256sum
from xtrimo.model.glm import XTrimoPGLM

RESIDUES = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture
def tiny_checkpoint(tmp_path: Path, tiny_config: ModelConfig) -> Path:
    path = tmp_path / "ckpt"
    XTrimoPGLM(tiny_config).save_pretrained(path)
    return path


def synthetic_rows(n: int, seed: int) -> list[tuple[str, float]]:
    """Sequences of odd lengths 13-17 whose target is the fraction of K + R residues (learnable by composition)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        seq = "".join(rng.choice(list(RESIDUES), size=int(rng.choice([13, 15, 17]))))
        rows.append((seq, (seq.count("K") + seq.count("R")) / len(seq)))
    return rows


def write_csv(path: Path, rows: list[tuple[str, float]], label: bool = False) -> None:
    with gzip.open(path, "wt") as fh:
        fh.write("sequence,target\n")
        for seq, y in rows:
            fh.write(f"{seq},{int(y > 0.1) if label else y}\n")


@pytest.fixture
def synthetic_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A registered data set ``bench_synthetic`` (train / valid / test CSVs) in a temporary data dir."""
    root = tmp_path / "data"
    folder = root / "bench_synthetic"
    folder.mkdir(parents=True)
    for split, n, seed in (("train", 120, 0), ("valid", 40, 1), ("test", 60, 2)):
        write_csv(folder / f"{split}.csv.gz", synthetic_rows(n, seed))
        write_csv(folder / f"{split}_cls.csv.gz", synthetic_rows(n, seed), label=True)
    files = tuple(RemoteFile(p.name, None, sha256sum(p)) for p in sorted(folder.iterdir()))
    register(DatasetSpec("bench_synthetic", "test data", "CC0", "tests/benchmarks/conftest.py", files))
    monkeypatch.setenv("XTRIMO_DATA_DIR", str(root))
    return "bench_synthetic"


@pytest.fixture
def synthetic_task(synthetic_dataset: str) -> Callable[..., TaskSpec]:
    """``synthetic_task(problem)``: a task on ``synthetic_dataset``, the K + R fraction (``regression``) or its
    label (``binary``)."""

    def make(problem: str = "regression") -> TaskSpec:
        suffix = "" if problem == "regression" else "_cls"
        data = DataSpec(dataset=synthetic_dataset, train=f"train{suffix}.csv.gz", valid=f"valid{suffix}.csv.gz",
                        test=f"test{suffix}.csv.gz")
        metric = "spearman" if problem == "regression" else "accuracy"
        return TaskSpec(name="synthetic", problem=problem, num_classes=2 if problem != "regression" else 1,
                        metric=metric, data=data)

    return make
