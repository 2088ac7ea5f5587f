"""ProteinGym metrics against scipy / sklearn, plain-loop NDCG / top-recall, and hand-computed aggregates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from xtrimo.benchmarks import proteingym_metrics as pgm


def assay(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(model scores, DMS scores) ``[n]``, correlated, without ties."""
    rng = np.random.default_rng(seed)
    dms = rng.normal(size=n)
    return dms + rng.normal(scale=0.8, size=n), dms


def loop_percentile(values: list[float], q: float) -> float:
    """numpy's default (linear) percentile, written out."""
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def loop_ndcg(scores: list[float], dms: list[float], top: float = 10) -> float:
    """ProteinGym's calc_ndcg as written: k = floor(N * top%), min-max gains, gain / log2(rank + 1) over the top k."""
    n = len(dms)
    k = math.floor(n * top / 100)
    lo, hi = min(dms), max(dms)
    gains = [(x - lo) / (hi - lo) for x in dms]
    by_model = sorted(range(n), key=lambda i: -scores[i])
    dcg = 0.0
    for rank in range(1, k + 1):
        dcg += gains[by_model[rank - 1]] / math.log2(rank + 1)
    if dcg == 0:
        return 0.0
    ideal = sorted(gains, reverse=True)
    idcg = 0.0
    for rank in range(1, k + 1):
        idcg += ideal[rank - 1] / math.log2(rank + 1)
    return dcg / idcg


def loop_top_recall(scores: list[float], dms: list[float], top: float = 10) -> float:
    """ProteinGym's calc_toprecall as written: strictly above the (100 - top) percentile of each vector."""
    t_thr, m_thr = loop_percentile(dms, 100 - top), loop_percentile(scores, 100 - top)
    n_true = n_both = 0
    for s, d in zip(scores, dms):
        if d > t_thr:
            n_true += 1
            if s > m_thr:
                n_both += 1
    return n_both / n_true if n_true else 0.0


@pytest.mark.parametrize("n", [37, 101])
def test_spearman_auc_mcc_match_scipy_sklearn(n: int) -> None:
    scores, dms = assay(n, seed=n)
    cutoff = float(np.quantile(dms, 0.37))
    out = pgm.assay_metrics(scores, dms, cutoff)
    assert set(out) == set(pgm.ASSAY_METRICS)
    labels = (dms >= cutoff).astype(int)
    assert out["spearman"] == pytest.approx(stats.spearmanr(dms, scores).statistic, abs=1e-12)
    assert out["auc"] == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    predicted = (scores >= np.median(scores)).astype(int)
    assert out["mcc"] == pytest.approx(skm.matthews_corrcoef(labels, predicted), abs=1e-12)


def test_binarization_is_greater_or_equal() -> None:
    dms = np.array([0.1, 0.5, 0.5, 0.9, -0.3])
    assert pgm.binarize_dms(dms, 0.5).tolist() == [0, 1, 1, 1, 0]


@pytest.mark.parametrize("n", [37, 101, 203])
def test_ndcg_and_top_recall_match_plain_loops(n: int) -> None:
    scores, dms = assay(n, seed=2 * n + 1)
    out = pgm.assay_metrics(scores, dms)
    assert out["ndcg"] == pytest.approx(loop_ndcg(scores.tolist(), dms.tolist()), rel=1e-12)
    assert out["top10_recall"] == pytest.approx(loop_top_recall(scores.tolist(), dms.tolist()), rel=1e-12)
    assert pgm.ndcg(scores, dms, top_percent=25) == pytest.approx(
        loop_ndcg(scores.tolist(), dms.tolist(), top=25), rel=1e-12)
    assert 0 < out["ndcg"] < 1 and 0 <= out["top10_recall"] <= 1


@pytest.mark.parametrize("n", [37, 101])
def test_perfect_and_reversed_rankings(n: int) -> None:
    _, dms = assay(n, seed=7)
    assert pgm.ndcg(3 * dms + 1, dms) == pytest.approx(1.0, abs=1e-12)
    assert pgm.top_recall(3 * dms + 1, dms) == 1.0
    assert pgm.ndcg(-dms, dms) < 0.3
    assert pgm.top_recall(-dms, dms) == 0.0


