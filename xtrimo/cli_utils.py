"""What every xtrimo command line shares: one-line errors, and Hydra/OmegaConf messages folded to one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def describe(exc: BaseException) -> str:
    """The first line of an exception's message; the type name is added for unexpected kinds."""
    from xtrimo.data.fasta import FastaError
    from xtrimo.tokenizer import InvalidResidueError

    known = (ValueError, OSError, KeyError, FastaError, InvalidResidueError, RuntimeError)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, KeyError):
        text = text.strip("\"'")
    return text if isinstance(exc, known) else f"{type(exc).__name__}: {text}"


def one_line(exc: BaseException) -> str:
    """A Hydra / OmegaConf error (several lines, a cause chain) as one line naming the key and the problem."""
    skip = ("object_type", "Set the environment")
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith(skip)]
    msg = "; ".join(dict.fromkeys(lines))
    if isinstance(exc.__cause__, BaseException) and str(exc.__cause__) not in msg:
        msg += f" ({one_line(exc.__cause__)})"
    return msg


def run_command(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command's body: errors print ``<prog>: error: <one line>`` and exit 1 (``XTRIMO_DEBUG=1`` re-raises
    with the traceback); Ctrl-C exits 130."""
    try:
        return body() or 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the user gets one line; the traceback is behind XTRIMO_DEBUG
        if os.environ.get("XTRIMO_DEBUG"):
            raise
        print(f"{prog}: error: {describe(exc)}", file=sys.stderr)
        return 1
