"""FoldingHead: PLM states and attention maps -> single / pair states -> trunk -> structure and confidence.

ESMFold recipe (Lin et al. 2023) with xTrimoPGLM as the language model (Chen et al. 2024, xT-Fold): the sequence
state is a softmax-weighted sum over all PLM layers (``esm_s_combine``), the pair state starts from the PLM's
attention maps and an outer product of the sequence state, and distogram / pLDDT / pTM heads read the outputs.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.esm.modeling_esmfold import categorical_lddt
from transformers.models.esm.openfold_utils import (
    atom14_to_atom37,
    compute_predicted_aligned_error,
    compute_tm,
    make_atom14_masks,
)
from transformers.models.esm.openfold_utils import residue_constants as rc

from xtrimo.structure.config import FoldConfig
from xtrimo.structure.trunk import FoldingTrunk

NUM_AATYPES = rc.restype_num + 1  # 20 standard + X
PAE_MAX_BIN = 31  # AlphaFold 2 PAE / pTM bins: 64 bins over 0-31 A (suppl. 1.9.7)


class FoldingHead(nn.Module):
    """The trainable part of xTrimoPGLM-Fold (the PLM stays outside and frozen)."""

    def __init__(self, cfg: FoldConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.esm_s_combine = nn.Parameter(torch.zeros(cfg.plm_num_layers + 1))
        self.esm_s_mlp = nn.Sequential(
            nn.LayerNorm(cfg.plm_hidden_size), nn.Linear(cfg.plm_hidden_size, cfg.c_s), nn.ReLU(),
            nn.Linear(cfg.c_s, cfg.c_s),
        )
        self.embedding = nn.Embedding(NUM_AATYPES + 1, cfg.c_s, padding_idx=NUM_AATYPES)
        n_maps = cfg.plm_num_layers * cfg.plm_num_heads
        self.attn_z_mlp = (
            nn.Sequential(nn.LayerNorm(2 * n_maps), nn.Linear(2 * n_maps, cfg.c_z), nn.ReLU(), nn.Linear(cfg.c_z, cfg.c_z))
            if cfg.use_attention_maps else None
        )
        self.outer_a = nn.Linear(cfg.c_s, cfg.c_op)
        self.outer_b = nn.Linear(cfg.c_s, cfg.c_op)
        self.outer_out = nn.Linear(cfg.c_op * cfg.c_op, cfg.c_z)
        self.trunk = FoldingTrunk(cfg)
        self.distogram_head = nn.Linear(cfg.c_z, cfg.distogram_bins)
        self.ptm_head = nn.Linear(cfg.c_z, cfg.distogram_bins)
        self.lddt_head = nn.Sequential(
            nn.LayerNorm(cfg.c_s_sm), nn.Linear(cfg.c_s_sm, cfg.c_lddt), nn.Linear(cfg.c_lddt, cfg.c_lddt),
            nn.Linear(cfg.c_lddt, 37 * cfg.lddt_bins),
        )

    def initial_states(
        self, plm_states: torch.Tensor, plm_attentions: torch.Tensor | None, aatype: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, N_res, c_s]`` and ``[B, N_res, N_res, c_z]`` from the PLM outputs.

        Args:
            plm_states: ``[B, N_res, plm_num_layers + 1, H]`` every layer's hidden states (embedding first).
            plm_attentions: ``[B, plm_num_layers * plm_num_heads, N_res, N_res]`` attention maps, or None.
            aatype: ``[B, N_res]`` residue types, ``NUM_AATYPES`` on padding.
        """
        w = self.esm_s_combine.softmax(0).to(plm_states.dtype)
        s = self.esm_s_mlp(torch.einsum("l,bnlh->bnh", w, plm_states)) + self.embedding(aatype)
        a, b = self.outer_a(s), self.outer_b(s)
        op = torch.einsum("bic,bjd->bijcd", a, b).flatten(-2)
        z = self.outer_out(op / self.cfg.c_op)
        if self.attn_z_mlp is not None:
            if plm_attentions is None:
                raise ValueError("this head was built with use_attention_maps=True but got no attention maps")
            maps = plm_attentions.permute(0, 2, 3, 1)
            z = z + self.attn_z_mlp(torch.cat([maps, maps.transpose(1, 2)], dim=-1))  # symmetric (ESM-1b contacts)
        return s, z

    def forward(
        self,
        plm_states: torch.Tensor,
        plm_attentions: torch.Tensor | None,
        aatype: torch.Tensor,
        residue_index: torch.Tensor,
        mask: torch.Tensor,
        num_recycles: int | None = None,
        chunk_size: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Fold a batch.

        Args:
            plm_states, plm_attentions: see :meth:`initial_states`.
            aatype: ``[B, N_res]`` AlphaFold residue types (0-19, 20 = X).
            residue_index: ``[B, N_res]`` long residue numbers.
            mask: ``[B, N_res]`` 1 on residues.
            num_recycles, chunk_size: see :meth:`FoldingTrunk.forward`.

        Returns:
            the trunk outputs plus ``distogram_logits`` ``[B, N, N, distogram_bins]``, ``lddt_logits``
            ``[no_blocks_sm, B, N, 37, lddt_bins]``, ``plddt`` ``[B, N]`` (0-100, CA), ``ptm_logits``, ``ptm`` ``[B]``,
            ``predicted_aligned_error`` ``[B, N, N]``, ``atom37_positions`` ``[B, N, 37, 3]`` and the atom masks.
        """
        mask = mask.to(plm_states.dtype)
        padded = aatype.masked_fill(mask == 0, NUM_AATYPES)
        s, z = self.initial_states(plm_states, plm_attentions, padded)
        # the structure module places atoms by residue type; an unknown residue (X) is placed as glycine, so it gets
        # a full backbone (N, CA, C, O) and is written as UNK, not left without atoms (OpenFold's UNK has none)
        sm_aatype = aatype.masked_fill(aatype == rc.restype_num, rc.restype_order["G"]).masked_fill(mask == 0, 0)
        out = self.trunk(s, z, sm_aatype, residue_index, mask, num_recycles, chunk_size)
        logits = self.distogram_head(out["s_z"])
        out["distogram_logits"] = (logits + logits.transpose(1, 2)) / 2
        n_sm, b, n = out["states"].shape[:3]
        out["lddt_logits"] = self.lddt_head(out["states"]).reshape(n_sm, b, n, 37, self.cfg.lddt_bins)
        out["plddt"] = 100.0 * categorical_lddt(out["lddt_logits"][-1], bins=self.cfg.lddt_bins)[..., rc.atom_order["CA"]]
        out["ptm_logits"] = self.ptm_head(out["s_z"])
        lengths = mask.sum(-1).long().tolist()  # right padding: d0 of the TM-score must use the real length
        out["ptm"] = torch.stack([
            compute_tm(out["ptm_logits"][i, :m, :m], max_bin=PAE_MAX_BIN, no_bins=self.cfg.distogram_bins)
            for i, m in enumerate(lengths)
        ])
        pae = compute_predicted_aligned_error(out["ptm_logits"], max_bin=PAE_MAX_BIN, no_bins=self.cfg.distogram_bins)
        out["predicted_aligned_error"] = pae["predicted_aligned_error"]
        out["aatype"] = sm_aatype
        make_atom14_masks(out)
        out["atom37_atom_exists"] = out["atom37_atom_exists"] * mask[..., None]
        out["atom37_positions"] = atom14_to_atom37(out["positions"][-1], out)
        return out
