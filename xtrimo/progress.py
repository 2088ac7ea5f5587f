"""Progress for long commands: a bar on a terminal, a plain line every half minute in a log or a pipe.

    with Progress(total=len(records), desc="fold", unit="seq") as bar:
        for rec in records:
            ...
            bar.update(1, postfix=f"pLDDT {plddt:.1f}")

Library code reports through this, on stderr, so that stdout keeps the command's results.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any


def _columns(file: IO[str]) -> int:
    try:
        return os.get_terminal_size(file.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """A progress display: tqdm on a terminal; otherwise a line at most every ``every`` seconds and at the end.

    Args:
        total: expected count (None: unknown); may change as the work goes (:meth:`update`).
        desc: what is counted, first on the line.
        unit: the unit of ``total``.
        every: seconds between plain lines (non-terminal output).
        file: where to write (stderr).
        enabled: False shows nothing.
        initial: the count already done (a resumed run).
    """

    def __init__(self, total: float | None = None, desc: str = "", unit: str = "it", every: float = 30.0,
                 file: IO[str] | None = None, enabled: bool = True, initial: int = 0) -> None:
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.file = file or sys.stderr
        self.enabled = enabled
        self.n = initial
        self.start = self.last = time.monotonic()
        self.postfix = ""
        self.bar = None
        if enabled and self.file.isatty():
            from tqdm import tqdm

            # a terminal that reports no size (`script`, some CI runners) would get a zero-width bar
            sized = _columns(self.file) > 0
            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.file, dynamic_ncols=sized, leave=True,
                            initial=initial, **({} if sized else {"ncols": 100, "nrows": 24}))

    def update(self, n: float = 1, postfix: str = "", total: float | None = None, eta: float | None = None) -> None:
        """Count ``n`` more; ``postfix`` is shown after the count; ``total`` replaces the expected count; ``eta``
        (seconds) replaces the estimate from the rate (e.g. a time limit that ends the work sooner)."""
        self.n += n
        self.postfix = postfix or self.postfix
        if total is not None:
            self.total = total
        if not self.enabled:
            return
        if self.bar is not None:
            if total is not None:
                self.bar.total = total
            self.bar.set_postfix_str(self.postfix + (f" | ETA {_clock(eta)}" if eta is not None else ""),
                                     refresh=False)
            self.bar.update(n)
        elif time.monotonic() - self.last >= self.every:
            self._line(eta)

    def _line(self, eta: float | None = None, final: bool = False) -> None:
        now = time.monotonic()
        self.last = now
        elapsed = now - self.start
        count = f"{self.n:,.0f}" + (f"/{self.total:,.0f}" if self.total else "") + f" {self.unit}"
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        if eta is None and self.total and self.n and not final:
            eta = elapsed * (self.total - self.n) / self.n
        timing = f"elapsed {_clock(elapsed)}" + (f", ETA {_clock(eta)}" if eta is not None and not final else "")
        parts = [p for p in (f"{self.desc}: {count}", self.postfix, timing) if p]
        print(" | ".join(parts), file=self.file, flush=True)

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        if self.bar is not None:
            self.bar.write(message, file=self.file)
        else:
            print(message, file=self.file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled and self.n:
            self._line(final=True)
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
