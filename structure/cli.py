"""``xtrimo-fold`` and ``xtrimo-fold-eval``: batch folding from FASTA and scoring against reference structures.

    xtrimo-fold -i seqs.fasta -o preds/ --checkpoint FOLD_DIR [--num-recycles 4] [--chunk-size 64]
                [--max-tokens-per-batch 1024]
    xtrimo-fold -i seqs.fasta -o preds/ --esmfold ESMFOLD_DIR [--max-memory-gb 16]
      -> preds/<id>.pdb (all heavy atoms, pLDDT in the B-factor column), preds/<id>.json (per-residue pLDDT, pTM,
         PAE matrix, under ColabFold's names: plddt, ptm, pae, max_pae) and preds/summary.csv
    xtrimo-fold-eval --pred preds/ --ref refs/ -o eval.csv
      -> TM-score (TM-align), GDT-TS, lDDT-CA and CA RMSD per target, then the means

Chains of a complex are separated by ':' in the FASTA sequence. The output folder must be new or empty (an earlier
run is never overwritten). A bad record (empty, invalid residue, too long) stops the command before anything is
folded, with one line naming it; with --keep-going the others are folded, the bad ones are reported on the console
and in summary.csv, and the exit code is 1. A predicted chain whose geometry cannot be a protein (CA-CA distances,
radius of gyration) is flagged on the console and in summary.csv (and not written with --skip-implausible).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from xtrimo.cli_utils import entry_point, make_parser
from xtrimo.data.batching import length_batches
from xtrimo.data.fasta import read_fasta
from xtrimo.io import output_folder, refuse_nonempty, write_csv, write_text
from xtrimo.progress import Progress
from xtrimo.structure.allocator import retain_freed_memory
from xtrimo.tokenizer import InvalidResidueError

if TYPE_CHECKING:
    from xtrimo.structure.folder import Folder, FoldResult

SUMMARY_FIELDS = ("id", "length", "mean_plddt", "ptm", "seconds", "status")


def _fold_parser() -> argparse.ArgumentParser:
    p = make_parser("xtrimo-fold", "Predict structures for the sequences of a FASTA file.", [
        "xtrimo-fold -i seqs.fasta -o preds/ --checkpoint runs/fold/head --num-recycles 4"])
    p.add_argument("-i", "--input", required=True, help="FASTA file (':' separates the chains of a complex)")
    p.add_argument("-o", "--output", required=True, help="output folder for <id>.pdb and summary.csv")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="folding checkpoint (head.safetensors + config.yaml)")
    model.add_argument("--esmfold", help="ESMFold checkpoint folder (Hugging Face format, e.g. facebook/esmfold_v1)")
    p.add_argument("--max-memory-gb", type=float, default=None,
                   help="ESMFold: activation budget the chunk size is chosen for (default: half the RAM / GPU memory)")
    p.add_argument("--plm-checkpoint", default=None, help="override the PLM directory named by the checkpoint")
    p.add_argument("--num-recycles", type=int, default=None, help="recycles (default: the checkpoint's max_recycles)")
    p.add_argument("--chunk-size", type=int, default=None, help="axial-attention chunk (default: chosen from length)")
    p.add_argument("--max-tokens-per-batch", type=int, default=1024,
                   help="residues per batch, padding included (ESMFold: the batch shares --max-memory-gb)")
    p.add_argument("--keep-going", action="store_true",
                   help="fold the other records when one is bad (reported in summary.csv; exit code 1)")
    p.add_argument("--skip-implausible", action="store_true",
                   help="do not write structures whose geometry cannot be a protein (they are flagged either way)")
    return p


def safe_name(name: str) -> str:
    """File name for a FASTA id: its first word with characters other than ``[A-Za-z0-9._-]`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name.split()[0] if name.split() else "unnamed")


def read_records(path: Path) -> list[tuple[str, str]]:
    """``(file-safe id, sequence)`` of every FASTA record, empty ones included (they are reported, not fatal).

    Raises:
        FastaError: a missing or undecodable file, or sequence data before the first header.
    """
    return [(safe_name(r.name), r.sequence) for r in read_fasta(path, allow_empty=True, strict=False)]


def _fold_all(folder: Folder, good: list[tuple[str, str]], args: argparse.Namespace, out: Path,
              rows: dict[str, dict[str, object]]) -> None:
    """Fold the checked records batch by batch; write each PDB (unless its geometry is implausible and
    ``--skip-implausible`` is given) and its summary row."""
    from xtrimo.structure.metrics import implausible_geometry

    with Progress(len(good), "fold", "seq") as bar:
        groups = length_batches([len(s) for _, s in good], args.max_tokens_per_batch)
        for batch in ([good[i] for i in g] for g in groups):
            t0 = time.time()
            try:
                results = folder.fold_batch([s for _, s in batch], [n for n, _ in batch], args.num_recycles,
                                            args.chunk_size)
            except (RuntimeError, ValueError) as exc:  # e.g. out of memory: report, keep going
                for name, seq in batch:
                    rows[name] = {"id": name, "length": len(seq), "status": f"error: {str(exc).splitlines()[0]}"}
                    print(f"xtrimo-fold: {name}: {rows[name]['status']}", file=sys.stderr)
                bar.update(len(batch))
                continue
            seconds = (time.time() - t0) / len(batch)
            for (name, seq), res in zip(batch, results):
                s = res.structure
                odd = implausible_geometry(s.ca, s.residue_index, s.chain_index)
                status = "ok" if odd is None else f"implausible: {odd}"
                if odd is None or not args.skip_implausible:
                    write_text(out / f"{name}.pdb", res.to_pdb())
                    write_text(out / f"{name}.json", confidence_json(res))
                rows[name] = {"id": name, "length": len(res.sequence), "mean_plddt": f"{res.mean_plddt:.2f}",
                              "ptm": f"{res.ptm:.4f}", "seconds": f"{seconds:.2f}", "status": status}
                if odd is not None:
                    print(f"xtrimo-fold: warning: {name}: {status}" + (" (not written)" if args.skip_implausible
                                                                        else " (written)"), file=sys.stderr)
            bar.update(len(batch), postfix=f"last pLDDT {results[-1].mean_plddt:.1f}")


def confidence_json(result: FoldResult) -> str:
    """ColabFold's ``scores.json`` fields for one prediction: ``plddt`` (per residue, 0-100), ``ptm``, ``pae``
    (``[L, L]`` Angstrom, row = aligned residue) and ``max_pae`` (the last PAE bin's centre); pTM rounded as in
    summary.csv."""
    import json

    from xtrimo.structure.model import PAE_MAX_BIN

    return json.dumps({
        "plddt": [round(float(v), 2) for v in result.plddt], "ptm": round(result.ptm, 4),
        "pae": [[round(float(v), 2) for v in row] for row in result.pae],
        "max_pae": PAE_MAX_BIN + 0.75,  # 64 bins of 0.5 A from 0: centres 0.25 ... 31.25 and 31.75 for the last
    })


def _load_folder(args: argparse.Namespace):
    from xtrimo.structure.folder import Folder

    if args.esmfold:
        return Folder.from_esmfold(args.esmfold, max_memory_gb=args.max_memory_gb)
    return Folder.from_pretrained(args.checkpoint, args.plm_checkpoint)


def _run_fold(args: argparse.Namespace) -> int:
    if args.max_tokens_per_batch < 1:
        raise ValueError("--max-tokens-per-batch must be positive")
    if args.max_memory_gb is not None and args.max_memory_gb <= 0:
        raise ValueError("--max-memory-gb must be positive")
    records = read_records(Path(args.input))
    if not records:
        raise ValueError(f"{args.input}: no FASTA records")
    out = Path(args.output)
    refuse_nonempty(out)  # before the model loads; output_folder checks again when it starts writing
    retain_freed_memory()  # pair tensors reuse the heap, not fresh pages: 15-22% off a block at 256-512 residues
    folder = _load_folder(args)
    rows: dict[str, dict[str, object]] = {}
    good = []
    for name, seq in records:
        try:
            folder.check_sequence(seq, name)
            good.append((name, seq))
        except (ValueError, InvalidResidueError) as exc:
            if not args.keep_going:
                raise ValueError(f"{args.input}: {exc} (nothing was folded; --keep-going folds the other records)")
            rows[name] = {"id": name, "length": len(seq), "status": f"error: {exc}"}
            print(f"xtrimo-fold: {name}: {exc}", file=sys.stderr)
    with output_folder(out):
        _fold_all(folder, good, args, out, rows)
        write_csv(out / "summary.csv", [rows[name] for name, _ in records], SUMMARY_FIELDS)
    failed = [name for name, _ in records if str(rows[name]["status"]).startswith("error")]
    print(f"xtrimo-fold: wrote {sum(1 for _ in out.glob('*.pdb'))} PDB file(s) and summary.csv to {out}",
          file=sys.stderr)
    if failed:
        print(f"xtrimo-fold: error: {len(failed)} of {len(records)} record(s) not folded: "
              f"{', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''} (reasons above and in summary.csv)",
              file=sys.stderr)
    return 1 if failed else 0


def _run_eval(args: argparse.Namespace) -> int:
    from xtrimo.structure.evaluate import METRICS, evaluate_dirs, mean_row, write_csv

    rows = evaluate_dirs(Path(args.pred), Path(args.ref))
    mean = mean_row(rows)
    write_csv(rows + [mean], Path(args.output))
    print("\t".join(["id", *METRICS]))
    for r in rows + [mean]:
        print("\t".join([str(r["id"])] + [f"{r[m]:.4f}" for m in METRICS]) + ("" if r["status"] == "ok" or r is mean
                                                                          else f"\t{r['status']}"))
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def _eval_parser() -> argparse.ArgumentParser:
    p = make_parser("xtrimo-fold-eval", "Score predicted structures against references.", [
        "xtrimo-fold-eval --pred preds/ --ref refs/ -o eval.csv"])
    p.add_argument("--pred", required=True, help="folder of predicted <id>.pdb")
    p.add_argument("--ref", required=True, help="folder of reference <id>.pdb / .cif")
    p.add_argument("-o", "--output", required=True, help="CSV of per-target metrics and their means")
    return p


fold_main = entry_point("xtrimo-fold", _fold_parser, _run_fold)
eval_main = entry_point("xtrimo-fold-eval", _eval_parser, _run_eval)


if __name__ == "__main__":
    sys.exit(fold_main())
