"""Structure comparison: TM-score (TM-align through tmtools), GDT-TS, lDDT-CA, CA RMSD and trivial baselines.

Coordinates are ``[N_res, 3]`` CA positions of a prediction and its reference in residue correspondence.
"""

from __future__ import annotations

import difflib

import numpy as np

LDDT_CUTOFFS = (0.5, 1.0, 2.0, 4.0)  # Mariani et al. 2013
GDT_CUTOFFS = (1.0, 2.0, 4.0, 8.0)  # Zemla 2003


def kabsch(mobile: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``R`` and translation ``t`` minimising ``|mobile @ R.T + t - target|`` (both ``[N, 3]``)."""
    mc, tc = mobile.mean(0), target.mean(0)
    h = (mobile - mc).T @ (target - tc)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, tc - mc @ r.T


def rmsd(pred: np.ndarray, ref: np.ndarray) -> float:
    """CA RMSD after optimal superposition (Angstrom)."""
    r, t = kabsch(pred, ref)
    return float(np.sqrt(((pred @ r.T + t - ref) ** 2).sum(-1).mean()))


def gdt_ts(pred: np.ndarray, ref: np.ndarray, iterations: int = 20) -> float:
    """GDT-TS (0-1): mean over 1, 2, 4, 8 A of the largest fraction of CA atoms within the cutoff.

    For each cutoff the superposition is refined LGA-style (refit on the atoms within the cutoff) from the global
    fit and from seeds of 4-residue windows, keeping the best fraction found.
    """
    n = len(ref)
    seeds = [np.arange(n)] + [np.arange(i, min(n, i + 4)) for i in range(0, max(1, n - 3), 4)]
    scores = []
    for cut in GDT_CUTOFFS:
        best = 0
        for sel in seeds:
            for _ in range(iterations):
                if len(sel) < 3:
                    break
                r, t = kabsch(pred[sel], ref[sel])
                close = np.flatnonzero(np.linalg.norm(pred @ r.T + t - ref, axis=-1) <= cut)
                best = max(best, len(close))
                if np.array_equal(close, sel):
                    break
                sel = close
        scores.append(best / n)
    return float(np.mean(scores))


def lddt_ca(pred: np.ndarray, ref: np.ndarray, inclusion_radius: float = 15.0) -> float:
    """Global lDDT on CA atoms (0-1): pairs within ``inclusion_radius`` in the reference, distance differences
    scored at 0.5 / 1 / 2 / 4 A (superposition-free)."""
    d_ref = np.linalg.norm(ref[:, None] - ref[None], axis=-1)
    d_pred = np.linalg.norm(pred[:, None] - pred[None], axis=-1)
    pairs = (d_ref < inclusion_radius) & ~np.eye(len(ref), dtype=bool)
    if not pairs.any():
        return float("nan")
    diff = np.abs(d_ref - d_pred)[pairs]
    return float(np.mean([(diff < c).mean() for c in LDDT_CUTOFFS]))


def tm_score(pred: np.ndarray, ref: np.ndarray, pred_seq: str, ref_seq: str) -> float:
    """TM-score of ``pred`` normalised by the reference length, from TM-align (tmtools)."""
    from tmtools import tm_align

    res = tm_align(np.ascontiguousarray(pred, dtype=np.float64), np.ascontiguousarray(ref, dtype=np.float64),
                   pred_seq, ref_seq)
    return float(res.tm_norm_chain2)


def correspondence(pred_seq: str, ref_seq: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices of matching residues of prediction and reference (identity when the sequences are equal).

    Raises:
        ValueError: when fewer than half the reference residues can be matched.
    """
    if pred_seq == ref_seq:
        idx = np.arange(len(ref_seq))
        return idx, idx
    blocks = difflib.SequenceMatcher(None, pred_seq, ref_seq, autojunk=False).get_matching_blocks()
    p = np.concatenate([np.arange(b.a, b.a + b.size) for b in blocks] + [np.zeros(0, int)])
    r = np.concatenate([np.arange(b.b, b.b + b.size) for b in blocks] + [np.zeros(0, int)])
    if len(r) < max(3, len(ref_seq) // 2):
        raise ValueError(f"prediction and reference sequences match at only {len(r)} of {len(ref_seq)} residues")
    return p, r


def compare(pred: np.ndarray, ref: np.ndarray, pred_seq: str, ref_seq: str) -> dict[str, float]:
    """TM-score (TM-align on the full chains), and GDT-TS / lDDT-CA / RMSD on corresponding residues."""
    p, r = correspondence(pred_seq, ref_seq)
    return {
        "tm_score": tm_score(pred, ref, pred_seq, ref_seq),
        "gdt_ts": gdt_ts(pred[p], ref[r]),
        "lddt_ca": lddt_ca(pred[p], ref[r]),
        "rmsd": rmsd(pred[p], ref[r]),
    }


def ideal_helix(n: int) -> np.ndarray:
    """``[n, 3]`` CA trace of an ideal alpha helix (3.6 residues / turn, 1.5 A rise, 2.3 A radius)."""
    k = np.arange(n)
    theta = np.deg2rad(100.0) * k
    return np.stack([2.3 * np.cos(theta), 2.3 * np.sin(theta), 1.5 * k], axis=-1)


def straight_chain(n: int) -> np.ndarray:
    """``[n, 3]`` CA trace of a fully extended straight chain (3.8 A between consecutive CAs)."""
    return np.stack([3.8 * np.arange(n), np.zeros(n), np.zeros(n)], axis=-1).astype(np.float64)


def implausible_geometry(ca: np.ndarray, residue_index: np.ndarray, chain_index: np.ndarray) -> str | None:
    """Why a predicted CA trace cannot be a protein, or None.

    Checks, with wide margins around what real chains show: consecutive CA atoms of a chain (residue numbers
    ``i``, ``i + 1``) sit 3.8 A apart (trans peptides; cis 2.9 A), so a median outside 3.0-4.5 A, or more than 10% of
    them outside 2.5-5.0 A, fails; the radius of gyration of a chain of ``N`` residues is about ``2.2 N^0.38`` A when
    compact (Skolnick et al.), so one below half of that is collapsed.

    Args:
        ca: ``[N, 3]`` coordinates; residue_index, chain_index: ``[N]``.
    """
    same = (np.diff(residue_index) == 1) & (np.diff(chain_index) == 0)
    if same.any():
        bond = np.linalg.norm(np.diff(ca, axis=0), axis=-1)[same]
        median, off = float(np.median(bond)), float(np.mean((bond < 2.5) | (bond > 5.0)))
        if not 3.0 <= median <= 4.5 or off > 0.1:
            return (f"consecutive CA-CA median {median:.2f} A ({100 * off:.0f}% outside 2.5-5.0 A; 3.8 A in "
                    "proteins)")
    for c in np.unique(chain_index):
        sel = ca[chain_index == c]
        if len(sel) >= 10:
            rg = float(np.sqrt(((sel - sel.mean(0)) ** 2).sum(-1).mean()))
            floor = 0.5 * 2.2 * len(sel) ** 0.38
            if rg < floor:
                return f"radius of gyration {rg:.1f} A for {len(sel)} residues (a compact chain has {2 * floor:.1f})"
    return None
