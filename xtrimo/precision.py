"""Which precision a run takes when asked for ``auto``: bf16 only where the device computes it natively."""

from __future__ import annotations

import platform

import torch


def native_bf16(device_type: str) -> bool:
    """Whether bf16 matrix products run natively on ``device_type`` ("cpu" or "cuda").

    On an AVX2-only CPU (an AMD EPYC Milan here) oneDNN has no bf16 kernels and PyTorch falls back to a scalar loop,
    so bf16 products and the quickstart's bf16-mixed step run many times slower than in fp32 (docs/training.md).
    """
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if platform.machine().lower() in ("x86_64", "amd64"):
        # oneDNN runs bf16 on any AVX-512 CPU, but only the AVX512_BF16 extension or AMX compute it natively; the
        # rest convert to fp32 and back around every product
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())  # Arm: BF16


def resolve_precision(precision: str, accelerator: str) -> tuple[str, str]:
    """Lightning's precision for ``precision`` (``auto``: bf16-mixed where native, else 32-true) and why, in words.

    Returns:
        ``(precision, note)``: ``note`` is empty unless ``auto`` chose fp32 or bf16 was asked for where it is slow.
    """
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    device = "cuda" if gpu else "cpu"
    native = native_bf16(device)
    slow = f"this {device.upper()} has no native bf16" + (" (no AVX512_BF16, no AMX)" if not gpu else "")
    if precision == "auto":
        return ("bf16-mixed", "") if native else ("32-true", f"precision auto -> 32-true: {slow}")
    if precision.startswith("bf16") and not native:
        return precision, f"precision {precision}: {slow}, its products run tens of times slower than fp32"
    return precision, ""
