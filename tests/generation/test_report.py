"""Alignment identity, the k-mer reference index and the sample report."""

from __future__ import annotations

import numpy as np
import pytest

from xtrimo.generation.identity import GAP, MATCH, MISMATCH, KmerIndex, align_identity
from xtrimo.generation.report import mean_pairwise_identity, nonstandard_fraction, report_path, sample_report
from xtrimo.model.glm import XTrimoPGLM


def _naive_identity(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook overlap-alignment DP (free end gaps), matches on the best path (ties: more matches)."""
    la, lb = len(a), len(b)
    h = np.zeros((la + 1, lb + 1), int)
    m = np.zeros((la + 1, lb + 1), int)
    for i in range(1, la + 1):
        for j in range(1, lb + 1):
            same = a[i - 1] == b[j - 1]
            h[i, j], m[i, j] = max((h[i - 1, j - 1] + (MATCH if same else MISMATCH), m[i - 1, j - 1] + same),
                                   (h[i - 1, j] + GAP, m[i - 1, j]), (h[i, j - 1] + GAP, m[i, j - 1]))
    ends = [(h[la, j], m[la, j]) for j in range(lb + 1)] + [(h[i, lb], m[i, lb]) for i in range(la + 1)]
    return max(ends)[1] / max(1, min(la, lb))


def test_alignment_identity_matches_naive_dp() -> None:
    rng = np.random.default_rng(0)
    a = [rng.integers(1, 5, rng.integers(1, 23)) for _ in range(37)]
    b = [rng.integers(1, 5, rng.integers(1, 19)) for _ in range(37)]
    np.testing.assert_allclose(align_identity(a, b), [_naive_identity(x, y) for x, y in zip(a, b)])


def test_identity_of_fragment_and_of_a_point_mutant() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(1, 21, 120)
    y = x.copy()
    y[[10, 50, 90]] = 0  # three substitutions
    assert align_identity([x, x], [x[30:80], y]).tolist() == [1.0, pytest.approx(117 / 120)]


def test_kmer_index_finds_the_relative() -> None:
    rng = np.random.default_rng(2)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    refs = ["".join(rng.choice(letters, 80)) for _ in range(50)]
    query = refs[17][:40] + "W" + refs[17][41:]
    index = KmerIndex(refs, k=3)
    assert index.nearest(index.ids[17], top=1).tolist() == [17]
    assert index.max_identity([query, refs[3]], top=5).tolist() == [pytest.approx(79 / 80), 1.0]


def test_report_fields(model: XTrimoPGLM, tmp_path) -> None:
    seqs = ["MKTAYIAKQR", "MKTAYIAKQX", "GSSGSSGLEHHHHHH"]
    rep = sample_report(seqs, model, KmerIndex(["MKTAYIAKQRQISFV"]), "ref.fasta")
    assert rep["num_sequences"] == 3 and rep["perplexity"] > 1
    assert rep["nonstandard_fraction"] == pytest.approx(1 / 35) == nonstandard_fraction(seqs)
    assert rep["length"]["min"] == 10 and rep["length"]["max"] == 15
    assert rep["max_identity_to_reference"]["max"] == 1.0
    assert rep["mean_pairwise_identity"] == pytest.approx(mean_pairwise_identity(seqs))
    assert report_path(tmp_path / "s.fasta") == tmp_path / "s.report.json"
    empty = sample_report(["M"])
    assert empty["mean_pairwise_identity"] is None and empty["perplexity"] is None
