import math

import pytest
import torch

from xtrimo.config import ModelConfig
from xtrimo.model import KVCache, XTrimoPGLM
from xtrimo.model.layout import attention_mask, collate, from_ids, glm_sample
from xtrimo.tokenizer import EOS_ID
import numpy as np


def _rand_tokens(b, length, gen=None):
    return torch.randint(1, 28, (b, length), generator=gen)


def _with_division(tokens, division):
    """MLM-layout positions for ``tokens`` (``<pad>`` = 0 as padding) with a given bidirectional prefix."""
    inputs = from_ids(tokens, "mlm")
    inputs.division = division
    return inputs


def test_shapes_odd_sizes(tiny_config):
    model = XTrimoPGLM(tiny_config).eval()
    tokens = _rand_tokens(3, 13)
    out = model(tokens, output_hidden_states=True, output_attentions=True)
    assert out["logits"].shape == (3, 13, 128)
    assert len(out["hidden_states"]) == tiny_config.num_layers + 1
    assert out["hidden_states"][-1].shape == (3, 13, 64)
    assert out["attentions"][0].shape == (3, 4, 13, 13)
    assert model.num_parameters() == tiny_config.num_parameters()


@pytest.mark.parametrize("mode", ["1d", "2d"])
def test_sdpa_matches_explicit_softmax(tiny_config, mode):
    tiny_config.rope_mode = mode
    model = XTrimoPGLM(tiny_config).eval()
    tokens = _rand_tokens(2, 17)
    tokens[1, 11:] = 0  # padding
    division = torch.tensor([17, 5])
    fast = model(_with_division(tokens, division))["logits"]
    slow = model(_with_division(tokens, division), output_attentions=True)["logits"]
    valid = tokens != 0
    torch.testing.assert_close(fast[valid], slow[valid], rtol=1e-5, atol=1e-5)


def test_padding_does_not_change_logits(tiny_config):
    model = XTrimoPGLM(tiny_config).eval()
    a, b = _rand_tokens(1, 13), _rand_tokens(1, 7)
    batch = torch.zeros(2, 13, dtype=torch.long)
    batch[0], batch[1, :7] = a[0], b[0]
    out = model(batch)["logits"]
    torch.testing.assert_close(out[0], model(a)["logits"][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1, :7], model(b)["logits"][0], rtol=1e-5, atol=1e-5)


def test_glm_mask_matrix():
    mask = attention_mask(torch.tensor([3]), torch.ones(1, 6, dtype=torch.bool))[0, 0].int()
    expected = torch.tensor([
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1],
    ])
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("mode", ["1d", "2d"])
def test_glm_prefix_bidirectional_span_causal(tiny_config, mode):
    tiny_config.rope_mode = mode
    model = XTrimoPGLM(tiny_config).eval()
    inputs = collate([glm_sample(np.array([3, 5, 7, 9, 11]), np.array([2, 4, 6, 8, EOS_ID]))])
    base = model(inputs)["logits"]
    changed = collate([glm_sample(np.array([3, 5, 7, 9, 11]), np.array([2, 4, 6, 13, EOS_ID]))])
    out = model(changed)["logits"]  # last span token changed: earlier positions must not see it
    torch.testing.assert_close(out[0, :-1], base[0, :-1])
    changed = collate([glm_sample(np.array([3, 5, 7, 9, 13]), np.array([2, 4, 6, 8, EOS_ID]))])
    out = model(changed)["logits"]  # last prefix token: every position sees it, the first prefix token included
    assert not torch.allclose(out[0, 0], base[0, 0])


def test_kv_cache_matches_full_forward(tiny_config):
    model = XTrimoPGLM(tiny_config).eval()
    inputs = collate([glm_sample(np.array([3, 5, 7]), np.array([2, 4, 6, 8, 10, EOS_ID]))])
    full = model(inputs)["logits"]
    length = inputs.input_ids.shape[1]
    cache = KVCache(tiny_config, 1, length, torch.device("cpu"), torch.float32)
    n = int(inputs.division) + 1  # prefix, <gmask>, <sop>
    step = [model(inputs.columns(0, n), cache=cache)["logits"]]
    step.append(model(inputs.columns(n, n + 2), cache=cache)["logits"])  # two tokens at once after the cache
    for i in range(n + 2, length):
        logits = model.decode_step(inputs.input_ids[:, i], inputs.position_ids[:, :, i],
                                   torch.ones(1, i + 1, dtype=torch.bool), cache)
        step.append(logits[:, None])
    assert cache.length == length
    torch.testing.assert_close(torch.cat(step, 1), full, rtol=1e-5, atol=1e-5)


def test_deepnorm_init(tiny_config):
    model = XTrimoPGLM(tiny_config)
    beta = (2 * tiny_config.num_layers) ** -0.5
    w = model.transformer.encoder.layers[0].mlp.dense_4h_to_h.weight
    xavier = beta * math.sqrt(2 / sum(w.shape))
    assert abs(w.std().item() - xavier) / xavier < 0.1
    assert model.transformer.encoder.layers[0].alpha == pytest.approx(2.0)


def test_embedding_gradient_shrink(tiny_config):
    tokens = _rand_tokens(2, 9)
    grads = []
    for shrink in (1.0, 0.1):
        torch.manual_seed(0)
        cfg = ModelConfig(**{**tiny_config.to_dict(), "embedding_grad_shrink": shrink})
        model = XTrimoPGLM(cfg).train()
        model(tokens)["logits"].sum().backward()
        grads.append(model.transformer.embedding.word_embeddings.weight.grad)
    torch.testing.assert_close(grads[1], grads[0] * 0.1)


@pytest.mark.parametrize("preset,expected", [("tiny", 3e6), ("small", 35e6), ("1b", 1.2e9), ("3b", 2.8e9),
                                             ("10b", 10e9), ("100b", 100e9)])
def test_presets_on_meta_device(preset, expected):
    from xtrimo.compose import config_dir

    cfg = ModelConfig.from_file(config_dir() / "model" / f"{preset}.yaml")
    with torch.device("meta"):
        model = XTrimoPGLM(cfg)
    n = model.num_parameters()
    assert n == cfg.num_parameters()
    assert 0.8 * expected < n < 1.25 * expected


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(hidden_size=66, num_attention_heads=4)
    with pytest.raises(ValueError, match="rope_mode"):
        ModelConfig(rope_mode="3d")
    with pytest.raises(ValueError, match="unknown ModelConfig keys"):
        ModelConfig.from_dict({"hidden_sise": 3})


@pytest.mark.parametrize("mode", ["1d", "2d"])
def test_varlen_attention_matches_padded(tiny_config, mode, monkeypatch):
    """Heavily padded batches take the per-sequence attention path; it equals the padded, masked one."""
    from xtrimo.model.layers import TokenLayout

    tiny_config.rope_mode = mode
    model = XTrimoPGLM(tiny_config).eval()
    tokens = _rand_tokens(3, 17)
    tokens[1, 4:] = 0
    tokens[2, 3:] = 0
    division = torch.tensor([9, 4, 2])  # GLM rows: bidirectional prefix, causal after
    used = []
    real = TokenLayout.use_varlen
    monkeypatch.setattr(TokenLayout, "use_varlen", lambda self, v, d: used.append(real(self, v, d)) or used[-1])
    fast = model(_with_division(tokens, division))["logits"]
    assert used == [True]
    slow = model(_with_division(tokens, division), output_attentions=True)["logits"]
    valid = tokens != 0
    torch.testing.assert_close(fast[valid], slow[valid], rtol=1e-5, atol=1e-5)
