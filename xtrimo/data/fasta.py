"""Streaming FASTA reader (plain or gzip) with errors that name the file, record and line."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from xtrimo.io import atomic_write


class FastaError(ValueError):
    """Malformed or unreadable FASTA input."""


@dataclass(frozen=True)
class FastaRecord:
    name: str  # first word of the header
    description: str  # the whole header line without '>'
    sequence: str


def _open_text(path: Path) -> IO[str]:
    if not path.exists():
        raise FastaError(f"FASTA file not found: {path}")
    if path.is_dir():
        raise FastaError(f"FASTA path is a directory: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="strict")
    return open(path, encoding="utf-8", errors="strict")


def read_fasta(path: str | Path, allow_empty: bool = False, strict: bool = True) -> Iterator[FastaRecord]:
    """Yield records one at a time; the file is never held in memory.

    Args:
        path: plain or gzip FASTA.
        allow_empty: a file without records is no error.
        strict: a record without sequence is an error; with False it is yielded with an empty sequence (for
            commands that report bad records and go on).

    Raises:
        FastaError: missing file, a sequence line before any header, a record without sequence (``strict``), an
            empty file (unless ``allow_empty``), or undecodable bytes, each naming the file and the line.
    """
    path = Path(path)
    header: str | None = None
    header_line = 0
    chunks: list[str] = []
    n = 0
    lineno = 0
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                line = line.strip()
                if not line or line.startswith(";"):
                    continue
                if line.startswith(">"):
                    if header is not None:
                        yield _finish(path, header, header_line, chunks, strict)
                        n += 1
                    header, header_line, chunks = line[1:].strip(), lineno, []
                elif header is None:
                    raise FastaError(f"{path}:{lineno}: sequence data before the first '>' header")
                else:
                    chunks.append(line.replace(" ", ""))
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError) as exc:
        if isinstance(exc, FastaError):
            raise
        raise FastaError(f"{path}:{lineno + 1}: unreadable FASTA ({type(exc).__name__}: {exc})") from None
    if header is not None:
        yield _finish(path, header, header_line, chunks, strict)
        n += 1
    if n == 0 and not allow_empty:
        raise FastaError(f"{path}: no FASTA records (empty file)")


def _finish(path: Path, header: str, lineno: int, chunks: list[str], strict: bool = True) -> FastaRecord:
    seq = "".join(chunks).rstrip("*")
    name = header.split()[0] if header else ""
    if not seq and strict:
        raise FastaError(f"{path}:{lineno}: record {name or '<no name>'!r} has no sequence")
    return FastaRecord(name=name or f"record_line{lineno}", description=header, sequence=seq)


def write_fasta(records: list[tuple[str, str]], path: str | Path, width: int = 80) -> None:
    """Write ``(header, sequence)`` pairs atomically (temp file then rename)."""
    with atomic_write(path) as fh:
        for header, seq in records:
            fh.write(f">{header}\n")
            for i in range(0, len(seq), width):
                fh.write(seq[i : i + width] + "\n")
