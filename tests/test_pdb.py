"""The one PDB reader (xtrimo.data.pdb): modified residues, altlocs, models and chains, checked against biopython."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("biotite")
from xtrimo.data.pdb import CB, StructureReadError, read_structure  # noqa: E402


def _atom(serial: int, name: str, res: str, chain: str, num: int, xyz: tuple, record: str = "ATOM", alt: str = " ",
          element: str = "C") -> str:
    return (f"{record:<6}{serial:>5} {name:<4}{alt}{res:>3} {chain}{num:>4}    "
            f"{xyz[0]:>8.3f}{xyz[1]:>8.3f}{xyz[2]:>8.3f}{1.0:>6.2f}{50.0:>6.2f}          {element:>2}\n")


def test_selenomethionine_altlocs_and_chains(tmp_path: Path) -> None:
    lines = [
        _atom(1, "N", "GLY", "A", 1, (0, 0, 0), element="N"), _atom(2, "CA", "GLY", "A", 1, (1.4, 0, 0)),
        _atom(3, "N", "MSE", "A", 2, (3.0, 0, 0), "HETATM", element="N"),
        _atom(4, "CA", "MSE", "A", 2, (3.8, 1.0, 0), "HETATM"),
        _atom(5, "CB", "MSE", "A", 2, (4.0, 2.0, 0), "HETATM"),
        _atom(6, "SE", "MSE", "A", 2, (4.5, 3.0, 0), "HETATM", element="SE"),
        _atom(7, "CA", "ALA", "A", 3, (7.0, 1.0, 0), alt="A"), _atom(8, "CA", "ALA", "A", 3, (7.5, 1.0, 0), alt="B"),
        _atom(9, "O", "HOH", "A", 4, (9.0, 9.0, 9.0), "HETATM", element="O"),
        _atom(10, "CA", "LYS", "B", 1, (20.0, 0, 0)),
    ]
    path = tmp_path / "x.pdb"
    path.write_text("".join(lines) + "END\n")
    st = read_structure(path)
    assert st.sequence == "GMAK"  # MSE read as MET, water dropped
    assert st.chain_index.tolist() == [0, 0, 0, 1] and st.residue_index.tolist() == [1, 2, 3, 1]
    assert st.atom_mask[1, CB] == 1 and st.atom_mask[1].sum() == 4  # N, CA, CB and SE as SD
    assert st.ca[2, 0] == pytest.approx(7.0)  # the first altloc, as biopython and AlphaFold read it
    assert read_structure(path, chain="B").sequence == "K"
    with pytest.raises(StructureReadError, match="no protein residues in chain 'C'"):
        read_structure(path, chain="C")


def test_agrees_with_biopython(shared_data: Path) -> None:
    from Bio.PDB import PDBParser

    for path in sorted((shared_data / "structures_scope_domains" / "pdb").glob("*.pdb"))[:5]:
        st = read_structure(path)
        chain = next(PDBParser(QUIET=True).get_structure("s", path)[0].get_chains())
        ca = np.array([r["CA"].coord for r in chain if "CA" in r and r.id[0] in (" ", "H_MSE")])
        np.testing.assert_allclose(st.ca[st.chain_index == 0], ca, atol=1e-3)
