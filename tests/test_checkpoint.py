import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from xtrimo.checkpoint import CheckpointError, atomic_directory, convert_hf_checkpoint, load_model, save_model
from xtrimo.model import XTrimoPGLM


def test_roundtrip_identical_logits(tiny_config, tmp_path):
    model = XTrimoPGLM(tiny_config).eval()
    model.save_pretrained(tmp_path / "ckpt")
    loaded = XTrimoPGLM.from_pretrained(tmp_path / "ckpt")
    tokens = torch.randint(1, 28, (2, 13))
    assert torch.equal(model(tokens)["logits"], loaded(tokens)["logits"])
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.yaml", "model.safetensors"]


def test_strict_loading_names_keys(tiny_config, tmp_path):
    model = XTrimoPGLM(tiny_config)
    save_model(model, tmp_path / "c")
    state = model.state_dict()
    state.pop("transformer.output_layer.bias")
    state["extra.weight"] = torch.zeros(1)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "c" / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys \['transformer.output_layer.bias'\].*unexpected keys \['extra.weight'\]"):
        load_model(tmp_path / "c")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "absent")


def test_atomic_directory_keeps_old_on_failure(tiny_config, tmp_path):
    save_model(XTrimoPGLM(tiny_config), tmp_path / "c")
    before = (tmp_path / "c" / "model.safetensors").read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "c") as tmp:
            (tmp / "model.safetensors").write_bytes(b"partial")
            raise RuntimeError("killed")
    assert (tmp_path / "c" / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def _hf_reference_logits(state, cfg, tokens):
    """ProteinGLM's forward written from the Hugging Face remote code, seq-first, independent of xtrimo's modules.

    Fused QKV is viewed per head as [nh, 3 * hd] and split; RoPE is rotate-half over the whole head (1-D);
    DeepNorm: residual = LN output, ``LN_post(alpha * y + attn)``, ``alpha * z + mlp``.
    """
    nh, hd, n = cfg["num_attention_heads"], cfg["hidden_size"] // cfg["num_attention_heads"], cfg["num_layers"]
    alpha = math.sqrt(2 * n)
    s, b = tokens.shape[1], tokens.shape[0]
    x = F.embedding(tokens.t(), state["transformer.embedding.word_embeddings.weight"])  # [s, b, h]
    inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
    freqs = torch.outer(torch.arange(s).float(), inv)
    emb = torch.cat((freqs, freqs), -1)
    cos, sin = emb.cos()[:, None, None], emb.sin()[:, None, None]  # [s, 1, 1, hd]

    def rot(t):
        t1, t2 = t[..., : hd // 2], t[..., hd // 2 :]
        return t * cos + torch.cat((-t2, t1), -1) * sin

    def ln(t, name):
        return F.layer_norm(t, t.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"], 1e-5)

    def lin(t, name):
        return F.linear(t, state[f"{name}.weight"], state[f"{name}.bias"])

    for i in range(n):
        p = f"transformer.encoder.layers.{i}"
        y = ln(x, f"{p}.input_layernorm")
        mixed = lin(y, f"{p}.self_attention.query_key_value").view(s, b, nh, 3 * hd)
        q, k, v = torch.split(mixed, hd, dim=-1)
        q, k = rot(q), rot(k)
        scores = torch.einsum("sbnd,tbnd->bnst", q, k) / math.sqrt(hd)
        ctx = torch.einsum("bnst,tbnd->sbnd", scores.softmax(-1), v).reshape(s, b, nh * hd)
        z = ln(alpha * y + lin(ctx, f"{p}.self_attention.dense"), f"{p}.post_attention_layernorm")
        h1, h2 = lin(z, f"{p}.mlp.dense_h_to_4h").chunk(2, -1)
        x = alpha * z + lin(h1 * F.gelu(h2), f"{p}.mlp.dense_4h_to_h")
    x = ln(x, "transformer.encoder.final_layernorm")
    return lin(x, "transformer.output_layer").transpose(0, 1)


def test_convert_hf_checkpoint(tmp_path):
    hf_cfg = {"num_layers": 3, "hidden_size": 48, "num_attention_heads": 4, "ffn_hidden_size": 71,
              "padded_vocab_size": 128, "seq_length": 64, "kv_channels": 12, "layernorm_epsilon": 1e-5,
              "glu_activation": "geglu", "deepnorm": True, "rotary_embedding_2d": False, "add_bias_linear": True}
    src = tmp_path / "hf"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(hf_cfg))
    shapes = {"transformer.embedding.word_embeddings.weight": (128, 48), "transformer.encoder.final_layernorm.weight": (48,),
              "transformer.encoder.final_layernorm.bias": (48,), "transformer.output_layer.weight": (128, 48),
              "transformer.output_layer.bias": (128,)}
    for i in range(3):
        p = f"transformer.encoder.layers.{i}"
        shapes.update({f"{p}.input_layernorm.weight": (48,), f"{p}.input_layernorm.bias": (48,),
                       f"{p}.self_attention.query_key_value.weight": (144, 48), f"{p}.self_attention.query_key_value.bias": (144,),
                       f"{p}.self_attention.dense.weight": (48, 48), f"{p}.self_attention.dense.bias": (48,),
                       f"{p}.post_attention_layernorm.weight": (48,), f"{p}.post_attention_layernorm.bias": (48,),
                       f"{p}.mlp.dense_h_to_4h.weight": (142, 48), f"{p}.mlp.dense_h_to_4h.bias": (142,),
                       f"{p}.mlp.dense_4h_to_h.weight": (48, 71), f"{p}.mlp.dense_4h_to_h.bias": (48,),
                       f"{p}.self_attention.rotary_emb.inv_freq": (6,)})
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v, generator=gen) * 0.2 for k, v in shapes.items()}
    save_file(state, str(src / "model.safetensors"))
    model = convert_hf_checkpoint(src, tmp_path / "converted")
    tokens = torch.randint(1, 28, (2, 11), generator=gen)
    ref = _hf_reference_logits(state, hf_cfg, tokens)
    torch.testing.assert_close(model(tokens)["logits"], ref, rtol=1e-4, atol=1e-4)
    reloaded = XTrimoPGLM.from_pretrained(tmp_path / "converted")
    assert torch.equal(reloaded(tokens)["logits"], model(tokens)["logits"])
    state["transformer.bogus"] = torch.zeros(1)
    save_file(state, str(src / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"unexpected keys \['transformer.bogus'\]"):
        convert_hf_checkpoint(src)
