"""xtrimo-fold / xtrimo-fold-eval smoke runs: bad records reported, metrics files written, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtrimo.data.batching import length_batches
from xtrimo.structure.cli import eval_main, fold_main

from tests.helpers import read_csv


def _fasta(path: Path) -> Path:
    path.write_text(">good1 first\nMKTAYIAKQRQISFVKSHF\n>empty\n\n>bad\nMKT1AYI\n>good2\nGSHMLEDPVAGAAKL\n"
                    ">cplx\nMKTAYIAKQR:GSHMLEDP\n")
    return path


def test_fold_keep_going_reports_bad_records_and_folds_the_others(fold_dir: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "preds"
    rc = fold_main(["-i", str(_fasta(tmp_path / "in.fasta")), "-o", str(out), "--checkpoint", str(fold_dir),
                    "--num-recycles", "0", "--max-tokens-per-batch", "40", "--keep-going"])
    assert rc == 1  # some records failed
    err = capsys.readouterr().err
    assert "xtrimo-fold: bad: invalid residue '1' at position 4 of record 'bad'" in err
    assert "xtrimo-fold: error: 2 of 5 record(s) not folded: empty, bad" in err
    rows = {r["id"]: r for r in read_csv(out / "summary.csv")}
    assert list(rows) == ["good1", "empty", "bad", "good2", "cplx"]
    assert rows["good1"]["status"] == "ok" or rows["good1"]["status"].startswith("implausible")
    assert rows["good1"]["length"] == "19"
    assert 0 <= float(rows["good1"]["mean_plddt"]) <= 100 and 0 < float(rows["good1"]["ptm"]) < 1
    assert "empty sequence" in rows["empty"]["status"]
    assert "invalid residue '1' at position 4 of record 'bad'" in rows["bad"]["status"]
    assert sorted(p.name for p in out.glob("*.pdb")) == ["cplx.pdb", "good1.pdb", "good2.pdb"]
    assert rows["cplx"]["length"] == "18"


def test_fold_bad_record_fails_fast_and_never_overwrites(fold_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """By default a bad record stops the run before anything is folded: one line, nothing left behind; an
    earlier run's folder is refused and its files stay byte for byte."""
    out = tmp_path / "preds"
    fasta = _fasta(tmp_path / "in.fasta")
    assert fold_main(["-i", str(fasta), "-o", str(out), "--checkpoint", str(fold_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("xtrimo-fold: error: ") and "record 'empty'" in err and "\n" not in err
    assert not out.exists()
    good = tmp_path / "good.fasta"
    good.write_text(">g\nMKTAYIAKQRQISFVKSHF\n")
    assert fold_main(["-i", str(good), "-o", str(out), "--checkpoint", str(fold_dir), "--num-recycles", "0"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert fold_main(["-i", str(good), "-o", str(out), "--checkpoint", str(fold_dir)]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_implausible_geometry_is_flagged() -> None:
    import numpy as np

    from xtrimo.structure.metrics import ideal_helix, implausible_geometry

    n = 40
    index, chain = np.arange(n), np.zeros(n, dtype=int)
    assert implausible_geometry(ideal_helix(n), index, chain) is None
    collapsed = ideal_helix(n) * 0.17  # CA-CA about 0.66 A, as a head trained two minutes writes
    assert "consecutive CA-CA median 0.65 A" in implausible_geometry(collapsed, index, chain)
    tight = np.stack([np.cos(np.arange(n) * 2.1), np.sin(np.arange(n) * 2.1), np.zeros(n)], 1) * 2.2  # 3.8 A steps
    assert "radius of gyration 2.2 A for 40 residues" in implausible_geometry(tight, index, chain)


def test_eval_writes_metrics_and_means(fold_dir: Path, tmp_path: Path, shared_data: Path) -> None:
    import shutil

    ref_dir, pred_dir = tmp_path / "refs", tmp_path / "preds"
    ref_dir.mkdir()
    src = shared_data / "structures_pfam_domains" / "pdb"
    for name in ("PF00327_1BXY_A.pdb", "PF00542_1CTF_A.pdb"):
        shutil.copy(src / name, ref_dir / name)  # a temporary copy for the test, not in the repository
    from xtrimo.structure import read_structure

    fasta = tmp_path / "refs.fasta"
    fasta.write_text("".join(f">{p.stem}\n{read_structure(p).sequence}\n" for p in sorted(ref_dir.iterdir())))
    assert fold_main(["-i", str(fasta), "-o", str(pred_dir), "--checkpoint", str(fold_dir), "--num-recycles", "0"]) == 0
    assert eval_main(["--pred", str(pred_dir), "--ref", str(ref_dir), "-o", str(tmp_path / "eval.csv")]) == 0
    rows = read_csv(tmp_path / "eval.csv")
    assert [r["id"] for r in rows] == ["PF00327_1BXY_A", "PF00542_1CTF_A", "mean"]
    for r in rows:
        assert 0 < float(r["tm_score"]) <= 1 and 0 <= float(r["lddt_ca"]) <= 1 and float(r["rmsd"]) > 0
    # a reference compared with itself scores perfectly
    assert eval_main(["--pred", str(ref_dir), "--ref", str(ref_dir), "-o", str(tmp_path / "self.csv")]) == 0
    mean = read_csv(tmp_path / "self.csv")[-1]
    assert float(mean["tm_score"]) == pytest.approx(1.0) and float(mean["gdt_ts"]) == 1.0


def test_eval_unreadable_pdb_is_reported_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    (tmp_path / "p" / "x.pdb").write_text("garbage\n")
    (tmp_path / "r" / "x.pdb").write_text("garbage\n")
    assert eval_main(["--pred", str(tmp_path / "p"), "--ref", str(tmp_path / "r"), "-o", str(tmp_path / "e.csv")]) == 1
    row = read_csv(tmp_path / "e.csv")[0]
    assert "x.pdb" in row["status"] and "not a readable" in row["status"]
    assert eval_main(["--pred", str(tmp_path / "none"), "--ref", str(tmp_path / "r"),
                      "-o", str(tmp_path / "e.csv")]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_missing_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fasta = tmp_path / "a.fasta"
    fasta.write_text(">a\nMKT\n")
    assert fold_main(["-i", str(fasta), "-o", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("xtrimo-fold: error:") and "not a folding checkpoint" in err and "\n" not in err


def test_token_budget_batches() -> None:
    recs = [("a", "A" * 10), ("b", "A" * 30), ("c", "A" * 12), ("d", "A" * 100)]
    groups = length_batches([len(s) for _, s in recs], 40)
    assert [[recs[i][0] for i in g] for g in groups] == [["a", "c"], ["b"], ["d"]]
    assert length_batches([5, 3, 9, 9, 2], 1 << 30, max_items=2) == [[4, 1], [0, 2], [3]]
    assert length_batches([5, 3, 9], 25, extra_tokens=1, descending=True) == [[2, 0], [1]]
