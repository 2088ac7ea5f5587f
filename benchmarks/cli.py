"""``xtrimo-bench`` and ``xtrimo-embed``: the benchmark command lines.

    xtrimo-bench task=fluorescence backbone=xtrimo backbone.checkpoint=DIR protocol=probe
    xtrimo-bench task=fluorescence backbone=xtrimo backbone.checkpoint=DIR backbone.control=true
    xtrimo-bench -m task=fluorescence,stability,gb1_sampled protocol=probe,lora backbone=xtrimo backbone.checkpoint=DIR
    xtrimo-bench suite=all backbone=onehot
    xtrimo-bench suite=proteingym backbone=xtrimo backbone.checkpoint=DIR protocol=zeroshot \
        protocol.scoring=wt_marginals
    xtrimo-bench suite=proteingym backbone=blosum62 protocol=zeroshot   # suite.root=DIR: any ProteinGym-layout folder
    xtrimo-embed --checkpoint DIR -i seqs.fasta -o emb/ --pool mean|per-residue
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from xtrimo.benchmarks.backbones import BackboneConfig
from xtrimo.cli_utils import describe, hydra_help, make_parser, run_command, setup_logging
from xtrimo.io import output_folder
from xtrimo.benchmarks.runner import ProtocolConfig
from xtrimo.benchmarks.tasks import TaskSpec, is_task_file, list_tasks, load_task, register_task_folder

log = logging.getLogger("xtrimo.benchmarks")


@dataclass
class SuiteConfig:
    """A named list of tasks (``"*"``: every task file, the packaged ones and those of a user's config folder)."""

    name: str = ""
    tasks: list[str] = field(default_factory=list)
    # a folder in ProteinGym's layout (reference.csv + assays/) or a registered data set: the suite is its assays,
    # scored zero-shot (protocol=zeroshot)
    root: str | None = None

    def task_names(self) -> list[str]:
        return list(dict.fromkeys(n for t in self.tasks for n in (list_tasks() if t == "*" else [t])))


@dataclass
class BenchConfig:
    """Schema of ``configs/bench/bench.yaml`` (groups: task, backbone, protocol, suite)."""

    task: TaskSpec = field(default_factory=TaskSpec)
    suite: SuiteConfig | None = None
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    output_dir: str = "results"
    run: str | None = None  # results go to <output_dir>/<run>/; default "<backbone>-<protocol>"
    cache_dir: str | None = None  # embedding cache; default <output_dir>/cache
    max_length: int | None = None  # crop every task's sequences to this length (CPU-sized runs); None: per task
    log_level: str = "WARNING"


def bench_config_dir() -> Path:
    """``configs/bench`` of the packaged configs."""
    from xtrimo.compose import config_dir

    return config_dir() / "bench"


def compose(overrides: list[str]) -> BenchConfig:
    """Compose ``configs/bench/bench.yaml`` with ``overrides`` (no sweeps) into a :class:`BenchConfig`.

    Raises:
        ValueError: one line naming the bad task, key or value.
    """
    from xtrimo.compose import compose as compose_config
    from xtrimo.compose import user_folders

    for folder in user_folders(overrides):
        register_task_folder(folder / "bench" / "task")
    for value in (o.split("=", 1)[1] for o in overrides if o.startswith("task=")):
        if value not in list_tasks() and not is_task_file(value):
            raise ValueError(f"unknown task {value!r}; valid tasks: {', '.join(list_tasks())}")
    files = [o for o in overrides if o.startswith("task=") and is_task_file(o.split("=", 1)[1])]
    rest = [o for o in overrides if o not in files and not (files and o.startswith("task."))]
    cfg = compose_config(BenchConfig, "bench", rest, subdir="bench")
    if files:  # a task file of one's own: read as a task, with the task.* overrides on top
        cfg.task = load_task(files[-1].split("=", 1)[1], [o[5:] for o in overrides if o.startswith("task.")])
    return cfg


def compose_tasks(overrides: list[str]) -> tuple[BenchConfig, list[TaskSpec]]:
    """The run's config and its tasks; a suite's tasks are each composed as ``task=<name>`` with the same overrides,
    so ``task.*`` overrides (``task.max_length=256``) apply to every task of the suite."""
    cfg = compose(overrides)
    if cfg.suite is None:
        return cfg, [cfg.task]
    rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+") not in ("suite", "task")]
    return cfg, [compose([*rest, f"task={name}"]).task for name in cfg.suite.task_names()]


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """``a=x,y b=z`` -> ``[[a=x, b=z], [a=y, b=z]]`` (Hydra's sweep syntax, cartesian product)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for text, o in zip(overrides, parsed):
        if o.is_sweep_override():
            choices.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([text])
    return [list(combo) for combo in itertools.product(*choices)]


def _run_dir(cfg: BenchConfig) -> Path:
    rule = {"zeroshot": {"blosum62": "", "proteinmpnn": cfg.backbone.form}.get(cfg.backbone.name, cfg.protocol.scoring),
            "supervised": cfg.protocol.folds}.get(cfg.protocol.name, "")
    return Path(cfg.output_dir) / (cfg.run or f"{cfg.backbone.name}-{cfg.protocol.name}" + (f"-{rule}" if rule else ""))


def _config_sha(cfg: BenchConfig, task: TaskSpec | SuiteConfig) -> str:
    """What decides a task's result: the task, the backbone (checkpoint weights included) and the protocol."""
    import hashlib
    import json
    from dataclasses import asdict

    from xtrimo.benchmarks.backbones import _file_digest

    key = {"task": asdict(task), "backbone": asdict(cfg.backbone), "protocol": asdict(cfg.protocol)}
    weights = Path(cfg.backbone.checkpoint or "") / "model.safetensors"
    if cfg.backbone.checkpoint and weights.is_file():
        key["weights"] = _file_digest(weights)
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_config(cfg: BenchConfig, tasks: list[TaskSpec]) -> list[dict]:
    """Run ``tasks`` (:func:`compose_tasks`); return the results (each with its ``config_sha``). In a suite an
    error in one task is recorded and the others go on."""
    from xtrimo.benchmarks import runner
    from xtrimo.benchmarks.backbones import build_backbone

    if cfg.max_length is not None:
        tasks = [replace(t, max_length=min(t.max_length, cfg.max_length)) for t in tasks]
    cache = cfg.cache_dir or str(Path(cfg.output_dir) / "cache")
    backbone = build_backbone(cfg.backbone)
    control_cfg = replace(cfg.backbone, name="random", control=False)
    control = build_backbone(control_cfg) if cfg.backbone.control else None
    results = []
    memo: dict = {}  # pooled features shared across tasks, one table per backbone
    control_memo: dict = {}
    for task in tasks:
        print(f"[{task.name}] {cfg.backbone.name} / {cfg.protocol.name} ...", flush=True)
        try:
            result = runner.run_task(task, cfg.backbone, cfg.protocol, cache, backbone, memo)
        except (ValueError, OSError) as exc:  # e.g. a malformed data row: the suite goes on, the exit code says so
            if not cfg.suite:
                raise
            result = {"task": task.name, "title": task.title, "paper_task": task.paper_task, "category": task.category,
                      "metric": task.metric, "status": "error", "reason": describe(exc)}
        if control is not None and result["status"] == "ok":
            result["control"] = runner.run_task(task, control_cfg, cfg.protocol, cache, control, control_memo)
        result["config_sha"] = _config_sha(cfg, task)
        print("  " + _line(result), flush=True)
        results.append(result)
    return results


def _assay_suite(cfg: BenchConfig) -> bool:
    """A run over the assays of a ProteinGym-layout suite; a one-line error where suite and protocol do not pair."""
    rooted = cfg.suite is not None and bool(cfg.suite.root)
    if rooted != (cfg.protocol.name in ("zeroshot", "supervised")):
        raise ValueError("protocol=zeroshot / supervised run on the assays of a ProteinGym-layout suite (suite="
                         "proteingym or suite.root=DIR), and such a suite needs one of them; got suite="
                         f"{cfg.suite.name if cfg.suite else None} protocol={cfg.protocol.name}")
    return rooted


def _suite_root(cfg: BenchConfig) -> Path:
    from xtrimo.benchmarks.datasets import register_all
    from xtrimo.data.registry import REGISTRY, dataset_path

    register_all()
    return dataset_path(cfg.suite.root) if cfg.suite.root in REGISTRY else Path(cfg.suite.root)


def run_supervised(cfg: BenchConfig) -> list[Path]:
    """ProteinGym's supervised benchmark: one-hot features, ``protocol.folds`` 5-fold cross-validation per assay."""
    from xtrimo.benchmarks import proteingym as pg
    from xtrimo.benchmarks.proteingym_supervised import read_published_supervised
    from xtrimo.benchmarks.proteingym_supervised import run_supervised as cross_validate_assays

    if cfg.backbone.name != "onehot":
        raise ValueError(f"protocol=supervised runs on one-hot features (backbone=onehot), not {cfg.backbone.name}")
    root, out = _suite_root(cfg), _run_dir(cfg)
    records = cross_validate_assays(root, cfg.protocol.folds, cfg.protocol.regressor, seed=cfg.protocol.seeds[0])
    published = read_published_supervised(root, cfg.protocol.folds)
    paths = pg.write_supervised_summary(records, published, root, out, f"xtrimo-bench: {out.name}")
    for path in paths:
        print(f"wrote {path}")
    return paths


def run_zero_shot(cfg: BenchConfig) -> list[Path]:
    """Score every assay of ``cfg.suite.root`` with the backbone's zero-shot rule (and BLOSUM62 beside it; the
    random control with ``backbone.control=true``); write the score CSVs and the summary into the run folder."""
    from xtrimo.benchmarks import proteingym as pg
    from xtrimo.benchmarks.backbones import build_backbone

    root = _suite_root(cfg)
    b, rule = cfg.backbone, cfg.protocol.scoring
    scorers: dict = {}
    if b.name == "proteinmpnn":
        from xtrimo.benchmarks.proteinmpnn import proteinmpnn_scorer

        scorers[f"proteinmpnn {b.weights} {b.form}"] = proteinmpnn_scorer(b.weights, b.form, seed=b.seed,
                                                                           device=b.device)
    elif b.name in ("xtrimo", "random"):
        scorers[f"{b.name} {rule}"] = pg.model_scorer(build_backbone(b).model, rule, b.batch_tokens)
        if b.control:
            control = build_backbone(replace(b, name="random", control=False)).model
            scorers[f"random control {rule}"] = pg.model_scorer(control, rule, b.batch_tokens)
    elif b.name != "blosum62":
        raise ValueError(
            f"protocol=zeroshot scores with backbone=xtrimo, random, proteinmpnn or blosum62, not {b.name}")
    scorers["blosum62"] = pg.blosum62_scorer()  # the substitution-matrix reference row costs nothing
    out = _run_dir(cfg)
    records = pg.run_suite(root, scorers, out, _config_sha(cfg, cfg.suite))
    paths = pg.write_summary(records, root, out, f"xtrimo-bench: {out.name} ({len(records)} assays of {root})")
    for path in paths:
        print(f"wrote {path} (per-assay scores in {out / 'scores'})")
    return paths


def _data_hint(results: list[dict]) -> str:
    if any("data not found" in str(r.get("reason", "")) for r in results):
        from xtrimo.data.registry import data_dir

        return f" (data sets are read from {data_dir()}: set XTRIMO_DATA_DIR to the folder that holds them)"
    return ""


def _line(r: dict) -> str:
    if r["status"] != "ok":
        return f"{r['status']}: {r.get('reason', '')}"
    text = f"{r['metric']} = {r['value']:.4f} ± {r['std']:.4f} over seeds {r['seeds']} ({r['seconds']} s)"
    params = r["runs"][0].get("trainable_params")
    if params is not None:
        text += f"; trainable parameters {params:,} of {r['runs'][0]['total_params']:,}"
    if r.get("control", {}).get("status") == "ok":
        text += f"; random control {r['control']['value']:.4f}"
    return text + (f"; published baseline {r['baseline']}" if r.get("baseline") is not None else "")


def bench_main(argv: list[str] | None = None) -> int:
    """Entry point of ``xtrimo-bench``."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        from xtrimo.compose import resolved

        return hydra_help(__doc__, f"tasks: {', '.join(list_tasks())}\nconfigs: {bench_config_dir()}",
                          resolved(compose([])))
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if a not in ("-m", "--multirun")]

    def body() -> int:
        from xtrimo.benchmarks import report

        combos = expand_sweeps(overrides) if multirun else [overrides]
        runs = [compose_tasks(c) for c in combos]  # all compose before anything runs: a typo fails fast
        setup_logging(runs[0][0].log_level)
        if any(_assay_suite(cfg) for cfg, _ in runs):
            for cfg, _ in runs:
                (run_supervised if cfg.protocol.name == "supervised" else run_zero_shot)(cfg)
            return 0
        by_dir: dict[Path, list[dict]] = {}
        for cfg, tasks in runs:
            by_dir.setdefault(_run_dir(cfg), []).extend(run_config(cfg, tasks))
        everything = [r for rs in by_dir.values() for r in rs]
        if not any(r["status"] == "ok" for r in everything):
            reasons = sorted({str(r.get("reason", r["status"])).split(":")[0] for r in everything})
            raise RuntimeError(f"no task ran: {len(everything)} skipped or failed ({'; '.join(reasons)[:200]}); "
                               "nothing was written" + _data_hint(everything))
        for run_dir, results in by_dir.items():
            for result in results:
                kept = report.write_task(result, run_dir)
                if kept is not None:
                    print(f"  {result['task']}: the earlier result of another configuration was kept in {kept}")
            merged = report.collect(run_dir, results)
            for path in report.write_summary(merged, run_dir, f"xtrimo-bench: {run_dir.name}"):
                print(f"wrote {path}")
        failed = [r["task"] for rs in by_dir.values() for r in rs if r["status"] == "error"]
        if failed:
            print(f"xtrimo-bench: error: {len(failed)} task(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1 if failed else 0

    return run_command("xtrimo-bench", body)


def _embed_parser() -> argparse.ArgumentParser:
    p = make_parser("xtrimo-embed", "Bulk embeddings of a (large) FASTA file, streamed.", [
        "xtrimo-embed --checkpoint ckpt/ -i uniref.fasta.gz -o emb/ --pool mean"])
    p.add_argument("--checkpoint", help="xtrimo checkpoint directory")
    p.add_argument("--backbone", default="xtrimo", choices=["xtrimo", "random", "onehot", "esm2"],
                   help="feature source")
    p.add_argument("--esm-file", help="local fair-esm checkpoint (.pt) for --backbone esm2")
    p.add_argument("-i", "--input", required=True, help="FASTA file (plain or .gz)")
    p.add_argument("-o", "--output", required=True, help="a new or empty output folder (shard_NNNNN.npz + index.json)")
    p.add_argument("--pool", default="mean", choices=["mean", "per-residue"],
                   help="one vector per sequence, or per residue")
    p.add_argument("--layer", type=int, default=-1, help="hidden state (0: embedding output, -1: the last)")
    p.add_argument("--batch-tokens", type=int, default=16384, help="token budget per forward pass")
    p.add_argument("--shard-residues", type=int, default=1_000_000, help="residues per output shard (bounds memory)")
    p.add_argument("--max-length", type=int, default=None, help="crop longer sequences")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    return p


def embed_main(argv: list[str] | None = None) -> int:
    """Entry point of ``xtrimo-embed``."""
    from xtrimo.tokenizer import InvalidResidueError

    args = _embed_parser().parse_args(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        from xtrimo.benchmarks.backbones import build_backbone
        from xtrimo.benchmarks.embed import stream_embeddings
        from xtrimo.data.fasta import read_fasta

        if not Path(args.input).is_file():
            raise FileNotFoundError(f"input FASTA not found: {args.input}")
        cfg = BackboneConfig(name=args.backbone, checkpoint=args.checkpoint, esm_file=args.esm_file,
                             layer=args.layer, device=args.device, batch_tokens=args.batch_tokens)
        backbone = build_backbone(cfg)
        records = ((r.name, r.sequence) for r in read_fasta(args.input))
        try:
            with output_folder(args.output):
                stats = stream_embeddings(backbone, records, args.output, "mean" if args.pool == "mean" else "none",
                                          args.batch_tokens, args.shard_residues, args.max_length)
        except InvalidResidueError as exc:
            raise InvalidResidueError(f"{args.input}: {exc}") from None
        print(f"wrote {stats['records']} embeddings ({stats['residues']} residues) in {stats['shards']} shard(s) "
              f"and index.json to {args.output}")
        return 0

    return run_command("xtrimo-embed", body)


if __name__ == "__main__":
    sys.exit(bench_main())
