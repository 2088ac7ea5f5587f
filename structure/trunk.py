"""The folding trunk: ESMFold's triangular blocks with recycling, then OpenFold's structure module.

The blocks, relative-position embedding and structure module are transformers' pure-PyTorch port of ESMFold /
OpenFold (``transformers.models.esm.modeling_esmfold``); this module wires them to :class:`FoldConfig`, chooses the
chunk size from the length and exposes recycling explicitly (Lin et al. 2023, ESMFold, Methods "Folding trunk").
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from transformers.models.esm.configuration_esm import StructureModuleConfig as EsmStructureModuleConfig
from transformers.models.esm.configuration_esm import TrunkConfig as EsmTrunkConfig
from transformers.models.esm.modeling_esmfold import (
    EsmFoldingTrunk,
    EsmFoldRelativePosition,
    EsmFoldStructureModule,
    EsmFoldTriangularSelfAttentionBlock,
)

from transformers.models.esm.modeling_esmfold import EsmFoldInvariantPointAttention, EsmFoldLinear

from xtrimo.structure.config import TrunkConfig, auto_chunk_size
from xtrimo.structure.fused import FusedTriangularBlock
from xtrimo.structure.outputs import Residues, TrunkOutput

RECYCLE_BINS = 15  # AlphaFold 2 recycling distogram: 15 bins from 3.375 to 21.375 A (suppl. 1.10)


def trunk_config(cfg: TrunkConfig) -> EsmTrunkConfig:
    """transformers' ``TrunkConfig`` equivalent of ``cfg`` (the peer benchmark builds EsmFoldingTrunk from it)."""
    m = cfg.structure_module
    sm = EsmStructureModuleConfig(
        sequence_dim=m.c_s, pairwise_dim=m.c_z, ipa_dim=m.c_ipa, resnet_dim=m.c_resnet, num_heads_ipa=m.no_heads_ipa,
        num_qk_points=m.no_qk_points, num_v_points=m.no_v_points, dropout_rate=m.dropout, num_blocks=m.no_blocks,
    )
    return EsmTrunkConfig(
        num_blocks=cfg.num_blocks, sequence_state_dim=cfg.c_s, pairwise_state_dim=cfg.c_z,
        sequence_head_width=cfg.sequence_head_width, pairwise_head_width=cfg.pairwise_head_width,
        position_bins=cfg.position_bins, dropout=cfg.dropout, max_recycles=cfg.max_recycles,
        chunk_size=cfg.chunk_size, structure_module=sm.to_dict(),
    )


