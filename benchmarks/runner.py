"""Run one task (or a suite) under a backbone and a protocol; results are plain dicts that report.py writes.

Per task: load the splits (for every seed: a carved validation split depends on it), embed the unique sequences
once (cached on disk), choose hyper-parameters on validation, score the test split once per seed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from xtrimo.benchmarks import embed, metrics, probe
from xtrimo.benchmarks.backbones import BackboneConfig, build_backbone
from xtrimo.benchmarks.data import Examples, Splits, load_splits
from xtrimo.benchmarks.embed import Backbone
from xtrimo.benchmarks.heads import TrainSettings, count_parameters
from xtrimo.benchmarks.tasks import TASK_TYPES, TaskSpec, load_task
from xtrimo.data.registry import DataNotFoundError

log = logging.getLogger(__name__)


@dataclass
class ProtocolConfig:
    """How the head is trained (Hydra group ``protocol``)."""

    name: str = "probe"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    hidden: int = 128
    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    patience: int = 4
    steps_per_epoch: int = 200  # tape: optimizer steps between validations (the others validate once per pass)
    lora_r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    max_train_examples: int = 0  # 0: all; > 0 caps the training split (seeded subsample) for CPU-sized runs
    max_eval_examples: int = 0  # 0: all; > 0 caps the validation and test splits (reported in the summary)
    # zeroshot: masked_marginals, wt_marginals, pseudo_likelihood, log_likelihood_ratio
    scoring: str = "masked_marginals"
    folds: str = "random"  # supervised (ProteinGym): random, modulo or contiguous 5-fold cross-validation
    regressor: str = "proteinnpt_linear"  # supervised: proteinnpt_linear (ProteinGym's One-Hot baseline) or ridge


def _unique_features(backbone: Backbone, splits: list[Splits], mode: str, cache_dir: str | None,
                     batch_tokens: int, memo: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Features of every distinct sequence over all seeds' splits, as a dict sequence -> row.

    ``memo`` (mean pooling only) carries features across the tasks of one run for the same backbone, so the
    five FLIP GB1 splits, which share their sequences, are embedded once.
    """
    seqs: dict[str, None] = {}
    for s in splits:
        for ex in (s.train, s.valid, s.test):
            seqs.update(dict.fromkeys(ex.seqs))
            if ex.seqs2 is not None:
                seqs.update(dict.fromkeys(ex.seqs2))
    shared = memo if mode == "mean" and memo is not None else {}
    todo = [s for s in seqs if s not in shared]
    feats = embed.features(backbone, todo, mode, cache_dir, batch_tokens, progress=True) if todo else []
    table = {s: feats[i] for i, s in enumerate(todo)}
    if mode == "mean" and memo is not None:
        memo.update(table)
    return {s: table[s] if s in table else shared[s] for s in seqs}


def _matrix(table: dict, ex: Examples) -> np.ndarray | list[np.ndarray]:
    rows = [table[s] for s in ex.seqs]
    if ex.seqs2 is not None:
        return np.stack([np.concatenate([a, table[b]]) for a, b in zip(rows, ex.seqs2)])
    return rows if isinstance(rows[0], np.ndarray) and rows[0].ndim == 2 else np.stack(rows)


def _probe_once(task: TaskSpec, table: dict, split: Splits, seed: int) -> dict:
    x = {k: _matrix(table, getattr(split, k)) for k in ("train", "valid", "test")}
    y = {k: getattr(split, k).targets for k in ("train", "valid", "test")}
    spec = task.probe
    if task.type == "residue_pair":
        res = probe.fit_contacts(spec, (x["train"], y["train"]), (x["valid"], y["valid"]), (x["test"], y["test"]), seed)
    elif task.type == "per_residue":
        rows = {k: probe.residue_rows(x[k], y[k], spec.max_train_residues if k == "train" else None, seed) for k in x}
        res = probe.fit_classifier(spec, task.metric, *rows["train"], *rows["valid"], *rows["test"], seed=seed)
    elif task.problem == "regression":
        res = probe.fit_regression(spec, task.metric, x["train"], y["train"], x["valid"], y["valid"],
                                   x["test"], y["test"])
    else:
        res = probe.fit_classifier(spec, task.metric, x["train"], y["train"], x["valid"], y["valid"], x["test"],
                                   y["test"], seed=seed)
    return {"value": res.value, "valid_value": res.valid_value, "chosen": res.chosen}


def _layer_tables(table: dict, layers: list[int]) -> list[dict]:
    """One table per hidden state when the features hold several side by side (views, no copies)."""
    if len(layers) == 1:
        return [table]
    dim = next(iter(table.values())).shape[-1] // len(layers)
    return [{s: v[..., k * dim : (k + 1) * dim] for s, v in table.items()} for k in range(len(layers))]


