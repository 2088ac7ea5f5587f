"""The compiled decoding step: the same math as the model, the same samples as the eager loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xtrimo.generation import Generator
from xtrimo.generation.compiled import forward_one
from xtrimo.generation.decode import decode
from xtrimo.generation.sampling import SamplingConfig
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.model.layers import KVCache
from xtrimo.tokenizer import EOP_ID, EOS_ID, ResidueTokenizer

TOK = ResidueTokenizer()


@pytest.mark.parametrize("name", ["model", "model_2d"])
@pytest.mark.parametrize(("batch", "weight_left"), [(1, False), (3, False), (3, True)])
def test_one_token_step_equals_the_model(
    name: str, batch: int, weight_left: bool, request: pytest.FixtureRequest
) -> None:
    """forward_one against the model's own cached forward: a 7-token left-padded context, then 4 new tokens."""
    m: XTrimoPGLM = request.getfixturevalue(name)
    torch.manual_seed(3)
    ctx, steps = 7, 4
    tokens = torch.randint(4, 28, (batch, ctx + steps))
    valid = torch.ones(batch, ctx + steps, dtype=torch.bool)
    valid[0, :2] = False  # row 0 is left-padded
    positions = torch.stack((torch.arange(ctx + steps).expand(batch, -1), torch.zeros(batch, ctx + steps).long()), 1)
    positions[:, 1, ctx:] = torch.arange(2, steps + 2)
    ref_cache = KVCache(m.config, batch, ctx + steps + 3, torch.device("cpu"), torch.float32)
    our_cache = KVCache(m.config, batch, ctx + steps + 3, torch.device("cpu"), torch.float32)
    mask = (valid[:, None, None, :ctx]).expand(batch, 1, ctx, ctx)
    with torch.no_grad():
        for cache in (ref_cache, our_cache):
            m(tokens[:, :ctx], position_ids=positions[:, :, :ctx], attention_mask=mask, cache=cache)
        for t in range(ctx, ctx + steps):
            ref = m(tokens[:, t : t + 1], position_ids=positions[:, :, t : t + 1],
                    attention_mask=valid[:, None, None, : t + 1], cache=ref_cache)["logits"][:, -1]
            ours = forward_one(m, tokens[:, t], positions[:, :, t], valid[:, : t + 1], our_cache.keys, our_cache.values,
                               weight_left)
            torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(ref_cache.keys + ref_cache.values, our_cache.keys + our_cache.values):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_compiled_decoding_gives_the_eager_samples(model: XTrimoPGLM) -> None:
    """Padded prompts, every sampling control, rows stopping at different lengths down to a one-row batch (both
    compiled graphs): the same tokens and log-probabilities as the eager loop."""
    with torch.no_grad():  # stops a little less likely: rows end after 7, 13, 15 and 21 tokens
        model.transformer.output_layer.bias[[EOS_ID, EOP_ID]] -= 1.0
    prompts = [TOK.encode("MKT"), np.zeros(0, np.int64), TOK.encode("GSSGSLE"), TOK.encode("M")]
    cfg = SamplingConfig(temperature=0.9, top_k=12, top_p=0.95, repetition_penalty=1.2, ban="C")
    gen = Generator(model, "cpu", compile=True)
    assert all(p.is_contiguous() for p in gen.model.parameters())
    ours = decode(gen.model, prompts, cfg, 29, min_new_tokens=3, seed=11, step_fn=gen.step_fn)
    ref = decode(gen.model, prompts, cfg, 29, min_new_tokens=3, seed=11)
    assert len({len(d.tokens) for d in ours}) == 4 and all(d.stopped for d in ours)
    for a, b in zip(ours, ref):
        assert a.tokens.tolist() == b.tokens.tolist() and a.stopped == b.stopped
        np.testing.assert_allclose(a.log_probs, b.log_probs, atol=1e-5)
        assert len(a.tokens) >= 3 and "C" not in TOK.decode(a.tokens)


def test_missing_compiler_is_one_line(model: XTrimoPGLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    with pytest.raises(RuntimeError, match="needs a C\\+\\+ compiler: 'no-such-c\\+\\+-compiler' not found"):
        Generator(model, "cpu", compile=True)
