"""Structure metrics vs biotite's lDDT and TM-align (tmtools); invariances of RMSD / GDT-TS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xtrimo.structure.metrics import (
    compare, correspondence, gdt_ts, ideal_helix, kabsch, lddt_ca, rmsd, tm_score,
)


def _ca(shared_data: Path, name: str):
    import biotite.structure.io as strucio

    atoms = strucio.load_structure(str(shared_data / "structures_pfam_domains" / "pdb" / name))
    return atoms[(atoms.atom_name == "CA") & ~atoms.hetero]


def _rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


@pytest.mark.parametrize("noise", [0.5, 2.0, 5.0])
def test_lddt_ca_matches_biotite(shared_data: Path, noise: float) -> None:
    import biotite.structure as struc

    ca = _ca(shared_data, "PF00072_1MVO_A.pdb")
    pred = ca.coord + np.random.default_rng(1).normal(0, noise, ca.coord.shape).astype(np.float32)
    assert lddt_ca(pred.astype(np.float64), ca.coord.astype(np.float64)) == pytest.approx(
        float(struc.lddt(ca, pred)), abs=1e-3)


def test_tm_score_equals_tm_align_and_is_superposition_free(shared_data: Path) -> None:
    from tmtools import tm_align

    ca = _ca(shared_data, "PF00085_1FB0_A.pdb")
    ref = ca.coord.astype(np.float64)
    seq = "A" * len(ref)
    pred = ref @ _rotation(3).T + 7.0 + np.random.default_rng(2).normal(0, 2.0, ref.shape)
    assert tm_score(pred, ref, seq, seq) == pytest.approx(tm_align(pred, ref, seq, seq).tm_norm_chain2, abs=1e-12)
    assert tm_score(ref, ref, seq, seq) == pytest.approx(1.0)


def test_rigid_motion_leaves_rmsd_gdt_lddt_unchanged() -> None:
    ref = ideal_helix(37) + np.random.default_rng(0).normal(0, 1.0, (37, 3))
    pred = ref + np.random.default_rng(1).normal(0, 1.5, (37, 3))
    moved = pred @ _rotation(5).T + np.array([3.0, -20.0, 11.0])
    assert rmsd(moved, ref) == pytest.approx(rmsd(pred, ref), abs=1e-9)
    assert gdt_ts(moved, ref) == pytest.approx(gdt_ts(pred, ref))
    assert lddt_ca(moved, ref) == pytest.approx(lddt_ca(pred, ref))
    assert rmsd(ref, ref) == pytest.approx(0.0, abs=1e-9) and gdt_ts(ref, ref) == 1.0 and lddt_ca(ref, ref) == 1.0


def test_kabsch_recovers_a_known_motion() -> None:
    x = np.random.default_rng(0).normal(size=(13, 3))
    r0, t0 = _rotation(7), np.array([1.0, 2.0, 3.0])
    r, t = kabsch(x, x @ r0.T + t0)
    np.testing.assert_allclose(r, r0, atol=1e-9)
    np.testing.assert_allclose(t, t0, atol=1e-9)


def test_gdt_ts_counts_fraction_within_cutoffs() -> None:
    ref = ideal_helix(17)
    pred = ref.copy()
    pred[:4] += np.array([40.0, 0.0, 0.0])  # 4 residues moved far away: 13/17 within every cutoff
    expected = 13 / 17
    assert gdt_ts(pred, ref) == pytest.approx(expected, abs=1e-9)


def test_correspondence_and_baselines() -> None:
    p, r = correspondence("MKTAYIAKQR", "KTAYIAKQR")
    assert list(r) == list(range(9)) and list(p) == list(range(1, 10))
    with pytest.raises(ValueError, match="match at only"):
        correspondence("AAAA", "WWWWWWWW")
    helix = ideal_helix(20)
    assert np.linalg.norm(helix[1] - helix[0]) == pytest.approx(3.8, abs=0.05)  # CA-CA of an alpha helix
    scores = compare(helix, helix, "A" * 20, "A" * 20)
    assert scores["tm_score"] == pytest.approx(1.0) and scores["rmsd"] == pytest.approx(0.0, abs=1e-6)