def _probe_layers(task: TaskSpec, tables: list[dict], layers: list[int], split: Splits, seed: int) -> dict:
    """:func:`_probe_once` on each candidate hidden state; the best validation metric picks it (test never looks)."""
    sign = 1.0 if metrics.HIGHER_IS_BETTER[task.metric] else -1.0
    best, every = None, {}
    for layer, table in zip(layers, tables):
        run = _probe_once(task, table, split, seed)
        key = np.nan_to_num(sign * run["valid_value"], nan=-np.inf)
        if len(layers) > 1:
            run["chosen"] = {"layer": layer, **run["chosen"]}
            every[str(layer)] = {"valid_value": run["valid_value"], "value": run["value"]}
            log.info("%s seed %d layer %d: valid %s = %.4f", task.name, seed, layer, task.metric, run["valid_value"])
        if best is None or key > best[0]:
            best = (key, run)
    # every candidate's scores are kept for the record (the test values played no part in the choice)
    return {**best[1], "per_layer": every} if every else best[1]


def _cap(ex: Examples, limit: int, seed: int) -> Examples:
    if limit <= 0 or len(ex) <= limit:
        return ex
    return ex.subset(np.sort(np.random.default_rng(seed).choice(len(ex), limit, replace=False)))


def _capped(split: Splits, proto: ProtocolConfig, seed: int) -> Splits:
    """Seeded subsamples of the splits when the protocol caps them (CPU-sized comparisons)."""
    cap_train, cap_eval = proto.max_train_examples, proto.max_eval_examples
    valid, test = _cap(split.valid, cap_eval, seed), _cap(split.test, cap_eval, seed)
    return Splits(_cap(split.train, cap_train, seed), valid, test, split.valid_note)


@dataclass
class _Job:
    """One seed of a trained protocol: the task, its splits (train, valid, test) and the frozen features."""

    task: TaskSpec
    proto: ProtocolConfig
    bcfg: BackboneConfig
    table: dict
    examples: tuple[Examples, Examples, Examples]
    seed: int

    @property
    def settings(self) -> TrainSettings:
        p = self.proto
        return TrainSettings(p.epochs, p.lr, p.weight_decay, p.batch_size, p.patience)

    @property
    def out_dim(self) -> int:
        return 1 if self.task.problem == "regression" else max(self.task.num_classes, 2)


def _train_tape(job: _Job):
    from xtrimo.benchmarks.finetune import TrainedResult
    from xtrimo.benchmarks.tape_head import train_tape

    data = [(_matrix(job.table, ex), np.asarray(ex.targets)) for ex in job.examples]
    value, best, epoch, head = train_tape(job.task.problem, job.out_dim, job.task.metric, *data, job.settings,
                                          job.proto.steps_per_epoch, job.proto.hidden, job.seed)
    return TrainedResult(value, best, epoch, *count_parameters(head))


def _train_mlp(job: _Job):
    from xtrimo.benchmarks.finetune import train_mlp

    (x0, x1, x2), (t0, t1, t2) = [_matrix(job.table, ex) for ex in job.examples], [ex.targets for ex in job.examples]
    return train_mlp(job.task.problem, job.out_dim, job.task.metric, x0, t0, x1, t1, x2, t2, job.settings,
                     job.proto.hidden, job.seed)


def _train_backbone(job: _Job):
    from xtrimo.benchmarks.finetune import train_backbone

    fresh = build_backbone(job.bcfg).model  # a fresh copy per seed: adapters / updates never leak across seeds
    lora = (job.proto.lora_r, job.proto.lora_alpha, job.proto.lora_dropout)
    return train_backbone(job.proto.name, fresh, job.task.problem, job.out_dim, job.task.metric, job.examples,
                          job.settings, job.proto.hidden, job.seed, lora)


@dataclass(frozen=True)
class ProtocolKind:
    """What a protocol reads and trains (``bench/protocol/<name>.yaml`` holds its hyper-parameters).

    Attributes:
        frozen: reads pooled features of a frozen backbone (else it trains the backbone in its own passes).
        task_types: the task types it runs on.
        train: trains one seed (None: the probe, which chooses its layer and regularisation on validation).
        adapts_weights: updates the backbone (only backbones with weights: xtrimo, random).
    """

    frozen: bool
    task_types: tuple[str, ...]
    train: Callable[[_Job], Any] | None = None
    adapts_weights: bool = False


_PAIRLESS = ("per_protein", "sequence_pair")
PROTOCOLS: dict[str, ProtocolKind] = {
    "probe": ProtocolKind(True, TASK_TYPES),
    "mlp": ProtocolKind(True, _PAIRLESS, _train_mlp),
    "tape": ProtocolKind(True, ("per_protein",), _train_tape),  # TAPE's attention-pooling head over residues
    "lora": ProtocolKind(False, _PAIRLESS, _train_backbone, adapts_weights=True),
    "finetune": ProtocolKind(False, _PAIRLESS, _train_backbone, adapts_weights=True),
}


def _trained_once(task: TaskSpec, proto: ProtocolConfig, bcfg: BackboneConfig, table: dict, split: Splits,
                  seed: int) -> dict:
    job = _Job(task, proto, bcfg, table, (split.train, split.valid, split.test), seed)
    res = PROTOCOLS[proto.name].train(job)
    return {"value": res.value, "valid_value": res.valid_value, "chosen": {"epoch": res.best_epoch},
            "trainable_params": res.trainable_params, "total_params": res.total_params}


