"""Gated triangle attention for inference on the CPU in float32 (``triangle_attention.cpp`` beside this file).

Built once per machine with the system C++ compiler (``-march=native``; :class:`xtrimo.toolchain.NativeLibrary`,
kept in ``~/.cache/xtrimo/kernels``) and called through ctypes: inference only, so no autograd or
``torch.compile`` registration. Why it exists: PyTorch's CPU flash attention ran the triangle attentions of an
ESMFold block (4 heads of 32, a bias per head) at 80-115 GFLOP/s against about 200 for float32 matmuls on the
same cores; this kernel, with the gate applied as it writes, at 155-195 (docs/structure.md). Where the compiler
or the build is missing, :func:`usable` says no and the trunk keeps ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import ctypes
import os
import platform
from pathlib import Path

import torch

from xtrimo.toolchain import NativeLibrary

SOURCE = Path(__file__).with_name("triangle_attention.cpp")
FLAGS = ("-O3", "-march=native", "-std=gnu++17", "-ffp-contract=fast", "-fPIC", "-shared", "-fopenmp")


def _bind(lib: ctypes.CDLL) -> None:
    ptr, i32 = ctypes.c_void_p, ctypes.c_int
    lib.xt_triangle_attention.argtypes = [ptr, ctypes.c_int64, i32, i32, i32, i32, ptr, ptr, ctypes.c_float, i32]


def _precondition() -> str | None:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"written for x86-64 vector widths, not {platform.machine()}"
    if os.environ.get("XTRIMO_TRIANGLE_KERNEL", "1") == "0":
        return "XTRIMO_TRIANGLE_KERNEL=0"
    return None


_native = NativeLibrary("triangle_attention", [SOURCE], FLAGS, _bind, _precondition)


def unavailable_reason() -> str | None:
    """Why the kernel is not used here (not x86-64, switched off, no compiler, a failed build), or None."""
    return _native.unavailable_reason()


def usable(x: torch.Tensor) -> bool:
    """Whether :func:`gated_attention_` can run on this tensor here (float32 on the CPU, the kernel built)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and _native.load() is not None


def gated_attention_(proj: torch.Tensor, rows: int, heads: int, bias: torch.Tensor, gate_bias: torch.Tensor) -> None:
    """Softmax attention of each row's positions with a bias shared by the rows, gated, in place.

    Args:
        proj: ``[R * J, 4 * H * D]`` float32 with contiguous rows: per position q | k | v | gate, each ``[H, D]``.
            The gate columns are overwritten with ``sigmoid(gate + gate_bias) * softmax(q k^T / sqrt(D) + bias) v``.
        rows: R. heads: H.
        bias: ``[H, J(query), J(key)]`` float32, added to every row's scores (key masks as large negatives).
        gate_bias: ``[H * D]``.

    Raises:
        ValueError: shapes or dtypes the kernel does not take (one line naming them).
    """
    positions, width = proj.shape
    cols = positions // rows if rows else 0
    dim = width // 4 // heads if heads else 0
    if not (proj.dtype == bias.dtype == gate_bias.dtype == torch.float32 and proj.stride(1) == 1
            and rows * cols == positions and 4 * heads * dim == width and bias.shape == (heads, cols, cols)
            and gate_bias.shape == (heads * dim,)):
        raise ValueError(f"gated_attention_: proj {tuple(proj.shape)} {proj.dtype}, bias {tuple(bias.shape)}, "
                         f"gate bias {tuple(gate_bias.shape)} do not fit {rows} rows of {heads} heads in float32")
    bias, gate_bias = bias.contiguous(), gate_bias.contiguous()
    _native.load().xt_triangle_attention(proj.data_ptr(), proj.stride(0), rows, cols, heads, dim, bias.data_ptr(),
                                         gate_bias.data_ptr(), dim ** -0.5, torch.get_num_threads())
