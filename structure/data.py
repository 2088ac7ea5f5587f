"""Training data for the folding head: the shared PDB sets, a held-out split, cached PLM features and random crops.

The two structure sets are registered by :func:`xtrimo.data.structures.register_structure_sets`; this module
resolves them through the data registry, never copying files.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from xtrimo.progress import Progress
from xtrimo.structure.folder import plm_features
from xtrimo.data.pdb import ProteinStructure, read_structure

if TYPE_CHECKING:
    from xtrimo.model.glm import XTrimoPGLM
    from xtrimo.structure.esm_plm import EsmLanguageModel

log = logging.getLogger("xtrimo.structure")

STRUCTURE_SETS = ("structures_scope_domains", "structures_pfam_domains")


def structure_files(source: str) -> list[Path]:
    """PDB / mmCIF files of ``source``: a registered data set name or a folder (``pdb/`` inside is used if present)."""
    folder = Path(source)
    if not folder.is_dir():
        from xtrimo.data.registry import dataset_path
        from xtrimo.data.structures import register_structure_sets

        register_structure_sets()
        folder = dataset_path(source, download=False)
    if (folder / "pdb").is_dir():
        folder = folder / "pdb"
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".pdb", ".cif", ".ent"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .pdb / .cif files")
    return files


def is_validation(name: str, percent: int) -> bool:
    """Deterministic held-out split: md5(file name) % 100 < percent."""
    return int(hashlib.md5(name.encode()).hexdigest(), 16) % 100 < percent


@dataclass
class StructureExample:
    """One chain with its frozen-PLM features (float16 to halve the cache).

    Attributes:
        name: file stem.
        structure: the reference chain.
        plm_states: ``[N, num_layers + 1, H]``; plm_attentions: ``[num_layers * heads, N, N]`` or None.
    """

    name: str
    structure: ProteinStructure
    plm_states: torch.Tensor
    plm_attentions: torch.Tensor | None


def load_examples(
    files: list[Path], plm: XTrimoPGLM | EsmLanguageModel, with_attentions: bool, max_length: int | None = None
) -> list[StructureExample]:
    """Parse ``files`` and run the PLM once over each full chain (crops are cut from these features later)."""
    out = []
    with Progress(len(files), "PLM features", "chains") as bar:
        for path in files:
            st = read_structure(path)
            bar.update(1)
            if max_length is not None and len(st.aatype) > max_length:
                log.info("skipping %s: %d residues > %d", path.name, len(st.aatype), max_length)
                continue
            states, attn, _ = plm_features(plm, [st.sequence], with_attentions)
            out.append(StructureExample(path.stem, st, states[0].half(), None if attn is None else attn[0].half()))
    return out


class CropDataset(Dataset):
    """Random contiguous crops of at most ``crop_size`` residues (AF2 suppl. 1.2.8), one per example per epoch."""

    def __init__(self, examples: list[StructureExample], crop_size: int, repeats: int = 1, seed: int = 0) -> None:
        self.examples = examples
        self.crop_size = crop_size
        self.repeats = repeats
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.examples) * self.repeats

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ex = self.examples[i % len(self.examples)]
        n = len(ex.structure.aatype)
        start = int(self.rng.integers(0, n - self.crop_size + 1)) if n > self.crop_size else 0
        return crop_features(ex, start, min(n, start + self.crop_size))


def crop_features(ex: StructureExample, start: int, end: int) -> dict[str, torch.Tensor]:
    """Tensors of residues ``[start, end)``: PLM features, aatype, residue index (from 0), atom37 and masks."""
    st = ex.structure
    item = {
        "plm_states": ex.plm_states[start:end].float(),
        "aatype": torch.from_numpy(st.aatype[start:end]),
        "residue_index": torch.from_numpy(st.residue_index[start:end] - st.residue_index[start]),
        "atom37": torch.from_numpy(st.atom_positions[start:end]),
        "atom37_mask": torch.from_numpy(st.atom_mask[start:end]),
        "mask": torch.ones(end - start),
    }
    if ex.plm_attentions is not None:
        item["plm_attentions"] = ex.plm_attentions[:, start:end, start:end].float()
    return item


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Right-pad every tensor to the longest crop (residue axes: dim 0, and dims 1-2 of attention maps)."""
    n = max(len(it["mask"]) for it in items)
    out = {}
    for key in items[0]:
        padded = []
        for it in items:
            t = it[key]
            if key == "plm_attentions":
                pad = (0, n - t.shape[-1], 0, n - t.shape[-2])
            else:
                pad = [0, 0] * (t.dim() - 1) + [0, n - t.shape[0]]
            padded.append(torch.nn.functional.pad(t, pad))
        out[key] = torch.stack(padded)
    return out