def unsupported(task: TaskSpec, proto: ProtocolConfig, bcfg: BackboneConfig) -> str | None:
    """Why this task / protocol / backbone combination cannot run, or None."""
    kind = PROTOCOLS.get(proto.name)
    if kind is None:
        return f"unknown protocol {proto.name!r}; valid: {', '.join(PROTOCOLS)}"
    if task.type not in kind.task_types:
        return f"protocol {proto.name} runs on {' and '.join(kind.task_types)} tasks; {task.type} uses probe"
    if proto.name != "probe" and len(bcfg.layers or []) > 1:
        return f"backbone.layers (choosing a hidden state on validation) is for protocol=probe, not {proto.name}"
    if kind.adapts_weights and bcfg.name not in ("xtrimo", "random"):
        return f"protocol {proto.name} trains an xtrimo backbone; backbone={bcfg.name} has no weights to adapt"
    return None


def _task_protocol(task: TaskSpec, proto: ProtocolConfig) -> ProtocolConfig:
    """``proto`` with the task's own hyper-parameters for it (``protocol_overrides``) applied."""
    values = dict(task.protocol_overrides.get(proto.name, {}))
    unknown = sorted(set(values) - set(asdict(proto)))
    if unknown:
        raise ValueError(f"task {task.name}: protocol_overrides.{proto.name} has unknown keys {unknown}")
    return replace(proto, **values)


def _pool_mode(task: TaskSpec, backbone_name: str, protocol: str) -> str:
    if task.type in ("per_residue", "residue_pair") or protocol == "tape":
        return "none"
    return task.onehot_pool if backbone_name == "onehot" else "mean"


def run_task(task: TaskSpec, bcfg: BackboneConfig, proto: ProtocolConfig, cache_dir: str | None = None,
             backbone: Backbone | None = None, memo: dict[str, np.ndarray] | None = None) -> dict:
    """Evaluate ``task``; returns the result record (``status``: ok / skipped).

    Args:
        cache_dir: on-disk embedding cache.
        backbone: an already built backbone for ``bcfg`` (built here when None).
        memo: pooled features shared across the tasks of one run (same backbone only).
    """
    base = {"task": task.name, "title": task.title, "paper_task": task.paper_task, "category": task.category,
            "type": task.type, "metric": task.metric, "backbone": bcfg.name, "protocol": proto.name,
            "baseline": task.baseline, "baseline_source": task.baseline_source, "split_note": task.split_note}
    proto = _task_protocol(task, proto)
    reason = task.skip_reason or unsupported(task, proto, bcfg)
    if reason:
        return {**base, "status": "skipped", "reason": reason}
    start = time.time()
    try:
        first = load_splits(task, proto.seeds[0])
    except DataNotFoundError as exc:
        return {**base, "status": "skipped", "reason": f"data not found: {exc}"}
    carved = first.valid_note.startswith(f"{task.data.valid_fraction:.0%}")
    subsampled = bool(proto.max_train_examples or proto.max_eval_examples)
    # a probe on fixed, complete splits is deterministic: one seed is enough
    seeds = proto.seeds if (carved or subsampled or proto.name != "probe") else proto.seeds[:1]
    splits = [_capped(sp, proto, seed) for sp, seed in zip([first] + [load_splits(task, s) for s in seeds[1:]], seeds)]
    backbone = backbone or build_backbone(bcfg)
    frozen = PROTOCOLS[proto.name].frozen  # LoRA / fine-tuning embed inside their own forward passes
    table = {}
    if frozen:
        mode = _pool_mode(task, bcfg.name, proto.name)
        table = _unique_features(backbone, splits, mode, cache_dir, bcfg.batch_tokens, memo)
    layers = list(getattr(backbone, "layers", [-1]))
    runs = []
    for seed, split in zip(seeds, splits):
        if proto.name == "probe":
            runs.append(_probe_layers(task, _layer_tables(table, layers), layers, split, seed))
        else:
            runs.append(_trained_once(task, proto, bcfg, table, split, seed))
        log.info("%s seed %d: test %s = %.4f", task.name, seed, task.metric, runs[-1]["value"])
    values = np.array([r["value"] for r in runs], dtype=float)
    return {
        **base, "status": "ok", "value": float(values.mean()), "std": float(values.std()), "seeds": seeds,
        "values": values.tolist(), "runs": runs, "fingerprint": backbone.fingerprint,
        "n": {"train": len(splits[0].train), "valid": len(splits[0].valid), "test": len(splits[0].test)},
        "subsampled": subsampled,
        "valid_note": first.valid_note, "seconds": round(time.time() - start, 1),
        "config": {"backbone": asdict(bcfg), "protocol": asdict(proto), "task": asdict(task)},
    }


def run_named(name: str, bcfg: BackboneConfig, proto: ProtocolConfig, cache_dir: str | None = None,
              backbone: Backbone | None = None) -> dict:
    """:func:`run_task` on ``configs/bench/task/<name>.yaml`` (ValueError on an unknown name)."""
    return run_task(load_task(name), bcfg, proto, cache_dir, backbone)