def test_degenerate_assays() -> None:
    scores, dms = assay(7, seed=3)
    assert pgm.ndcg(scores, dms) == 0.0  # k = floor(0.7) = 0: nothing ranked, as calc_ndcg
    assert math.isnan(pgm.ndcg(scores[:5].tolist() * 4, np.ones(20)))
    assert pgm.top_recall(np.arange(20.0), np.ones(20)) == 0.0
    scores, dms = assay(37, seed=4)
    no_cutoff = pgm.assay_metrics(scores, dms)
    one_class = pgm.assay_metrics(scores, dms, cutoff=float(dms.max()) + 1)
    for out in (no_cutoff, one_class):
        assert math.isnan(out["auc"]) and math.isnan(out["mcc"]) and math.isfinite(out["spearman"])
    assert math.isnan(pgm.assay_metrics(scores, dms, cutoff=float("nan"))["auc"])


def test_missing_scores_are_rejected() -> None:
    scores, dms = assay(37, seed=5)
    scores[11] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        pgm.assay_metrics(scores, dms, 0.0)
    with pytest.raises(ValueError, match="same length"):
        pgm.assay_metrics(dms[:-1], dms)


def rows(values: dict[str, float]) -> list[dict]:
    """Two Stability proteins with two assays each and one Activity protein with one assay."""
    layout = [("A1", "P1", "Stability"), ("A2", "P1", "Stability"), ("B1", "P2", "Stability"),
              ("B2", "P2", "Stability"), ("C1", "P3", "Activity")]
    return [{"DMS_id": d, "UniProt_ID": u, "coarse_selection_type": t, "spearman": values[d]} for d, u, t in layout]


def test_aggregate_matches_hand_computation() -> None:
    data = rows({"A1": 0.2, "A2": 0.4, "B1": 0.5, "B2": 0.9, "C1": 0.1})
    out = pgm.aggregate(data, "spearman")
    # P1 = 0.3, P2 = 0.7 -> Stability 0.5; Activity 0.1; overall (0.5 + 0.1) / 2 (the plain assay mean would be 0.42)
    assert out["per_type"] == pytest.approx({"Stability": 0.5, "Activity": 0.1})
    assert out["value"] == pytest.approx(0.3)
    assert (out["n_assays"], out["n_proteins"]) == (5, 3)
    with_nan = data + [{"DMS_id": "C2", "UniProt_ID": "P3", "coarse_selection_type": "Activity", "spearman": None}]
    assert pgm.aggregate(with_nan, "spearman") == out  # a missing value drops out of the means and the counts
    rounded = rows({"A1": 0.2004, "A2": 0.4, "B1": 0.5, "B2": 0.9, "C1": 0.1})
    assert pgm.aggregate(rounded, "spearman", decimals=3)["value"] == pytest.approx(0.3, abs=1e-15)
    with pytest.raises(ValueError, match="duplicate"):
        pgm.aggregate(data + data[:1], "spearman")


def test_bootstrap_standard_error() -> None:
    rng = np.random.default_rng(11)
    data = [{"DMS_id": f"D{i}", "UniProt_ID": f"P{i // 2}", "coarse_selection_type": "Stability" if i < 10
             else "Binding", "spearman": float(rng.uniform()), "ref": 0.4} for i in range(17)]
    se = pgm.bootstrap_standard_error(data, "spearman", seed=3)
    assert se == pgm.bootstrap_standard_error(data, "spearman", seed=3)
    assert se != pgm.bootstrap_standard_error(data, "spearman", seed=4)
    # resampled units are the protein means within each type: SE^2 = (var_1 / P_1 + var_2 / P_2) / 2^2
    table: dict[str, dict[str, list[float]]] = {}
    for row in data:
        table.setdefault(row["coarse_selection_type"], {}).setdefault(row["UniProt_ID"], []).append(row["spearman"])
    variances = [np.var([np.mean(v) for v in prot.values()]) / len(prot) for prot in table.values()]
    assert se == pytest.approx(math.sqrt(sum(variances)) / 2, rel=0.05)
    constant = [dict(row, spearman=0.25) for row in data]
    assert pgm.bootstrap_standard_error(constant, "spearman", n_resamples=500) == pytest.approx(0.0, abs=1e-12)
    # a constant reference shifts every protein mean by the same amount: same SE as the metric itself
    assert pgm.bootstrap_standard_error(data, "spearman", reference="ref", seed=3) == pytest.approx(se, abs=1e-12)
    assert pgm.bootstrap_standard_error(data, "spearman", reference="spearman") == pytest.approx(0.0, abs=1e-12)
