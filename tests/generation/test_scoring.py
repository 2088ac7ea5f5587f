"""Sequence log-likelihood under the GLM objective and masked-marginal variant scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xtrimo.generation.scoring import masked_marginal_scores, parse_variant, sequence_log_likelihoods
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.tokenizer import EOS_ID, GMASK_ID, MASK_ID, SOP_ID, ResidueTokenizer

TOK = ResidueTokenizer()
SEQS = ["MKTAYIAKQRQISFVKSHF", "GSSG", "MLSEGEWQLVLHVWAKVEAD"]


def _naive_ll(model: XTrimoPGLM, seq: str) -> float:
    """Unbatched, hand-built layout: <gmask> <sop> residues, positions (0.., block 1..), causal after <gmask>."""
    ids = TOK.encode(seq)
    n = len(ids)
    tokens = torch.tensor([[GMASK_ID, SOP_ID, *ids.tolist()]])
    pos = torch.tensor([[[0] * (n + 2), [0, *range(1, n + 2)]]])
    mask = torch.ones(n + 2, n + 2, dtype=torch.bool).tril()
    with torch.no_grad():
        lp = model(tokens, position_ids=pos, attention_mask=mask[None, None])["logits"][0].log_softmax(-1)
    target = [*ids.tolist(), EOS_ID]
    return float(sum(lp[i + 1, t] for i, t in enumerate(target)))


def test_log_likelihood_batched_equals_naive(model: XTrimoPGLM) -> None:
    scores = sequence_log_likelihoods(model, SEQS, batch_size=2)
    for s, sc in zip(SEQS, scores):
        assert sc.num_tokens == len(s) + 1
        assert sc.log_likelihood == pytest.approx(_naive_ll(model, s), abs=1e-3)
        assert sc.perplexity == pytest.approx(np.exp(-sc.log_likelihood / sc.num_tokens))


def test_masked_marginal_equals_naive(model: XTrimoPGLM) -> None:
    wt = "MKTAYIAKQRQISFVKSHF"
    variants = ["K2R", "A4G:F14W", "M1M"]
    got = masked_marginal_scores(model, wt, variants, batch_size=2)
    ids = torch.from_numpy(TOK.encode_mlm(wt))

    def site(pos: int, wt_aa: str, mt: str) -> float:
        x = ids.clone()
        x[pos] = MASK_ID
        with torch.no_grad():
            lp = model(x[None])["logits"][0, pos].log_softmax(-1)
        return float(lp[TOK.token_to_id[mt]] - lp[TOK.token_to_id[wt_aa]])

    expected = [site(1, "K", "R"), site(3, "A", "G") + site(13, "F", "W"), 0.0]
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("variant, message", [
    ("A2G", "the wild type has 'K' at position 2, not 'A'"),
    ("K99R", "position 99 outside the 5-residue wild type"),
    ("K2", "malformed mutation"),
    ("K2J", "invalid residue 'J'"),
])
def test_bad_variants(variant: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_variant(variant, "MKTAY")
