"""The compiled decoding step: the same math as the model, the same samples as the eager loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xtrimo.generation import Generator
from xtrimo.generation.compiled import compile_decoding
from xtrimo.generation.decode import decode
from xtrimo.generation.sampling import SamplingConfig
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.model.layers import KVCache
from xtrimo.model.layout import prompt_batch
from xtrimo.tokenizer import EOP_ID, EOS_ID, ResidueTokenizer

TOK = ResidueTokenizer()


@pytest.mark.parametrize("name", ["model", "model_2d"])
def test_compiled_step_equals_the_model(name: str, request: pytest.FixtureRequest) -> None:
    """The compiled decode_step (one row: multiply-reduce; three rows on two threads: (W @ x^T)^T) against the
    model's own cached forward: a left-padded context, then 4 new tokens; logits and cache entries."""
    m: XTrimoPGLM = request.getfixturevalue(name)
    compiled = XTrimoPGLM(m.config).eval()
    compiled.load_state_dict(m.state_dict())
    compile_decoding(compiled)
    torch.manual_seed(3)
    steps, before = 4, torch.get_num_threads()
    for batch, threads in ((1, 1), (3, 1), (3, 2)):
        prompts = [TOK.encode("MKTAY"), TOK.encode("GSS"), TOK.encode("LVNM")][:batch]
        inputs, context = prompt_batch(prompts, "glm", steps)
        inputs.input_ids[:, context:] = torch.randint(4, 28, (batch, steps))
        caches = [KVCache(m.config, batch, context + steps + 3, torch.device("cpu"), torch.float32) for _ in "ab"]
        torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                m(inputs.columns(0, context), cache=caches[0])
                compiled(inputs.columns(0, context), cache=caches[1])
                for t in range(context, context + steps):
                    ref = m(inputs.columns(t, t + 1), cache=caches[0], key_valid=inputs.valid[:, : t + 1])
                    ours = compiled.decode_step(inputs.input_ids[:, t], inputs.position_ids[:, :, t],
                                                inputs.valid[:, : t + 1], caches[1])
                    torch.testing.assert_close(ours, ref["logits"][:, -1], atol=1e-5, rtol=1e-5)
        finally:
            torch.set_num_threads(before)
        assert caches[0].length == caches[1].length == context + steps
        for a, b in zip(caches[0].keys + caches[0].values, caches[1].keys + caches[1].values):
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
    ours = decode(gen.model, prompts, cfg, 29, min_new_tokens=3, seed=11)
    eager = XTrimoPGLM(model.config).eval()
    eager.load_state_dict(model.state_dict())
    ref = decode(eager, prompts, cfg, 29, min_new_tokens=3, seed=11)
    assert len({len(d.tokens) for d in ours}) == 4 and all(d.stopped for d in ours)
    for a, b in zip(ours, ref):
        assert a.tokens.tolist() == b.tokens.tolist() and a.stopped == b.stopped
        np.testing.assert_allclose(a.log_probs, b.log_probs, atol=1e-5)
        assert len(a.tokens) >= 3 and "C" not in TOK.decode(a.tokens)


def test_missing_compiler_is_one_line(model: XTrimoPGLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    with pytest.raises(RuntimeError, match="needs a C\\+\\+ compiler: 'no-such-c\\+\\+-compiler' not found"):
        Generator(model, "cpu", compile=True)


def _step_inputs(m: XTrimoPGLM, context: int, spare: int) -> tuple:
    """A one-row prompt run into a cache with ``spare`` free slots after the next token: the next decode_step's
    arguments (tokens, positions, key_valid, cache)."""
    inputs, length = prompt_batch([TOK.encode("MKTAYIAK"[:context])], "glm", 1)
    inputs.input_ids[:, length] = 7
    cache = KVCache(m.config, 1, length + 1 + spare, torch.device("cpu"), torch.float32)
    m(inputs.columns(0, length), cache=cache)
    return inputs.input_ids[:, length], inputs.position_ids[:, :, length], inputs.valid[:, : length + 1], cache


def test_exported_step_follows_the_weights_and_a_full_cache(model: XTrimoPGLM) -> None:
    """The CPU step (AOTInductor packages reading the parameters in place): weights loaded in place and weights
    assigned as new tensors are both seen; a cache filled to its last slot runs eagerly; past it, a one-line error."""
    compiled = XTrimoPGLM(model.config).eval()
    compiled.load_state_dict(model.state_dict())
    compile_decoding(compiled)
    torch.manual_seed(5)
    with torch.no_grad():
        for load in (None, dict(), dict(assign=True)):
            if load is not None:
                other = {k: v + 0.05 * torch.randn_like(v) if k != "rotary.inv_freq" else v  # RoPE's stays
                         for k, v in model.state_dict().items()}
                compiled.load_state_dict({k: v.clone() for k, v in other.items()}, **load)
                model.load_state_dict(other)
            for spare in (2, 0):  # 0: the new token takes the cache's last slot (no package takes it)
                ref = model.decode_step(*_step_inputs(model, 5, spare))
                ours = compiled.decode_step(*_step_inputs(compiled, 5, spare))
                torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
        tokens, positions, key_valid, cache = _step_inputs(compiled, 5, 0)
        cache.length += 1
        with pytest.raises(ValueError, match="KV cache overflow"):
            compiled.decode_step(tokens, positions, torch.ones(1, cache.length + 1, dtype=torch.bool), cache)
