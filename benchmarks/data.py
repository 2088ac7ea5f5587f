"""Reading a task's train / valid / test examples from the registry's files.

Malformed input raises :class:`DataFormatError` naming the file and the row (or record).
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xtrimo.benchmarks.datasets import register_all
from xtrimo.benchmarks.tasks import TaskSpec
from xtrimo.data.fasta import read_fasta
from xtrimo.data.registry import dataset_path
from xtrimo.tokenizer import InvalidResidueError, ResidueTokenizer

SS3 = {"H": 0, "E": 1, "C": 2}
CONTACT_CUTOFF = 8.0  # angstrom between C-beta atoms (C-alpha for glycine), the trRosetta / TAPE definition


class DataFormatError(ValueError):
    """A malformed data file; the message names the file and the row."""


@dataclass
class Examples:
    """One split. ``targets``: ``[N]`` per protein, else one ``[L]`` (per residue, -1 = unscored) or ``[L, L]``
    (residue pair, -1 = unknown) array per sequence."""

    seqs: list[str]
    targets: np.ndarray | list[np.ndarray]
    seqs2: list[str] | None = None

    def __len__(self) -> int:
        return len(self.seqs)

    def subset(self, index: np.ndarray) -> Examples:
        """The examples at ``index`` (in that order)."""
        pick = [int(i) for i in index]
        targets = self.targets[index] if isinstance(self.targets, np.ndarray) else [self.targets[i] for i in pick]
        seqs2 = [self.seqs2[i] for i in pick] if self.seqs2 is not None else None
        return Examples([self.seqs[i] for i in pick], targets, seqs2)


@dataclass
class Splits:
    train: Examples
    valid: Examples
    test: Examples
    valid_note: str  # where the validation split comes from


def _open(path: Path) -> io.TextIOBase:
    if not path.is_file():
        raise DataFormatError(f"data file not found: {path}")
    return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8") if path.suffix == ".gz" else open(path)


def read_table(path: Path, columns: list[str]) -> list[dict[str, str]]:
    """Rows of a (gzip) CSV with at least ``columns``; ragged rows or empty required fields are errors."""
    with _open(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataFormatError(f"{path}: empty file (no header)")
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataFormatError(f"{path}: missing column(s) {missing}; header is {header}")
        rows = []
        for row_no, row in enumerate(reader, start=1):
            if len(row) != len(header):
                raise DataFormatError(
                    f"{path}: row {row_no} (line {reader.line_num}) has {len(row)} fields, expected {len(header)}"
                )
            rec = dict(zip(header, row))
            for c in columns:
                if not rec[c].strip():
                    raise DataFormatError(f"{path}: row {row_no} (line {reader.line_num}): empty {c!r}")
            rec["_row"] = str(row_no)
            rows.append(rec)
    return rows


def _parse_target(value: str, problem: str, path: Path, row: str, column: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise DataFormatError(f"{path}: row {row}: {column!r} is not a number: {value!r}") from None
    if not np.isfinite(number) or (problem != "regression" and number != int(number)):
        raise DataFormatError(f"{path}: row {row}: bad {problem} label {value!r} in {column!r}")
    return number


def _check_sequence(seq: str, path: Path, row: str) -> str:
    try:
        ResidueTokenizer().encode(seq, name=f"row {row}")
    except InvalidResidueError as exc:
        raise DataFormatError(f"{path}: {exc}") from None
    return seq.upper()


def _examples_from_rows(task: TaskSpec, rows: list[dict[str, str]], path: Path) -> Examples:
    d = task.data
    seqs = [_check_sequence(r[d.sequence_column], path, r["_row"]) for r in rows]
    seqs2 = [_check_sequence(r[d.pair_column], path, r["_row"]) for r in rows] if d.pair_column else None
    y = np.array([_parse_target(r[d.target_column], task.problem, path, r["_row"], d.target_column) for r in rows])
    if task.problem != "regression":
        y = y.astype(np.int64)
        if y.size and (y.min() < 0 or y.max() >= max(task.num_classes, 2)):
            n = max(task.num_classes, 2)
            raise DataFormatError(f"{path}: labels must lie in [0, {n}), found {y.min()}..{y.max()}")
    return Examples(seqs, y, seqs2)


def _columns(task: TaskSpec) -> list[str]:
    d = task.data
    return [c for c in (d.sequence_column, d.pair_column, d.target_column, d.split_column) if c]


def _load_csv(task: TaskSpec, folder: Path) -> dict[str, Examples]:
    d = task.data
    if d.split_column:
        path = folder / d.train
        rows = read_table(path, _columns(task))
        out = {}
        for split in ("train", "valid", "test"):
            picked = [r for r in rows if r[d.split_column] == split]
            if picked:
                out[split] = _examples_from_rows(task, picked, path)
        return out
    out = {}
    for split in ("train", "valid", "test"):
        name = getattr(d, split)
        if name:
            out[split] = _examples_from_rows(task, read_table(folder / name, _columns(task)), folder / name)
    return out


def _load_flip_csv(task: TaskSpec, folder: Path) -> dict[str, Examples]:
    path = folder / task.data.train
    rows = read_table(path, [*_columns(task), "set"])
    flag = lambda r: r.get("validation", "").strip().lower() == "true"  # noqa: E731
    return {
        "train": _examples_from_rows(task, [r for r in rows if r["set"] == "train" and not flag(r)], path),
        "valid": _examples_from_rows(task, [r for r in rows if r["set"] == "train" and flag(r)], path),
        "test": _examples_from_rows(task, [r for r in rows if r["set"] == "test"], path),
    }


def _load_flip_residue(task: TaskSpec, folder: Path) -> dict[str, Examples]:
    """FLIP per-residue split: label FASTA (header ``ID SET=.. VALIDATION=..``), sequences, optional mask."""
    d = task.data
    seqs = {r.name: r.sequence for r in read_fasta(folder / d.sequences)}
    masks = {r.name: r.sequence for r in read_fasta(folder / d.mask)} if d.mask else {}
    parts: dict[str, tuple[list[str], list[np.ndarray]]] = {"train": ([], []), "valid": ([], []), "test": ([], [])}
    path = folder / d.train
    for rec in read_fasta(path):
        fields = dict(f.split("=", 1) for f in rec.description.split()[1:] if "=" in f)
        if rec.name not in seqs or fields.get("SET") not in ("train", "test"):
            raise DataFormatError(f"{path}: record {rec.name!r}: unknown id or missing SET=train|test")
        seq, labels = seqs[rec.name], rec.sequence
        if len(labels) != len(seq):
            raise DataFormatError(f"{path}: record {rec.name!r}: {len(labels)} labels for {len(seq)} residues")
        bad = set(labels) - set(SS3)
        if bad:
            raise DataFormatError(f"{path}: record {rec.name!r}: unknown labels {sorted(bad)}")
        y = np.array([SS3[c] for c in labels], dtype=np.int64)
        if rec.name in masks:
            y[np.frombuffer(masks[rec.name].encode(), dtype=np.uint8) == ord("0")] = -1
        split = "valid" if fields.get("VALIDATION") == "True" else fields["SET"]
        parts[split][0].append(_check_sequence(seq, path, rec.name))
        parts[split][1].append(y)
    return {k: Examples(s, t) for k, (s, t) in parts.items() if s}


def _folder(dataset: str) -> Path:
    """A registered data set's folder, or ``dataset`` itself when it is a folder (a user's own files)."""
    return Path(dataset) if Path(dataset).is_absolute() and Path(dataset).is_dir() else dataset_path(dataset)


def read_structure(path: Path) -> tuple[str, np.ndarray]:
    """Sequence and ``[L, L]`` contact map (C-beta < 8 A, C-alpha for glycine) of a single-chain PDB file."""
    from xtrimo.data.pdb import CB, StructureReadError, read_structure as read_pdb

    try:
        st = read_pdb(path)
    except StructureReadError as exc:
        raise DataFormatError(str(exc)) from None
    cb = st.atom_positions[:, CB]
    xyz = np.where(st.atom_mask[:, CB, None] > 0, cb, st.ca)
    dist = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    return st.sequence, (dist < CONTACT_CUTOFF).astype(np.int64)


def _load_structures(task: TaskSpec, folder: Path) -> dict[str, Examples]:
    def read(dir_: Path) -> Examples:
        items = [read_structure(p) for p in sorted((dir_ / "pdb").glob("*.pdb"))]
        return Examples([s for s, _ in items], [c for _, c in items])

    return {"train": read(folder), "test": read(_folder(task.data.test_dataset))}


LOADERS = {"csv": _load_csv, "flip_csv": _load_flip_csv, "flip_residue_fasta": _load_flip_residue,
           "structures": _load_structures}


def _crop(ex: Examples, max_length: int) -> Examples:
    if all(len(s) <= max_length for s in ex.seqs):
        return ex
    if isinstance(ex.targets, list):  # per-residue / pair targets follow the crop
        targets = [t[:max_length] if t.ndim == 1 else t[:max_length, :max_length] for t in ex.targets]
    else:
        targets = ex.targets
    seqs2 = [s[:max_length] for s in ex.seqs2] if ex.seqs2 is not None else None
    return Examples([s[:max_length] for s in ex.seqs], targets, seqs2)


def load_splits(task: TaskSpec, seed: int = 0) -> Splits:
    """Train / valid / test of ``task``; without a published validation split, ``valid_fraction`` of train
    (a seeded permutation) becomes the validation split."""
    register_all()
    parts = LOADERS[task.data.format](task, _folder(task.data.dataset))
    if "train" not in parts or "test" not in parts:
        raise DataFormatError(f"task {task.name}: data set {task.data.dataset} lacks a train or test split")
    train = parts["train"]
    if "valid" in parts:
        valid, note = parts["valid"], "published validation split"
    else:
        perm = np.random.default_rng(seed).permutation(len(train))
        n_valid = max(1, int(round(task.data.valid_fraction * len(train))))
        valid, train = train.subset(np.sort(perm[:n_valid])), train.subset(np.sort(perm[n_valid:]))
        note = f"{task.data.valid_fraction:.0%} of train carved out (seed {seed})"
    crop = lambda ex: _crop(ex, task.max_length)  # noqa: E731
    return Splits(crop(train), crop(valid), crop(parts["test"]), note)
