"""Sequence identity by alignment (batched dynamic programming) and a k-mer index to find the nearest references.

Identity here is that of an overlap alignment (end gaps free, match +1, mismatch -1, gap -2): the number of
identical aligned pairs divided by the length of the shorter sequence. End gaps are free so that a sample is
compared fairly with a longer or shorter relative; dividing by the shorter length makes a copy of a fragment 100%.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from xtrimo.tokenizer import ResidueTokenizer

MATCH, MISMATCH, GAP = 1, -1, -2
_NEG = -(10**9)


def _pad(seqs: Sequence[np.ndarray], fill: int) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), max(1, int(lens.max()))), fill, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out, lens


def align_identity(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """Identity of each pair ``(a[i], b[i])`` (residue-id arrays), all pairs in one anti-diagonal sweep.

    Cell ``(i, j)`` of diagonal ``d = i + j`` depends on diagonals ``d - 1`` and ``d - 2`` only, so every cell of a
    diagonal, for every pair, is computed by the same few tensor operations. Alongside the score ``H`` the number of
    matches ``M`` on the chosen path is carried (ties prefer more matches).

    Returns:
        float ``[N]`` in ``[0, 1]`` (0 for a pair with an empty sequence).
    """
    if len(a) != len(b):
        raise ValueError(f"align_identity needs pairs: {len(a)} vs {len(b)} sequences")
    if not len(a):
        return np.zeros(0)
    qa, la = _pad(a, -1)
    rb, lb = _pad(b, -2)
    n, wa, wb = len(a), qa.shape[1], rb.shape[1]
    i = torch.arange(wa + 1)
    h2 = h1 = torch.zeros((n, wa + 1), dtype=torch.long)  # diagonals d - 2 and d - 1, indexed by i
    m2 = m1 = torch.zeros_like(h2)
    best = torch.full((n,), _NEG, dtype=torch.long)
    best_m = torch.zeros(n, dtype=torch.long)
    for d in range(wa + wb + 1):
        j = d - i
        inside = (j >= 0) & (j <= wb)
        border = (i == 0) | (j == 0)
        ai = qa[:, (i - 1).clamp(0, wa - 1)]
        bj = rb[:, (j - 1).clamp(0, wb - 1)]
        same = ai == bj
        diag_h = _shift(h2) + torch.where(same, MATCH, MISMATCH)
        diag_m = _shift(m2) + same.long()
        up_h, up_m = _shift(h1) + GAP, _shift(m1)
        left_h, left_m = h1 + GAP, m1
        h, m = _pick(diag_h, diag_m, up_h, up_m)
        h, m = _pick(h, m, left_h, left_m)
        h = torch.where(border, 0, torch.where(inside, h, _NEG))
        m = torch.where(border | ~inside, 0, m)
        # free trailing gaps: the alignment may end in the last row (i = la) or the last column (j = lb)
        for end in (la.clamp(max=d), (d - lb).clamp(0, wa)):
            jj = d - end
            ok = (jj >= 0) & (jj <= lb) & ((end == la) | (jj == lb))
            hv, mv = h.gather(1, end[:, None]).squeeze(1), m.gather(1, end[:, None]).squeeze(1)
            better = ok & ((hv > best) | ((hv == best) & (mv > best_m)))
            best, best_m = torch.where(better, hv, best), torch.where(better, mv, best_m)
        h2, h1, m2, m1 = h1, h, m1, m
    shorter = torch.minimum(la, lb).clamp_min(1)
    return (best_m.double() / shorter).where(torch.minimum(la, lb) > 0, torch.zeros(n, dtype=torch.double)).numpy()


def _shift(x: torch.Tensor) -> torch.Tensor:
    """Value at ``i - 1`` (``_NEG`` at ``i = 0``)."""
    return torch.cat((torch.full_like(x[:, :1], _NEG), x[:, :-1]), dim=1)


def _pick(h1: torch.Tensor, m1: torch.Tensor, h2: torch.Tensor, m2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    take2 = (h2 > h1) | ((h2 == h1) & (m2 > m1))
    return torch.where(take2, h2, h1), torch.where(take2, m2, m1)


class KmerIndex:
    """Inverted k-mer index over a reference set, to shortlist the references most similar to a query.

    Args:
        references: residue strings.
        k: k-mer length (3 finds distant relatives among short proteins; larger is more specific).
    """

    def __init__(self, references: Sequence[str], k: int = 3) -> None:
        tok = ResidueTokenizer()
        self.k = k
        self.ids = [tok.encode(s, f"reference #{i}") for i, s in enumerate(references)]
        codes, owners = [], []
        for r, ids in enumerate(self.ids):
            c = np.unique(self._codes(ids))
            codes.append(c)
            owners.append(np.full(len(c), r, dtype=np.int64))
        self.codes = np.concatenate(codes) if codes else np.zeros(0, np.int64)
        self.owners = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        self.sizes = np.bincount(self.owners, minlength=len(self.ids))

    def _codes(self, ids: np.ndarray) -> np.ndarray:
        if len(ids) < self.k:
            return np.zeros(0, np.int64)
        windows = np.lib.stride_tricks.sliding_window_view(ids.astype(np.int64), self.k)
        return (windows * (32 ** np.arange(self.k - 1, -1, -1))).sum(1)

    def nearest(self, query: np.ndarray, top: int = 10) -> np.ndarray:
        """Indices of the ``top`` references with the highest k-mer Jaccard similarity to ``query`` (ids)."""
        q = np.unique(self._codes(query))
        shared = np.bincount(self.owners[np.isin(self.codes, q)], minlength=len(self.ids))
        jaccard = shared / np.maximum(1, len(q) + self.sizes - shared)
        top = min(top, len(self.ids))
        return np.argsort(-jaccard, kind="stable")[:top]

    def max_identity(self, queries: Sequence[str], top: int = 10, chunk: int = 256) -> np.ndarray:
        """For each query, the highest alignment identity among its ``top`` k-mer candidates: ``[Q]``."""
        tok = ResidueTokenizer()
        if not self.ids:
            return np.full(len(queries), np.nan)
        pairs = []
        for qi, q in enumerate(queries):
            ids = tok.encode(q, f"sample #{qi}")
            pairs += [(qi, ids, c) for c in self.nearest(ids, top)]
        best = np.zeros(len(queries))
        for lo in range(0, len(pairs), chunk):  # all (query, candidate) pairs share the alignment sweeps
            part = pairs[lo : lo + chunk]
            ident = align_identity([p[1] for p in part], [self.ids[p[2]] for p in part])
            np.maximum.at(best, [p[0] for p in part], ident)
        return best
