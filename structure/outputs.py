"""What the folding trunk and the folding head return: typed, with the shapes of every field.

``N`` = residues (padded), ``S`` = structure-module blocks (``trunk.structure_module.no_blocks``); the structure
module's per-block outputs are stacked along the first axis, the last block is the prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Residues:
    """The chains of a batch, right-padded.

    Attributes:
        aatype: ``[B, N]`` AlphaFold residue types (0-19, 20 = X).
        residue_index: ``[B, N]`` long residue numbers (a gap between the chains of a complex).
        mask: ``[B, N]`` 1 on residues, 0 on padding.
    """

    aatype: torch.Tensor
    residue_index: torch.Tensor
    mask: torch.Tensor


@dataclass
class TrunkOutput:
    """The trunk's final states and the structure module's per-block outputs.

    Attributes:
        s_s: ``[B, N, c_s]`` single state after the last trunk block.
        s_z: ``[B, N, N, c_z]`` pair state after the last trunk block.
        frames: ``[S, B, N, 7]`` backbone frames (quaternion + translation, Angstrom).
        sidechain_frames: ``[S, B, N, 8, 4, 4]`` rigid-group frames.
        angles / unnormalized_angles: ``[S, B, N, 7, 2]`` torsion (sin, cos), normalized and raw.
        positions: ``[S, B, N, 14, 3]`` atom14 coordinates.
        states: ``[S, B, N, structure_module.c_s]`` structure-module single states (the pLDDT head reads them).
        single: ``[B, N, structure_module.c_s]`` the last block's single state.
    """

    s_s: torch.Tensor
    s_z: torch.Tensor
    frames: torch.Tensor
    sidechain_frames: torch.Tensor
    angles: torch.Tensor
    unnormalized_angles: torch.Tensor
    positions: torch.Tensor
    states: torch.Tensor
    single: torch.Tensor

    @classmethod
    def from_structure_module(cls, s_s: torch.Tensor, s_z: torch.Tensor, structure: dict) -> TrunkOutput:
        """From the dict transformers' ``EsmFoldStructureModule`` returns."""
        return cls(s_s=s_s, s_z=s_z, **{f.name: structure[f.name] for f in fields(cls) if f.name not in ("s_s", "s_z")})


@dataclass
class FoldOutput(TrunkOutput):
    """The head's outputs: the trunk's plus structure and confidence.

    Attributes:
        aatype: ``[B, N]`` residue types the atoms were placed by (X as glycine, padding 0).
        atom37_positions: ``[B, N, 37, 3]`` coordinates of the last block.
        atom37_atom_exists / atom14_atom_exists: ``[B, N, 37]`` / ``[B, N, 14]`` 1 where the residue type has the
            atom (0 on padding for atom37).
        residx_atom14_to_atom37 / residx_atom37_to_atom14: ``[B, N, 14]`` / ``[B, N, 37]`` index maps.
        distogram_logits: ``[B, N, N, distogram_bins]`` symmetric.
        lddt_logits: ``[S, B, N, 37, lddt_bins]``.
        plddt: ``[B, N]`` CA pLDDT, 0-100.
        atom_plddt: ``[B, N, 37]`` pLDDT per atom (ESMFold's B-factors); the own head, trained on CA lDDT only,
            repeats the CA value.
        ptm_logits: ``[B, N, N, distogram_bins]``; ptm: ``[B]``.
        predicted_aligned_error: ``[B, N, N]`` Angstrom, in [0, 31].
    """

    aatype: torch.Tensor
    atom37_positions: torch.Tensor
    atom37_atom_exists: torch.Tensor
    atom14_atom_exists: torch.Tensor
    residx_atom14_to_atom37: torch.Tensor
    residx_atom37_to_atom14: torch.Tensor
    distogram_logits: torch.Tensor
    lddt_logits: torch.Tensor
    plddt: torch.Tensor
    atom_plddt: torch.Tensor
    ptm_logits: torch.Tensor
    ptm: torch.Tensor
    predicted_aligned_error: torch.Tensor
