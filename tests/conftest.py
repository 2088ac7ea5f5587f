"""Shared fixtures: the tiny model config, the shared data path, deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from xtrimo.config import ModelConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("XTRIMO_DATA_DIR", REPO.parent / "shared" / "data"))
os.environ.setdefault("XTRIMO_DATA_DIR", str(SHARED_DATA))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_config() -> ModelConfig:
    """2 layers, hidden 64, 4 heads: small enough for every test, odd FFN width so swapped dims fail; recorded as
    trained with both objectives (as a stage-2 checkpoint), so every product accepts it."""
    return ModelConfig(num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=97, seq_length=128,
                       objectives=("mlm", "glm"))


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "pretrain_corpus").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set XTRIMO_DATA_DIR)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
