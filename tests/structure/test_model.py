"""FoldingHead / FoldingTrunk: shapes on odd lengths, padding and chunking leave results unchanged."""

from __future__ import annotations

import pytest
import torch

from xtrimo.structure.config import FoldConfig, auto_chunk_size
from xtrimo.structure.model import FoldingHead
from xtrimo.structure.outputs import Residues


def _inputs(b: int, n: int, cfg: FoldConfig, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(b, n, cfg.plm.num_layers + 1, cfg.plm.hidden_size, generator=g)
    attn = torch.rand(b, cfg.plm.num_layers * cfg.plm.num_heads, n, n, generator=g)
    aatype = torch.randint(0, 21, (b, n), generator=g)
    return states, attn, Residues(aatype, torch.arange(n).expand(b, n), torch.ones(b, n))


def test_output_shapes_odd_lengths(fold_config: FoldConfig) -> None:
    head = FoldingHead(fold_config).eval()
    out = head(*_inputs(2, 13, fold_config), num_recycles=1)
    assert out.atom37_positions.shape == (2, 13, 37, 3)
    assert out.positions.shape == (fold_config.trunk.structure_module.no_blocks, 2, 13, 14, 3)
    assert out.distogram_logits.shape == (2, 13, 13, fold_config.heads.distogram_bins)
    blocks = fold_config.trunk.structure_module.no_blocks
    assert out.lddt_logits.shape == (blocks, 2, 13, 37, fold_config.heads.lddt_bins)
    assert out.plddt.shape == (2, 13) and ((out.plddt >= 0) & (out.plddt <= 100)).all()
    assert out.ptm.shape == (2,) and ((out.ptm > 0) & (out.ptm < 1)).all()
    assert out.predicted_aligned_error.shape == (2, 13, 13)
    torch.testing.assert_close(out.distogram_logits, out.distogram_logits.transpose(1, 2))


def test_padding_does_not_change_a_chain(fold_config: FoldConfig) -> None:
    head = FoldingHead(fold_config).eval()
    states, attn, res = _inputs(1, 17, fold_config)
    with torch.no_grad():
        first = Residues(res.aatype[:, :13], res.residue_index[:, :13], res.mask[:, :13])
        alone = head(states[:, :13], attn[:, :, :13, :13], first)
        res.mask[:, 13:] = 0
        padded = head(states, attn, res)
    torch.testing.assert_close(padded.atom37_positions[:, :13], alone.atom37_positions, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(padded.plddt[:, :13], alone.plddt, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(padded.ptm, alone.ptm, atol=1e-5, rtol=1e-4)


def test_chunked_axial_attention_equals_unchunked(fold_config: FoldConfig) -> None:
    head = FoldingHead(fold_config).eval()
    inputs = _inputs(1, 19, fold_config)
    with torch.no_grad():
        full = head(*inputs, chunk_size=None)
        chunked = head(*inputs, chunk_size=4)
    torch.testing.assert_close(chunked.atom37_positions, full.atom37_positions, atol=1e-4, rtol=1e-4)


def test_auto_chunk_size_chunks_long_inputs_only() -> None:
    assert auto_chunk_size(64, 128) is None
    assert auto_chunk_size(256, 128) == 64
    assert 8 <= auto_chunk_size(1000, 128) <= 64
    assert auto_chunk_size(4000, 128) == 8


def test_head_requires_attention_maps_when_configured(fold_config: FoldConfig) -> None:
    states, _, residues = _inputs(1, 5, fold_config)
    with pytest.raises(ValueError, match="attention maps"):
        FoldingHead(fold_config)(states, None, residues)


def test_config_validation_and_flat_configs(tmp_path) -> None:
    with pytest.raises(ValueError, match="multiples"):
        FoldConfig.from_dict({"trunk": {"c_s": 60, "sequence_head_width": 16}})
    with pytest.raises(ValueError, match=r"unknown FoldConfig key\(s\): trunk.structure_module.no_heads_ipaa"):
        FoldConfig.from_dict({"trunk": {"structure_module": {"no_heads_ipaa": 3}}})
    # a config.yaml written before the nesting reads as the same head
    flat = FoldConfig.from_dict({"c_s": 48, "c_s_sm": 40, "no_blocks_sm": 3, "plm_num_layers": 5, "dropout": 0.1})
    assert (flat.trunk.c_s, flat.trunk.structure_module.c_s, flat.trunk.structure_module.no_blocks) == (48, 40, 3)
    assert flat.plm.num_layers == 5 and flat.trunk.dropout == flat.trunk.structure_module.dropout == 0.1
    flat.save(tmp_path / "config.yaml")
    assert FoldConfig.from_file(tmp_path / "config.yaml") == flat
