"""ProteinGym's supervised benchmark: fold schemes on synthetic assays with odd sizes, the one-hot features by hand,
cross-validation against sklearn, and the numpy AdamW linear head against torch's nn.Linear + AdamW."""

from __future__ import annotations

import csv
import gzip
import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge
from sklearn.metrics import make_scorer
from sklearn.model_selection import KFold, cross_val_score

from xtrimo.benchmarks.proteingym import Assay, Mutants
from xtrimo.benchmarks.proteingym_supervised import (
    RIDGE_ALPHAS,
    LinearConfig,
    aggregate_supervised,
    cross_validate,
    fit_predict_linear,
    fit_predict_ridge,
    folds,
    onehot_features,
    read_published_supervised,
    run_supervised,
)

AA = "ACDEFGHIKLMNPQRSTVWY"
WT = "MKTAYIAKQRQISFVKSHFSRQLEDNPGW"  # 29 residues


def _assay(positions: list[int], per_site: int | None = None, seed: int = 0) -> tuple[Assay, Mutants]:
    """Single mutants at ``positions`` (1-based): 1 + pos % 3 substitutions per site (odd, uneven counts)."""
    rng = np.random.default_rng(seed)
    codes, seqs = [], []
    for pos in positions:
        wt = WT[pos - 1]
        for aa in [a for a in AA if a != wt][: per_site or 1 + pos % 3]:
            codes.append(f"{wt}{pos}{aa}")
            seqs.append(WT[: pos - 1] + aa + WT[pos:])
    assay = Assay("TOY_Test_2024", "TOY", "Stability", None, WT, Path("unused.csv"))
    return assay, Mutants(codes, seqs, rng.normal(size=len(codes)))


def _positions(mutants: Mutants) -> np.ndarray:
    return np.array([int(c[1:-1]) for c in mutants.codes])


def test_modulo_folds_are_the_position_rank_mod_5():
    # gap-free mutated region 5..27: ProteinNPT's rank % 5 is position % 5 up to a relabelling of the folds
    assay, mutants = _assay(list(range(5, 28)))
    pos, fold = _positions(mutants), folds(mutants, assay, "modulo")
    assert np.array_equal(fold, (pos - 5) % 5)
    assert len({(p % 5, f) for p, f in zip(pos, fold)}) == 5  # the same partition as position % 5
    # with gaps the rank, not the position, decides (cv_split.py @ 7e715f01)
    gapped = [2, 3, 5, 8, 13, 21, 22, 23, 29]
    assay, mutants = _assay(gapped)
    rank = np.searchsorted(np.array(gapped), _positions(mutants))
    assert np.array_equal(folds(mutants, assay, "modulo"), rank % 5)


def test_contiguous_folds_are_blocks_of_mutated_positions():
    positions = [1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19, 20, 22, 23, 24, 25, 27, 29]  # 23 sites
    assay, mutants = _assay(positions)
    fold, pos = folds(mutants, assay, "contiguous"), _positions(mutants)
    assert set(fold) == set(range(5)) and fold.size == len(mutants.codes)
    order = np.argsort(pos, kind="stable")
    assert np.all(np.diff(fold[order]) >= 0)  # non-decreasing along the sequence: contiguous blocks
    sites_per_fold = [len(set(pos[fold == k])) for k in range(5)]
    assert sites_per_fold == [5, 5, 5, 4, 4]  # divmod(23, 5): the first 3 blocks one site longer
    for k in range(5):  # each block is a run of consecutive mutated positions
        ranks = np.searchsorted(np.array(positions), np.unique(pos[fold == k]))
        assert np.array_equal(ranks, np.arange(ranks[0], ranks[0] + ranks.size))


def test_random_folds_are_seeded_and_balanced_in_expectation():
    assay, mutants = _assay(list(range(1, 30)), per_site=19)  # 551 mutants
    a, b = folds(mutants, assay, "random", seed=3), folds(mutants, assay, "random", seed=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, folds(mutants, assay, "random", seed=4))
    counts = np.bincount(a, minlength=5)
    n = a.size
    sigma = math.sqrt(n * 0.2 * 0.8)  # ProteinNPT draws each mutant's fold independently (np.random.randint)
    assert counts.size == 5 and np.all(np.abs(counts - n / 5) < 4 * sigma)


