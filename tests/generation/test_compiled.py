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
