"""xtrimo-generate and xtrimo-score: smoke runs, determinism, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xtrimo.data.fasta import read_fasta, write_fasta
from xtrimo.generation.cli import generate_main, score_main
from xtrimo.tokenizer import STANDARD_RESIDUES

from tests.helpers import read_csv


def _gen(ckpt: Path, out: Path, *extra: str) -> int:
    return generate_main(["--checkpoint", str(ckpt), "-n", "4", "-o", str(out), "--max-new-tokens", "20",
                          "--batch-size", "3", "--device", "cpu", *extra])


def test_generate_writes_fasta_and_report_and_is_reproducible(checkpoint: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref.fasta"
    write_fasta([("r1", "MKTAYIAKQRQISFVKSHFSRQ"), ("r2", "GSSGSSGLEVLFQ")], ref)
    a, b = tmp_path / "a.fasta", tmp_path / "b.fasta"
    assert _gen(checkpoint, a, "--prompt", "M", "--seed", "7", "--reference", str(ref), "--ban", "C") == 0
    assert _gen(checkpoint, b, "--prompt", "M", "--seed", "7", "--reference", str(ref), "--ban", "C") == 0
    assert a.read_text() == b.read_text()
    records = list(read_fasta(a))
    assert len(records) == 4 and all(set(r.sequence) <= set(STANDARD_RESIDUES) - {"C"} for r in records)
    report = json.loads((tmp_path / "a.report.json").read_text())
    assert report["num_sequences"] == 4 and report["perplexity"] > 1
    assert report["max_identity_to_reference"]["num_reference"] == 2
    assert report["settings"]["seed"] == 7


def test_generate_template(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.fasta"
    assert _gen(checkpoint, out, "--template", "MKT????GSSG??LE") == 0
    for r in read_fasta(out):
        assert r.sequence[:3] == "MKT" and r.sequence[7:11] == "GSSG" and r.sequence[13:] == "LE"


@pytest.mark.parametrize("extra, message", [
    (["--prompt", "MZ1"], "invalid residue '1' at position 3 of record 'prompt'"),
    (["--template", "MKTAY"], "has no '?' position to design"),
    (["--template", "MK?#"], "invalid residue '#' at position 4 of record 'template'"),
    (["--top-p", "0"], "top-p must be in (0, 1], got 0.0"),
    (["--top-p", "1.01"], "top-p must be in (0, 1]"),
])
def test_generate_bad_input_one_line(checkpoint: Path, tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    assert _gen(checkpoint, tmp_path / "x.fasta", *extra) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("xtrimo-generate: error: ") and message in err and "\n" not in err


def test_generate_n0_and_missing_checkpoint(checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert generate_main(["--checkpoint", str(checkpoint), "-n", "0", "-o", str(tmp_path / "x.fasta")]) == 1
    assert "number of sequences (-n) must be >= 1, got 0" in capsys.readouterr().err
    assert generate_main(["--checkpoint", str(tmp_path / "none"), "-n", "2", "-o", str(tmp_path / "x.fasta")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("xtrimo-generate: error: checkpoint directory not found") and "\n" not in err


def test_score_sequences_and_variants(checkpoint: Path, tmp_path: Path) -> None:
    seqs, wt, muts = tmp_path / "s.fasta", tmp_path / "wt.fasta", tmp_path / "v.csv"
    write_fasta([("a", "MKTAYIAKQR"), ("b", "GSSG")], seqs)
    write_fasta([("wt", "MKTAYIAKQR")], wt)
    muts.write_text("mutant,DMS_score\nK2R,0.5\nA4G:Q9E,-1.0\n")
    args = ["--checkpoint", str(checkpoint), str(seqs), "-o", str(tmp_path / "s.csv"), "--device", "cpu"]
    assert score_main(args) == 0
    rows = read_csv(tmp_path / "s.csv")
    assert [r["name"] for r in rows] == ["a", "b"] and float(rows[0]["perplexity_with_eos"]) > 1
    assert score_main(["--checkpoint", str(checkpoint), "--wildtype", str(wt), "--mutations", str(muts),
                       "-o", str(tmp_path / "e.csv"), "--device", "cpu"]) == 0
    rows = read_csv(tmp_path / "e.csv")
    assert [r["mutant"] for r in rows] == ["K2R", "A4G:Q9E"] and all("masked_marginals" in r for r in rows)


def test_score_bad_mutation_one_line(checkpoint: Path, tmp_path: Path, capsys) -> None:
    wt, muts = tmp_path / "wt.fasta", tmp_path / "v.csv"
    write_fasta([("wt", "MKTAY")], wt)
    muts.write_text("mutant\nA2G\n")
    assert score_main(["--checkpoint", str(checkpoint), "--wildtype", str(wt), "--mutations", str(muts),
                       "-o", str(tmp_path / "e.csv")]) == 1
    assert capsys.readouterr().err.strip() == (
        "xtrimo-score: error: mutation 'A2G': the wild type has 'K' at position 2, not 'A'")


def test_score_invalid_residue_names_the_record(checkpoint: Path, tmp_path: Path, capsys) -> None:
    seqs = tmp_path / "s.fasta"
    seqs.write_text(">good\nMKTAY\n>bad_one\nMKTJY\n")
    assert score_main(["--checkpoint", str(checkpoint), str(seqs), "-o", str(tmp_path / "s.csv")]) == 1
    assert capsys.readouterr().err.strip() == (
        "xtrimo-score: error: invalid residue 'J' at position 4 of record 'bad_one'")


def _with_objectives(model, path: Path, objectives: tuple[str, ...], causal: bool = False) -> Path:
    model.config.objectives, model.config.is_causal = objectives, causal
    model.save_pretrained(path)
    return path


def test_products_follow_the_checkpoints_mode(model, tmp_path: Path, capsys) -> None:
    """MLM-only: no left-to-right generation (one line pointing to design / stage 2), design still works, sequences
    are scored by pseudo-log-likelihood with a note; CLM: variants by the log-likelihood ratio."""
    mlm = _with_objectives(model, tmp_path / "mlm", ("mlm",))
    assert _gen(mlm, tmp_path / "x.fasta") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("xtrimo-generate: error: checkpoint") and "trained with MLM only" in err
    assert "--template" in err and "\n" not in err and not (tmp_path / "x.fasta").exists()
    assert _gen(mlm, tmp_path / "d.fasta", "--template", "MKT??GS") == 0
    assert json.loads((tmp_path / "d.report.json").read_text())["perplexity_method"] == "pseudo"
    write_fasta([("a", "MKTAYIAKQR")], tmp_path / "s.fasta")
    assert score_main(["--checkpoint", str(mlm), str(tmp_path / "s.fasta"), "-o", str(tmp_path / "s.csv")]) == 0
    assert "pseudo-log-likelihood" in capsys.readouterr().err
    assert read_csv(tmp_path / "s.csv")[0]["method"] == "pseudo"
    clm = _with_objectives(model, tmp_path / "clm", ("clm",), causal=True)
    write_fasta([("wt", "MKTAYIAKQR")], tmp_path / "wt.fasta")
    (tmp_path / "v.csv").write_text("mutant\nK2R\n")
    assert score_main(["--checkpoint", str(clm), "--wildtype", str(tmp_path / "wt.fasta"), "--mutations",
                       str(tmp_path / "v.csv"), "-o", str(tmp_path / "e.csv")]) == 0
    assert "log_likelihood_ratio" in read_csv(tmp_path / "e.csv")[0]
    assert score_main(["--checkpoint", str(clm), "--wildtype", str(tmp_path / "wt.fasta"), "--mutations",
                       str(tmp_path / "v.csv"), "-o", str(tmp_path / "e2.csv"), "--method", "masked-marginals"]) == 1
    assert "needs a checkpoint trained with MLM" in capsys.readouterr().err


def test_rerun_never_overwrites(checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "a.fasta"
    assert _gen(checkpoint, out, "--seed", "1") == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert sorted(before) == ["a.fasta", "a.report.json"]
    assert _gen(checkpoint, out, "--seed", "2") == 1
    assert capsys.readouterr().err.strip().endswith(f"output {out} already exists; choose another path (nothing was "
                                                    "changed)")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
