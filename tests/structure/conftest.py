"""Fixtures for the structure tests: a random tiny PLM and folding checkpoint on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xtrimo.config import ModelConfig
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.structure.config import FoldConfig
from xtrimo.structure.folder import save_head
from xtrimo.structure.model import FoldingHead

TINY_FOLD = dict(
    plm=dict(num_layers=2, hidden_size=64, num_heads=4), c_op=8, max_length=300, heads=dict(c_lddt=16),
    trunk=dict(c_s=32, c_z=16, num_blocks=1, sequence_head_width=16, pairwise_head_width=8, max_recycles=1,
               structure_module=dict(c_s=32, c_z=16, c_ipa=8, c_resnet=16, no_heads_ipa=2, no_qk_points=2,
                                     no_v_points=2, no_blocks=2)),
)


@pytest.fixture
def fold_config() -> FoldConfig:
    return FoldConfig.from_dict(TINY_FOLD)


@pytest.fixture
def fold_dir(tmp_path: Path) -> Path:
    """``tmp/fold`` (head + config naming ``../plm``) and ``tmp/plm`` (random 2-layer PLM)."""
    torch.manual_seed(0)
    XTrimoPGLM(ModelConfig(num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=97,
                           objectives=("mlm",))).save_pretrained(
        tmp_path / "plm")
    config = FoldConfig.from_dict({**TINY_FOLD, "plm": {**TINY_FOLD["plm"], "checkpoint": "../plm"}})
    save_head(FoldingHead(config), tmp_path / "fold")
    return tmp_path / "fold"
