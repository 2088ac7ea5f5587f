"""ESMFold checkpoints through xtrimo's trunk against transformers' own ``EsmForProteinFolding``: a tiny random model
in ESMFold's config shape, saved with ``save_pretrained``, folded both ways."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import EsmConfig, EsmForProteinFolding

from xtrimo.checkpoint import CheckpointError
from xtrimo.structure import Folder
from xtrimo.structure.esmfold import chunk_for_memory, peak_bytes
from xtrimo.structure.folder import split_chains
from xtrimo.data.pdb import sequence_to_aatype

from tests.helpers import read_csv, tiny_fold_run

# fair-esm / facebook/esmfold_v1 vocabulary
VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N",
         "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>"]
RNG = np.random.default_rng(7)
AA = "ACDEFGHIKLMNPQRSTVWY"


def _seq(n: int) -> str:
    return "".join(RNG.choice(list(AA), n))


SEQS = {13: _seq(13), 64: _seq(64), 150: _seq(150)}
COMPLEX = _seq(21) + ":" + _seq(17)


def tiny_config() -> EsmConfig:
    """ESMFold v1's config with small widths: 2 ESM-2 layers, 2 trunk blocks, 3 structure-module blocks."""
    trunk = dict(num_blocks=2, sequence_state_dim=48, pairwise_state_dim=32, sequence_head_width=16,
                 pairwise_head_width=16, position_bins=32, max_recycles=3, chunk_size=128,
                 structure_module=dict(sequence_dim=40, pairwise_dim=32, ipa_dim=8, resnet_dim=24, num_heads_ipa=3,
                                       num_qk_points=4, num_v_points=8, num_blocks=3))
    return EsmConfig(vocab_size=33, hidden_size=40, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=80, max_position_embeddings=1026, position_embedding_type="rotary",
                     pad_token_id=1, mask_token_id=32, token_dropout=True, emb_layer_norm_before=False,
                     vocab_list=VOCAB, is_folding_model=True,
                     esmfold_config=dict(fp16_esm=False, lddt_head_hid_dim=24, trunk=trunk),
                     architectures=["EsmForProteinFolding"])


