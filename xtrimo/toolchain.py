"""Whether ``torch.compile`` can build its CPU kernels here: inductor needs a C++ compiler and the Python headers."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path


def check_toolchain() -> None:
    """Raise a one-line ``RuntimeError`` when inductor cannot build its C++ here (no compiler, no Python headers),
    instead of a long compiler log at the first compiled call."""
    cxx = os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")
    if shutil.which(cxx) is None and not os.environ.get("TORCH_INDUCTOR_INSTALL_GXX"):  # inductor's own fallback
        raise RuntimeError(f"torch.compile (inductor) needs a C++ compiler: {cxx!r} not found (install one or set CXX)")
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.is_file():
        raise RuntimeError(f"torch.compile (inductor) needs the Python headers: {headers} not found (e.g. python3-dev)")


def has_toolchain() -> bool:
    """:func:`check_toolchain` as a yes / no (callers that fall back to eager code)."""
    try:
        check_toolchain()
    except RuntimeError:
        return False
    return True
