"""The float32 triangle attention kernel (structure/triangle_attention.cpp) against a float64 reference, inside the
fused trunk against transformers' module, and where it cannot be built."""

from __future__ import annotations

import pytest
import torch
from transformers.models.esm.modeling_esmfold import EsmFoldTriangleAttention

from xtrimo.structure import triangle_attention as ta
from xtrimo.structure.fused import SdpaTriangleAttention

needs_kernel = pytest.mark.skipif(ta.unavailable_reason() is not None,
                                  reason=f"triangle attention kernel not built here: {ta.unavailable_reason()}")


def _reference(proj: torch.Tensor, rows: int, heads: int, bias: torch.Tensor, gate_bias: torch.Tensor) -> torch.Tensor:
    """The gated output ``[R * J, H * D]`` in float64 with an explicit softmax."""
    p, b, gb = proj.double(), bias.double(), gate_bias.double()
    width = p.shape[1] // 4
    cols, dim = p.shape[0] // rows, width // heads
    q, k, v, g = (p[:, j * width : (j + 1) * width].view(rows, cols, heads, dim).transpose(1, 2) for j in range(4))
    weights = torch.softmax(q @ k.transpose(-1, -2) / dim ** 0.5 + b, dim=-1)  # [R, H, J, J]
    o = (weights @ v).transpose(1, 2).reshape(-1, width)
    return torch.sigmoid(g.transpose(1, 2).reshape(-1, width) + gb) * o


def _inputs(rows: int, cols: int, heads: int, dim: int, seed: int = 0):
    torch.manual_seed(seed)
    proj = torch.randn(rows * cols, 4 * heads * dim)
    bias = torch.randn(heads, cols, cols)
    bias[:, :, cols // 3] = -1e9  # a masked key, as the trunk's key mask writes it
    return proj, bias, torch.randn(heads * dim)


@needs_kernel
@pytest.mark.parametrize("rows, cols, heads, dim", [(3, 37, 2, 5), (2, 13, 3, 32), (2, 150, 4, 32), (1, 70, 1, 20),
                                                    (2, 33, 2, 48), (1, 1, 1, 1)])
def test_kernel_matches_float64_reference(rows, cols, heads, dim):
    proj, bias, gate_bias = _inputs(rows, cols, heads, dim)
    expected = _reference(proj, rows, heads, bias, gate_bias)
    got = proj.clone()
    ta.gated_attention_(got, rows, heads, bias, gate_bias)
    width = heads * dim
    assert torch.equal(got[:, : 3 * width], proj[:, : 3 * width])  # q, k, v untouched
    assert (got[:, 3 * width :].double() - expected).abs().max() < 1e-5 * expected.abs().max()


@needs_kernel
def test_a_query_with_every_key_masked_averages_the_values():
    rows, cols, heads, dim = 2, 21, 2, 9
    proj, bias, gate_bias = _inputs(rows, cols, heads, dim)
    bias[1, 4] = -1e9  # in float32 -1e9 + a score is -1e9: uniform weights, as transformers' float32 module gives
    got = proj.clone()
    ta.gated_attention_(got, rows, heads, bias, gate_bias)
    view = proj.view(rows, cols, 4, heads, dim)
    expected = torch.sigmoid(view[:, 4, 3, 1] + gate_bias.view(heads, dim)[1]) * view[:, :, 2, 1].mean(1)  # [R, D]
    assert torch.allclose(got.view(rows, cols, 4, heads, dim)[:, 4, 3, 1], expected, atol=1e-6)


@needs_kernel
def test_kernel_on_a_row_stride_wider_than_the_row_and_threads_agree():
    proj, bias, gate_bias = _inputs(4, 29, 2, 12, seed=3)
    wide = torch.zeros(proj.shape[0], proj.shape[1] + 7)
    wide[:, : proj.shape[1]] = proj
    view = wide[:, : proj.shape[1]]  # rows 7 floats apart beyond their width
    ta.gated_attention_(view, 4, 2, bias, gate_bias)
    assert torch.equal(wide[:, proj.shape[1] :], torch.zeros(proj.shape[0], 7))  # nothing written past the row
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = proj.clone()
        ta.gated_attention_(one, 4, 2, bias, gate_bias)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, view)  # each (row, head) is computed whole by one thread


