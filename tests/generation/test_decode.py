"""The KV-cached GLM decoding loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xtrimo.generation.decode import decode
from xtrimo.generation.sampling import SamplingConfig
from xtrimo.scoring import continuation_log_probs
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.tokenizer import EOS_ID, ResidueTokenizer

TOK = ResidueTokenizer()
PROMPTS = [TOK.encode("MKT"), np.zeros(0, np.int64), TOK.encode("GSSGSLE")]


@pytest.mark.parametrize("name", ["model", "model_2d"])
def test_cache_equals_full_recompute(name: str, request: pytest.FixtureRequest) -> None:
    m = request.getfixturevalue(name)
    a = decode(m, PROMPTS, SamplingConfig(), 23, seed=5)
    b = decode(m, PROMPTS, SamplingConfig(), 23, seed=5, use_cache=False)
    for x, y in zip(a, b):
        assert x.tokens.tolist() == y.tokens.tolist()
        np.testing.assert_allclose(x.log_probs, y.log_probs, atol=1e-4)


@pytest.mark.parametrize("name", ["model", "model_2d"])
def test_log_probs_match_the_training_layout(name: str, request: pytest.FixtureRequest) -> None:
    """Decoding (left-padded, cached, explicit masks) scores tokens exactly as glm_layout of pre-training does."""
    m = request.getfixturevalue(name)
    out = decode(m, PROMPTS, SamplingConfig(), 17, seed=2)
    for prompt, d in zip(PROMPTS, out):
        seq = np.concatenate((prompt, d.tokens))
        (ref,) = continuation_log_probs(m, [seq], [len(prompt)])  # residues then <eos>
        n = len(d.tokens)
        assert len(d.log_probs) == n + int(d.stopped)
        np.testing.assert_allclose(d.log_probs[:n], ref[:n], atol=1e-4)


def test_same_index_same_sample_in_any_batch(model: XTrimoPGLM) -> None:
    cfg = SamplingConfig(temperature=1.3, top_p=0.95)
    together = decode(model, PROMPTS, cfg, 19, seed=9)
    alone = decode(model, PROMPTS[2:], cfg, 19, seed=9, indices=[2])[0]
    assert alone.tokens.tolist() == together[2].tokens.tolist()
    other_seed = decode(model, PROMPTS, cfg, 19, seed=10)
    assert any(a.tokens.tolist() != b.tokens.tolist() for a, b in zip(together, other_seed))


def test_length_limits_and_allowed_residues(model: XTrimoPGLM) -> None:
    cfg = SamplingConfig(ban="AC")
    out = decode(model, [PROMPTS[0]] * 6, cfg, 15, min_new_tokens=11, seed=0)
    for d in out:
        assert 11 <= len(d.tokens) <= 15
        assert set(TOK.decode(d.tokens)) <= set("DEFGHIKLMNPQRSTVWY")


def test_rows_finish_at_different_lengths(model: XTrimoPGLM) -> None:
    """A strong <eos> bias makes some rows stop early while others run on; every row stays exact."""
    with torch.no_grad():
        model.transformer.output_layer.bias[EOS_ID] += 3.0
    out = decode(model, [PROMPTS[0]] * 8, SamplingConfig(), 30, seed=4)
    lengths = {len(d.tokens) for d in out}
    assert len(lengths) > 2 and any(d.stopped for d in out)
    ref = decode(model, [PROMPTS[0]] * 8, SamplingConfig(), 30, seed=4, use_cache=False)
    assert [d.tokens.tolist() for d in out] == [d.tokens.tolist() for d in ref]


def test_callback_streams_every_token(model: XTrimoPGLM) -> None:
    streamed: dict[int, list[str]] = {}
    out = decode(model, PROMPTS, SamplingConfig(), 12, seed=1,
                 callback=lambda i, t: streamed.setdefault(i, []).append(t))
    for d in out:
        tokens = streamed[d.index]
        assert "".join(t for t in tokens if len(t) == 1) == TOK.decode(d.tokens)
        assert (tokens[-1] in ("<eos>", "<eop>")) == d.stopped


def test_greedy_is_deterministic_argmax(model: XTrimoPGLM) -> None:
    a = decode(model, PROMPTS, SamplingConfig(temperature=0.0), 10, seed=1)
    b = decode(model, PROMPTS, SamplingConfig(temperature=0.0), 10, seed=2)
    assert [d.tokens.tolist() for d in a] == [d.tokens.tolist() for d in b]
