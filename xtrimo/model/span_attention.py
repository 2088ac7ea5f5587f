"""bf16 attention on CPUs with AVX512_BF16, for the masks xTrimoPGLM uses: a bidirectional prefix, causal after it,
right padding.

The kernel (``span_attention.cpp`` beside this file) is built once per machine and source with the system C++
compiler into ``~/.cache/xtrimo/kernels`` (``XTRIMO_KERNEL_DIR`` elsewhere) and called through the PyTorch custom
operators ``xtrimo::span_attention`` and ``xtrimo::span_attention_backward``, so that autograd and
``torch.compile`` treat it as one operator. Why it exists: at narrow heads (ESM-2 8M's are 16 wide) no CPU attention
kernel in PyTorch is fast in bf16, and attention then held the largest share of the bf16 training step
(docs/training.md). Where the CPU, the compiler or the shapes do not allow it, :func:`usable` says no and the model
keeps ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from xtrimo.toolchain import NativeLibrary

SOURCE = Path(__file__).with_name("span_attention.cpp")
HEADER = SOURCE.with_name("span_attention_simd.h")  # included by SOURCE
FLAGS = ("-O3", "-std=c++17", "-fPIC", "-shared", "-fopenmp", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl",
         "-mavx512dq", "-mavx512bf16")
MAX_HEAD_DIM = 128


def _bind(lib: ctypes.CDLL) -> None:
    ptr, i32 = ctypes.c_void_p, ctypes.c_int
    lib.xt_span_attention_forward.argtypes = [ptr] * 6 + [i32] * 4 + [ptr, ptr, ctypes.c_float, ptr, ptr, i32]
    lib.xt_span_attention_backward.argtypes = (
        [ptr] * 9 + [i32] * 4 + [ptr, ptr, ctypes.c_float, ptr, ptr, ptr, i32])


_native = NativeLibrary(
    "span_attention", [SOURCE, HEADER], FLAGS, _bind,
    lambda: None if torch.cpu._is_avx512_bf16_supported() else "this CPU has no AVX512_BF16")


def library() -> ctypes.CDLL | None:
    """The loaded kernel, or None where this CPU lacks AVX512_BF16 or the build failed (logged once)."""
    return _native.load()


def unavailable_reason() -> str | None:
    """Why :func:`library` gave None (no AVX512_BF16, no compiler, a failed build), or None where it loaded."""
    return _native.unavailable_reason()


def _takes(head_dim: int) -> bool:
    """The kernel reads heads as pairs of bf16 and keeps up to MAX_HEAD_DIM of them in its blocks."""
    return head_dim % 2 == 0 and head_dim <= MAX_HEAD_DIM


def usable(head_dim: int) -> bool:
    """Whether attention of this head width can run through the kernel here."""
    return _takes(head_dim) and library() is not None


def _strides(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(x.stride()[:3], dtype=torch.int64)


def _ready(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 and x.dtype == torch.bfloat16 else x.to(torch.bfloat16).contiguous()


@torch.library.custom_op("xtrimo::span_attention", mutates_args=())
def _forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: torch.Tensor, divisions: torch.Tensor,
             scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    b, length, heads, dim = q.shape
    out = q.new_empty(b, length, heads, dim, dtype=torch.bfloat16)
    lse = q.new_empty(b, heads, length, dtype=torch.float32)
    q, k, v = _ready(q), _ready(k), _ready(v)
    st = [_strides(t) for t in (q, k, v)]
    library().xt_span_attention_forward(
        q.data_ptr(), k.data_ptr(), v.data_ptr(), *(s.data_ptr() for s in st), b, length, heads, dim,
        lengths.data_ptr(), divisions.data_ptr(), scale, out.data_ptr(), lse.data_ptr(), torch.get_num_threads())
    return out, lse


@_forward.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: torch.Tensor, divisions: torch.Tensor,
      scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    b, length, heads, dim = q.shape
    return q.new_empty(b, length, heads, dim, dtype=torch.bfloat16), q.new_empty(b, heads, length, dtype=torch.float32)


@torch.library.custom_op("xtrimo::span_attention_backward", mutates_args=())
def _backward(grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
              lse: torch.Tensor, lengths: torch.Tensor, divisions: torch.Tensor,
              scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, length, heads, dim = q.shape
    grads = [q.new_empty(b, length, heads, dim, dtype=torch.bfloat16) for _ in range(3)]
    q, k, v = _ready(q), _ready(k), _ready(v)
    grad = grad.to(torch.bfloat16).contiguous()
    st = [_strides(t) for t in (q, k, v)]
    library().xt_span_attention_backward(
        q.data_ptr(), k.data_ptr(), v.data_ptr(), *(s.data_ptr() for s in st), out.data_ptr(), grad.data_ptr(),
        lse.data_ptr(), b, length, heads, dim, lengths.data_ptr(), divisions.data_ptr(), scale,
        *(g.data_ptr() for g in grads), torch.get_num_threads())
    return tuple(grads)


@_backward.register_fake
def _(grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, lse: torch.Tensor,
      lengths: torch.Tensor, divisions: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, length, heads, dim = q.shape
    return tuple(q.new_empty(b, length, heads, dim, dtype=torch.bfloat16) for _ in range(3))


def _setup(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: tuple) -> None:
    q, k, v, lengths, divisions, scale = inputs
    ctx.save_for_backward(q, k, v, output[0], output[1], lengths, divisions)
    ctx.scale = scale


def _grad(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor, _lse_grad: torch.Tensor) -> tuple:
    q, k, v, out, lse, lengths, divisions = ctx.saved_tensors
    dq, dk, dv = _backward(grad, q, k, v, out, lse, lengths, divisions, ctx.scale)
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None


_forward.register_autograd(_grad, setup_context=_setup)


def span_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: torch.Tensor,
                   divisions: torch.Tensor) -> torch.Tensor:
    """Softmax attention in bf16 with fp32 accumulation (scores, softmax and gradients in fp32).

    Args:
        q, k, v: ``[B, L, nh, hd]`` (any strides with ``hd`` contiguous; cast to bf16).
        lengths: ``[B]`` int32, the real tokens of each row (its first columns; the rest is padding).
        divisions: ``[B]`` int32: query ``i`` sees key ``j`` iff ``j < lengths[b]`` and ``(j < divisions[b]`` or
            ``j <= i)``.

    Returns:
        ``[B, L, nh, hd]`` bf16, zeros on the padding rows.

    Raises:
        ValueError: shapes the kernel does not take (one line naming them).
    """
    if not (q.dim() == 4 and q.shape == k.shape == v.shape and lengths.shape == divisions.shape == q.shape[:1]):
        raise ValueError(f"span_attention: q, k, v {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)} must be one "
                         f"[B, L, nh, hd] shape and lengths, divisions {tuple(lengths.shape)}, "
                         f"{tuple(divisions.shape)} [B]")
    if not _takes(q.shape[-1]) or q.device.type != "cpu":
        raise ValueError(f"span_attention: head width {q.shape[-1]} on {q.device.type}; the kernel takes even widths "
                         f"up to {MAX_HEAD_DIM} on the CPU")
    lengths, divisions = (t.to(torch.int32).contiguous() for t in (lengths, divisions))  # the kernel reads int32
    return _forward(q, k, v, lengths, divisions, q.shape[-1] ** -0.5)[0]
