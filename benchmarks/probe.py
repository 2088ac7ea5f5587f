"""Linear probes on frozen features: ridge regression (all alphas from one eigendecomposition) and logistic
regression, with hyper-parameters chosen on the validation split only and the test split scored once."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from xtrimo.benchmarks import metrics
from xtrimo.benchmarks.tasks import ProbeSpec

log = logging.getLogger(__name__)


@dataclass
class ProbeResult:
    value: float  # test metric
    valid_value: float  # validation metric of the chosen hyper-parameter
    chosen: dict[str, float]
    test_scores: np.ndarray  # predictions / class probabilities on test


def ridge_path(x: np.ndarray, y: np.ndarray, alphas: list[float]) -> list[tuple[np.ndarray, float]]:
    """Ridge weights and intercept for every alpha (same objective as sklearn ``Ridge(alpha)``).

    One eigendecomposition of the Gram matrix (the primal ``X^T X`` or the dual ``X X^T``, whichever is smaller)
    serves the whole grid.
    """
    x = np.asarray(x, dtype=np.float64)
    x_mean, y_mean = x.mean(axis=0), float(np.mean(y))
    # columns constant on train centre to zero and get weight 0 exactly: solve on the others (one-hot of a
    # mutational scan varies at a few sites only)
    keep = np.flatnonzero(np.ptp(x, axis=0) > 0)
    xc, yc = x[:, keep] - x_mean[keep], np.asarray(y, dtype=np.float64) - y_mean
    return [(_scatter(w, keep, x.shape[1]), y_mean - x_mean[keep] @ w) for w in _ridge_weights(xc, yc, alphas)]


def _scatter(w: np.ndarray, keep: np.ndarray, dim: int) -> np.ndarray:
    full = np.zeros(dim)
    full[keep] = w
    return full


def _ridge_weights(xc: np.ndarray, yc: np.ndarray, alphas: list[float]) -> list[np.ndarray]:
    out = []
    if xc.shape[1] <= xc.shape[0]:
        evals, evecs = np.linalg.eigh(xc.T @ xc)
        proj = evecs.T @ (xc.T @ yc)
        for a in alphas:
            out.append(evecs @ (proj / (np.maximum(evals, 0.0) + a)))
    else:
        evals, evecs = np.linalg.eigh(xc @ xc.T)
        proj = evecs.T @ yc
        for a in alphas:
            out.append(xc.T @ (evecs @ (proj / (np.maximum(evals, 0.0) + a))))
    return out


def _scale(spec: ProbeSpec, train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    if not spec.standardize:
        return [train, *others]
    scaler = StandardScaler().fit(train)
    return [scaler.transform(a) for a in (train, *others)]


def fit_regression(spec: ProbeSpec, metric: str, xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray,
                   yva: np.ndarray, xte: np.ndarray, yte: np.ndarray) -> ProbeResult:
    """Ridge with alpha selected on the validation metric; optionally refit on train + valid (FLIP's protocol)."""
    xtr, xva, xte = _scale(spec, xtr, xva, xte)
    sign = 1.0 if metrics.HIGHER_IS_BETTER[metric] else -1.0
    scored = []
    for alpha, (w, b) in zip(spec.alphas, ridge_path(xtr, ytr, spec.alphas)):
        v = metrics.compute(metric, yva, xva @ w + b) if len(yva) > 1 else float("nan")
        scored.append((np.nan_to_num(sign * v, nan=-np.inf), alpha, v, w, b))
    _, alpha, valid_value, w, b = max(scored, key=lambda t: t[0])
    if spec.refit_on_train_and_valid:
        (w, b), = ridge_path(np.concatenate([xtr, xva]), np.concatenate([ytr, yva]), [alpha])
    pred = xte @ w + b
    return ProbeResult(metrics.compute(metric, yte, pred), float(valid_value), {"alpha": alpha}, pred)


class _Logistic(LogisticRegression):
    """sklearn's logistic regression; a fit stopped by ``max_iter`` is logged once instead of warned per call."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Logistic:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            super().fit(x, y)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            log.info("logistic regression (C=%g) stopped at max_iter=%d before converging", self.C, self.max_iter)
        return self


def _logistic(c: float, seed: int) -> LogisticRegression:
    return _Logistic(C=c, max_iter=500, random_state=seed)


def fit_classifier(spec: ProbeSpec, metric: str, xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray,
                   yva: np.ndarray, xte: np.ndarray, yte: np.ndarray, seed: int = 0) -> ProbeResult:
    """Logistic regression (multinomial for > 2 classes) with C selected on the validation metric."""
    xtr, xva, xte = _scale(spec, xtr, xva, xte)
    best = None
    for c in spec.cs:
        model = _logistic(c, seed).fit(xtr, ytr)
        v = metrics.compute(metric, yva, _scores(model, xva, metric))
        log.debug("C=%g valid %s=%.4f", c, metric, v)
        if best is None or np.nan_to_num(v, nan=-np.inf) > best[0]:
            best = (np.nan_to_num(v, nan=-np.inf), c, v, model)
    _, c, valid_value, model = best
    if spec.refit_on_train_and_valid:
        model = _logistic(c, seed).fit(np.concatenate([xtr, xva]), np.concatenate([ytr, yva]))
    scores = _scores(model, xte, metric)
    return ProbeResult(metrics.compute(metric, yte, scores), float(valid_value), {"C": c}, scores)


def _scores(model: LogisticRegression, x: np.ndarray, metric: str) -> np.ndarray:
    """Class probabilities placed in columns by class id (classes absent from train get 0)."""
    proba = model.predict_proba(x)
    full = np.zeros((len(x), int(max(model.classes_.max() + 1, 2))))
    full[:, model.classes_] = proba
    return full


def residue_rows(feats: list[np.ndarray], targets: list[np.ndarray], limit: int | None = None,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scored residues (label >= 0) of per-residue features, optionally a seeded subsample of ``limit`` rows."""
    x = np.concatenate([f[: len(t)][t >= 0] for f, t in zip(feats, targets)])
    y = np.concatenate([t[t >= 0] for t in targets])
    if limit is not None and len(y) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), limit, replace=False))
        x, y = x[keep], y[keep]
    return x, y


