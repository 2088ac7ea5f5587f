"""The fused trunk modules (structure/fused.py) against transformers' originals, weight for weight."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers.models.esm.modeling_esmfold import (
    EsmFoldResidueMLP,
    EsmFoldSequenceToPair,
    EsmFoldTriangleAttention,
    EsmFoldTriangleMultiplicativeUpdate,
    EsmFoldTriangularSelfAttentionBlock,
)

from xtrimo.structure.config import TrunkConfig
from xtrimo.structure import fused as fused_module
from xtrimo.structure.fused import (
    FusedResidueMLP,
    FusedSequenceToPair,
    FusedTriangleMultiplication,
    FusedTriangularBlock,
    SdpaTriangleAttention,
    fuse_trunk_blocks,
)
from xtrimo.structure.trunk import FoldingTrunk, trunk_config


def _trunk_config(c_z: int):
    return trunk_config(TrunkConfig(c_s=32, c_z=c_z, pairwise_head_width=8, sequence_head_width=16))


def _randomise(module: torch.nn.Module) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.3)


def _fused_copy(block: EsmFoldTriangularSelfAttentionBlock) -> FusedTriangularBlock:
    blocks = torch.nn.ModuleList([copy.deepcopy(block)])
    fuse_trunk_blocks(blocks)
    return blocks[0]


def _padded_pair(b: int = 2, n: int = 13, c: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    seq_mask = torch.ones(b, n)
    seq_mask[1, 9:] = 0  # the second chain has 4 padding residues
    return torch.randn(b, n, n, c), seq_mask, seq_mask[:, :, None] * seq_mask[:, None, :]


@pytest.mark.parametrize("starting", [True, False])
@pytest.mark.parametrize("chunk", [None, 5])
def test_triangle_attention_matches_reference(starting, chunk):
    ref = EsmFoldTriangleAttention(16, 8, 2, starting=starting)
    _randomise(ref)
    fused = SdpaTriangleAttention.from_module(ref)
    z, _, pair_mask = _padded_pair()
    with torch.no_grad():
        expected, got = ref(z, mask=pair_mask, chunk_size=4), fused(z, mask=pair_mask, chunk_size=chunk)
    real = pair_mask.bool()
    assert torch.allclose(got[real], expected[real], atol=1e-5)
    assert torch.allclose(fused(z), ref(z), atol=1e-5)  # no mask


@pytest.mark.parametrize("starting", [True, False])
@pytest.mark.parametrize("chunk", [None, 5])
@pytest.mark.parametrize("positions", [1024, 37])  # blocks of rows within a chunk, the last one ragged
def test_triangle_attention_residual_matches_reference(starting, chunk, positions, monkeypatch):
    monkeypatch.setattr(fused_module, "POSITIONS", positions)
    ref = EsmFoldTriangleAttention(16, 8, 2, starting=starting)
    _randomise(ref)
    fused = SdpaTriangleAttention.from_module(ref)
    z, _, pair_mask = _padded_pair()
    before = z.clone()
    with torch.no_grad():
        expected, got = z + ref(z, mask=pair_mask, chunk_size=4), fused.add_to(z, pair_mask, chunk)
        assert torch.allclose(fused.add_to(z), z + ref(z), atol=1e-5)
    assert torch.equal(z, before)  # the input is not written
    real = pair_mask.bool()
    assert torch.allclose(got[real], expected[real], atol=1e-5)


@pytest.mark.parametrize("positions", [1024, 37])
def test_sequence_to_pair_residual_matches_reference(positions, monkeypatch):
    monkeypatch.setattr(fused_module, "POSITIONS", positions)
    ref = EsmFoldSequenceToPair(32, 8, 16)
    _randomise(ref)
    fused = FusedSequenceToPair.from_module(ref)
    z, _, _ = _padded_pair()
    s = torch.randn(2, 13, 32)
    with torch.no_grad():
        assert torch.allclose(fused.add_to(s, z), z + ref(s), atol=1e-5)
    assert torch.allclose(fused.add_to(s, z), z + ref(s), atol=1e-5)  # with gradients: the original


@pytest.mark.parametrize("outgoing", [True, False])
@pytest.mark.parametrize("positions", [1024, 37])  # one block of pair positions, or several with a ragged last one
def test_triangle_multiplication_matches_reference_with_gradients(outgoing, positions, monkeypatch):
    monkeypatch.setattr(fused_module, "POSITIONS", positions)
    ref = EsmFoldTriangleMultiplicativeUpdate(_trunk_config(16), _outgoing=outgoing)
    _randomise(ref)
    fused = FusedTriangleMultiplication.from_module(ref)
    z, _, pair_mask = _padded_pair()
    with torch.no_grad():
        assert torch.allclose(fused(z, mask=pair_mask), ref(z, mask=pair_mask), atol=1e-5)
        assert torch.allclose(fused(z), ref(z), atol=1e-5)
        assert torch.allclose(fused.add_to(z, pair_mask), z + ref(z, mask=pair_mask), atol=1e-5)
    # training path (no in-place writes): same gradients for the input and every weight
    za, zb = z.clone().requires_grad_(), z.clone().requires_grad_()
    ref(za, mask=pair_mask).square().sum().backward()
    fused(zb, mask=pair_mask).square().sum().backward()
    assert torch.allclose(za.grad, zb.grad, atol=1e-4)
    for (name, p), q in zip(ref.named_parameters(), fused.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-4), name


def test_fused_block_matches_reference_on_real_residues():
    block = EsmFoldTriangularSelfAttentionBlock(_trunk_config(16))
    _randomise(block)
    fused = _fused_copy(block)
    assert isinstance(fused, FusedTriangularBlock) and isinstance(fused.sequence_to_pair, FusedSequenceToPair)
    assert isinstance(fused.tri_att_end, SdpaTriangleAttention)
    assert isinstance(fused.tri_mul_in, FusedTriangleMultiplication)
    assert block.state_dict().keys() == fused.state_dict().keys()  # checkpoints are unchanged
    z, seq_mask, pair_mask = _padded_pair()
    s = torch.randn(2, 13, 32)
    with torch.no_grad():
        (s1, z1), (s2, z2) = block(s, z, mask=seq_mask, chunk_size=4), fused(s, z, mask=seq_mask, chunk_size=4)
    real = seq_mask.bool()
    assert torch.allclose(s1[real], s2[real], atol=1e-4)
    assert torch.allclose(z1[pair_mask.bool()], z2[pair_mask.bool()], atol=1e-4)

def test_fused_block_with_dropout_in_training_mode_runs_the_original():
    """Recycling passes run without gradients in training: with dropout on, the block takes the original path."""
    cfg = _trunk_config(16)
    cfg.dropout = 0.25
    block = FusedTriangularBlock(cfg).train()
    _randomise(block)
    z, seq_mask, _ = _padded_pair()
    s = torch.randn(2, 13, 32)
    with torch.no_grad():
        torch.manual_seed(5)
        s1, z1 = block(s, z, mask=seq_mask, chunk_size=4)
        torch.manual_seed(5)
        s2, z2 = EsmFoldTriangularSelfAttentionBlock.forward(block, s, z, mask=seq_mask, chunk_size=4)
    assert torch.equal(z1, z2) and torch.equal(s1, s2)
    assert not torch.equal(z1, block.eval()(s, z, mask=seq_mask, chunk_size=4)[1])  # dropout did act


@pytest.mark.parametrize("positions", [1024, 37])
def test_residue_mlp_matches_reference(positions, monkeypatch):
    monkeypatch.setattr(fused_module, "POSITIONS", positions)
    ref = EsmFoldResidueMLP(16, 64, dropout=0.25)
    _randomise(ref)
    fused = FusedResidueMLP.from_module(ref).eval()
    ref.eval()
    z, _, _ = _padded_pair()
    with torch.no_grad():
        assert torch.allclose(fused(z), ref(z), atol=1e-5)
    # with gradients, or dropout in training mode, the module is the original
    assert torch.allclose(fused(z), ref(z), atol=1e-5)
    fused.train()
    with torch.no_grad():
        torch.manual_seed(3)
        dropped = fused(z)
        torch.manual_seed(3)
        ref.train()
        assert torch.equal(dropped, ref(z))


def test_folding_trunk_uses_fused_modules(fold_config):
    trunk = FoldingTrunk(fold_config.trunk)
    kinds = {type(m) for m in trunk.modules()}
    assert {FusedTriangularBlock, SdpaTriangleAttention, FusedTriangleMultiplication, FusedResidueMLP,
            FusedSequenceToPair} <= kinds
    assert not {EsmFoldTriangularSelfAttentionBlock, EsmFoldTriangleAttention, EsmFoldTriangleMultiplicativeUpdate,
                EsmFoldResidueMLP, EsmFoldSequenceToPair} & kinds


def test_fused_block_under_bf16_autocast_matches_reference():
    """Under autocast the blocked in-place paths step aside (their out= writes keep one dtype)."""
    block = EsmFoldTriangularSelfAttentionBlock(_trunk_config(16))
    _randomise(block)
    fused = _fused_copy(block)
    z, seq_mask, pair_mask = _padded_pair()
    s = torch.randn(2, 13, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        (s1, z1), (s2, z2) = block(s, z, mask=seq_mask, chunk_size=4), fused(s, z, mask=seq_mask, chunk_size=4)
    real = pair_mask.bool()
    assert torch.isfinite(z2[real]).all()
    assert (z1[real].float() - z2[real].float()).abs().max() < 0.1 * z1[real].float().abs().max()
    residues = seq_mask.bool()
    assert (s1[residues].float() - s2[residues].float()).abs().max() < 0.1 * s1[residues].float().abs().max()