def test_bad_shapes_are_one_line_errors():
    proj, bias, gate_bias = _inputs(2, 13, 2, 8)
    for args in ((proj, 3, 2, bias, gate_bias), (proj, 2, 2, bias[:, :5], gate_bias), (proj.double(), 2, 2, bias,
                                                                                         gate_bias)):
        with pytest.raises(ValueError, match="gated_attention_") as err:
            ta.gated_attention_(*args)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("kernel", [True, False])
@pytest.mark.parametrize("starting", [True, False])
def test_fused_module_with_and_without_kernel_matches_transformers(kernel, starting, monkeypatch):
    monkeypatch.setattr(SdpaTriangleAttention, "kernel", kernel)
    calls = []
    real = ta.gated_attention_
    monkeypatch.setattr(ta, "gated_attention_", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    ref = EsmFoldTriangleAttention(24, 12, 3, starting=starting)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0.0, 0.3)
    fused = SdpaTriangleAttention.from_module(ref)
    z = torch.randn(2, 19, 19, 24)
    seq_mask = torch.ones(2, 19)
    seq_mask[1, 14:] = 0
    pair_mask = seq_mask[:, :, None] * seq_mask[:, None, :]
    with torch.no_grad():
        expected, got = z + ref(z, mask=pair_mask, chunk_size=4), fused.add_to(z, pair_mask, 7)
    real_pairs = pair_mask.bool()
    assert torch.allclose(got[real_pairs], expected[real_pairs], atol=1e-5)
    assert bool(calls) == (kernel and ta.unavailable_reason() is None)


def test_failed_build_falls_back_to_sdpa(monkeypatch, tmp_path):
    monkeypatch.setattr(ta._native, "_library", None)
    monkeypatch.setattr(ta._native, "_failed", None)
    cxx = tmp_path / "cxx"  # a compiler that answers, then writes half an output and fails
    cxx.write_text('#!/bin/sh\ncase "$1" in --version|-march=native) exec echo fake;; esac\n'
                   'for a; do [ "$prev" = -o ] && echo half > "$a"; prev=$a; done\necho "error: broken" >&2\nexit 1\n')
    cxx.chmod(0o755)
    monkeypatch.setenv("XTRIMO_KERNEL_DIR", str(tmp_path / "kernels"))
    monkeypatch.setenv("CXX", str(cxx))
    monkeypatch.setattr(ta.platform, "machine", lambda: "x86_64")
    assert not ta.usable(torch.zeros(1)) and "error: broken" in ta.unavailable_reason()
    assert list((tmp_path / "kernels").iterdir()) == []  # nothing half-built left behind
    ref = EsmFoldTriangleAttention(16, 8, 2, starting=True)
    fused = SdpaTriangleAttention.from_module(ref)
    z = torch.randn(1, 11, 11, 16)
    with torch.no_grad():
        assert torch.allclose(fused.add_to(z), z + ref(z), atol=1e-5)


def test_switched_off_and_other_machines_say_why(monkeypatch):
    for env, machine, reason in (("0", "x86_64", "XTRIMO_TRIANGLE_KERNEL=0"), ("1", "arm64", "arm64")):
        monkeypatch.setattr(ta._native, "_library", None)
        monkeypatch.setattr(ta._native, "_failed", None)
        monkeypatch.setenv("XTRIMO_TRIANGLE_KERNEL", env)
        monkeypatch.setattr(ta.platform, "machine", lambda m=machine: m)
        assert reason in ta.unavailable_reason() and not ta.usable(torch.zeros(1))
