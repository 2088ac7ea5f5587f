"""ProteinGym DMS metrics and leaderboard aggregation, following OATML-Markslab/ProteinGym (commit bb685245).

The definitions come from ``proteingym/performance_DMS_benchmarks.py``: ``calc_ndcg``, ``calc_toprecall``,
``compute_bootstrap_standard_error_functional_categories`` and the per-assay loop / aggregation in ``main``. The code
here is written from those definitions (numpy instead of pandas), tested in tests/benchmarks/test_proteingym_metrics.py.

Conventions, for one assay with ``N`` mutants (every array is ``[N]``):

- ``scores``: the model's fitness prediction, higher = fitter.
- ``dms_scores``: ProteinGym's ``DMS_score`` (direction-adjusted, higher = fitter).
- ``cutoff``: the reference file's ``DMS_binarization_cutoff`` (``DMS_binarization_cutoff_ProteinGym`` in later
  releases); ``DMS_score_bin = 1`` where ``DMS_score >= cutoff`` (the README: "1 is fit, 0 is not fit").
- Missing model scores are an error: ProteinGym's ``main`` states "We assume no missing value (all models were
  enforced to score all mutants)", so a NaN / inf in ``scores`` or ``dms_scores`` raises ``ValueError`` instead of
  being dropped, which would score the model on a different mutant set than its peers.

Leaderboard aggregation (``main``): assay values -> mean per (UniProt_ID, coarse_selection_type) -> mean per
selection type -> mean over the selection types. Every mean skips NaN, as pandas' ``mean`` does.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import matthews_corrcoef, roc_auc_score

ASSAY_METRICS = ("spearman", "ndcg", "top10_recall", "auc", "mcc")
# ``number_assay_reshuffle`` default of ProteinGym's compute_bootstrap_standard_error_functional_categories
DEFAULT_BOOTSTRAP_RESAMPLES = 10_000
ROW_KEYS = ("DMS_id", "UniProt_ID", "coarse_selection_type")


class Aggregate(TypedDict):
    """ProteinGym leaderboard value of one metric (a plain dict at run time)."""

    value: float  # mean over the selection types of the per-type values
    per_type: dict[str, float]  # coarse_selection_type -> mean over its proteins (NaN: no finite value)
    n_assays: int  # assays with a finite value of the metric
    n_proteins: int  # distinct UniProt_IDs among those assays


def _check_pair(scores: np.ndarray, dms_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64 ``[N]``; ValueError on a shape mismatch, an empty assay or a non-finite value."""
    s = np.asarray(scores, dtype=np.float64)
    d = np.asarray(dms_scores, dtype=np.float64)
    if s.ndim != 1 or s.shape != d.shape:
        raise ValueError(f"scores {s.shape} and dms_scores {d.shape} must be 1-D arrays of the same length")
    if s.size == 0:
        raise ValueError("an assay needs at least one mutant")
    for name, x in (("scores", s), ("dms_scores", d)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        if bad:
            raise ValueError(f"{bad} non-finite value(s) in {name}: ProteinGym requires every mutant to be scored")
    return s, d


def binarize_dms(dms_scores: np.ndarray, cutoff: float) -> np.ndarray:
    """ProteinGym's ``DMS_score_bin``: 1 (fit) where ``DMS_score >= cutoff``, else 0.

    Args:
        dms_scores: ``[N]`` DMS scores.
        cutoff: the assay's ``DMS_binarization_cutoff``.

    Returns:
        ``[N]`` int64 labels.
    """
    return (np.asarray(dms_scores, dtype=np.float64) >= cutoff).astype(np.int64)


def _descending_ranks(x: np.ndarray) -> np.ndarray:
    """``[N]`` 1-based ranks of ``x`` sorted high to low: ProteinGym's ``argsort(argsort(-x)) + 1``.

    A stable sort breaks ties by position; ProteinGym's default-kind argsort leaves the tie order to numpy (it varies
    with the numpy version and CPU), so results on tied scores are reproducible here and unspecified there.
    """
    ranks = np.empty(x.size, dtype=np.int64)
    ranks[np.argsort(-x, kind="stable")] = np.arange(1, x.size + 1)
    return ranks


def _dcg(ranks: np.ndarray, gains: np.ndarray, k: int) -> tuple[float, bool]:
    """Discounted gain ``sum g / log2(r + 1)`` over ranks ``<= k`` with non-zero gain; and whether any term was left."""
    keep = (ranks <= k) & (gains != 0)
    return float(np.sum(gains[keep] / np.log2(ranks[keep] + 1.0))), bool(keep.any())


def ndcg(scores: np.ndarray, dms_scores: np.ndarray, top_percent: float = 10.0) -> float:
    """NDCG of the model's top ``top_percent`` % as ProteinGym's ``calc_ndcg`` (quantile mode, its default).

    ``k = floor(N * top_percent / 100)``; the gains are the min-max normalised DMS scores (0 for the least fit mutant,
    1 for the fittest); DCG sums ``gain / log2(rank + 1)`` over the model's ranks ``<= k`` and is divided by the DCG
    of the ideal ordering (the DMS scores ranked by themselves).

    Args:
        scores: ``[N]`` model scores.
        dms_scores: ``[N]`` DMS scores.
        top_percent: size of the ranked head, in percent of ``N``.

    Returns:
        NDCG in [0, 1]; 0 when no mutant with a non-zero gain is in the head (in particular when ``k == 0``, i.e.
        ``N < 100 / top_percent``), as calc_ndcg; NaN when all DMS scores are equal (no gain scale; calc_ndcg gives
        NaN there too, through 0 / 0).
    """
    s, d = _check_pair(scores, dms_scores)
    k = math.floor(d.shape[0] * (top_percent / 100))
    if k < 1:
        return 0.0
    span = d.max() - d.min()
    if span == 0:
        return float("nan")
    gains = (d - d.min()) / span
    dcg, any_term = _dcg(_descending_ranks(s), gains, k)
    if not any_term:
        return 0.0
    ideal, _ = _dcg(_descending_ranks(gains), gains, k)
    return dcg / ideal


def top_recall(scores: np.ndarray, dms_scores: np.ndarray, top_percent: float = 10.0) -> float:
    """Recall of the true top ``top_percent`` % within the model's top ``top_percent`` % (ProteinGym's calc_toprecall).

    A mutant is in a top set when its value is strictly above the ``100 - top_percent`` percentile of its own vector
    (``np.percentile``, linear interpolation).

    Args:
        scores: ``[N]`` model scores.
        dms_scores: ``[N]`` DMS scores.
        top_percent: size of both top sets, in percent.

    Returns:
        ``|true top & model top| / |true top|``; 0 when the true top set is empty (all DMS scores equal), as the
        guarded calc_toprecall (older ProteinGym versions divide by zero and give NaN).
    """
    s, d = _check_pair(scores, dms_scores)
    top_true = d > np.percentile(d, 100 - top_percent)
    top_model = s > np.percentile(s, 100 - top_percent)
    n_true = int(np.count_nonzero(top_true))
    if n_true == 0:
        return 0.0
    return float(np.count_nonzero(top_true & top_model) / n_true)


def assay_metrics(scores: np.ndarray, dms_scores: np.ndarray, cutoff: float | None = None) -> dict[str, float]:
    """The five ProteinGym metrics of one assay.

    Args:
        scores: ``[N]`` model scores, higher = fitter; every mutant must be scored.
        dms_scores: ``[N]`` DMS scores.
        cutoff: the assay's ``DMS_binarization_cutoff``; None (or NaN) when the assay has none.

    Returns:
        ``{"spearman", "ndcg", "top10_recall", "auc", "mcc"}``. ``auc`` and ``mcc`` are NaN without a cutoff or
        when the binarised DMS scores hold a single class.

    Raises:
        ValueError: shape mismatch, empty assay, or a non-finite score.
    """
    s, d = _check_pair(scores, dms_scores)
    out = {
        "spearman": float(spearmanr(d, s).statistic),
        "ndcg": ndcg(s, d),
        "top10_recall": top_recall(s, d),
        "auc": float("nan"),
        "mcc": float("nan"),
    }
    if cutoff is None or not math.isfinite(cutoff):
        return out
    labels = binarize_dms(d, cutoff)
    # one class: roc_auc_score raises (ProteinGym catches it -> NaN); sklearn's MCC would return 0.0 there, reported
    # as NaN here so that a degenerate assay drops out of the averages instead of pulling them to 0
    if labels.min() == labels.max():
        return out
    out["auc"] = float(roc_auc_score(labels, s))
    # MCC binarises the model score at its own median, ``x >= median`` -> 1 (performance_DMS_benchmarks.py, main:
    # ``median_cutoff = merged_scores[score].median()``)
    predicted = (s >= np.median(s)).astype(np.int64)
    out["mcc"] = float(matthews_corrcoef(labels, predicted))
    return out


def _nanmean(values: Iterable[float]) -> float:
    """Mean of the finite values (pandas' skipna mean); NaN when there is none."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _row_value(row: Mapping[str, Any], metric: str, decimals: int | None) -> float:
    """The row's ``metric`` as a float (None -> NaN), rounded to ``decimals`` when given."""
    if metric not in row:
        raise ValueError(f"row {row.get('DMS_id')!r} has no value for {metric!r}")
    value = float("nan") if row[metric] is None else float(row[metric])
    return float(np.round(value, decimals)) if decimals is not None else value


def _protein_means(
    rows: list[Mapping[str, Any]], metric: str, decimals: int | None
) -> dict[str, dict[str, float]]:
    """``{coarse_selection_type: {UniProt_ID: mean of that protein's assays of that type}}`` (NaN skipped)."""
    groups: dict[tuple[str, str], list[float]] = {}
    seen: set[str] = set()
    for row in rows:
        missing = [key for key in ROW_KEYS if key not in row]
        if missing:
            raise ValueError(f"row {row.get('DMS_id')!r} lacks {missing}")
        if row["DMS_id"] in seen:
            raise ValueError(f"duplicate DMS_id {row['DMS_id']!r}")
        seen.add(row["DMS_id"])
        key = (str(row["coarse_selection_type"]), str(row["UniProt_ID"]))
        groups.setdefault(key, []).append(_row_value(row, metric, decimals))
    table: dict[str, dict[str, float]] = {}
    for (selection_type, uniprot), values in sorted(groups.items()):
        table.setdefault(selection_type, {})[uniprot] = _nanmean(values)
    return table


def aggregate(rows: Iterable[Mapping[str, Any]], metric: str, decimals: int | None = None) -> Aggregate:
    """ProteinGym's summary value of ``metric`` over assays (performance_DMS_benchmarks.py, ``main``).

    Assay values are averaged per (UniProt_ID, coarse_selection_type), then per selection type, then over the
    selection types, each mean skipping NaN; a protein assayed for two selection types counts in both.

    Args:
        rows: one mapping per assay with ``DMS_id``, ``UniProt_ID``, ``coarse_selection_type`` and ``metric``
            (a float; None or NaN when the assay has no value).
        metric: the key of the value to aggregate, e.g. ``"spearman"``.
        decimals: round each assay value first; ``3`` reproduces ProteinGym's files, which are averaged from assay
            values rounded to 3 decimals. None keeps full precision.

    Returns:
        the :class:`Aggregate` (value, per_type, n_assays, n_proteins).

    Raises:
        ValueError: a row without one of the keys, or a repeated DMS_id.
    """
    rows = list(rows)
    table = _protein_means(rows, metric, decimals)
    per_type = {t: _nanmean(proteins.values()) for t, proteins in table.items()}
    used = [row for row in rows if not math.isnan(_row_value(row, metric, decimals))]
    return Aggregate(
        value=_nanmean(per_type.values()),
        per_type=per_type,
        n_assays=len(used),
        n_proteins=len({str(row["UniProt_ID"]) for row in used}),
    )


def bootstrap_standard_error(
    rows: Iterable[Mapping[str, Any]],
    metric: str,
    *,
    reference: str | None = None,
    n_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    decimals: int | None = None,
) -> float:
    """Non-parametric bootstrap standard error of :func:`aggregate`'s value, as ProteinGym computes it.

    Follows ``compute_bootstrap_standard_error_functional_categories`` (performance_DMS_benchmarks.py): the
    resampled units are the per-(UniProt_ID, selection type) means, not assays; within each selection type as many
    proteins as it has are drawn with replacement and averaged, the per-type means of each resample are averaged
    over the types, and the result is the sample standard deviation (ddof=1) over resamples. ProteinGym applies it
    to differences from the best model (``reference``). Its pandas ``sample`` is unseeded; here ``seed`` makes
    the value reproducible.

    Args:
        rows: as for :func:`aggregate`.
        metric: the key of the value.
        reference: another key of the rows (e.g. the best model's value on the same assay); when given, the standard
            error is that of ``metric - reference``, the difference taken per protein and selection type.
        n_resamples: bootstrap resamples (ProteinGym's ``number_assay_reshuffle``).
        seed: seed of ``numpy.random.default_rng``.
        decimals: as for :func:`aggregate`.

    Returns:
        the standard error; NaN when no selection type has a finite value.
    """
    if n_resamples < 2:
        raise ValueError(f"n_resamples must be >= 2, got {n_resamples}")
    rows = list(rows)
    table = _protein_means(rows, metric, decimals)
    if reference is not None:
        base = _protein_means(rows, reference, decimals)
        table = {t: {u: v - base[t][u] for u, v in proteins.items()} for t, proteins in table.items()}
    rng = np.random.default_rng(seed)
    per_type_means = []
    for selection_type in sorted(table):
        values = np.array(list(table[selection_type].values()))  # [P] proteins of this type, sorted by UniProt_ID
        if not np.isfinite(values).any():
            continue  # aggregate() has no value for this type either
        draws = rng.integers(0, values.size, size=(n_resamples, values.size))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN resample gives NaN, as pandas' mean
            per_type_means.append(np.nanmean(values[draws], axis=1))  # [n_resamples]
    if not per_type_means:
        return float("nan")
    combined = np.mean(np.stack(per_type_means), axis=0)  # [n_resamples]
    combined = combined[np.isfinite(combined)]  # pandas' std skips NaN
    return float(np.std(combined, ddof=1)) if combined.size >= 2 else float("nan")
