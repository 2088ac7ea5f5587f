"""ProteinGym zero-shot suite: every assay a folder's ``reference.csv`` lists, scored by one rule, with ProteinGym's
metrics and aggregation (:mod:`xtrimo.benchmarks.proteingym_metrics`), beside its published numbers.

Folder layout (ProteinGym's own reference-file columns; the shared ``proteingym_single_site`` copy has it, and so
does a full ProteinGym download with its substitutions reference file saved as ``reference.csv``):

- ``reference.csv``: ``DMS_id, UniProt_ID, coarse_selection_type, DMS_binarization_cutoff, target_seq`` (and
  optionally ``DMS_filename``);
- ``assays/<DMS_id>.csv[.gz]`` (or ``DMS_filename``): ``mutant`` (``A23G``, ``:``-joined for multi-mutants),
  ``mutated_sequence``, ``DMS_score``;
- optionally ``published_spearman.csv``: ProteinGym's per-assay Spearman of other models.

Each assay's scores go to ``scores/<DMS_id>.csv`` in ProteinGym's layout (mutant, mutated_sequence, DMS_score, one
column per score), so they drop into ProteinGym's own evaluation; an assay already scored with the same
configuration is read back, not scored again (a long suite resumes where it stopped).
"""

from __future__ import annotations

import csv
import gzip
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xtrimo.benchmarks.proteingym_metrics import aggregate, assay_metrics, bootstrap_standard_error
from xtrimo.io import write_csv, write_json
from xtrimo.progress import Progress

if TYPE_CHECKING:
    from xtrimo.model.glm import XTrimoPGLM

REQUIRED = ("DMS_id", "UniProt_ID", "coarse_selection_type", "target_seq")
ASSAY_COLUMNS = ("mutant", "mutated_sequence", "DMS_score")


@dataclass(frozen=True)
class Assay:
    """One deep mutational scan of ``reference.csv``."""

    dms_id: str
    uniprot_id: str
    selection_type: str
    cutoff: float | None  # DMS_binarization_cutoff (None: no binary metrics)
    target_seq: str
    path: Path


@dataclass
class Mutants:
    """An assay's rows: ``mutant`` codes, mutated sequences and ``[N]`` DMS scores."""

    codes: list[str]
    sequences: list[str]
    dms: np.ndarray


def _open(path: Path):
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")


