"""The C++ toolchain: whether ``torch.compile`` can build its CPU kernels here (inductor needs a C++ compiler and
the Python headers), and the package's own kernels built once per machine (:class:`NativeLibrary`)."""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


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


def kernel_dir() -> Path:
    """Where built kernels are kept: ``XTRIMO_KERNEL_DIR``, else ``~/.cache/xtrimo/kernels``."""
    return Path(os.environ.get("XTRIMO_KERNEL_DIR", Path.home() / ".cache" / "xtrimo" / "kernels"))


class NativeLibrary:
    """A C++ source of this package built once per machine with the system compiler and loaded with ctypes.

    The file is keyed by the sources, the compiler's version and the flags (with ``-march=native``, also what the
    compiler resolves it to here, so a home shared by different CPUs never loads a library built for another), and
    built beside its target, then renamed: processes building at once (ddp ranks) never load a half-written file.
    Where the precondition fails, the compiler is missing or the build fails, :meth:`load` gives None once and for
    all and :meth:`unavailable_reason` says why (logged once); callers keep their PyTorch path.

    Args:
        name: the file stem and the name in messages.
        sources: the files compiled (the first) or included (the rest).
        flags: compiler flags.
        bind: sets the ctypes signatures of the loaded library.
        precondition: returns why this machine cannot use the library, or None.
    """

    def __init__(self, name: str, sources: Sequence[Path], flags: Sequence[str],
                 bind: Callable[[ctypes.CDLL], None], precondition: Callable[[], str | None] = lambda: None) -> None:
        self.name, self.sources, self.flags = name, list(sources), list(flags)
        self.bind, self.precondition = bind, precondition
        self._library: ctypes.CDLL | None = None
        self._failed: str | None = None
        self._lock = threading.Lock()

    def load(self) -> ctypes.CDLL | None:
        """The loaded library, or None where it cannot be had here."""
        if self._library is not None or self._failed is not None:
            return self._library
        with self._lock:
            if self._library is None and self._failed is None:
                self._failed = self.precondition()
                if self._failed is None:
                    try:
                        self._library = self._build()
                    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
                        self._failed = str(err)
                        log.warning("%s unavailable, using PyTorch's kernels: %s", self.name, err)
        return self._library

    def unavailable_reason(self) -> str | None:
        """Why :meth:`load` gave None (the precondition, no compiler, a failed build), or None where it loaded."""
        self.load()
        return self._failed

    def _build(self) -> ctypes.CDLL:
        cxx = os.environ.get("CXX", "g++")
        if shutil.which(cxx) is None:
            raise RuntimeError(f"no C++ compiler {cxx!r}")
        facts = [subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout]
        if "-march=native" in self.flags:  # what native means on this CPU (GCC says; the CPU's flags for others)
            facts.append(subprocess.run([cxx, "-march=native", "-Q", "--help=target"], capture_output=True,
                                        text=True).stdout)
            cpuinfo = Path("/proc/cpuinfo")
            if cpuinfo.is_file():
                facts.extend(line for line in cpuinfo.read_text().splitlines()[:40] if line.startswith("flags"))
        text = "\n".join([*(p.read_text() for p in self.sources), *facts, *self.flags])
        target = kernel_dir() / f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.so"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.name}.", suffix=".so", dir=target.parent)
            os.close(fd)
            try:
                done = subprocess.run([cxx, *self.flags, str(self.sources[0]), "-o", tmp], capture_output=True,
                                      text=True)
                if done.returncode != 0:
                    last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                    raise RuntimeError(f"{cxx} failed on {self.sources[0].name}: {last}")
                os.replace(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
        lib = ctypes.CDLL(str(target))
        self.bind(lib)
        return lib
