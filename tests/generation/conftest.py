"""Fixtures for the generation tests: a random tiny model and its checkpoint directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xtrimo.config import ModelConfig
from xtrimo.model.glm import XTrimoPGLM


@pytest.fixture
def model(tiny_config: ModelConfig) -> XTrimoPGLM:
    torch.manual_seed(0)
    return XTrimoPGLM(tiny_config).eval()


@pytest.fixture
def model_2d() -> XTrimoPGLM:
    """2-D RoPE variant (block positions rotate their own half of each head), odd FFN width."""
    torch.manual_seed(1)
    cfg = ModelConfig(num_layers=2, hidden_size=48, num_attention_heads=3, ffn_hidden_size=71, rope_mode="2d")
    return XTrimoPGLM(cfg).eval()


@pytest.fixture
def checkpoint(model: XTrimoPGLM, tmp_path: Path) -> Path:
    path = tmp_path / "ckpt"
    model.save_pretrained(path)
    return path
