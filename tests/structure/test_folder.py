"""Folder: checkpoint round trip, PDB output re-read by biopython and biotite, complexes and input errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from xtrimo.checkpoint import CheckpointError
from xtrimo.structure import Folder, StructureReadError, read_structure
from xtrimo.structure.folder import split_chains
from xtrimo.tokenizer import InvalidResidueError

from tests.helpers import read_csv

SEQ = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"  # 33 residues


def test_pdb_parses_with_biopython_and_biotite(fold_dir: Path, tmp_path: Path) -> None:
    import biotite.structure.io.pdb as bpdb
    from Bio.PDB import PDBParser
    from Bio.SeqUtils import seq1

    res = Folder.from_pretrained(fold_dir).fold(SEQ)
    pdb = res.to_pdb()
    model = PDBParser(QUIET=True).get_structure("p", io.StringIO(pdb))[0]
    residues = list(model.get_residues())
    assert len(residues) == len(SEQ)
    assert "".join(seq1(r.get_resname()) for r in residues) == SEQ
    n_atoms = sum(len(r) for r in residues)
    assert n_atoms == int(res.structure.atom_mask.sum()) > 7 * len(SEQ)  # heavy atoms, not only the backbone
    for r, p in zip(residues, res.plddt):
        assert all(a.get_bfactor() == pytest.approx(p, abs=0.01) for a in r)
    assert 0 <= res.plddt.min() and res.plddt.max() <= 100 and 0 < res.ptm < 1
    path = tmp_path / "x.pdb"
    path.write_text(pdb)
    atoms = bpdb.PDBFile.read(str(path)).get_structure(model=1, extra_fields=["b_factor"])
    assert len(set(atoms.res_id)) == len(SEQ)
    back = read_structure(path)
    assert back.sequence == SEQ
    np.testing.assert_allclose(back.ca, res.structure.ca, atol=1e-3)


def test_unknown_residue_keeps_a_backbone_and_its_place(fold_dir: Path) -> None:
    """An X (OpenFold's UNK has no atoms) is written as UNK with N, CA, C, O: residue count and sequence hold."""
    from Bio.PDB import PDBParser
    from Bio.SeqUtils import seq1

    seq = "X" + SEQ[1:12] + "X" + SEQ[13:]
    res = Folder.from_pretrained(fold_dir).fold(seq)
    residues = list(PDBParser(QUIET=True).get_structure("p", io.StringIO(res.to_pdb()))[0].get_residues())
    assert "".join(seq1(r.get_resname()) for r in residues) == seq
    for i in (0, 12):
        assert residues[i].get_resname() == "UNK" and sorted(a.get_id() for a in residues[i]) == ["C", "CA", "N", "O"]
        n, ca, c = (residues[i][a].coord for a in ("N", "CA", "C"))
        assert 1.3 < np.linalg.norm(n - ca) < 1.6 and 1.4 < np.linalg.norm(c - ca) < 1.7  # a real backbone


def test_batch_equals_single_and_complex_drops_linker(fold_dir: Path) -> None:
    folder = Folder.from_pretrained(fold_dir)
    single = folder.fold(SEQ[:17])
    batch = folder.fold_batch([SEQ, SEQ[:17]])
    np.testing.assert_allclose(batch[1].structure.ca, single.structure.ca, atol=1e-3)
    cplx = folder.fold(SEQ[:20] + ":" + SEQ[5:18])
    assert cplx.sequence == SEQ[:20] + SEQ[5:18]
    assert list(np.unique(cplx.structure.chain_index)) == [0, 1]
    assert cplx.structure.residue_index[20] == 1 and cplx.pae.shape == (33, 33)
    assert "ATOM" in cplx.to_pdb() and " B " in cplx.to_pdb()
    joined, resid, chain, keep = split_chains("AC:DE")
    assert joined == "AC" + "G" * 25 + "DE" and resid[-2] - resid[1] > 512 and keep.sum() == 4


def test_bad_inputs_give_clear_errors(fold_dir: Path) -> None:
    folder = Folder.from_pretrained(fold_dir)
    with pytest.raises(ValueError, match="empty sequence"):
        folder.fold("")
    with pytest.raises(InvalidResidueError, match="position 3"):
        folder.fold("MK1T")
    with pytest.raises(ValueError, match="over the limit"):
        folder.fold("A" * 301)
    with pytest.raises(ValueError, match="empty chain"):
        folder.fold("MKT::AAA")


def test_checkpoint_errors(fold_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a folding checkpoint"):
        Folder.from_pretrained(tmp_path / "nowhere")
    folder = Folder.from_pretrained(fold_dir)
    folder.save_pretrained(tmp_path / "copy")
    (tmp_path / "copy" / "config.yaml").write_text(
        (tmp_path / "copy" / "config.yaml").read_text().replace("c_s: 32", "c_s: 48"))
    with pytest.raises(CheckpointError, match="do not match"):
        Folder.from_pretrained(tmp_path / "copy", plm_checkpoint=fold_dir.parent / "plm")


def test_unreadable_structure_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdb"
    bad.write_text("this is not a PDB file\n")
    with pytest.raises(StructureReadError) as err:
        read_structure(bad)
    assert "bad.pdb" in str(err.value) and "\n" not in str(err.value)


def test_reads_shared_structures_like_their_index(shared_data: Path) -> None:
    folder = shared_data / "structures_pfam_domains"
    rows = read_csv(folder / "index.csv")
    for row in rows[:6]:
        st = read_structure(folder / "pdb" / row["file"])
        assert st.sequence == row["sequence_from_CA_atoms"] and len(st.aatype) == int(row["n_residues_with_CA"])