SEP_BINS = (6, 9, 12, 18, 24, 48, 10**9)


def pair_features(emb: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Features of residue pairs ``(i, j)``: the outer product ``e_i (x) e_j`` for small ``H`` (one-hot), else
    ``[e_i * e_j, |e_i - e_j|]``, plus a one-hot of the sequence-separation bin."""
    a, b = emb[i], emb[j]
    if emb.shape[1] <= 32:
        body = (a[:, :, None] * b[:, None, :]).reshape(len(i), -1)
    else:
        body = np.concatenate([a * b, np.abs(a - b)], axis=1)
    sep_bin = np.searchsorted(SEP_BINS, j - i, side="right") - 1
    return np.concatenate([body, np.eye(len(SEP_BINS) - 1, dtype=body.dtype)[sep_bin]], axis=1)


def pair_rows(feats: list[np.ndarray], contacts: list[np.ndarray], limit: int | None = None,
              seed: int = 0, min_sep: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Training rows of every known pair with separation >= ``min_sep`` (seeded subsample of ``limit``)."""
    rng = np.random.default_rng(seed)
    pairs = [(k, *np.triu_indices(len(c), k=min_sep)) for k, c in enumerate(contacts)]
    total = sum(len(i) for _, i, _ in pairs)
    frac = 1.0 if limit is None or total <= limit else limit / total
    xs, ys = [], []
    for k, i, j in pairs:
        keep = (contacts[k][i, j] >= 0) & (rng.random(len(i)) < frac)
        i, j = i[keep], j[keep]
        xs.append(pair_features(feats[k], i, j))
        ys.append(contacts[k][i, j])
    return np.concatenate(xs), np.concatenate(ys)


def predict_contacts(model: LogisticRegression, scaler: StandardScaler | None, emb: np.ndarray) -> np.ndarray:
    """``[L, L]`` contact probabilities (upper triangle, separation >= 1)."""
    length = len(emb)
    i, j = np.triu_indices(length, k=1)
    x = pair_features(emb, i, j)
    if scaler is not None:
        x = scaler.transform(x)
    probs = np.zeros((length, length))
    probs[i, j] = model.predict_proba(x)[:, 1]
    return probs


def fit_contacts(spec: ProbeSpec, tr: tuple[list, list], va: tuple[list, list], te: tuple[list, list],
                 seed: int = 0) -> ProbeResult:
    """Pairwise logistic probe; C selected on mean top-L/5 precision (separation >= 6) of the validation proteins."""
    xtr, ytr = pair_rows(*tr, limit=spec.max_train_residues, seed=seed)
    scaler = StandardScaler().fit(xtr) if spec.standardize else None
    if scaler is not None:
        xtr = scaler.transform(xtr)
    best = None
    for c in spec.cs:
        model = _logistic(c, seed).fit(xtr, ytr)
        v = metrics.mean_contact_precision([predict_contacts(model, scaler, e) for e in va[0]], va[1])
        if best is None or np.nan_to_num(v, nan=-np.inf) > best[0]:
            best = (np.nan_to_num(v, nan=-np.inf), c, v, model)
    _, c, valid_value, model = best
    probs = [predict_contacts(model, scaler, e) for e in te[0]]
    value = metrics.mean_contact_precision(probs, te[1])
    extra = {r: metrics.mean_contact_precision(probs, te[1], r) for r in ("short", "medium", "long")}
    return ProbeResult(value, float(valid_value), {"C": c, **{f"precision_l5_{k}": v for k, v in extra.items()}},
                       np.array([]))
