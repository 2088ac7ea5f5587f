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
from xtrimo.structure.outputs import FoldOutput, Residues
from xtrimo.structure.trunk import FoldingTrunk

NUM_AATYPES = rc.restype_num + 1  # 20 standard + X
PAE_MAX_BIN = 31  # AlphaFold 2 PAE / pTM bins: 64 bins over 0-31 A (suppl. 1.9.7)


class FoldingHead(nn.Module):
    """The trainable part of xTrimoPGLM-Fold (the PLM stays outside and frozen)."""

    def __init__(self, cfg: FoldConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c_s, c_z, c_sm, heads = cfg.trunk.c_s, cfg.trunk.c_z, cfg.trunk.structure_module.c_s, cfg.heads
        self.esm_s_combine = nn.Parameter(torch.zeros(cfg.plm.num_layers + 1))
        self.esm_s_mlp = nn.Sequential(
            nn.LayerNorm(cfg.plm.hidden_size), nn.Linear(cfg.plm.hidden_size, c_s), nn.ReLU(), nn.Linear(c_s, c_s),
        )
        self.embedding = nn.Embedding(NUM_AATYPES + 1, c_s, padding_idx=NUM_AATYPES)
        n_maps = cfg.plm.num_layers * cfg.plm.num_heads
        self.attn_z_mlp = (
            nn.Sequential(nn.LayerNorm(2 * n_maps), nn.Linear(2 * n_maps, c_z), nn.ReLU(), nn.Linear(c_z, c_z))
            if cfg.use_attention_maps else None
        )
        self.outer_a = nn.Linear(c_s, cfg.c_op)
        self.outer_b = nn.Linear(c_s, cfg.c_op)
        self.outer_out = nn.Linear(cfg.c_op * cfg.c_op, c_z)
        self.trunk = FoldingTrunk(cfg.trunk)
        self.distogram_head = nn.Linear(c_z, heads.distogram_bins)
        self.ptm_head = nn.Linear(c_z, heads.distogram_bins)
        self.lddt_head = nn.Sequential(
            nn.LayerNorm(c_sm), nn.Linear(c_sm, heads.c_lddt), nn.Linear(heads.c_lddt, heads.c_lddt),
            nn.Linear(heads.c_lddt, 37 * heads.lddt_bins),
        )

    def initial_states(
        self, plm_states: torch.Tensor, plm_attentions: torch.Tensor | None, aatype: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, N_res, c_s]`` and ``[B, N_res, N_res, c_z]`` from the PLM outputs.

        Args:
            plm_states: ``[B, N_res, plm.num_layers + 1, H]`` every layer's hidden states (embedding first).
            plm_attentions: ``[B, plm.num_layers * plm.num_heads, N_res, N_res]`` attention maps, or None.
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
        residues: Residues,
        num_recycles: int | None = None,
        chunk_size: int | None = None,
    ) -> FoldOutput:
        """Fold a batch.

        Args:
            plm_states, plm_attentions: see :meth:`initial_states`.
            residues: the chains (:class:`Residues`).
            num_recycles, chunk_size: see :meth:`FoldingTrunk.forward`.

        Returns:
            the trunk outputs plus structure and confidence (:class:`FoldOutput`).
        """
        aatype, mask = residues.aatype, residues.mask.to(plm_states.dtype)
        padded = aatype.masked_fill(mask == 0, NUM_AATYPES)
        s, z = self.initial_states(plm_states, plm_attentions, padded)
        # the structure module places atoms by residue type; an unknown residue (X) is placed as glycine, so it gets
        # a full backbone (N, CA, C, O) and is written as UNK, not left without atoms (OpenFold's UNK has none)
        sm_aatype = aatype.masked_fill(aatype == rc.restype_num, rc.restype_order["G"]).masked_fill(mask == 0, 0)
        trunk = self.trunk(s, z, Residues(sm_aatype, residues.residue_index, mask), num_recycles, chunk_size)
        atoms = make_atom14_masks({"aatype": sm_aatype})
        atoms["atom37_atom_exists"] = atoms["atom37_atom_exists"] * mask[..., None]
        logits = self.distogram_head(trunk.s_z)
        n_sm, b, n = trunk.states.shape[:3]
        lddt_logits = self.lddt_head(trunk.states).reshape(n_sm, b, n, 37, self.cfg.heads.lddt_bins)
        ptm_logits = self.ptm_head(trunk.s_z)
        lengths = mask.sum(-1).long().tolist()  # right padding: d0 of the TM-score must use the real length
        ptm = torch.stack([compute_tm(ptm_logits[i, :m, :m], max_bin=PAE_MAX_BIN, no_bins=self.cfg.heads.distogram_bins)
                           for i, m in enumerate(lengths)])
        pae = compute_predicted_aligned_error(ptm_logits, max_bin=PAE_MAX_BIN, no_bins=self.cfg.heads.distogram_bins)
        plddt = 100.0 * categorical_lddt(lddt_logits[-1], bins=self.cfg.heads.lddt_bins)[..., rc.atom_order["CA"]]
        return FoldOutput(
            **vars(trunk), aatype=sm_aatype, atom37_positions=atom14_to_atom37(trunk.positions[-1], atoms),
            **{k: v for k, v in atoms.items() if k != "aatype"},
            distogram_logits=(logits + logits.transpose(1, 2)) / 2, lddt_logits=lddt_logits,
            plddt=plddt, atom_plddt=plddt[..., None].expand(*plddt.shape, 37),
            ptm_logits=ptm_logits, ptm=ptm, predicted_aligned_error=pae["predicted_aligned_error"],
        )
