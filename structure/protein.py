"""PDB I/O: predictions written with OpenFold's ``to_pdb`` (transformers' port), references read with biotite."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers.models.esm.openfold_utils import OFProtein, to_pdb
from transformers.models.esm.openfold_utils import residue_constants as rc


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
        return self.atom_positions[:, rc.atom_order["CA"]]

    @property
    def ca_mask(self) -> np.ndarray:
        return self.atom_mask[:, rc.atom_order["CA"]] > 0

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
    """Read the protein residues of a PDB or mmCIF file (first model; ``chain`` or every chain).

    Residues without a CA are dropped; atoms missing from the file get mask 0.

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
    atoms = atoms[struc.filter_amino_acids(atoms) & ~atoms.hetero]
    if chain is not None:
        atoms = atoms[atoms.chain_id == chain]
    if atoms.array_length() == 0:
        raise StructureReadError(f"{path}: no protein residues" + (f" in chain {chain!r}" if chain else ""))
    starts = struc.get_residue_starts(atoms)
    chains = list(dict.fromkeys(atoms.chain_id.tolist()))
    bounds = list(starts) + [atoms.array_length()]
    aatype, pos, mask, resid, chain_idx, bfac = [], [], [], [], [], []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        res = atoms[lo:hi]
        p = np.zeros((37, 3), np.float32)
        m = np.zeros(37, np.float32)
        b = np.zeros(37, np.float32)
        for atom in res:
            idx = rc.atom_order.get(atom.atom_name)
            if idx is not None and m[idx] == 0:
                p[idx], m[idx], b[idx] = atom.coord, 1.0, atom.b_factor
        if m[rc.atom_order["CA"]] == 0:
            continue
        aatype.append(rc.restype_order.get(rc.restype_3to1.get(res.res_name[0], "X"), rc.restype_num))
        pos.append(p), mask.append(m), bfac.append(b)
        resid.append(int(res.res_id[0]))
        chain_idx.append(chains.index(res.chain_id[0]))
    if not aatype:
        raise StructureReadError(f"{path}: no residue has a CA atom")
    return ProteinStructure(
        aatype=np.array(aatype, np.int64), atom_positions=np.stack(pos), atom_mask=np.stack(mask),
        residue_index=np.array(resid, np.int64), chain_index=np.array(chain_idx, np.int64), b_factors=np.stack(bfac),
    )
