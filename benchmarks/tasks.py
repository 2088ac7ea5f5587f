"""Task specifications: one YAML file per task under ``configs/bench/task/``, validated by :class:`TaskSpec`.

A mistyped key in a task file is an error; an unknown task name lists the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASK_TYPES = ("per_protein", "per_residue", "residue_pair", "sequence_pair")
PROBLEMS = ("regression", "binary", "multiclass")
CATEGORIES = ("structure", "interactions", "functionality", "developability")
FORMATS = ("csv", "flip_csv", "flip_residue_fasta", "structures")


@dataclass
class DataSpec:
    """Where a task's examples come from (a data set of the registry) and how its splits are read.

    ``format``: ``csv`` (one CSV per split, or one file with ``split_column``), ``flip_csv`` (FLIP ``set`` /
    ``validation`` columns), ``flip_residue_fasta`` (FLIP per-residue label FASTA + sequences + mask),
    ``structures`` (PDB folders: train from ``train``'s data set, test from ``test_dataset``).
    """

    dataset: str = ""  # a registered data set, or a folder (absolute, or relative to the task file)
    format: str = "csv"
    train: str | None = None
    valid: str | None = None
    test: str | None = None
    sequence_column: str = "sequence"
    pair_column: str | None = None  # second sequence of a sequence-pair task
    target_column: str = "target"
    split_column: str | None = None  # single-file tasks: column holding train / test
    valid_fraction: float = 0.1  # carved from train (per seed) when no validation split is published
    sequences: str | None = None  # flip_residue_fasta: the amino-acid FASTA
    mask: str | None = None  # flip_residue_fasta: per-residue 1 = scored
    test_dataset: str | None = None  # structures: the held-out folder


@dataclass
class ProbeSpec:
    """Hyper-parameter grid of the linear probe (selected on the validation split)."""

    alphas: list[float] = field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0, 1000.0])  # ridge
    cs: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0])  # logistic regression
    standardize: bool = True
    refit_on_train_and_valid: bool = False  # FLIP's ridge fits on all train rows (validation ones included)
    max_train_residues: int = 200_000  # per-residue / pair tasks: subsample (seeded) to bound CPU time


@dataclass
class TaskSpec:
    """One benchmark task (REFERENCE.md section 3 numbers them 1-18; extra tasks have ``paper_task: 0``)."""

    name: str = ""
    title: str = ""
    paper_task: int = 0
    category: str = "functionality"
    type: str = "per_protein"
    problem: str = "regression"
    num_classes: int = 1
    metric: str = "spearman"
    head: str = "linear"  # linear | mlp (per protein), token (per residue), pair (residue pair)
    data: DataSpec = field(default_factory=DataSpec)
    skip_reason: str | None = None  # set: the data are absent; reported as skipped, never run
    split_note: str | None = None  # how the shared copy differs from the paper's split
    max_length: int = 1024  # longer sequences are cropped (first residues) before embedding
    onehot_pool: str = "mean"  # one-hot baseline pooling: mean (composition), flatten (fixed-length tasks) or tape
    #   (the one-hot model of TAPE's PyTorch rewrite: the mean over <cls> seq <sep>, see benchmarks.embed.pool)
    baseline: float | None = None  # published number to compare with (one-hot / ridge row)
    baseline_source: str | None = None
    probe: ProbeSpec = field(default_factory=ProbeSpec)
    # per-protocol hyper-parameters of this task, e.g. {lora: {lr: 8.0e-5}}; keys are ProtocolConfig fields
    protocol_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self, source: str) -> None:
        """Raise ValueError naming ``source`` on an inconsistent spec."""
        checks = (
            ("type", self.type, TASK_TYPES), ("problem", self.problem, PROBLEMS),
            ("category", self.category, CATEGORIES), ("data.format", self.data.format, FORMATS),
            ("onehot_pool", self.onehot_pool, ("mean", "flatten", "tape")),
        )
        for key, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"{source}: {key} must be one of {allowed}, got {value!r}")
        if self.problem == "multiclass" and self.num_classes < 3:
            raise ValueError(f"{source}: multiclass task needs num_classes >= 3, got {self.num_classes}")
        if self.skip_reason is None and not self.data.dataset:
            raise ValueError(f"{source}: a task without skip_reason needs data.dataset")


_USER_TASK_FOLDERS: list[Path] = []


def register_task_folder(folder: str | Path) -> None:
    """Add a folder of task YAML files (a user's own tasks; :func:`list_tasks` and :func:`load_task` see them)."""
    folder = Path(folder)
    if folder not in _USER_TASK_FOLDERS:
        _USER_TASK_FOLDERS.append(folder)


def task_dir() -> Path:
    """``configs/bench/task`` of the packaged configs."""
    from xtrimo.compose import config_dir

    return config_dir() / "bench" / "task"


def _task_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in (task_dir(), *_USER_TASK_FOLDERS):  # a user's task of the same name wins
        found.update({p.stem: p for p in folder.glob("*.yaml")})
    return found


def list_tasks() -> list[str]:
    """Names of every task file (packaged and registered), sorted."""
    return sorted(_task_files())


def is_task_file(value: str) -> bool:
    """``task=`` names a YAML file of one's own rather than a registered task."""
    return value.endswith((".yaml", ".yml"))


def load_task(name: str, overrides: list[str] = ()) -> TaskSpec:
    """Read and validate ``configs/bench/task/<name>.yaml``, or a task file anywhere (``name`` a path ending in
    ``.yaml``: its ``data.dataset`` may be a folder relative to the file); ``overrides`` are ``key=value`` dotlist
    entries applied on top (``max_length=256``).

    Raises:
        ValueError: unknown task (the message lists the valid ones), unknown keys or bad values in the file.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(name) if is_task_file(name) else _task_files().get(name)
    if path is None or not path.is_file():
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(list_tasks())}" if path is None
                         else f"task file not found: {path}")
    try:
        file, extra = OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides))
        merged = OmegaConf.merge(OmegaConf.structured(TaskSpec), file, extra)
        spec = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"{path}: {first}") from None
    if not is_task_file(name) and spec.name != name:
        raise ValueError(f"{path}: name {spec.name!r} does not match the file name {name!r}")
    spec.name = spec.name or path.stem
    local = path.parent / spec.data.dataset
    if is_task_file(name) and spec.data.dataset and local.is_dir():
        spec.data.dataset = str(local.resolve())
    spec.validate(str(path))
    return spec