@pytest.fixture(scope="module")
def esmfold_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny ESMFold, every weight perturbed (ESMFold's init zeroes the residual outputs)."""
    torch.manual_seed(0)
    model = EsmForProteinFolding(tiny_config()).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dtype.is_floating_point:
                p.add_(torch.randn_like(p) * (0.05 if "structure_module" in name else 0.1))
    path = tmp_path_factory.mktemp("esmfold") / "tiny"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reference(esmfold_dir: Path) -> EsmForProteinFolding:
    return EsmForProteinFolding.from_pretrained(esmfold_dir).eval()


@pytest.fixture(scope="module")
def folder(esmfold_dir: Path) -> Folder:
    return Folder.from_esmfold(esmfold_dir, device="cpu")


def _reference_fold(model: EsmForProteinFolding, sequence: str, chunk: int | None) -> tuple[dict, np.ndarray]:
    """transformers' ``infer`` on the joined chains with ESMFold's residue index; the non-linker residues."""
    joined, resid, _, keep = split_chains(sequence)
    model.trunk.set_chunk_size(chunk)
    out = model.infer(joined, position_ids=torch.from_numpy(resid)[None])
    return out, keep


@pytest.mark.parametrize("chunk", [None, 4])
@pytest.mark.parametrize("key", [13, 64, 150, "complex"])
def test_fold_equals_transformers_esmfold(folder: Folder, reference: EsmForProteinFolding, key, chunk) -> None:
    sequence = COMPLEX if key == "complex" else SEQS[key]
    ref, keep = _reference_fold(reference, sequence, chunk)
    got = folder.fold(sequence, chunk_size=chunk)
    mask = ref["atom37_atom_exists"][0].numpy()[keep].astype(bool)
    from transformers.models.esm.openfold_utils import atom14_to_atom37

    ref_pos = atom14_to_atom37(ref["positions"][-1], ref)[0].numpy()[keep]
    assert got.structure.atom_mask.astype(bool).tolist() == mask.tolist()
    assert np.abs(got.structure.atom_positions[mask] - ref_pos[mask]).max() < 1e-3  # Angstrom
    ref_plddt = 100 * ref["plddt"][0].numpy()[keep]  # transformers' port drops esm's x100
    assert np.abs(got.plddt - ref_plddt[:, 1]).max() < 1e-3
    assert np.abs(got.structure.b_factors[mask] - ref_plddt[mask]).max() < 1e-3
    assert abs(got.ptm - float(ref["ptm"].reshape(-1)[0])) < 1e-4
    ref_pae = ref["predicted_aligned_error"][0].numpy()[np.ix_(keep, keep)]
    assert np.abs(got.pae - ref_pae).max() < 1e-3


def test_pdb_matches_infer_pdb(folder: Folder, reference: EsmForProteinFolding) -> None:
    """The PDB re-reads in biopython and biotite; coordinates and per-atom pLDDT as transformers' ``infer_pdb``."""
    import biotite.structure.io.pdb as bpdb
    from Bio.PDB import PDBParser

    seq = SEQS[64]
    reference.trunk.set_chunk_size(None)
    ref = PDBParser(QUIET=True).get_structure("r", io.StringIO(reference.infer_pdb(seq)))
    ours = PDBParser(QUIET=True).get_structure("o", io.StringIO(folder.fold(seq).to_pdb()))
    ra, oa = list(ref.get_atoms()), list(ours.get_atoms())
    assert [a.get_full_id()[2:] for a in ra] == [a.get_full_id()[2:] for a in oa]
    assert max(np.abs(a.coord - b.coord).max() for a, b in zip(ra, oa)) < 2e-3  # PDB's 3 decimals
    assert max(abs(100 * a.get_bfactor() - b.get_bfactor()) for a, b in zip(ra, oa)) < 1.01  # 2 decimals x100
    arr = bpdb.PDBFile.read(io.StringIO(folder.fold(seq).to_pdb())).get_structure(model=1, extra_fields=["b_factor"])
    assert len(arr) == len(oa) and (arr.b_factor > 0).all()


def test_batch_of_different_lengths_equals_one_by_one(folder: Folder) -> None:
    alone = [folder.fold(s) for s in (SEQS[13], COMPLEX)]
    batch = folder.fold_batch([SEQS[13], COMPLEX])
    for a, b in zip(alone, batch):
        np.testing.assert_allclose(a.structure.atom_positions, b.structure.atom_positions, atol=1e-3)
        assert abs(a.ptm - b.ptm) < 1e-4


def test_default_recycles_follow_esmfold(folder: Folder, reference: EsmForProteinFolding) -> None:
    """None: max_recycles passes in all (ESMFold's rule); n: n + 1 passes."""
    seq = SEQS[13]
    reference.trunk.set_chunk_size(None)
    aatype = torch.from_numpy(sequence_to_aatype(seq))[None]
    ref = reference(aatype, torch.ones_like(aatype), num_recycles=None)
    got = folder.fold(seq)
    assert abs(got.ptm - float(ref["ptm"].reshape(-1)[0])) < 1e-4
    no_recycling = float(reference(aatype, num_recycles=0)["ptm"].reshape(-1)[0])
    assert abs(folder.fold(seq, num_recycles=0).ptm - no_recycling) < 1e-4


def test_chunk_follows_memory_budget(folder: Folder) -> None:
    cfg = folder.model.trunk_cfg
    assert chunk_for_memory(50, cfg, 1.0) is None  # short chains unchunked
    assert chunk_for_memory(1000, cfg, 64.0) == 64  # at most 64 rows on the CPU
    small = chunk_for_memory(3000, cfg, 10.0)
    assert small is not None and small < 64
    assert peak_bytes(3000, cfg, small) <= 10 * 2 ** 30 < peak_bytes(3000, cfg, 2 * small)
    with pytest.raises(MemoryError, match="3000 residues need about"):
        chunk_for_memory(3000, cfg, 0.5)


def test_bad_directories_are_one_line_errors(tmp_path: Path, esmfold_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="no config.json"):
        Folder.from_esmfold(tmp_path / "none")
    other = tmp_path / "plain"
    other.mkdir()
    EsmConfig(vocab_size=33, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
              intermediate_size=8).save_pretrained(other)
    with pytest.raises(CheckpointError, match="not an ESMFold"):
        Folder.from_esmfold(other)
    broken = tmp_path / "broken"
    broken.mkdir()
    cfg = json.loads((esmfold_dir / "config.json").read_text())
    cfg["esmfold_config"]["trunk"]["num_blocks"] = 3  # a block more than the weights hold
    (broken / "config.json").write_text(json.dumps(cfg))
    for f in esmfold_dir.iterdir():
        if f.name != "config.json":
            (broken / f.name).symlink_to(f)
    with pytest.raises(CheckpointError, match="missing_keys .*trunk.blocks.2"):
        Folder.from_esmfold(broken)


def test_cli_writes_pdb_json_and_summary(esmfold_dir: Path, reference: EsmForProteinFolding, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    from Bio.PDB import PDBParser

    from xtrimo.structure.cli import fold_main

    fasta = tmp_path / "in.fasta"
    fasta.write_text(f">one\n{SEQS[13]}\n>bad\nMKT1AYI\n>empty\n\n>cplx\n{COMPLEX}\n")
    out = tmp_path / "preds"
    rc = fold_main(["-i", str(fasta), "-o", str(out), "--esmfold", str(esmfold_dir), "--keep-going",
                    "--max-memory-gb", "2"])
    assert rc == 1 and "invalid residue '1' at position 4 of record 'bad'" in capsys.readouterr().err
    rows = {r["id"]: r for r in read_csv(out / "summary.csv")}
    assert sorted(p.name for p in out.iterdir()) == ["cplx.json", "cplx.pdb", "one.json", "one.pdb", "summary.csv"]
    reference.trunk.set_chunk_size(None)
    max_pae = float(reference.infer(SEQS[13])["max_predicted_aligned_error"])
    for name, length in (("one", 13), ("cplx", 38)):
        bundle = json.loads((out / f"{name}.json").read_text())
        pae = np.array(bundle["pae"])
        assert pae.shape == (length, length) and len(bundle["plddt"]) == length
        assert bundle["max_pae"] == pytest.approx(max_pae) and 0 <= pae.min() and pae.max() <= bundle["max_pae"]
        assert f"{bundle['ptm']:.4f}" == rows[name]["ptm"]
        atoms = list(PDBParser(QUIET=True).get_structure(name, out / f"{name}.pdb").get_atoms())
        assert atoms and all(0 < a.get_bfactor() <= 100 for a in atoms)
    assert len({a.get_parent().get_parent().id for a in PDBParser(QUIET=True).get_structure(
        "c", out / "cplx.pdb").get_atoms()}) == 2  # two chains, linker removed


def test_cli_bad_esmfold_folder_is_one_line_and_writes_nothing(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    from xtrimo.structure.cli import fold_main

    fasta = tmp_path / "in.fasta"
    fasta.write_text(f">one\n{SEQS[13]}\n")
    rc = fold_main(["-i", str(fasta), "-o", str(tmp_path / "preds"), "--esmfold", str(tmp_path / "missing")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "no config.json" in err[0]
    assert not (tmp_path / "preds").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["esmfold_config"]["trunk"]["structure_module"].update(num_angles=5), "num_angles = 5"),
    (lambda c: c["esmfold_config"].update(bypass_lm=True), "bypass_lm = true"),
])
def test_unsupported_esmfold_settings_are_refused(tmp_path: Path, esmfold_dir: Path, edit, message) -> None:
    cfg = json.loads((esmfold_dir / "config.json").read_text())
    edit(cfg)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=message):
        Folder.from_esmfold(tmp_path)


@pytest.fixture(scope="module")
def esm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer ESM-2 with its vocabulary, as a Hub download holds it."""
    from transformers import EsmModel, EsmTokenizer

    path = tmp_path_factory.mktemp("esm2") / "esm2"
    path.mkdir()
    torch.manual_seed(1)
    cfg = EsmConfig(vocab_size=33, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    max_position_embeddings=1026, position_embedding_type="rotary", pad_token_id=1,
                    mask_token_id=32, token_dropout=True, emb_layer_norm_before=False)
    EsmModel(cfg, add_pooling_layer=False).save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    EsmTokenizer(str(path / "vocab.txt")).save_pretrained(path)
    return path


def test_esm2_features_equal_transformers_and_train_a_head(esm2_dir: Path, tmp_path: Path,
                                                            shared_data: Path) -> None:
    from transformers import EsmModel

    from xtrimo.structure.folder import load_plm, plm_features
    from xtrimo.structure.train import main

    plm = load_plm(esm2_dir)
    states, attn, mask = plm_features(plm, [SEQS[13], "MKTAYIAKQR"])
    assert states.shape == (2, 13, 3, 32) and attn.shape == (2, 8, 13, 13) and mask[1].sum() == 10
    ref = EsmModel.from_pretrained(esm2_dir, add_pooling_layer=False, attn_implementation="eager").eval()
    ids = plm.tokens(["MKTAYIAKQR"])
    with torch.no_grad():
        out = ref(ids, output_hidden_states=True)
    torch.testing.assert_close(states[1, :10], torch.stack(out.hidden_states, 2)[0, 1:11], atol=1e-5, rtol=1e-5)
    out_dir = tmp_path / "run"
    assert main(["experiment=fold", *tiny_fold_run(esm2_dir, out_dir, shared_data / "structures_pfam_domains")]) == 0
    assert Folder.from_pretrained(out_dir / "head").fold("MKTAYIAKQR").structure.atom_positions.shape == (10, 37, 3)