def read_reference(root: Path) -> list[Assay]:
    """The assays of ``root/reference.csv``, in its order.

    Raises:
        ValueError: a missing column or assay file, or a bad cutoff (one line naming the file and row).
    """
    ref = root / "reference.csv"
    if not ref.is_file():
        raise FileNotFoundError(f"{root}: no reference.csv (a ProteinGym-layout folder lists its assays there)")
    with open(ref, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{ref}: missing column(s) {', '.join(missing)}")
        assays = [_assay(root, ref, i + 2, row) for i, row in enumerate(reader)]
    if not assays:
        raise ValueError(f"{ref}: lists no assay")
    return assays


def _assay(root: Path, ref: Path, line: int, row: dict[str, str]) -> Assay:
    cut = (row.get("DMS_binarization_cutoff") or "").strip()
    try:
        cutoff = float(cut) if cut else None
    except ValueError:
        raise ValueError(f"{ref}: line {line}: DMS_binarization_cutoff is not a number: {cut!r}") from None
    name = row.get("DMS_filename") or ""
    candidates = [root / "assays" / name] if name else []
    candidates += [root / "assays" / f"{row['DMS_id']}{ext}" for ext in (".csv.gz", ".csv")]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise ValueError(f"{ref}: line {line}: no assay file for {row['DMS_id']} in {root / 'assays'}")
    return Assay(row["DMS_id"], row["UniProt_ID"], row["coarse_selection_type"], cutoff,
                 row["target_seq"].strip().upper(), path)


def read_mutants(assay: Assay) -> Mutants:
    """The assay's rows; each mutant is checked against the wild type (one line naming file and row)."""
    from xtrimo.scoring import apply_variant, parse_variant

    codes, seqs, dms = [], [], []
    with _open(assay.path) as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ASSAY_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{assay.path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                mutated = apply_variant(assay.target_seq, parse_variant(row["mutant"], assay.target_seq))
                score = float(row["DMS_score"])
            except ValueError as exc:
                raise ValueError(f"{assay.path}: line {line}: {exc}") from None
            if mutated != row["mutated_sequence"].strip().upper():
                raise ValueError(f"{assay.path}: line {line}: mutated_sequence does not match mutant {row['mutant']}")
            codes.append(row["mutant"])
            seqs.append(mutated)
            dms.append(score)
    return Mutants(codes, seqs, np.asarray(dms, dtype=np.float64))


# a scorer: (assay, its mutants) -> [N] scores, higher = fitter
Scorer = Callable[[Assay, Mutants], np.ndarray]


def blosum62_scorer() -> Scorer:
    """Sum over a variant's substitutions of BLOSUM62[wt][mut] (Henikoff & Henikoff 1992; biopython's matrix)."""
    from Bio.Align import substitution_matrices

    from xtrimo.scoring import parse_variant

    matrix = substitution_matrices.load("BLOSUM62")

    def score(assay: Assay, mutants: Mutants) -> np.ndarray:
        return np.array([sum(matrix[wt][mt] for _, wt, mt in parse_variant(code, assay.target_seq))
                         for code in mutants.codes], dtype=np.float64)

    return score


def model_scorer(model: XTrimoPGLM, rule: str, batch_tokens: int = 16384) -> Scorer:
    """An xtrimo model's zero-shot rule: ``masked_marginals`` (ESM-1v: each mutated site masked once),
    ``wt_marginals`` (one unmasked pass), ``pseudo_likelihood`` (PLL(mutant) - PLL(wild type), one masked pass per
    residue of every mutant) or ``log_likelihood_ratio`` (GLM / CLM: log p(mutant) - log p(wild type)); rows per
    forward pass from the token budget ``batch_tokens``."""
    from xtrimo import scoring

    if rule not in SCORING_RULES:
        raise ValueError(f"unknown protocol.scoring {rule!r}; valid: {', '.join(SCORING_RULES)}")

    def score(assay: Assay, mutants: Mutants) -> np.ndarray:
        wt = assay.target_seq
        batch_size = max(1, batch_tokens // (min(len(wt), model.config.seq_length) + 2))
        if rule in ("masked_marginals", "wt_marginals"):
            out = scoring.masked_marginal_scores(model, wt, mutants.codes, batch_size, rule == "masked_marginals")
        elif rule == "log_likelihood_ratio":
            out = scoring.log_likelihood_ratio_scores(model, wt, mutants.codes, batch_size)
        else:
            pll = scoring.pseudo_log_likelihoods(model, [wt, *mutants.sequences], batch_size)
            out = [s.log_likelihood - pll[0].log_likelihood for s in pll[1:]]
        return np.asarray(out, dtype=np.float64)

    return score


SCORING_RULES = ("masked_marginals", "wt_marginals", "pseudo_likelihood", "log_likelihood_ratio")


def score_assay(assay: Assay, scorers: dict[str, Scorer], out_dir: Path, config_sha: str) -> dict:
    """Score one assay with every scorer (column name -> scorer), write ``scores/<DMS_id>.csv``, return its
    metrics per column; an earlier file of the same configuration is read back instead."""
    path, meta = out_dir / "scores" / f"{assay.dms_id}.csv", out_dir / "scores" / f"{assay.dms_id}.json"
    mutants = read_mutants(assay)
    columns = _read_back(path, meta, config_sha, list(scorers), len(mutants.codes))
    seconds = {}
    if columns is None:
        columns = {}
        for name, scorer in scorers.items():
            t0 = time.perf_counter()
            columns[name] = scorer(assay, mutants)
            seconds[name] = round(time.perf_counter() - t0, 2)
        rows = [{"mutant": c, "mutated_sequence": s, "DMS_score": d, **{k: float(v[i]) for k, v in columns.items()}}
                for i, (c, s, d) in enumerate(zip(mutants.codes, mutants.sequences, mutants.dms))]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(path, rows, [*ASSAY_COLUMNS, *scorers])
        write_json(meta, {"config_sha": config_sha, "columns": list(scorers), "seconds": seconds})
    return {"DMS_id": assay.dms_id, "UniProt_ID": assay.uniprot_id, "coarse_selection_type": assay.selection_type,
            "n": len(mutants.codes), "seconds": seconds,
            "metrics": {k: assay_metrics(v, mutants.dms, assay.cutoff) for k, v in columns.items()}}


def _read_back(path: Path, meta: Path, config_sha: str, names: Sequence[str], n: int) -> dict | None:
    import json

    if not (path.is_file() and meta.is_file()):
        return None
    try:
        if json.loads(meta.read_text()).get("config_sha") != config_sha:
            return None
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        out = {k: np.array([float(r[k]) for r in rows]) for k in names}
    except (OSError, ValueError, KeyError):
        return None
    return out if all(len(v) == n for v in out.values()) else None


def run_suite(root: Path, scorers: dict[str, Scorer], out_dir: Path, config_sha: str,
              progress: bool = True) -> list[dict]:
    """Score every assay of ``root`` (:func:`score_assay`); returns the per-assay records."""
    assays = read_reference(root)
    records = []
    with Progress(len(assays), "proteingym", "assays", enabled=progress) as bar:
        for assay in assays:
            records.append(score_assay(assay, scorers, out_dir, config_sha))
            bar.update(1, postfix=assay.dms_id)
    return records


def read_published(root: Path) -> tuple[dict[str, dict[str, float]], set[str]]:
    """ProteinGym's published Spearman per assay (model -> value) and the assays where it covers exactly the
    mutants here (no multi-mutants, same count); empty when the folder has no ``published_spearman.csv``."""
    path = root / "published_spearman.csv"
    if not path.is_file():
        return {}, set()
    meta = {"DMS_id", "ProteinGym_v1_DMS_id", "includes_multiple_mutants", "v1_number_single_mutants",
            "this_number_single_mutants"}
    table, comparable = {}, set()
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            table[row["DMS_id"]] = {k: float(v) for k, v in row.items() if k not in meta and v not in ("", None)}
            same = row.get("v1_number_single_mutants") == row.get("this_number_single_mutants")
            if row.get("includes_multiple_mutants", "").upper() == "FALSE" and same:
                comparable.add(row["DMS_id"])
    return table, comparable


def aggregate_columns(records: list[dict], published: dict[str, dict[str, float]], assays: set[str] | None,
                      metric: str = "spearman") -> dict[str, dict]:
    """ProteinGym's aggregate of ``metric`` (with its bootstrap standard error, ``stderr``) for every score column
    and published model, over ``assays`` (None: all assays of ``records``; a published model over those it has)."""
    chosen = [r for r in records if assays is None or r["DMS_id"] in assays]
    tables = {c: [{**_keys(r), metric: r["metrics"][c][metric]} for r in chosen] for c in
              (chosen[0]["metrics"] if chosen else [])}
    for model in sorted({m for r in chosen for m in published.get(r["DMS_id"], {})}):
        tables[f"published: {model}"] = [{**_keys(r), metric: published[r["DMS_id"]][model]} for r in chosen
                                         if model in published.get(r["DMS_id"], {})]
    return {name: {**aggregate(rows, metric), "stderr": bootstrap_standard_error(rows, metric)}
            for name, rows in tables.items() if rows}


def _keys(record: dict) -> dict:
    return {k: record[k] for k in ("DMS_id", "UniProt_ID", "coarse_selection_type")}


def write_summary(records: list[dict], root: Path, out_dir: Path, title: str) -> list[Path]:
    """``summary.csv`` (one row per assay: every metric of every column beside the published Spearman) and
    ``summary.md`` (the aggregates over all assays and over the directly comparable ones, then the assays)."""
    published, comparable = read_published(root)
    columns = list(records[0]["metrics"]) if records else []
    models = sorted({m for r in records for m in published.get(r["DMS_id"], {})})
    rows = []
    for r in records:
        row = {**_keys(r), "n": r["n"], "comparable": r["DMS_id"] in comparable}
        for c in columns:
            row.update({f"{c} {k}": _round(v) for k, v in r["metrics"][c].items()})
        row.update({f"published {m} spearman": published.get(r["DMS_id"], {}).get(m) for m in models})
        rows.append(row)
    csv_path, md_path = out_dir / "summary.csv", out_dir / "summary.md"
    write_csv(csv_path, rows, list(rows[0]) if rows else ["DMS_id"])
    from xtrimo.io import write_text

    lines = [f"# {title}", "", "Spearman aggregated as ProteinGym does (mean per UniProt_ID within each coarse "
             "selection type, then over the types), +- bootstrap standard error.", ""]
    for label, subset in (("all assays", None), ("the directly comparable assays", comparable)):
        agg = aggregate_columns(records, published, subset)
        n = len([r for r in records if subset is None or r["DMS_id"] in subset])
        lines += [f"## {label} ({n})", "", "| scores | Spearman | +- | assays |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['value']:.3f} | {v['stderr']:.3f} | {v['n_assays']} |" for k, v in agg.items()]
        lines.append("")
    head = ["DMS_id", "type", "n", *[f"{c} Spearman" for c in columns], *[f"published {m}" for m in models]]
    lines += ["## per assay", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r, row in zip(records, rows):
        cells = [r["DMS_id"] + ("" if r["DMS_id"] in comparable else " (*)"), r["coarse_selection_type"], str(r["n"])]
        cells += [_fmt(row[f"{c} spearman"]) for c in columns]
        cells += [_fmt(row[f"published {m} spearman"]) for m in models]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "(*) ProteinGym's published value also covers multi-mutants or another mutant count: not comparable."]
    write_text(md_path, "\n".join(lines) + "\n")
    return [csv_path, md_path]


def write_supervised_summary(records: list[dict], published: dict[str, float], root: Path, out_dir: Path,
                             title: str) -> list[Path]:
    """``summary.csv`` (per assay: our cross-validated Spearman beside ProteinGym's published One-Hot value) and
    ``summary.md`` (both aggregated over all assays and over the directly comparable ones)."""
    from xtrimo.io import write_text

    _, comparable = read_published(root)
    rows = [{**_keys(r), "n": r["n"], "folds": r["n_folds"], "comparable": r["DMS_id"] in comparable,
             "spearman": _round(r["spearman"]), "published_one_hot": published.get(r["DMS_id"])} for r in records]
    csv_path, md_path = out_dir / "summary.csv", out_dir / "summary.md"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(csv_path, rows, list(rows[0]) if rows else ["DMS_id"])
    lines = [f"# {title}", "", f"{records[0]['scheme'] if records else ''} folds; Spearman of the pooled "
             "out-of-fold predictions, aggregated as ProteinGym does.", "", "| assays | ours | published One-Hot | "
             "mean over assays: ours | published |", "|---|---|---|---|---|"]
    for label, subset in (("all", None), ("directly comparable", comparable)):
        chosen = [r for r in rows if subset is None or r["DMS_id"] in subset]
        both = [r for r in chosen if r["published_one_hot"] is not None and r["spearman"] is not None]
        ours = aggregate([{**r, "spearman": r["spearman"]} for r in both], "spearman")["value"]
        theirs = aggregate([{**r, "spearman": r["published_one_hot"]} for r in both], "spearman")["value"]
        mean_ours = float(np.mean([r["spearman"] for r in both])) if both else float("nan")
        mean_pub = float(np.mean([r["published_one_hot"] for r in both])) if both else float("nan")
        lines.append(f"| {label} ({len(both)}) | {ours:.3f} | {theirs:.3f} | {mean_ours:.3f} | {mean_pub:.3f} |")
    lines += ["", "| DMS_id | n | folds | ours | published One-Hot |", "|---|---|---|---|---|"]
    lines += [f"| {r['DMS_id']}{'' if r['comparable'] else ' (*)'} | {r['n']} | {r['folds']} | {_fmt(r['spearman'])} | "
              f"{_fmt(r['published_one_hot'])} |" for r in rows]
    write_text(md_path, "\n".join(lines) + "\n")
    return [csv_path, md_path]


def _round(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 4)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
