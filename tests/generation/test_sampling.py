"""Pure logits -> ids functions."""

from __future__ import annotations

import pytest
import torch

from xtrimo.generation.sampling import (
    SamplingConfig, allowed_ids, apply_repetition_penalty, draw, forbid, process_logits, residue_mask, top_k_filter,
    top_p_filter, uniform,
)
from xtrimo.tokenizer import EOS_ID, STANDARD_RESIDUES, InvalidResidueError, ResidueTokenizer


@pytest.mark.parametrize("kwargs, message", [
    ({"top_p": 0.0}, "top-p must be in (0, 1]"), ({"top_p": 1.5}, "top-p must be in (0, 1]"),
    ({"temperature": -1.0}, "temperature"), ({"top_k": -2}, "top-k"), ({"repetition_penalty": 0.0}, "repetition"),
    ({"ban": STANDARD_RESIDUES}, "leaves no residue"),
])
def test_config_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SamplingConfig(**kwargs)


def test_ban_with_invalid_letter_names_it() -> None:
    with pytest.raises(InvalidResidueError, match="'1' at position 2 of record '--ban'"):
        SamplingConfig(ban="C1")


def test_allowed_ids_standard_ban_and_stops() -> None:
    tok = ResidueTokenizer()
    allowed = allowed_ids(SamplingConfig(ban="cW"))
    letters = {tok.id_to_token[i] for i in allowed.nonzero().squeeze(1).tolist()}
    assert letters == (set(STANDARD_RESIDUES) - {"C", "W"}) | {"<eop>", "<eos>"}
    wide = residue_mask(SamplingConfig(allow_nonstandard=True))
    assert {tok.id_to_token[i] for i in wide.nonzero().squeeze(1).tolist()} == set(STANDARD_RESIDUES) | set("XBUZO")


def test_top_k_and_top_p() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05], [0.05, 0.05, 0.8, 0.05, 0.05]]))
    k = top_k_filter(logits, 2)
    assert torch.isfinite(k).sum(1).tolist() == [2, 5]  # ties at the 2nd value (four 0.05) are all kept
    p = top_p_filter(logits, 0.7)
    assert torch.isfinite(p[0]).tolist() == [True, True, False, False, False]  # 0.5 + 0.2 reaches 0.7
    assert torch.isfinite(p[1]).tolist() == [False, False, True, False, False]
    tiny = top_p_filter(logits, 1e-6)
    assert (torch.isfinite(tiny).sum(1) == 1).all()  # never empty


def test_repetition_penalty_lowers_seen_ids_both_signs() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    seen = torch.tensor([[True, True, False]])
    out = apply_repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0]]


def test_forbid_only_flagged_rows() -> None:
    logits = torch.zeros(2, 40)
    out = forbid(logits, (EOS_ID,), torch.tensor([True, False]))
    assert out[0, EOS_ID] == float("-inf") and out[1, EOS_ID] == 0


def test_uniform_is_counter_based() -> None:
    rows = torch.arange(50)
    a = uniform(3, rows, 7)
    assert torch.equal(a[10:20], uniform(3, rows[10:20], 7))  # same value whatever the batch
    assert not torch.equal(a, uniform(4, rows, 7)) and not torch.equal(a, uniform(3, rows, 8))
    big = uniform(0, torch.arange(100_000), 0)
    assert 0 <= big.min() and big.max() < 1 and abs(big.mean().item() - 0.5) < 0.01


def test_draw_matches_the_distribution() -> None:
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    n = 40_000
    logits = probs.log().expand(n, 4)
    ids = draw(logits, uniform(1, torch.arange(n), 0))
    freq = torch.bincount(ids, minlength=4).double() / n
    assert freq[1] == 0
    assert torch.allclose(freq, probs.double(), atol=0.01)
    assert draw(logits[:2], torch.zeros(2), greedy=True).tolist() == [2, 2]


def test_draw_never_returns_a_forbidden_id_at_the_top_edge() -> None:
    logits = torch.tensor([[0.0, 0.0, float("-inf")]])
    assert draw(logits, torch.tensor([1.0 - 2**-24])).item() == 1


def test_process_logits_temperature() -> None:
    logits = torch.tensor([[1.0, 2.0]])
    out = process_logits(logits, SamplingConfig(temperature=0.5))
    assert torch.allclose(out, torch.tensor([[2.0, 4.0]]))
