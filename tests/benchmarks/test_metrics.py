"""Metrics against scipy / sklearn and a naive contact-precision loop."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from xtrimo.benchmarks import metrics


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(13)


def test_correlations_match_scipy(rng: np.random.Generator) -> None:
    y = rng.normal(size=17)
    p = y + rng.normal(size=17)
    p[3] = p[5]  # a tie
    ties = np.round(y, 0)
    assert metrics.spearman(y, p) == pytest.approx(stats.spearmanr(y, p).correlation, abs=1e-12)
    assert metrics.spearman(ties, p) == pytest.approx(stats.spearmanr(ties, p).correlation, abs=1e-12)
    assert metrics.pearson(y, p) == pytest.approx(stats.pearsonr(y, p)[0], abs=1e-12)
    assert np.isnan(metrics.spearman(y, np.ones(17)))


def test_classification_metrics_match_sklearn(rng: np.random.Generator) -> None:
    y = rng.integers(0, 3, size=31)
    scores = rng.normal(size=(31, 3))
    pred = scores.argmax(1)
    assert metrics.accuracy(y, scores) == pytest.approx(skm.accuracy_score(y, pred))
    assert metrics.mcc(y, pred) == pytest.approx(skm.matthews_corrcoef(y, pred), abs=1e-12)
    yb = (y > 0).astype(int)
    assert metrics.mcc(yb, pred > 0) == pytest.approx(skm.matthews_corrcoef(yb, pred > 0), abs=1e-12)
    s = np.round(scores[:, 0], 1)  # ties in the score
    assert metrics.auroc(yb, s) == pytest.approx(skm.roc_auc_score(yb, s), abs=1e-12)
    assert metrics.rmse(scores[:, 0], scores[:, 1]) == pytest.approx(
        np.sqrt(skm.mean_squared_error(scores[:, 0], scores[:, 1])))


def _naive_precision(probs: np.ndarray, contacts: np.ndarray, lo: int, hi: int | None) -> float:
    length = len(contacts)
    pairs = [(probs[i, j], contacts[i, j]) for i in range(length) for j in range(i + lo, length)
             if contacts[i, j] >= 0 and (hi is None or j - i < hi)]
    pairs.sort(key=lambda t: -t[0])
    top = pairs[: max(1, length // 5)]
    return sum(c == 1 for _, c in top) / len(top)


@pytest.mark.parametrize("range_name", ["all", "short", "medium", "long"])
def test_contact_precision_matches_naive(rng: np.random.Generator, range_name: str) -> None:
    length = 53
    probs = rng.random((length, length))
    contacts = (rng.random((length, length)) < 0.2).astype(int)
    contacts[7, :] = -1  # unresolved residue: never counted
    lo, hi = metrics.CONTACT_RANGES[range_name]
    got = metrics.contact_precision(probs, contacts, lo, hi)
    assert got == pytest.approx(_naive_precision(probs, contacts, lo, hi))


def test_contact_precision_perfect_and_separation() -> None:
    length = 30
    contacts = np.zeros((length, length), dtype=int)
    for i in range(length - 8):
        contacts[i, i + 8] = 1
    assert metrics.contact_precision(contacts.astype(float), contacts) == 1.0
    near = 0.5 * contacts
    near[np.arange(length - 1), np.arange(1, length)] = 1.0  # most confident but |i-j| = 1: excluded by min_sep
    assert metrics.contact_precision(near, contacts, 6) == 1.0
    assert metrics.contact_precision(near, contacts, 1) < 1.0


def test_unknown_metric_lists_known() -> None:
    with pytest.raises(ValueError, match="known: accuracy"):
        metrics.compute("f1", np.zeros(2), np.zeros(2))
