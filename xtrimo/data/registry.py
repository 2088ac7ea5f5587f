"""Named data sets: public source, checksum and license, cached under ``$XTRIMO_DATA_DIR``.

Files are fetched once from their public URL and checked against their SHA-256. Where there is no internet,
``XTRIMO_DATA_DIR`` points to an existing copy laid out as ``<dir>/<dataset>/<file>`` (in this repository's
tests and CI: ``../shared/data``); such files are used as they are.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from xtrimo.io import atomic_write

DEFAULT_CACHE = Path.home() / ".cache" / "xtrimo" / "data"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set.

    ``url`` is where the file itself can be fetched; None for a file derived from public sources by a recipe
    (``DatasetSpec.source`` names them) that has no download of its own: it must then be placed in the cache.
    """

    name: str  # file name inside the data set folder
    url: str | None
    sha256: str  # of the file as used here


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    license: str
    source: str  # repository / paper the files come from
    files: tuple[RemoteFile, ...]


class DataNotFoundError(FileNotFoundError):
    """A registered data set is neither cached nor downloadable."""


REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    REGISTRY[spec.name] = spec
    return spec


register(DatasetSpec(
    name="pretrain_corpus",
    description="29,465 train / 1,527 valid real protein sequences (CATH S40 domains + STRING yeast and E. coli), "
    "deduplicated, split by md5(sequence) % 100 < 5",
    license="CATH: CC BY 4.0; D-SCRIPT STRING files: MIT",
    source="shouldsee/blosum@a226226 cath-dataset-nonredundant-S40.fa; samsledje/D-SCRIPT@b1957f1 data/seqs/",
    files=(
        # derived (uppercase, strip '*', drop < 20 aa and duplicates, md5 split): no download of its own
        RemoteFile("train.fasta.gz", None, "df49bd543ce4cc71d03c7318a44545806044e8aca838a77c4aae1135c0322afc"),
        RemoteFile("valid.fasta.gz", None, "63d0cc05f153da906622c17fa012d3bf415b4ff34ef421fdb883b331d400e0e4"),
    ),
))


def data_dir() -> Path:
    return Path(os.environ.get("XTRIMO_DATA_DIR", DEFAULT_CACHE)).expanduser()


def sha256sum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(remote: RemoteFile, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(dest, "wb") as out, urllib.request.urlopen(remote.url, timeout=60) as resp:
        digest = hashlib.sha256()
        for block in iter(lambda: resp.read(1 << 20), b""):
            out.write(block)
            digest.update(block)
        if digest.hexdigest() != remote.sha256:  # the partial file is removed, dest stays as it was
            raise DataNotFoundError(f"checksum mismatch for {remote.url}: got {digest.hexdigest()}, expected "
                                    f"{remote.sha256}")


def dataset_path(name: str, download: bool = True) -> Path:
    """Local folder of data set ``name``, downloading missing files into the cache when allowed.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        DataNotFoundError: not present and not downloadable (the message says where it was looked for).
    """
    if name not in REGISTRY:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(sorted(REGISTRY))}")
    spec, folder = REGISTRY[name], data_dir() / name
    for remote in spec.files:
        target = folder / remote.name
        if target.exists():
            continue
        if not download or remote.url is None:
            how = ("it has no download of its own: build it from " + spec.source if remote.url is None
                   else "downloads are off")
            raise DataNotFoundError(
                f"data set {name!r}: {target} is missing ({how}); set XTRIMO_DATA_DIR to a folder holding {name}/"
            )
        try:
            _download(remote, target)
        except OSError as exc:
            raise DataNotFoundError(
                f"data set {name!r}: {target} is missing and {remote.url} could not be fetched ({exc}); "
                f"set XTRIMO_DATA_DIR to a folder holding {name}/"
            ) from None
    return folder


def verify(name: str) -> dict[str, bool]:
    """Whether each present file of ``name`` matches its recorded SHA-256 (absent files are left out)."""
    folder = data_dir() / name
    return {f.name: sha256sum(folder / f.name) == f.sha256 for f in REGISTRY[name].files if (folder / f.name).exists()}


def resolve_data_file(spec: str) -> Path:
    """A file path, or ``registry:<dataset>/<file>`` resolved through the registry."""
    if spec.startswith("registry:"):
        name, _, file = spec[len("registry:") :].partition("/")
        return dataset_path(name) / file
    return Path(spec)