def test_fewer_positions_than_folds_falls_back_to_four():
    assay, mutants = _assay([3, 8, 9, 17])
    for scheme in ("random", "modulo", "contiguous"):
        assert set(folds(mutants, assay, scheme)) <= set(range(4))
    assert set(folds(mutants, assay, "modulo")) == set(range(4))
    with pytest.raises(ValueError, match="fewer than 5 folds"):
        assay3, mutants3 = _assay([3, 8, 9])
        folds(mutants3, assay3, "modulo")
    with pytest.raises(ValueError, match="unknown fold scheme"):
        folds(mutants, assay, "blocks")


def test_onehot_features_of_two_mutants_by_hand():
    x = onehot_features(["GCDE", "ACYE"])  # A1G and D3Y of ACDE
    assert x.shape == (2, 80) and x.nnz == 8
    expected = np.zeros((2, 80))
    expected[0, [AA.index("G"), 20 + AA.index("C"), 40 + AA.index("D"), 60 + AA.index("E")]] = 1
    expected[1, [AA.index("A"), 20 + AA.index("C"), 40 + AA.index("Y"), 60 + AA.index("E")]] = 1
    assert np.array_equal(x.toarray(), expected)
    with pytest.raises(ValueError, match="residue 'X'"):
        onehot_features(["ACXE"])
    with pytest.raises(ValueError, match="residues"):
        onehot_features(["ACDE", "ACD"])


def _data(seed: int = 1):
    assay, mutants = _assay(list(range(1, 30)), seed=seed)
    x = onehot_features(mutants.sequences)
    # a learnable signal: a per-site effect of leaving the wild type, a smaller per-residue one, and noise
    rng = np.random.default_rng(seed)
    effect = np.repeat(rng.normal(size=len(WT)), 20) + 0.3 * rng.normal(size=x.shape[1])
    effect[[20 * i + AA.index(aa) for i, aa in enumerate(WT)]] = 0.0
    y = x @ effect + 0.3 * rng.normal(size=x.shape[0])
    return assay, mutants, x, y


def test_cross_validation_equals_sklearn():
    assay, mutants, x, y = _data()
    fold = folds(mutants, assay, "random", seed=2)
    out = cross_validate(x, y, fold, partial(fit_predict_ridge, alpha=1.0))
    preds, labels, per_fold = np.empty(y.size), np.empty(y.size), []
    for k in range(5):
        test = fold == k
        mean, std = y[~test].mean(), y[~test].std()
        model = Ridge(alpha=1.0).fit(x[~test], (y[~test] - mean) / std)
        preds[test], labels[test] = model.predict(x[test]), (y[test] - mean) / std
        per_fold.append(spearmanr(preds[test], labels[test]).statistic)
    assert out["folds"] == list(range(5))
    np.testing.assert_allclose(out["predictions"], preds, atol=1e-12)
    # sklearn's sparse solver stops at tol=1e-4: close to the exact (dense, Cholesky) solution, not equal
    exact = Ridge(alpha=1.0).fit(x[fold != 0].toarray(), (y[fold != 0] - y[fold != 0].mean()) / y[fold != 0].std())
    np.testing.assert_allclose(out["predictions"][fold == 0], exact.predict(x[fold == 0].toarray()), atol=1e-3)
    np.testing.assert_allclose(out["fold_spearman"], per_fold, atol=1e-12)
    assert out["spearman"] == pytest.approx(spearmanr(preds, labels).statistic, abs=1e-12)
    assert out["mean_fold_spearman"] == pytest.approx(np.mean(per_fold), abs=1e-12)
    assert out["spearman"] > 0.5  # the signal is learnable under random folds


def _spearman_or_nan(a: np.ndarray, b: np.ndarray) -> float:
    return float("nan") if np.ptp(a) == 0 or np.ptp(b) == 0 else spearmanr(a, b).statistic


def test_ridge_inner_selection_follows_hsu_et_al():
    _, _, x, y = _data(seed=5)
    inner = KFold(5, shuffle=True, random_state=int(np.random.default_rng(0).integers(2**31)))
    scores = [cross_val_score(Ridge(alpha=a), x, y, cv=inner, scoring=make_scorer(_spearman_or_nan)).mean()
              for a in RIDGE_ALPHAS]
    best = RIDGE_ALPHAS[int(np.argmax(scores))]
    got = fit_predict_ridge(x, y, x[:7], np.random.default_rng(0))
    np.testing.assert_allclose(got, Ridge(alpha=best).fit(x, y).predict(x[:7]), atol=1e-12)