class FoldingTrunk(nn.Module):
    """Single / pair states -> recycled trunk -> backbone frames, torsions and atom14 coordinates."""

    def __init__(self, cfg: TrunkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        tc = trunk_config(cfg)
        self.pairwise_positional_embedding = EsmFoldRelativePosition(tc)
        # ESMFold's blocks with the same parameters, faster in inference and in training (fused.py)
        self.blocks = nn.ModuleList([FusedTriangularBlock(tc) for _ in range(cfg.num_blocks)])
        self.recycle_s_norm = nn.LayerNorm(cfg.c_s)
        self.recycle_z_norm = nn.LayerNorm(cfg.c_z)
        self.recycle_disto = nn.Embedding(RECYCLE_BINS, cfg.c_z)
        with torch.no_grad():
            self.recycle_disto.weight[0].zero_()
        self.structure_module = EsmFoldStructureModule(tc.structure_module)
        self.trunk2sm_s = nn.Linear(cfg.c_s, cfg.structure_module.c_s)
        self.trunk2sm_z = nn.Linear(cfg.c_z, cfg.structure_module.c_z)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """AlphaFold 2 initialisation (suppl. 1.11.4), as transformers' ``EsmFoldPreTrainedModel._init_weights``.

        Residual outputs and the backbone update start at zero, so a fresh trunk is the identity and a fresh
        structure module leaves every frame at the origin; IPA head weights start at softplus^-1(1). transformers
        applies this in ``post_init``, which bare modules never call.
        """
        for m in self.modules():
            if isinstance(m, EsmFoldLinear) and m.init_fn is not None:
                m.init_fn(m.weight, m.bias)
            elif isinstance(m, EsmFoldLinear):
                fan_in = max(1, m.weight.shape[1])
                if m.init in ("default", "relu"):
                    nn.init.normal_(m.weight, std=math.sqrt((2.0 if m.init == "relu" else 1.0) / fan_in))
                elif m.init == "glorot":
                    nn.init.xavier_uniform_(m.weight)
                elif m.init == "gating":
                    nn.init.zeros_(m.weight)
                    if m.bias is not None:
                        nn.init.ones_(m.bias)
                elif m.init == "normal":
                    nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
                elif m.init == "final":
                    nn.init.zeros_(m.weight)
            elif isinstance(m, EsmFoldInvariantPointAttention):
                nn.init.constant_(m.head_weights, 0.541324854612918)
            elif isinstance(m, EsmFoldTriangularSelfAttentionBlock):
                for lin in (m.tri_mul_in.linear_z, m.tri_mul_out.linear_z, m.tri_att_start.mha.linear_o,
                            m.tri_att_end.mha.linear_o, m.sequence_to_pair.o_proj, m.seq_attention.o_proj,
                            m.mlp_seq.mlp[-2], m.mlp_pair.mlp[-2], m.pair_to_sequence.linear):
                    nn.init.zeros_(lin.weight)
                    if lin.bias is not None:
                        nn.init.zeros_(lin.bias)

    def forward(
        self,
        s_s_0: torch.Tensor,
        s_z_0: torch.Tensor | None,
        residues: Residues,
        num_recycles: int | None = None,
        chunk_size: int | None = None,
    ) -> TrunkOutput:
        """Run the trunk.

        Args:
            s_s_0: ``[B, N_res, c_s]`` initial single state.
            s_z_0: ``[B, N_res, N_res, c_z]`` initial pair state, or None for zeros (ESMFold's; one pair-sized
                tensor less in memory).
            residues: the chains (:class:`Residues`; residue types as the structure module places atoms).
            num_recycles: extra passes (default ``cfg.max_recycles``); only the last one gets gradients.
            chunk_size: axial-attention chunk; default ``cfg.chunk_size`` or :func:`auto_chunk_size`.

        Returns:
            the final trunk states and the structure module's per-block outputs (:class:`TrunkOutput`).
        """
        recycles = self.cfg.max_recycles if num_recycles is None else num_recycles
        if recycles < 0:
            raise ValueError(f"num_recycles must be >= 0, got {recycles}")
        b, n = s_s_0.shape[:2]
        chunk = chunk_size or self.cfg.chunk_size or auto_chunk_size(n, self.cfg.c_z)
        aatype, residue_index, mask = residues.aatype, residues.residue_index, residues.mask
        mask_f = mask.to(s_s_0.dtype)
        recycle_s = torch.zeros_like(s_s_0)
        recycle_z = s_s_0.new_zeros(b, n, n, self.cfg.c_z)
        bins = torch.zeros((b, n, n), dtype=torch.long, device=s_s_0.device)
        for i in range(recycles + 1):
            last = i == recycles
            with contextlib.nullcontext() if last else torch.no_grad():
                s = s_s_0 + self.recycle_s_norm(recycle_s.detach())
                z = self.recycle_z_norm(recycle_z.detach()) + self.recycle_disto(bins)
                # the previous pass's pair state is not needed past this point: free it before the blocks run
                recycle_z = None
                z = z + s_z_0 if s_z_0 is not None else z
                z = z + self.pairwise_positional_embedding(residue_index, mask=mask)
                for block in self.blocks:
                    s, z = block(s, z, mask=mask_f, chunk_size=chunk)
                structure = self.structure_module(
                    {"single": self.trunk2sm_s(s), "pair": self.trunk2sm_z(z)}, aatype, mask_f
                )
                recycle_s, recycle_z = s, z
                if not last:
                    bins = EsmFoldingTrunk.distogram(structure["positions"][-1][:, :, :3], 3.375, 21.375, RECYCLE_BINS)
        return TrunkOutput.from_structure_module(s, z, structure)
