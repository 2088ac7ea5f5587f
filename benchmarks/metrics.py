"""Benchmark metrics, implemented once (tested against scipy / sklearn in tests/benchmarks/test_metrics.py).

Every function takes numpy arrays and returns a float. Contact precision follows the standard definition
(CASP / trRosetta / TAPE): rank residue pairs ``i < j`` in a separation range by predicted probability and report
the fraction of true contacts among the top ``L / k``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# sequence-separation ranges [min, max) of the contact metrics: all (>= 6), short, medium (12-23), long (>= 24)
CONTACT_RANGES: dict[str, tuple[int, int | None]] = {
    "all": (6, None),
    "short": (6, 12),
    "medium": (12, 24),
    "long": (24, None),
}


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as scipy.stats.rankdata(method='average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = 0.5 * (s + e - 1) + 1.0
    return ranks


def pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant."""
    a = np.asarray(y_true, dtype=np.float64) - np.mean(y_true)
    b = np.asarray(y_pred, dtype=np.float64) - np.mean(y_pred)
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def spearman(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Spearman's rho: Pearson correlation of average ranks."""
    return pearson(_ranks(y_true), _ranks(y_pred))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error."""
    diff = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)
    return float(np.sqrt(np.mean(diff * diff)))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of exact label matches; ``y_pred`` may be class scores ``[N, C]`` (argmax is taken)."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2:
        y_pred = y_pred.argmax(axis=1)
    return float(np.mean(np.asarray(y_true) == y_pred))


def auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of a binary task (Mann-Whitney U with average ranks for ties).

    ``score`` may be ``[N, 2]`` class scores (column 1 is used).
    """
    score = np.asarray(score, dtype=np.float64)
    if score.ndim == 2:
        score = score[:, 1]
    y = np.asarray(y_true).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _ranks(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mcc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Matthews correlation coefficient (multi-class form of Gorodkin 2004, as sklearn)."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2:
        y_pred = y_pred.argmax(axis=1)
    labels = np.union1d(np.asarray(y_true), y_pred)
    index = {v: i for i, v in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.float64)
    for t, p in zip(np.asarray(y_true), y_pred):
        cm[index[t], index[p]] += 1
    t_sum, p_sum = cm.sum(axis=1), cm.sum(axis=0)
    n, correct = cm.sum(), np.trace(cm)
    cov_ytyp = correct * n - t_sum @ p_sum
    cov_ypyp = n * n - p_sum @ p_sum
    cov_ytyt = n * n - t_sum @ t_sum
    denom = np.sqrt(cov_ytyt * cov_ypyp)
    return float(cov_ytyp / denom) if denom > 0 else 0.0


def contact_precision(
    probs: np.ndarray, contacts: np.ndarray, min_sep: int = 6, max_sep: int | None = None, top_divisor: int = 5
) -> float:
    """Precision of the top ``L // top_divisor`` predicted contacts of one protein.

    Args:
        probs: ``[L, L]`` predicted contact probabilities (only ``i < j`` is read).
        contacts: ``[L, L]`` true contacts, 1 / 0, and -1 where unknown (unresolved residues; never counted).
        min_sep: smallest sequence separation ``j - i`` considered.
        max_sep: separations ``>= max_sep`` are left out (None: no upper bound).
        top_divisor: 5 for top-L/5.

    Returns:
        the precision, or NaN when no pair falls in the range.
    """
    length = contacts.shape[0]
    i, j = np.triu_indices(length, k=min_sep)
    keep = contacts[i, j] >= 0
    if max_sep is not None:
        keep &= (j - i) < max_sep
    i, j = i[keep], j[keep]
    if len(i) == 0:
        return float("nan")
    k = max(1, length // top_divisor)
    order = np.argsort(-probs[i, j], kind="stable")[:k]
    return float(np.mean(contacts[i[order], j[order]] == 1))


def mean_contact_precision(
    probs: list[np.ndarray], contacts: list[np.ndarray], range_name: str = "all", top_divisor: int = 5
) -> float:
    """Mean over proteins of :func:`contact_precision` in one of :data:`CONTACT_RANGES`."""
    lo, hi = CONTACT_RANGES[range_name]
    values = [contact_precision(p, c, lo, hi, top_divisor) for p, c in zip(probs, contacts)]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "spearman": spearman,
    "pearson": pearson,
    "rmse": rmse,
    "accuracy": accuracy,
    "auroc": auroc,
    "mcc": mcc,
}
HIGHER_IS_BETTER = {"spearman": True, "pearson": True, "rmse": False, "accuracy": True, "auroc": True, "mcc": True,
                    "contact_precision_l5": True}


def compute(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Metric ``name`` of :data:`METRICS`.

    Raises:
        ValueError: unknown metric name (the message lists the known ones).
    """
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
    return METRICS[name](y_true, y_pred)