def _torch_linear(x_train, y_train, x_test, seed: int, cfg: LinearConfig) -> np.ndarray:
    """nn.Linear + torch.optim.AdamW + clip_grad_norm_, ProteinNPT's loop, with the numpy code's random draws."""
    rng = np.random.default_rng(seed)
    d = x_train.shape[1]
    bound = 1 / math.sqrt((d // 20 + 2) * 33)
    head = torch.nn.Linear(d, 1, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=d))[None])
        head.bias.fill_(float(rng.uniform(-bound, bound)))
    opt = torch.optim.AdamW([{"params": [head.weight], "weight_decay": cfg.weight_decay},
                             {"params": [head.bias], "weight_decay": 0.0}],
                            lr=cfg.max_lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    xt, yt, n = torch.from_numpy(x_train.toarray()), torch.from_numpy(y_train), x_train.shape[0]
    order, start = rng.permutation(n), 0
    for step in range(1, cfg.steps + 1):
        if start >= n:
            order, start = rng.permutation(n), 0
        idx = torch.from_numpy(order[start:start + cfg.batch_size])
        start += cfg.batch_size
        if step <= cfg.warmup_steps:
            lr = cfg.max_lr * step / cfg.warmup_steps
        else:
            ratio = (step - cfg.warmup_steps) / (cfg.steps - cfg.warmup_steps)
            lr = cfg.min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (cfg.max_lr - cfg.min_lr)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        torch.nn.functional.mse_loss(head(xt[idx]).squeeze(-1), yt[idx]).backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), cfg.grad_clip)
        opt.step()
    with torch.no_grad():
        return head(torch.from_numpy(x_test.toarray())).squeeze(-1).numpy()


def test_linear_head_matches_torch_adamw():
    assay, mutants, x, y = _data(seed=3)
    test = folds(mutants, assay, "contiguous") == 2  # held-out sites: weights that only decay
    cfg = LinearConfig(steps=45, batch_size=16, warmup_steps=7, max_lr=3e-2, min_lr=1e-3, weight_decay=0.05,
                       grad_clip=0.5)
    ours = fit_predict_linear(x[~test], y[~test], x[test], np.random.default_rng(11), cfg)
    ref = _torch_linear(x[~test], y[~test], x[test], 11, cfg)
    assert (~test).sum() % cfg.batch_size != 0  # a partial batch ends each epoch
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-11)


def _folder(root: Path) -> Path:
    (root / "assays").mkdir(parents=True)
    ref = [["DMS_id", "UniProt_ID", "coarse_selection_type", "DMS_binarization_cutoff", "target_seq"]]
    for i, (dms_id, kind) in enumerate((("TOY_A_2020", "Stability"), ("TOY_B_2021", "Activity"))):
        _, mutants = _assay(list(range(1 + i, 26)), seed=i)
        with gzip.open(root / "assays" / f"{dms_id}.csv.gz", "wt", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["mutant", "mutated_sequence", "DMS_score"])
            w.writerows(zip(mutants.codes, mutants.sequences, mutants.dms))
        ref.append([dms_id, "TOY", kind, "0.0", WT])
    with open(root / "reference.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(ref)
    with open(root / "published_supervised_spearman.csv", "w", newline="") as fh:
        fh.write("DMS_id,ProteinGym_v1_DMS_id,one_hot_random,one_hot_modulo,one_hot_contiguous\n"
                 "TOY_A_2020,TOY_A_2020,0.5,0.01,\nTOY_B_2021,TOY_B_2021,0.4,-0.02,0.1\n")
    return root


def test_run_supervised_and_published(tmp_path: Path):
    root = _folder(tmp_path / "gym")
    records = run_supervised(root, "modulo", partial(fit_predict_ridge, alpha=1.0), progress=False)
    assert [r["DMS_id"] for r in records] == ["TOY_A_2020", "TOY_B_2021"]
    for r in records:
        assert r["n_folds"] == 5 and len(r["fold_spearman"]) == 5 and -1 <= r["spearman"] <= 1
    agg = aggregate_supervised(records)
    assert agg["value"] == pytest.approx(np.mean([r["spearman"] for r in records]))  # one protein per type
    assert read_published_supervised(root, "contiguous") == {"TOY_B_2021": 0.1}
    assert read_published_supervised(root, "random") == {"TOY_A_2020": 0.5, "TOY_B_2021": 0.4}
    with pytest.raises(ValueError, match="no column"):
        read_published_supervised(root, "random", model="esm1v_embeddings")
