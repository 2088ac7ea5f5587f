"""Training losses of the folding head (AlphaFold 2 supplement 1.9), small and typed.

Frames are ``(rot [*, N, 3, 3], trans [*, N, 3])``; positions are atom37 ``[*, N, 37, 3]`` unless stated.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers.models.esm.openfold_utils import residue_constants as rc

N_IDX, CA_IDX, C_IDX, CB_IDX, O_IDX = (rc.atom_order[a] for a in ("N", "CA", "C", "CB", "O"))


def frames_from_3_points(
    p_neg_x: torch.Tensor, origin: torch.Tensor, p_xy: torch.Tensor, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gram-Schmidt frames (AF2 Alg. 21): rotation ``[*, 3, 3]`` (columns e0, e1, e2) and translation ``[*, 3]``."""
    e0 = origin - p_neg_x
    e0 = e0 / torch.sqrt((e0 ** 2).sum(-1, keepdim=True) + eps)
    e1 = p_xy - origin
    e1 = e1 - e0 * (e0 * e1).sum(-1, keepdim=True)
    e1 = e1 / torch.sqrt((e1 ** 2).sum(-1, keepdim=True) + eps)
    e2 = torch.cross(e0, e1, dim=-1)
    return torch.stack([e0, e1, e2], dim=-1), origin


