"""Scoring predicted structures against references, and the trivial same-length baselines."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from xtrimo import io
from xtrimo.structure.metrics import compare, ideal_helix, straight_chain
from xtrimo.data.pdb import ProteinStructure, read_structure

METRICS = ("tm_score", "gdt_ts", "lddt_ca", "rmsd")


def score_structures(pred: ProteinStructure, ref: ProteinStructure) -> dict[str, float]:
    """TM-score / GDT-TS / lDDT-CA / RMSD of ``pred`` against ``ref`` on CA atoms (observed reference CAs only)."""
    keep = ref.ca_mask
    ref_ca = ref.ca[keep].astype(np.float64)
    ref_seq = "".join(c for c, k in zip(ref.sequence, keep) if k)
    return compare(pred.ca.astype(np.float64), ref_ca, pred.sequence, ref_seq)


def baseline_scores(ref: ProteinStructure) -> dict[str, dict[str, float]]:
    """Scores of an ideal alpha helix and of a straight chain with the reference's length and sequence."""
    n = int(ref.ca_mask.sum())
    seq = "".join(c for c, k in zip(ref.sequence, ref.ca_mask) if k)
    ref_ca = ref.ca[ref.ca_mask].astype(np.float64)
    baselines = (("helix", ideal_helix), ("straight", straight_chain))
    return {name: compare(fn(n), ref_ca, seq, seq) for name, fn in baselines}


def evaluate_dirs(pred_dir: Path, ref_dir: Path) -> list[dict[str, object]]:
    """One row per reference with a prediction of the same stem (``<id>.pdb`` / ``.cif``) in ``pred_dir``.

    A pair that cannot be read or compared gets ``status`` = the one-line reason and NaN metrics.

    Raises:
        FileNotFoundError: a folder is missing or no prediction matches any reference.
    """
    for d in (pred_dir, ref_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such folder")
    refs = {p.stem: p for p in sorted(ref_dir.iterdir()) if p.suffix.lower() in (".pdb", ".cif", ".ent")}
    preds = {p.stem: p for p in sorted(pred_dir.iterdir()) if p.suffix.lower() in (".pdb", ".cif")}
    common = [k for k in refs if k in preds]
    if not common:
        raise FileNotFoundError(f"no prediction in {pred_dir} has the name of a reference in {ref_dir}")
    rows = []
    for key in common:
        row: dict[str, object] = {"id": key}
        try:
            pred, ref = read_structure(preds[key]), read_structure(refs[key])
            row.update(length=int(ref.ca_mask.sum()), **score_structures(pred, ref), status="ok")
        except ValueError as exc:
            row.update(length=0, **{m: math.nan for m in METRICS}, status=str(exc).splitlines()[0])
        rows.append(row)
    return rows


def mean_row(rows: list[dict[str, object]]) -> dict[str, object]:
    """Means of each metric over the rows with status ok."""
    ok = [r for r in rows if r["status"] == "ok"]
    out: dict[str, object] = {"id": "mean", "length": len(ok), "status": f"{len(ok)}/{len(rows)} ok"}
    for m in METRICS:
        out[m] = float(np.mean([r[m] for r in ok])) if ok else math.nan
    return out


def write_csv(rows: list[dict[str, object]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    formatted = [{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    io.write_csv(path, formatted, ["id", "length", *METRICS, "status"], extrasaction="ignore")
