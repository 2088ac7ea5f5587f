"""ProteinGym's supervised DMS benchmark on single substitutions: 5-fold cross-validation under its three fold
schemes, with its "One-Hot Encodings" baseline, beside the published per-assay Spearman.

Sources (ProteinGym's supervised numbers are ProteinNPT's runs: ``proteingym/performance_DMS_supervised_benchmarks.py``
in OATML-Markslab/ProteinGym says so, and its ``constants.json`` maps "OHE - Not augmented" to "One-Hot Encodings"):

- folds: OATML-Markslab/ProteinNPT ``proteinnpt/utils/cv_split.py`` @ 7e715f01. ``fold_random_5``: an independent
  uniform fold per mutant (``np.random.randint``; sizes balanced only in expectation); ``fold_modulo_5``: the rank of
  the mutated position among the assay's sorted distinct mutated positions, mod 5; ``fold_contiguous_5``: those sorted
  positions cut into 5 consecutive blocks by count (``divmod``: the first ``len % 5`` blocks one position longer), so
  the blocks follow the mutated positions, not the sequence length. With fewer distinct positions than folds
  ``create_folds_loop`` falls back to 4 folds. An older copy (``utils/cv_split.py`` @ fa086495) used the position
  itself mod 5 and the file order of positions; the two agree where the mutated positions have no gap.
- One-Hot baseline: ProteinNPT ``baselines/model_configs/OHE_not_augmented.json`` @ 61e8dc6a with the defaults of
  ``scripts/train.py``, the optimiser of ``proteinnpt/baselines/model.py`` and the loop of
  ``proteinnpt/utils/model_utils.py``: a linear layer on the one-hot of the whole mutated sequence, targets
  standardised with the training folds' mean and std, MSE, AdamW (weight decay 5e-3 on the weights, none on the
  bias), learning rate warmed up over 100 steps to 3e-4 then cosine to 1e-5, gradient norm clipped to 1, 10,000
  steps of 64 shuffled sequences, no validation set (``scripts/train_subs.sh`` passes no ``--use_validation_set``).
- reported value: ``log_performance_all_folds`` in ProteinNPT ``scripts/train.py``: the Spearman of the out-of-fold
  predictions of all folds concatenated (each fold's predictions and labels in its own standardised units), not the
  mean of per-fold values; both are returned here.

``ridge`` is the one-hot regressor of the paper the published entry cites (Hsu et al. 2022, chloechsu/
combining-evolutionary-and-assay-labelled-data ``OnehotRidgePredictor``: sklearn Ridge, alpha chosen by a 5-fold
inner CV on Spearman among 0.1 ... 1000); it is not what produced ProteinGym's numbers.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.stats import spearmanr

from xtrimo.benchmarks.proteingym import Assay, Mutants, read_mutants, read_reference
from xtrimo.benchmarks.proteingym_metrics import Aggregate, aggregate
from xtrimo.scoring import parse_variant
from xtrimo.tokenizer import STANDARD_RESIDUES

AMINO_ACIDS = STANDARD_RESIDUES  # one-hot column order (alphabetical)
_AA_INDEX = {aa: i for i, aa in enumerate(AMINO_ACIDS)}
SCHEMES: tuple[str, ...] = ("random", "modulo", "contiguous")
# create_folds_loop's fold count when an assay has fewer distinct mutated positions than folds
FALLBACK_FOLDS = 4
# ProteinNPT's head input: (seq_len + 2) tokens x 33 (ESM alphabet); it sets the init range of nn.Linear
_PNPT_ALPHABET, _PNPT_EXTRA_TOKENS = 33, 2
# Hsu et al. 2022 (combining-evolutionary-and-assay-labelled-data, src/predictors/base_predictors.py)
RIDGE_ALPHAS = (1e-1, 1e0, 1e1, 1e2, 1e3)


def _fold_random(ranks: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n_folds, size=ranks.size)


def _fold_modulo(ranks: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    return ranks % n_folds


def _fold_contiguous(ranks: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    k, m = divmod(int(ranks.max()) + 1, n_folds)
    block_of_rank = np.repeat(np.arange(n_folds), [k + (i < m) for i in range(n_folds)])
    return block_of_rank[ranks]


FOLD_SCHEMES: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "random": _fold_random, "modulo": _fold_modulo, "contiguous": _fold_contiguous}


def folds(mutants: Mutants, assay: Assay, scheme: str, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """ProteinGym's cross-validation fold of every mutant (``fold_<scheme>_5`` of its CV files).

    Args:
        mutants: the assay's rows (multi-mutants are placed by their first substitution, as ProteinNPT does).
        assay: the assay (named in errors).
        scheme: ``random`` | ``modulo`` | ``contiguous`` (see the module docstring).
        n_folds: folds asked for; an assay with fewer distinct mutated positions gets 4 (ProteinNPT's fallback).
        seed: seed of the ``random`` scheme (ProteinNPT draws from one global seed, 42, across assays in turn).

    Returns:
        ``[N]`` int64 fold index in ``[0, n_folds)``.
    """
    if scheme not in FOLD_SCHEMES:
        raise ValueError(f"unknown fold scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    # 1-based position of each mutant's first substitution (ProteinNPT's return_position_single)
    positions = np.array([parse_variant(c, assay.target_seq)[0][0] + 1 for c in mutants.codes], dtype=np.int64)
    distinct = np.unique(positions)  # sorted
    if distinct.size < n_folds:
        if distinct.size < FALLBACK_FOLDS or n_folds <= FALLBACK_FOLDS:
            raise ValueError(f"{assay.dms_id}: {distinct.size} mutated position(s), fewer than {n_folds} folds")
        n_folds = FALLBACK_FOLDS
    ranks = np.searchsorted(distinct, positions)  # [N] rank of each mutant's position
    return FOLD_SCHEMES[scheme](ranks, n_folds, np.random.default_rng(seed)).astype(np.int64)


def onehot_features(sequences: list[str]) -> sparse.csr_matrix:
    """One-hot of whole sequences over the 20 amino acids, sparse (one non-zero per residue).

    Args:
        sequences: ``N`` sequences of one length ``L`` (an assay's mutated sequences).

    Returns:
        ``[N, L * 20]`` float64 CSR; column ``20 * i + a`` is residue ``i`` (0-based) being ``AMINO_ACIDS[a]``.
    """
    if not sequences:
        raise ValueError("no sequence to encode")
    length = len(sequences[0])
    codes = np.empty((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        if len(seq) != length:
            raise ValueError(f"sequence {row} has {len(seq)} residues, the first has {length}")
        try:
            codes[row] = [_AA_INDEX[aa] for aa in seq.upper()]
        except KeyError as exc:
            raise ValueError(f"sequence {row}: residue {exc.args[0]!r} is not one of {AMINO_ACIDS}") from None
    cols = (codes + 20 * np.arange(length)).ravel()
    indptr = np.arange(0, codes.size + 1, length)
    return sparse.csr_matrix((np.ones(codes.size), cols, indptr), shape=(len(sequences), 20 * length))


@dataclass(frozen=True)
class LinearConfig:
    """ProteinNPT's one-hot linear baseline (OHE_not_augmented.json, scripts/train.py defaults)."""

    steps: int = 10_000
    batch_size: int = 64
    max_lr: float = 3e-4
    min_lr: float = 1e-5
    warmup_steps: int = 100
    weight_decay: float = 5e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    grad_clip: float = 1.0
    init_fan_in: int | None = None  # None: ProteinNPT's (L + 2) * 33 for [N, L * 20] features


def learning_rate(step: int, config: LinearConfig) -> float:
    """ProteinNPT's ``get_learning_rate``: linear warmup to ``max_lr``, then cosine to ``min_lr`` (step is 1-based)."""
    if step <= config.warmup_steps:
        return config.max_lr * step / config.warmup_steps
    if step > config.steps:
        return config.min_lr
    ratio = (step - config.warmup_steps) / (config.steps - config.warmup_steps)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (config.max_lr - config.min_lr)


def _deltas(x: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x = 1 * base + delta`` with ``base`` the ``[D]`` majority row; ``delta`` as padded ``[N, K]`` columns and
    values (few per row: a single mutant differs from the wild type in two columns), so a step costs O(batch * K)."""
    base = (np.asarray(x.mean(axis=0)).ravel() > 0.5).astype(np.float64)
    delta = (x - sparse.csr_matrix(np.ones((x.shape[0], 1))) @ sparse.csr_matrix(base[None])).tocsr()
    delta.eliminate_zeros()
    width = max(1, int(np.diff(delta.indptr).max(initial=0)))
    cols, vals = np.zeros((x.shape[0], width), dtype=np.int64), np.zeros((x.shape[0], width))
    for row in range(x.shape[0]):
        lo, hi = delta.indptr[row], delta.indptr[row + 1]
        cols[row, : hi - lo], vals[row, : hi - lo] = delta.indices[lo:hi], delta.data[lo:hi]
    return base, cols, vals


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    """Endless shuffled batches, the last of each epoch partial (a torch DataLoader, shuffle=True, drop_last=False)."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]


def fit_predict_linear(x_train: sparse.csr_matrix, y_train: np.ndarray, x_test: sparse.csr_matrix,
                       rng: np.random.Generator, config: LinearConfig = LinearConfig()) -> np.ndarray:
    """Train ProteinNPT's one-hot linear head by AdamW and predict (torch.optim.AdamW's update, in numpy).

    Args:
        x_train: ``[N, D]`` one-hot features (:func:`onehot_features`).
        y_train: ``[N]`` targets (standardised by :func:`cross_validate`).
        x_test: ``[M, D]`` features to predict.
        rng: draws the nn.Linear-style init ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` first, then the epoch orders.
        config: the optimisation recipe.

    Returns:
        ``[M]`` predictions.
    """
    d = x_train.shape[1]
    fan_in = config.init_fan_in or (d // 20 + _PNPT_EXTRA_TOKENS) * _PNPT_ALPHABET
    bound = 1.0 / math.sqrt(fan_in)
    w, b = rng.uniform(-bound, bound, size=d), float(rng.uniform(-bound, bound))
    base, cols, vals = _deltas(x_train)
    # weights whose feature never varies from 0 in training get no gradient: their moments stay 0 and AdamW only
    # decays them, so the loop runs on the others and the decay is applied once at the end
    active = np.union1d(np.flatnonzero(base), np.unique(cols[vals != 0]))
    wa, base_a, cols_a = w[active], base[active], np.searchsorted(active, cols)
    m, v, mb, vb, decay = np.zeros(active.size), np.zeros(active.size), 0.0, 0.0, 1.0
    batches = _batches(x_train.shape[0], config.batch_size, rng)
    for step in range(1, config.steps + 1):
        idx = next(batches)
        pred = b + base_a @ wa + (wa[cols_a[idx]] * vals[idx]).sum(axis=1)
        r = 2.0 * (pred - y_train[idx]) / idx.size  # d mean-squared-error / d prediction
        g = base_a * r.sum() + np.bincount(cols_a[idx].ravel(), (vals[idx] * r[:, None]).ravel(), active.size)
        gb = float(r.sum())
        norm = math.sqrt(float(g @ g) + gb * gb)
        if norm > config.grad_clip:  # torch.nn.utils.clip_grad_norm_
            scale = config.grad_clip / (norm + 1e-6)
            g, gb = g * scale, gb * scale
        lr = learning_rate(step, config)
        wa *= 1.0 - lr * config.weight_decay
        decay *= 1.0 - lr * config.weight_decay
        m, mb = config.beta1 * m + (1 - config.beta1) * g, config.beta1 * mb + (1 - config.beta1) * gb
        v, vb = config.beta2 * v + (1 - config.beta2) * g * g, config.beta2 * vb + (1 - config.beta2) * gb * gb
        step_size, root2 = lr / (1 - config.beta1 ** step), math.sqrt(1 - config.beta2 ** step)
        wa -= step_size * m / (np.sqrt(v) / root2 + config.eps)
        b -= step_size * mb / (math.sqrt(vb) / root2 + config.eps)
    w *= decay
    w[active] = wa
    return np.asarray(x_test @ w).ravel() + b


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """scipy's Spearman; NaN (without a warning) when either side is constant or has under two values."""
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def fit_predict_ridge(x_train: sparse.csr_matrix, y_train: np.ndarray, x_test: sparse.csr_matrix,
                      rng: np.random.Generator, alpha: float | None = None) -> np.ndarray:
    """sklearn Ridge; ``alpha`` None picks it as Hsu et al. 2022 do: the first best mean Spearman of a 5-fold inner
    CV over ``RIDGE_ALPHAS``. Their training rows come from ``data.sample`` (random order), so their unshuffled
    ``cv=5`` is a random split; here the rows keep the file order (sorted by position), so the inner KFold is
    shuffled explicitly (seed drawn from ``rng``) rather than cut into position blocks."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import KFold, cross_val_score

    if alpha is None:
        inner = KFold(5, shuffle=True, random_state=int(rng.integers(2**31)))
        best = -np.inf
        for candidate in RIDGE_ALPHAS:
            score = cross_val_score(Ridge(alpha=candidate), x_train, y_train, cv=inner,
                                    scoring=make_scorer(_spearman)).mean()
            if score > best:  # NaN (an inner fold of constant predictions) never wins
                best, alpha = score, candidate
        alpha = RIDGE_ALPHAS[0] if alpha is None else alpha
    return Ridge(alpha=alpha).fit(x_train, y_train).predict(x_test)


# a regressor: (x_train [N, D], standardised y_train [N], x_test [M, D], rng) -> [M] predictions
Regressor = Callable[[sparse.csr_matrix, np.ndarray, sparse.csr_matrix, np.random.Generator], np.ndarray]
REGRESSORS: dict[str, Regressor] = {"proteinnpt_linear": fit_predict_linear, "ridge": fit_predict_ridge}


def cross_validate(features: sparse.csr_matrix | np.ndarray, targets: np.ndarray, fold_index: np.ndarray,
                   regressor: str | Regressor = "proteinnpt_linear", seed: int = 0) -> dict:
    """Train on all folds but one, predict the held-out fold, for every fold (ProteinNPT's ``train.py`` loop).

    Targets are standardised with the training folds' mean and std (population); predictions and held-out labels
    stay in those units, as ProteinNPT writes them before pooling.

    Args:
        features: ``[N, D]`` (CSR or dense).
        targets: ``[N]`` DMS scores.
        fold_index: ``[N]`` fold per mutant (:func:`folds`).
        regressor: a name of :data:`REGRESSORS` or a callable of the same signature.
        seed: the training seed of fold ``k`` is ``(seed, k)``.

    Returns:
        ``spearman`` (of the concatenated out-of-fold predictions: ProteinGym's value), ``mean_fold_spearman``,
        ``fold_spearman`` (list, in ``folds`` order), ``folds``, and ``[N]`` ``predictions`` / ``labels`` (row order).
    """
    fit = REGRESSORS.get(regressor) if isinstance(regressor, str) else regressor
    if fit is None:
        raise ValueError(f"unknown regressor {regressor!r}; valid: {', '.join(REGRESSORS)}")
    x = sparse.csr_matrix(features)
    y, fold_index = np.asarray(targets, dtype=np.float64), np.asarray(fold_index)
    if not (x.shape[0] == y.size == fold_index.size):
        raise ValueError(f"features {x.shape}, targets {y.shape} and fold_index {fold_index.shape} disagree on N")
    predictions, labels, per_fold = np.empty(y.size), np.empty(y.size), []
    fold_ids = [int(k) for k in np.unique(fold_index)]
    if len(fold_ids) < 2:
        raise ValueError("cross-validation needs at least two folds")
    for k in fold_ids:
        test = fold_index == k
        mean, std = y[~test].mean(), y[~test].std()
        std = std if std > 0 else 1.0
        predictions[test] = fit(x[~test], (y[~test] - mean) / std, x[test], np.random.default_rng([seed, k]))
        labels[test] = (y[test] - mean) / std
        per_fold.append(_spearman(predictions[test], labels[test]))
    finite = [s for s in per_fold if not math.isnan(s)]
    return {"spearman": _spearman(predictions, labels), "mean_fold_spearman": float(np.mean(finite)) if finite
            else float("nan"), "fold_spearman": per_fold, "folds": fold_ids, "predictions": predictions,
            "labels": labels}


def run_supervised(root: Path, scheme: str, regressor: str | Regressor = "proteinnpt_linear", n_folds: int = 5,
                   seed: int = 0, progress: bool = True) -> list[dict]:
    """Cross-validate the one-hot baseline on every assay of ``root/reference.csv`` under one fold scheme.

    Returns:
        one record per assay: ``DMS_id``, ``UniProt_ID``, ``coarse_selection_type``, ``n``, ``scheme``, ``n_folds``
        (4 where ProteinNPT falls back), ``spearman``, ``mean_fold_spearman``, ``fold_spearman``.
    """
    from xtrimo.progress import Progress

    assays = read_reference(root)
    records = []
    with Progress(len(assays), f"supervised {scheme}", "assays", enabled=progress) as bar:
        for assay in assays:
            mutants = read_mutants(assay)
            fold_index = folds(mutants, assay, scheme, n_folds, seed)
            cv = cross_validate(onehot_features(mutants.sequences), mutants.dms, fold_index, regressor, seed)
            records.append({"DMS_id": assay.dms_id, "UniProt_ID": assay.uniprot_id,
                            "coarse_selection_type": assay.selection_type, "n": len(mutants.codes),
                            "scheme": scheme, "n_folds": len(cv["folds"]), "spearman": cv["spearman"],
                            "mean_fold_spearman": cv["mean_fold_spearman"], "fold_spearman": cv["fold_spearman"]})
            bar.update(1, postfix=assay.dms_id)
    return records


def aggregate_supervised(records: list[dict], assays: set[str] | None = None) -> Aggregate:
    """ProteinGym's aggregate of the records' ``spearman`` (per protein, per selection type, then over the types),
    over ``assays`` (None: all); ProteinGym's summary averages this value over the three schemes."""
    return aggregate([r for r in records if assays is None or r["DMS_id"] in assays], "spearman")


def read_published_supervised(root: Path, scheme: str, model: str = "one_hot") -> dict[str, float]:
    """The published Spearman per DMS_id of ``model`` (``one_hot``: "One-Hot Encodings"; ``esm1v_embeddings``) for
    ``scheme``, from ``root/published_supervised_spearman.csv`` (columns ``<model>_<scheme>``); empty when the
    folder has no such file."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown fold scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    path = root / "published_supervised_spearman.csv"
    if not path.is_file():
        return {}
    column = f"{model}_{scheme}"
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if column not in (reader.fieldnames or []):
            raise ValueError(f"{path}: no column {column!r} (has {', '.join(reader.fieldnames or [])})")
        return {row["DMS_id"]: float(row[column]) for row in reader if (row[column] or "").strip()}

