"""The one PDB / mmCIF reader (biotite), for the folding head's references and the contact benchmark; predictions
are written with OpenFold's ``to_pdb`` (transformers' port). Needs ``pip install xtrimo[structure]`` (or ``[bench]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from transformers.models.esm.openfold_utils import OFProtein, to_pdb
from transformers.models.esm.openfold_utils import residue_constants as rc

if TYPE_CHECKING:
    from biotite.structure import AtomArray

# modified residues written as HETATM that stand for a standard one (AlphaFold's and PDBFixer's reading of MSE)
MODIFIED = {"MSE": ("MET", {"SE": "SD"})}
CA, CB = rc.atom_order["CA"], rc.atom_order["CB"]


class StructureReadError(ValueError):
    """A structure file cannot be read as a protein chain."""


@dataclass
class ProteinStructure:
    """One (multi-)chain protein in atom37 layout.

    Attributes:
        aatype: ``[N_res]`` AlphaFold residue types (0-19, 20 = X).
        atom_positions: ``[N_res, 37, 3]`` coordinates in Angstrom.
        atom_mask: ``[N_res, 37]`` 1 where the atom was observed (or predicted to exist).
        residue_index: ``[N_res]`` residue numbers as written to the file.
        chain_index: ``[N_res]`` 0-based chain of each residue.
        b_factors: ``[N_res, 37]`` per-atom B-factors (pLDDT 0-100 for predictions).
    """

    aatype: np.ndarray
    atom_positions: np.ndarray
    atom_mask: np.ndarray
    residue_index: np.ndarray
    chain_index: np.ndarray
    b_factors: np.ndarray

    @property
    def sequence(self) -> str:
        return "".join(rc.restypes_with_x[int(a)] for a in self.aatype)

    @property
    def ca(self) -> np.ndarray:
        """``[N_res, 3]`` CA coordinates."""
        return self.atom_positions[:, CA]

    @property
    def ca_mask(self) -> np.ndarray:
        return self.atom_mask[:, CA] > 0

    def to_pdb(self) -> str:
        """PDB text: every atom with mask 1, B-factor column = ``b_factors``."""
        return to_pdb(OFProtein(
            aatype=self.aatype, atom_positions=self.atom_positions, atom_mask=self.atom_mask,
            residue_index=self.residue_index, b_factors=self.b_factors, chain_index=self.chain_index,
        ))


def sequence_to_aatype(sequence: str) -> np.ndarray:
    """``[N_res]`` AlphaFold residue types; letters outside the 20 standard ones map to X (20)."""
    return np.array([rc.restype_order.get(c, rc.restype_num) for c in sequence.upper()], dtype=np.int64)


def read_structure(path: str | Path, chain: str | None = None) -> ProteinStructure:
    """Read the protein residues of a PDB or mmCIF file (first model, first altloc; ``chain`` or every chain).

    Residues without a CA are dropped; atoms missing from the file get mask 0; selenomethionine (MSE) is read as
    methionine, other HETATM records are ignored.

    Raises:
        StructureReadError: one line naming the file and the reason.
    """
    import biotite.structure as struc
    import biotite.structure.io as strucio

    path = Path(path)
    try:
        atoms = strucio.load_structure(str(path), model=1, extra_fields=["b_factor"])
    except Exception as exc:  # biotite raises many types for malformed files
        raise StructureReadError(f"{path}: not a readable PDB/mmCIF file ({type(exc).__name__}: {exc})") from None
    modified = np.isin(atoms.res_name, list(MODIFIED))
    atoms = atoms[struc.filter_amino_acids(atoms) & (~atoms.hetero | modified)]
    if chain is not None:
        atoms = atoms[atoms.chain_id == chain]
    if atoms.array_length() == 0:
        raise StructureReadError(f"{path}: no protein residues" + (f" in chain {chain!r}" if chain else ""))
    chains = list(dict.fromkeys(atoms.chain_id.tolist()))
    bounds = list(struc.get_residue_starts(atoms)) + [atoms.array_length()]
    residues = [r for r in (_residue(atoms[lo:hi], chains) for lo, hi in zip(bounds[:-1], bounds[1:])) if r]
    if not residues:
        raise StructureReadError(f"{path}: no residue has a CA atom")
    aatype, pos, mask, bfac, resid, chain_idx = zip(*residues)
    return ProteinStructure(
        aatype=np.array(aatype, np.int64), atom_positions=np.stack(pos), atom_mask=np.stack(mask),
        residue_index=np.array(resid, np.int64), chain_index=np.array(chain_idx, np.int64), b_factors=np.stack(bfac),
    )


def _residue(res: AtomArray, chains: list[str]) -> tuple | None:
    """(aatype, [37, 3] positions, [37] mask, [37] B-factors, residue number, chain) of one residue's atoms, or
    None without a CA."""
    name, renamed = MODIFIED.get(res.res_name[0], (res.res_name[0], {}))
    p = np.zeros((37, 3), np.float32)
    m = np.zeros(37, np.float32)
    b = np.zeros(37, np.float32)
    for atom in res:
        idx = rc.atom_order.get(renamed.get(atom.atom_name, atom.atom_name))
        if idx is not None and m[idx] == 0:
            p[idx], m[idx], b[idx] = atom.coord, 1.0, atom.b_factor
    if m[CA] == 0:
        return None
    aatype = rc.restype_order.get(rc.restype_3to1.get(name, "X"), rc.restype_num)
    return aatype, p, m, b, int(res.res_id[0]), chains.index(res.chain_id[0])
