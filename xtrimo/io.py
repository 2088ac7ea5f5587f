"""Files the project writes: atomically (a reader sees the old file or the new one), with the usual permissions,
and output folders that never overwrite an earlier run.

Temporary files and folders are made beside their target (same file system, so the final rename is atomic) and
get ``0666`` / ``0777`` minus the user's umask, as files written with ``open`` do (``tempfile`` alone would leave
them ``0600`` / ``0700``, unreadable for the rest of a group sharing a cluster).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path`` in one rename, on error
    it is removed and ``path`` is untouched.

    Args:
        path: the target file (its folder must exist).
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        newline: passed to ``open`` in text mode (``""`` for the csv module).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, newline=newline) if "b" not in mode else os.fdopen(fd, mode) as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path) as fh:
        fh.write(text)


def write_json(path: str | Path, value: Any, **dumps: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (``dumps`` go to :func:`json.dumps`, indent 2 by default)."""
    write_text(path, json.dumps(value, **{"indent": 2, **dumps}) + "\n")


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str],
              extrasaction: str = "raise") -> None:
    """Write ``rows`` under a header of ``fieldnames`` to ``path`` atomically."""
    with atomic_write(path, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fieldnames), extrasaction=extrasaction)
        writer.writeheader()
        writer.writerows(rows)


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``target`` in one rename, on error it is removed.

    A reader never sees a half-written ``target``: it sees the old one or the new one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        if target.is_symlink() or target.is_file():
            target.unlink()
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def refuse_existing(path: str | Path, what: str = "output") -> None:
    """Raise ``FileExistsError`` (one line) if ``path`` exists: a finished result is never overwritten."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise FileExistsError(f"{what} {path} already exists; choose another path (nothing was changed)")


def refuse_nonempty(path: str | Path, what: str = "output folder") -> None:
    """Raise ``FileExistsError`` (one line) if ``path`` is a file or a folder holding anything."""
    path = Path(path)
    if path.is_file():
        raise FileExistsError(f"{what} {path} is a file; choose a folder")
    if path.is_dir() and any(path.iterdir()):
        n = sum(1 for _ in path.iterdir())
        raise FileExistsError(f"{what} {path} is not empty ({n} entries): choose a new folder (nothing was changed)")


@contextmanager
def output_folder(path: str | Path, what: str = "output folder") -> Iterator[Path]:
    """A new or empty folder for a command's results.

    A folder that holds anything is refused (``FileExistsError``, one line) before any work starts; if the body
    fails, the folder is removed again when this call created it, else emptied of what the body wrote.
    """
    path = Path(path)
    refuse_nonempty(path, what)
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        else:
            for entry in path.iterdir():
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        raise
