"""Sequence log-likelihoods (GLM and CLM layouts, pseudo-log-likelihood) and variant scores, against naive loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xtrimo.scoring import (
    log_likelihood_ratio_scores, masked_marginal_scores, parse_variant, pseudo_log_likelihoods, scoring_window,
    sequence_log_likelihoods,
)
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.model.layout import ModelInput
from xtrimo.tokenizer import EOS_ID, GMASK_ID, MASK_ID, SOP_ID, ResidueTokenizer

TOK = ResidueTokenizer()
SEQS = ["MKTAYIAKQRQISFVKSHF", "GSSG", "MLSEGEWQLVLHVWAKVEAD"]


def _naive_ll(model: XTrimoPGLM, seq: str) -> tuple[float, float]:
    """Unbatched, hand-built layouts; (residues, <eos>) log-probabilities.

    GLM: <gmask> <sop> residues, positions (0.., block 1..), causal after <gmask>. CLM (causal checkpoints):
    <gmask> <sop> <eos> residues, positions (0, 0..), causal from the first token.
    """
    ids = TOK.encode(seq).tolist()
    n = len(ids)
    if model.config.is_causal:
        tokens, pos, first = [GMASK_ID, SOP_ID, EOS_ID, *ids], [[0] * (n + 3), list(range(n + 3))], 2
    else:
        tokens, pos, first = [GMASK_ID, SOP_ID, *ids], [[0] * (n + 2), [0, *range(1, n + 2)]], 1
    inputs = ModelInput(torch.tensor([tokens]), torch.tensor([pos]), torch.tensor([0]),
                        torch.ones(1, len(tokens), dtype=torch.bool))
    with torch.no_grad():
        lp = model(inputs)["logits"][0].log_softmax(-1)
    per = [float(lp[first + i, t]) for i, t in enumerate([*ids, EOS_ID])]
    return sum(per[:-1]), per[-1]


@pytest.mark.parametrize("causal", [False, True])
def test_log_likelihood_batched_equals_naive(model: XTrimoPGLM, causal: bool) -> None:
    model.config.is_causal = causal
    for with_eos in (True, False):
        scores = sequence_log_likelihoods(model, SEQS, batch_size=2, with_eos=with_eos)
        for s, sc in zip(SEQS, scores):
            residues, eos = _naive_ll(model, s)
            assert sc.num_tokens == len(s) + int(with_eos)
            assert sc.residue_log_likelihood == pytest.approx(residues, abs=1e-3)
            assert sc.eos_log_prob == pytest.approx(eos, abs=1e-4)
            assert sc.log_likelihood == pytest.approx(residues + eos * with_eos, abs=1e-3)
            assert sc.perplexity == pytest.approx(np.exp(-sc.log_likelihood / sc.num_tokens))


def test_pseudo_log_likelihood_and_ratio(model: XTrimoPGLM) -> None:
    """PLL: one masked pass per residue, MLM layout; the ratio: whole-sequence log-likelihoods, <eos> included."""
    seq = SEQS[1]
    (pll,) = pseudo_log_likelihoods(model, [seq], batch_size=3)
    ids = torch.tensor([*TOK.encode(seq).tolist(), EOS_ID])
    expected = 0.0
    for i in range(len(seq)):
        x = ids.clone()
        x[i] = MASK_ID
        with torch.no_grad():
            expected += float(model(x[None])["logits"][0, i].log_softmax(-1)[ids[i]])
    assert pll.log_likelihood == pytest.approx(expected, abs=1e-4) and pll.num_tokens == len(seq)
    (llr,) = log_likelihood_ratio_scores(model, seq, ["S2A"])
    wt, mt = sequence_log_likelihoods(model, [seq, "GASG"])
    assert llr == pytest.approx(mt.log_likelihood - wt.log_likelihood, abs=1e-5)


def test_objectives_decide_what_can_be_scored(model: XTrimoPGLM) -> None:
    model.config.objectives = ("mlm",)
    with pytest.raises(ValueError, match="trained with MLM only"):
        sequence_log_likelihoods(model, SEQS)
    model.config.objectives = ("clm",)
    model.config.is_causal = True
    with pytest.raises(ValueError, match="needs a checkpoint trained with MLM"):
        masked_marginal_scores(model, SEQS[0], ["K2R"])


def test_masked_marginal_equals_naive(model: XTrimoPGLM) -> None:
    wt = "MKTAYIAKQRQISFVKSHF"
    variants = ["K2R", "A4G:F14W", "M1M"]
    got = masked_marginal_scores(model, wt, variants, batch_size=2)
    ids = torch.tensor([*TOK.encode(wt).tolist(), EOS_ID])

    def site(pos: int, wt_aa: str, mt: str) -> float:
        x = ids.clone()
        x[pos] = MASK_ID
        with torch.no_grad():
            lp = model(x[None])["logits"][0, pos].log_softmax(-1)
        return float(lp[TOK.token_to_id[mt]] - lp[TOK.token_to_id[wt_aa]])

    expected = [site(1, "K", "R"), site(3, "A", "G") + site(13, "F", "W"), 0.0]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_wildtype_marginals_and_windows_equal_naive(model: XTrimoPGLM) -> None:
    """Wild-type marginals read one unmasked pass; a wild type longer than the context is read in ProteinGym's
    window around each site (here a context of 9 residues + <eos> on a 19-residue wild type)."""
    wt = "MKTAYIAKQRQISFVKSHF"
    variants = ["K2R", "Q11E", "H18W:M1A"]

    def naive(pos: int, wt_aa: str, mt: str, lo: int, hi: int, masked: bool) -> float:
        x = torch.tensor([*TOK.encode(wt[lo:hi]).tolist(), EOS_ID])
        if masked:
            x[pos - lo] = MASK_ID
        with torch.no_grad():
            lp = model(x[None])["logits"][0, pos - lo].log_softmax(-1)
        return float(lp[TOK.token_to_id[mt]] - lp[TOK.token_to_id[wt_aa]])

    whole = [(1, "K", "R")], [(10, "Q", "E")], [(17, "H", "W"), (0, "M", "A")]
    expected = [sum(naive(p, a, b, 0, 19, False) for p, a, b in m) for m in whole]
    np.testing.assert_allclose(masked_marginal_scores(model, wt, variants, masked=False), expected, atol=1e-4)
    assert [scoring_window(p, 19, 9) for p in (1, 10, 17, 0)] == [(0, 9), (6, 14), (10, 19), (0, 9)]
    model.config.seq_length = 10
    for masked in (True, False):
        expected = [sum(naive(p, a, b, *scoring_window(p, 19, 9), masked) for p, a, b in m) for m in whole]
        np.testing.assert_allclose(masked_marginal_scores(model, wt, variants, 2, masked), expected, atol=1e-4)


@pytest.mark.parametrize("variant, message", [
    ("A2G", "the wild type has 'K' at position 2, not 'A'"),
    ("K99R", "position 99 outside the 5-residue wild type"),
    ("K2", "malformed mutation"),
    ("K2J", "invalid residue 'J'"),
])
def test_bad_variants(variant: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_variant(variant, "MKTAY")
