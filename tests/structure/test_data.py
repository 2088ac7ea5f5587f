"""Structure training data: registry resolution, deterministic held-out split, crops, padding collate."""

from __future__ import annotations

from pathlib import Path

import torch

from xtrimo.model.glm import XTrimoPGLM
from xtrimo.structure.data import CropDataset, collate, is_validation, load_examples, structure_files


def test_registered_sets_resolve_and_split_is_deterministic(shared_data: Path) -> None:
    files = structure_files("structures_pfam_domains") + structure_files("structures_scope_domains")
    assert len(files) == 55
    held = [f.name for f in files if is_validation(f.name, 20)]
    assert held == [f.name for f in files if is_validation(f.name, 20)] and 5 <= len(held) <= 15
    assert structure_files(str(shared_data / "structures_pfam_domains")) == files[:20]


def test_crops_and_collate_mask_padding(fold_dir: Path, shared_data: Path) -> None:
    plm = XTrimoPGLM.from_pretrained(fold_dir.parent / "plm")
    files = [shared_data / "structures_pfam_domains" / "pdb" / n for n in ("PF00327_1BXY_A.pdb", "PF00542_1CTF_A.pdb")]
    examples = load_examples(files, plm, with_attentions=True)
    assert [len(e.structure.aatype) for e in examples] == [60, 68]
    assert examples[0].plm_states.shape == (60, 3, 64) and examples[0].plm_attentions.shape == (8, 60, 60)
    ds = CropDataset(examples, crop_size=17, seed=0)
    item = ds[0]
    assert item["aatype"].shape == (17,) and item["atom37"].shape == (17, 37, 3) and item["residue_index"][0] == 0
    whole = CropDataset(examples, crop_size=64, seed=0)
    batch = collate([whole[0], whole[1]])  # 60 (whole chain) and 64 (a crop of 68)
    assert batch["mask"].shape == (2, 64) and batch["mask"][0].sum() == 60 and batch["mask"][1].sum() == 64
    assert batch["plm_attentions"].shape == (2, 8, 64, 64) and batch["plm_attentions"][0, :, 60:].abs().sum() == 0
    assert torch.equal(batch["atom37_mask"][0, 60:], torch.zeros(4, 37))
