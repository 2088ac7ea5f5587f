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

TINY_FOLD = dict(plm_num_layers=2, plm_hidden_size=64, plm_num_heads=4, c_s=32, c_z=16, num_blocks=1,
                 sequence_head_width=16, pairwise_head_width=8, c_op=8, c_s_sm=32, c_z_sm=16, c_ipa=8, c_resnet=16,
                 no_heads_ipa=2, no_qk_points=2, no_v_points=2, no_blocks_sm=2, c_lddt=16, max_recycles=1,
                 max_length=300)


@pytest.fixture
def fold_config() -> FoldConfig:
    return FoldConfig(**TINY_FOLD)


@pytest.fixture
def fold_dir(tmp_path: Path) -> Path:
    """``tmp/fold`` (head + config naming ``../plm``) and ``tmp/plm`` (random 2-layer PLM)."""
    torch.manual_seed(0)
    XTrimoPGLM(ModelConfig(num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=97,
                           objectives=("mlm",))).save_pretrained(
        tmp_path / "plm")
    save_head(FoldingHead(FoldConfig(**TINY_FOLD, plm_checkpoint="../plm")), tmp_path / "fold")
    return tmp_path / "fold"