def backbone_frames(atom37: torch.Tensor, atom_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ground-truth backbone frames from N, CA, C (AF2 suppl. 1.8.1); returns rot, trans and the ``[*, N]`` mask."""
    rot, trans = frames_from_3_points(atom37[..., C_IDX, :], atom37[..., CA_IDX, :], atom37[..., N_IDX, :])
    mask = atom_mask[..., N_IDX] * atom_mask[..., CA_IDX] * atom_mask[..., C_IDX]
    return rot, trans, mask


def fape(
    pred_rot: torch.Tensor, pred_trans: torch.Tensor, pred_pos: torch.Tensor,
    true_rot: torch.Tensor, true_trans: torch.Tensor, true_pos: torch.Tensor,
    frame_mask: torch.Tensor, pos_mask: torch.Tensor,
    clamp: float | None = 10.0, length_scale: float = 10.0, eps: float = 1e-4,
) -> torch.Tensor:
    """Frame aligned point error (AF2 Alg. 28), averaged over the batch.

    Args:
        pred_rot / true_rot: ``[B, F, 3, 3]``; pred_trans / true_trans: ``[B, F, 3]``.
        pred_pos / true_pos: ``[B, P, 3]`` points; frame_mask ``[B, F]``; pos_mask ``[B, P]``.
        clamp: error clamp in Angstrom (None: unclamped).

    Returns:
        scalar loss: mean over frames x points of ``min(clamp, |T_i^-1 x_j - T_i^true^-1 x_j^true|) / length_scale``.
    """
    def local(rot: torch.Tensor, trans: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        # [B, F, P, 3]: points in every frame, R^T (x - t)
        return torch.einsum("bfji,bfpj->bfpi", rot, pos[:, None] - trans[:, :, None])

    diff = local(pred_rot, pred_trans, pred_pos) - local(true_rot, true_trans, true_pos)
    err = torch.sqrt((diff ** 2).sum(-1) + eps)
    if clamp is not None:
        err = err.clamp(max=clamp)
    weight = frame_mask[:, :, None] * pos_mask[:, None, :]
    per_example = (err * weight).sum((-1, -2)) / (weight.sum((-1, -2)) + 1e-8)
    return (per_example / length_scale).mean()


def pseudo_beta(aatype: torch.Tensor, atom37: torch.Tensor,
                atom_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CB coordinates (CA for glycine) ``[*, N, 3]`` and their mask ``[*, N]``."""
    is_gly = (aatype == rc.restype_order["G"])[..., None]
    pos = torch.where(is_gly, atom37[..., CA_IDX, :], atom37[..., CB_IDX, :])
    mask = torch.where(is_gly[..., 0], atom_mask[..., CA_IDX], atom_mask[..., CB_IDX])
    return pos, mask


def distogram_loss(
    logits: torch.Tensor, cb: torch.Tensor, cb_mask: torch.Tensor, min_bin: float = 2.3125, max_bin: float = 21.6875
) -> torch.Tensor:
    """Cross-entropy of ``[B, N, N, bins]`` logits against binned CB-CB distances (AF2 suppl. 1.9.8)."""
    bins = logits.shape[-1]
    edges = torch.linspace(min_bin, max_bin, bins - 1, device=logits.device) ** 2
    d2 = ((cb[:, :, None] - cb[:, None]) ** 2).sum(-1, keepdim=True)
    target = (d2 > edges).sum(-1)
    ce = F.cross_entropy(logits.permute(0, 3, 1, 2), target, reduction="none")
    mask = cb_mask[:, :, None] * cb_mask[:, None, :]
    return ((ce * mask).sum((-1, -2)) / (mask.sum((-1, -2)) + 1e-6)).mean()


def per_residue_lddt_ca(
    pred_ca: torch.Tensor, true_ca: torch.Tensor, mask: torch.Tensor, cutoff: float = 15.0
) -> torch.Tensor:
    """``[B, N]`` lDDT of each residue's CA (pairs within ``cutoff`` in the truth; 0.5 / 1 / 2 / 4 A)."""
    d_true = torch.cdist(true_ca, true_ca)
    d_pred = torch.cdist(pred_ca, pred_ca)
    n = true_ca.shape[-2]
    pairs = (d_true < cutoff) * mask[:, :, None] * mask[:, None, :] * (1.0 - torch.eye(n, device=mask.device))
    diff = (d_true - d_pred).abs()
    score = sum((diff < c).to(diff.dtype) for c in (0.5, 1.0, 2.0, 4.0)) / 4.0
    return (score * pairs).sum(-1) / (pairs.sum(-1) + 1e-10)


def plddt_loss(
    lddt_logits: torch.Tensor, pred_ca: torch.Tensor, true_ca: torch.Tensor, ca_mask: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of the pLDDT head ``[B, N, bins]`` against the binned true per-residue lDDT-CA (AF2 1.9.6)."""
    bins = lddt_logits.shape[-1]
    with torch.no_grad():
        target = (per_residue_lddt_ca(pred_ca.detach(), true_ca, ca_mask) * bins).long().clamp(max=bins - 1)
    ce = F.cross_entropy(lddt_logits.permute(0, 2, 1), target, reduction="none")
    return ((ce * ca_mask).sum(-1) / (ca_mask.sum(-1) + 1e-6)).mean()


def _torsion_atom_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[21, 4, 4]`` atom37 indices of chi 1-4 atoms, ``[21, 4]`` chi mask, ``[21, 4]`` pi-periodic flags."""
    idx = np.zeros((21, 4, 4), np.int64)
    for r, aa in enumerate(rc.restypes):
        for k, names in enumerate(rc.chi_angles_atoms[rc.restype_1to3[aa]]):
            idx[r, k] = [rc.atom_order[a] for a in names]
    mask = np.array(rc.chi_angles_mask + [[0.0] * 4], np.float32)
    periodic = np.array(rc.chi_pi_periodic + [[0.0] * 4], np.float32)
    return idx, mask, periodic


CHI_ATOMS, CHI_MASK, CHI_PI_PERIODIC = _torsion_atom_table()


def torsion_angles(
    aatype: torch.Tensor, atom37: torch.Tensor, atom_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """True torsions as the structure module predicts them (OpenFold ``atom37_to_torsion_angles``).

    Order: pre-omega, phi, psi, chi1-4. Each angle is read as (sin, cos) of the 4th atom in the Gram-Schmidt frame
    of the first three; psi is mirrored as in AlphaFold.

    Returns:
        sin/cos ``[B, N, 7, 2]``, the alternative (pi-shifted for symmetric side chains) ``[B, N, 7, 2]`` and the
        mask ``[B, N, 7]``.
    """
    prev = torch.cat([torch.zeros_like(atom37[:, :1]), atom37[:, :-1]], dim=1)
    prev_mask = torch.cat([torch.zeros_like(atom_mask[:, :1]), atom_mask[:, :-1]], dim=1)
    bb = [
        (prev[..., CA_IDX, :], prev[..., C_IDX, :], atom37[..., N_IDX, :], atom37[..., CA_IDX, :]),
        (prev[..., C_IDX, :], atom37[..., N_IDX, :], atom37[..., CA_IDX, :], atom37[..., C_IDX, :]),
        (atom37[..., N_IDX, :], atom37[..., CA_IDX, :], atom37[..., C_IDX, :], atom37[..., O_IDX, :]),
    ]
    bb_mask = [
        prev_mask[..., CA_IDX] * prev_mask[..., C_IDX] * atom_mask[..., N_IDX] * atom_mask[..., CA_IDX],
        prev_mask[..., C_IDX] * atom_mask[..., N_IDX] * atom_mask[..., CA_IDX] * atom_mask[..., C_IDX],
        atom_mask[..., N_IDX] * atom_mask[..., CA_IDX] * atom_mask[..., C_IDX] * atom_mask[..., O_IDX],
    ]
    chi_idx = torch.as_tensor(CHI_ATOMS, device=aatype.device)[aatype]  # [B, N, 4, 4]
    chi_pos = torch.gather(atom37[:, :, None].expand(-1, -1, 4, -1, -1), 3,
                           chi_idx[..., None].expand(-1, -1, -1, -1, 3))  # [B, N, 4, 4, 3]
    chi_atom_mask = torch.gather(atom_mask[:, :, None].expand(-1, -1, 4, -1), 3, chi_idx).prod(-1)
    pts = torch.cat([torch.stack([torch.stack(t, dim=-2) for t in bb], dim=2), chi_pos], dim=2)  # [B, N, 7, 4, 3]
    mask = torch.cat([torch.stack(bb_mask, -1),
                      chi_atom_mask * torch.as_tensor(CHI_MASK, device=aatype.device)[aatype]], dim=-1)
    rot, trans = frames_from_3_points(pts[..., 1, :], pts[..., 2, :], pts[..., 0, :])
    local = torch.einsum("...ji,...j->...i", rot, pts[..., 3, :] - trans)
    sc = torch.stack([local[..., 2], local[..., 1]], dim=-1)
    sc = sc / torch.sqrt((sc ** 2).sum(-1, keepdim=True) + 1e-8)
    sc = sc * torch.tensor([1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0], device=sc.device)[:, None]
    flip = torch.cat([torch.zeros_like(mask[..., :3]),
                      torch.as_tensor(CHI_PI_PERIODIC, device=aatype.device)[aatype]], dim=-1)
    alt = sc * (1.0 - 2.0 * flip)[..., None]
    return sc, alt, mask


def torsion_loss(
    pred_angles: torch.Tensor, pred_unnormalized: torch.Tensor,
    true_sc: torch.Tensor, alt_sc: torch.Tensor, mask: torch.Tensor, angle_norm_weight: float = 0.02,
) -> torch.Tensor:
    """AF2 Alg. 27: squared chord distance to the nearer of the true / alternative torsion, plus the norm penalty.

    Args:
        pred_angles / pred_unnormalized: ``[B, N, 7, 2]`` structure-module outputs (normalised / raw).
        true_sc, alt_sc: ``[B, N, 7, 2]``; mask ``[B, N, 7]``.
    """
    d = torch.minimum(((pred_angles - true_sc) ** 2).sum(-1), ((pred_angles - alt_sc) ** 2).sum(-1))
    torsion = (d * mask).sum((-1, -2)) / (mask.sum((-1, -2)) + 1e-6)
    norm = torch.sqrt((pred_unnormalized ** 2).sum(-1) + 1e-6)
    res_mask = mask.amax(-1)
    norm_err = ((norm - 1.0).abs().mean(-1) * res_mask).sum(-1) / (res_mask.sum(-1) + 1e-6)
    return (torsion + angle_norm_weight * norm_err).mean()
