"""What every xtrimo command line shares: one-line errors, and Hydra/OmegaConf messages folded to one line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
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


class _Quiet(logging.Filter):
    """Drops the library lines that are noise at a command line: advertisements and accelerators never used."""

    NOISE = ("litlogger", "TPU available", "HPU available", "LitLogger")

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in self.NOISE)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (it may have been replaced since)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup_logging(level: int | str = logging.INFO) -> None:
    """One handler for every library (each line printed once), at ``level``; noise filtered (see :class:`_Quiet`).

    ``import lightning`` installs its own console handler on the ``lightning`` logger and lets records propagate
    to the root as well, which prints each of its lines twice once the root has a handler; here its handler goes
    (Lightning is imported first, so that it cannot add it later) and the root's serves all.
    """
    try:
        import lightning  # noqa: F401  (its import adds the handler removed below)
    except ImportError:
        pass
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Quiet())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # inside Lightning itself


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` with every option's default and the examples kept as written."""


def make_parser(prog: str, description: str, examples: list[str]) -> argparse.ArgumentParser:
    """An argument parser whose ``--help`` shows the defaults and ``examples`` (one command line each)."""
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=_HelpFormatter,
                                   epilog="examples:\n" + "\n".join(f"  {e}" for e in examples))


def entry_point(prog: str, parser: Callable[[], argparse.ArgumentParser],
                run: Callable[[argparse.Namespace], int | None]) -> Callable[[list[str] | None], int]:
    """The ``main(argv)`` of an argparse command: parse ``argv`` with ``parser()`` and run ``run(args)`` under
    :func:`run_command`."""

    def main(argv: list[str] | None = None) -> int:
        args = parser().parse_args(argv)
        return run_command(prog, lambda: run(args))

    main.__doc__ = f"Entry point of ``{prog}``."
    return main


def hydra_help(doc: str, header: str, defaults_yaml: str) -> int:
    """``--help`` of a Hydra command line: its docstring, ``header`` (where the configs are) and every default."""
    print(doc)
    print(header + "\n")
    print("defaults (every key is an override, e.g. trainer.max_steps=2000 or protocol.seeds=[0,1,2]):\n")
    print(defaults_yaml)
    return 0


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
