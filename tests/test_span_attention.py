"""The bf16 span-attention kernel against a float64 reference (forward and gradients, every mask kind the model
builds), its custom-operator registration, its use inside the model and its fall-backs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from xtrimo import XTrimoPGLM
from xtrimo.model import span_attention as sa
from xtrimo.model.layout import ModelInput, attention_mask


@pytest.fixture
def kernel() -> None:
    if sa.library() is None:
        pytest.skip(f"the span-attention kernel is not available here ({sa.unavailable_reason()})")


def _reference(q, k, v, lengths, divisions):
    """float64 softmax attention under the model's own mask, zero on padding rows; ``[B, L, nh, hd]``."""
    length = q.shape[1]
    valid = torch.arange(length)[None] < lengths[:, None]
    mask = attention_mask(divisions.long(), valid)
    q, k, v = (t.double().transpose(1, 2) for t in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2) * valid[:, :, None, None]


def _inputs(head_dim: int, length: int = 37):
    # rows: bidirectional (MLM), a GLM prefix of 9, causal (CLM), one token, empty; 5 heads
    lengths = torch.tensor([length, length * 5 // 9, length * 4 // 5, 1, 0], dtype=torch.int32)
    divisions = torch.tensor([length + 5, 9, 0, 1, 0], dtype=torch.int32)
    qkv = torch.randn(5, length, 5, 3, head_dim).to(torch.bfloat16)  # q, k, v as strided views, as in the model
    return [qkv[..., i, :] for i in range(3)], lengths, divisions


@pytest.mark.parametrize("head_dim, length", [(6, 37), (16, 37), (24, 37), (40, 37), (80, 37), (16, 150), (24, 150)])
def test_kernel_matches_float64_reference(kernel, head_dim, length):
    (q, k, v), lengths, divisions = _inputs(head_dim, length)
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = sa.span_attention(*leaves, lengths, divisions)
    ref_leaves = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref = _reference(*ref_leaves, lengths, divisions)
    weight = torch.randn(ref.shape, dtype=torch.float64)
    (ref * weight).sum().backward()
    (out.float() * weight.float()).sum().backward()
    assert out.dtype == torch.bfloat16 and out.shape == q.shape
    # bf16 inputs and probabilities, fp32 accumulation: within a few bf16 roundings of the exact result
    assert (out.double() - ref).abs().max() <= 0.02 * ref.abs().max()
    for mine, exact in zip(leaves, ref_leaves):
        assert mine.grad.dtype == torch.bfloat16
        assert (mine.grad.double() - exact.grad).abs().max() <= 0.02 * exact.grad.abs().max()
    n = int(lengths[1])
    assert not out[4].any() and not out[3, 1:].any() and not out[1, n:].any()  # padding rows give zeros
    assert not leaves[1].grad[1, n:].any()  # padding keys get no gradient


def test_bad_shapes_are_one_line_errors(kernel):
    (q, k, v), lengths, divisions = _inputs(16)
    with pytest.raises(ValueError, match="must be one"):
        sa.span_attention(q, k[:, :5], v, lengths, divisions)
    with pytest.raises(ValueError, match="head width 7"):
        sa.span_attention(*(t[..., :7] for t in (q, k, v)), lengths, divisions)
    # int64 lengths and divisions are taken as they come
    out = sa.span_attention(q, k, v, lengths.long(), divisions.long())
    assert torch.equal(out, sa.span_attention(q, k, v, lengths, divisions))


def test_registered_operator_passes_opcheck(kernel):
    (q, k, v), lengths, divisions = _inputs(16)
    q, k, v = (t.contiguous().requires_grad_() for t in (q, k, v))
    torch.library.opcheck(sa._forward, (q, k, v, lengths, divisions, 0.25),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


def _batch() -> ModelInput:
    """Right-padded rows of 17, 13 and 5 tokens: an MLM row, a GLM row with a prefix of 6, a causal row."""
    ids = torch.randint(1, 26, (3, 17))
    valid = torch.arange(17)[None] < torch.tensor([17, 13, 5])[:, None]
    positions = torch.zeros(3, 2, 17, dtype=torch.long)
    positions[:, 0] = torch.arange(17)
    return ModelInput(ids.masked_fill(~valid, 0), positions, torch.tensor([17, 6, 0]), valid)


def _run(model: XTrimoPGLM, batch: ModelInput, kernel: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.attention_kernel = kernel
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(batch)["logits"][batch.valid].float()
    logits.logsumexp(-1).sum().backward()
    return logits, [p.grad.clone() for p in model.parameters()]


def test_model_in_bf16_uses_the_kernel_and_matches_sdpa(kernel, tiny_config):
    model, batch = XTrimoPGLM(tiny_config), _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lengths, divisions = model._spans(batch)
    assert lengths.tolist() == [17, 13, 5] and divisions.tolist() == [17, 6, 0]
    mine, grads = _run(model, batch, "auto")
    sdpa, sdpa_grads = _run(model, batch, "sdpa")
    assert (mine - sdpa).abs().max() <= 0.02 * sdpa.abs().max()
    for g, s in zip(grads, sdpa_grads):
        assert (g - s).abs().max() <= 0.03 * s.abs().max() + 1e-6
    model.compile_blocks()
    compiled, _ = _run(model, batch, "auto")
    assert (compiled - mine).abs().max() <= 0.02 * mine.abs().max()


def test_kernel_is_left_out_where_it_does_not_apply(tiny_config):
    model, batch = XTrimoPGLM(tiny_config), _batch()
    assert model._spans(batch) is None  # fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.attention_kernel = "sdpa"
        assert model._spans(batch) is None
        model.attention_kernel = "auto"
        left = ModelInput(batch.input_ids, batch.position_ids, batch.division, batch.valid.flip(1))
        assert model._spans(left) is None  # left padding
        dropout = XTrimoPGLM(dataclasses.replace(tiny_config, attention_dropout=0.1))
        assert dropout.train()._spans(batch) is None


def test_failed_build_falls_back_to_sdpa(tiny_config, monkeypatch, tmp_path):
    monkeypatch.setattr(sa._native, "_library", None)
    monkeypatch.setattr(sa._native, "_failed", None)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    cxx = tmp_path / "cxx"  # a compiler that writes half an output, then fails
    cxx.write_text('#!/bin/sh\n[ "$1" = --version ] && exec echo fake\n'
                   'for a; do [ "$prev" = -o ] && echo half > "$a"; prev=$a; done\necho "error: broken" >&2\nexit 1\n')
    cxx.chmod(0o755)
    monkeypatch.setenv("XTRIMO_KERNEL_DIR", str(tmp_path / "kernels"))
    monkeypatch.setenv("CXX", str(cxx))
    assert sa.library() is None and "error: broken" in sa.unavailable_reason()
    assert list((tmp_path / "kernels").iterdir()) == []  # nothing half-built left behind
    model = XTrimoPGLM(tiny_config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model._spans(_batch()) is None
        assert model(_batch())["logits"].isfinite().all()
