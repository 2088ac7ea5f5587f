"""trainer.precision=auto: bf16 only where the device computes it natively."""

from __future__ import annotations

import platform

import pytest
import torch

import xtrimo.precision as precision
from xtrimo.precision import native_bf16, resolve_precision


@pytest.mark.parametrize("native, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_takes_bf16_only_where_native(monkeypatch, native, expected):
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    chosen, note = resolve_precision("auto", "cpu")
    assert chosen == expected
    assert ("no native bf16" in note) == (not native)


def test_explicit_precision_is_kept_and_slow_bf16_named(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert resolve_precision("32-true", "cpu") == ("32-true", "")
    chosen, note = resolve_precision("bf16-mixed", "cpu")
    assert chosen == "bf16-mixed" and "slower than fp32" in note


def test_native_bf16_matches_torch_on_this_cpu():
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert native_bf16("cpu") == (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        assert not native_bf16("cpu") or torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert native_bf16("cuda") == (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
