"""Losses: invariances, zero on identical structures, and naive reference implementations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers.models.esm.openfold_utils import Rigid

from xtrimo.structure import losses
from xtrimo.data.pdb import read_structure


def _random_frames(b: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rot = torch.linalg.qr(torch.randn(b, n, 3, 3, generator=g, dtype=torch.float64))[0]
    rot = rot * torch.det(rot)[..., None, None].sign()
    return rot, torch.randn(b, n, 3, generator=g, dtype=torch.float64) * 10


def _naive_fape(pr, pt, px, tr, tt, tx, fm, pm, clamp=10.0, scale=10.0, eps=1e-4):
    total = []
    for b in range(pr.shape[0]):
        num = den = 0.0
        for i in range(pr.shape[1]):
            for j in range(px.shape[1]):
                w = float(fm[b, i] * pm[b, j])
                if not w:
                    continue
                a = pr[b, i].T @ (px[b, j] - pt[b, i])
                c = tr[b, i].T @ (tx[b, j] - tt[b, i])
                num += w * min(clamp, math.sqrt(float(((a - c) ** 2).sum()) + eps))
                den += w
        total.append(num / (den + 1e-8) / scale)
    return sum(total) / len(total)


def test_fape_matches_naive_loop_and_masks() -> None:
    pr, pt = _random_frames(2, 7, 0)
    tr, tt = _random_frames(2, 7, 1)
    px, tx = torch.randn(2, 11, 3, dtype=torch.float64) * 8, torch.randn(2, 11, 3, dtype=torch.float64) * 8
    fm, pm = (torch.rand(2, 7) > 0.3).double(), (torch.rand(2, 11) > 0.3).double()
    got = losses.fape(pr, pt, px, tr, tt, tx, fm, pm)
    assert float(got) == pytest.approx(_naive_fape(pr, pt, px, tr, tt, tx, fm, pm), rel=1e-9)
    unclamped = losses.fape(pr, pt, px, tr, tt, tx, fm, pm, clamp=None)  # AF2's unclamped steps
    assert float(unclamped) == pytest.approx(_naive_fape(pr, pt, px, tr, tt, tx, fm, pm, clamp=math.inf), rel=1e-9)
    assert float(unclamped) > float(got)


def test_fape_zero_for_identical_and_invariant_to_global_motion() -> None:
    tr, tt = _random_frames(1, 13, 2)
    x = torch.randn(1, 17, 3, dtype=torch.float64) * 10
    fm, pm = torch.ones(1, 13, dtype=torch.float64), torch.ones(1, 17, dtype=torch.float64)
    assert float(losses.fape(tr, tt, x, tr, tt, x, fm, pm, eps=0.0)) == pytest.approx(0.0, abs=1e-12)
    pr, pt = _random_frames(1, 13, 3)
    px = torch.randn(1, 17, 3, dtype=torch.float64) * 10
    before = losses.fape(pr, pt, px, tr, tt, tx := x, fm, pm)
    g, _ = _random_frames(1, 1, 4)
    g, shift = g[0, 0], torch.tensor([5.0, -3.0, 12.0], dtype=torch.float64)
    after = losses.fape(g @ pr, pt @ g.T + shift, px @ g.T + shift, tr, tt, tx, fm, pm)
    assert float(after) == pytest.approx(float(before), rel=1e-10)


def test_frames_match_openfold_rigid_from_3_points() -> None:
    a, b, c = (torch.randn(5, 3) for _ in range(3))
    rot, trans = losses.frames_from_3_points(a, b, c)
    ref = Rigid.from_3_points(a, b, c)
    torch.testing.assert_close(rot, ref.get_rots().get_rot_mats())
    torch.testing.assert_close(trans, ref.get_trans())


def _dihedral(p0, p1, p2, p3) -> float:
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 = b1 / np.linalg.norm(b1)
    v, w = b0 - b0 @ b1 * b1, b2 - b2 @ b1 * b1
    return math.degrees(math.atan2(np.cross(b1, v) @ w, v @ w))


def test_torsion_angles_match_naive_dihedrals_and_give_zero_loss(shared_data: Path) -> None:
    st = read_structure(shared_data / "structures_pfam_domains" / "pdb" / "PF00072_1MVO_A.pdb")
    x = torch.tensor(st.atom_positions, dtype=torch.float64)[None]
    m = torch.tensor(st.atom_mask, dtype=torch.float64)[None]
    sc, alt, mask = losses.torsion_angles(torch.tensor(st.aatype)[None], x, m)
    ang = torch.rad2deg(torch.atan2(sc[..., 0], sc[..., 1]))[0]
    X = st.atom_positions.astype(np.float64)
    for i in (5, 17, 60):
        assert float(ang[i, 1]) == pytest.approx(_dihedral(X[i - 1, 2], X[i, 0], X[i, 1], X[i, 2]), abs=1e-3)  # phi
        psi_o = _dihedral(X[i, 0], X[i, 1], X[i, 2], X[i, 4])  # N-CA-C-O, mirrored by AlphaFold (+180)
        assert math.cos(math.radians(float(ang[i, 2]) - psi_o - 180)) == pytest.approx(1.0, abs=1e-6)
    assert mask[0, 0, 0] == 0 and mask[0, 0, 1] == 0 and mask[0, 1, 1] == 1  # no predecessor for residue 0
    unnorm = torch.where(mask[..., None] > 0, sc, torch.tensor([0.0, 1.0], dtype=sc.dtype))  # unit norm everywhere
    loss = losses.torsion_loss(sc, unnorm, sc, alt, mask)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.torsion_loss(-sc, -sc, sc, alt, mask)) > 1.0


def test_distogram_loss_matches_naive_binning() -> None:
    torch.manual_seed(0)
    cb = torch.randn(1, 9, 3) * 8
    logits = torch.randn(1, 9, 9, 64)
    mask = torch.ones(1, 9)
    edges = np.linspace(2.3125, 21.6875, 63)
    ce = []
    for i in range(9):
        for j in range(9):
            d = float(torch.linalg.norm(cb[0, i] - cb[0, j]))
            target = int((d > edges).sum())
            ce.append(float(-torch.log_softmax(logits[0, i, j], -1)[target]))
    assert float(losses.distogram_loss(logits, cb, mask)) == pytest.approx(np.mean(ce), rel=1e-5)


def test_plddt_target_is_per_residue_lddt() -> None:
    true = torch.randn(1, 15, 3) * 5
    lddt = losses.per_residue_lddt_ca(true, true, torch.ones(1, 15))
    torch.testing.assert_close(lddt, torch.ones(1, 15))
    logits = torch.full((1, 15, 50), -20.0)
    logits[..., -1] = 20.0  # all mass on the top bin: lDDT 1 -> near-zero loss
    assert float(losses.plddt_loss(logits, true, true, torch.ones(1, 15))) < 1e-6


def test_fape_matches_openfold_when_installed() -> None:
    """Parity with openfold's own ``compute_fape`` (optional extra; skipped where openfold is not importable)."""
    of_loss = pytest.importorskip("openfold.utils.loss")
    of_rigid = pytest.importorskip("openfold.utils.rigid_utils")
    pr, pt = _random_frames(2, 7, 0)
    tr, tt = _random_frames(2, 7, 1)
    px, tx = torch.randn(2, 11, 3, dtype=torch.float64) * 8, torch.randn(2, 11, 3, dtype=torch.float64) * 8
    fm, pm = torch.ones(2, 7, dtype=torch.float64), torch.ones(2, 11, dtype=torch.float64)
    rigid = lambda r, t: of_rigid.Rigid(of_rigid.Rotation(rot_mats=r), t)  # noqa: E731
    ref = of_loss.compute_fape(rigid(pr, pt), rigid(tr, tt), fm, px, tx, pm, length_scale=10.0,
                               l1_clamp_distance=10.0, eps=1e-4)
    ours = float(losses.fape(pr, pt, px, tr, tt, tx, fm, pm))
    assert ours == pytest.approx(float(ref.mean()), rel=1e-3)  # openfold adds eps to each denominator
