"""The fold training task: config composition, typo errors and a short end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xtrimo.structure.train import compose, main


def test_fold_config_composes_and_rejects_typos() -> None:
    cfg = compose(["experiment=fold", "plm.checkpoint=/x", "head.trunk.c_s=48", "head.trunk.sequence_head_width=16"])
    assert cfg.head.trunk.c_s == 48 and cfg.plm.checkpoint == "/x" and cfg.data.val_percent == 20
    with pytest.raises(ValueError, match="no_heads_ipaa"):
        compose(["plm.checkpoint=/x", "head.no_heads_ipaa=3"])
    with pytest.raises(ValueError, match="plm.checkpoint"):
        compose([])


def test_train_cli_dispatches_fold_task() -> None:
    from xtrimo.train.cli import _task_entry

    assert _task_entry(["experiment=fold"]) is main


def test_short_training_run_writes_head_and_heldout_report(fold_dir: Path, tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "run"
    rc = main([
        "experiment=fold", f"plm.checkpoint={fold_dir.parent / 'plm'}", f"output_dir={out}",
        f"data.structures={shared_data / 'structures_pfam_domains'}", "data.val_percent=10", "data.crop_size=24",
        "data.max_eval_length=70", "trainer.max_steps=3", "trainer.max_minutes=0", "trainer.eval_recycles=0",
        "head.trunk.c_s=32", "head.trunk.c_z=16", "head.trunk.pairwise_head_width=8", "head.trunk.num_blocks=1",
        "head.trunk.structure_module.no_blocks=2", "head.trunk.structure_module.c_s=32",
        "head.trunk.structure_module.c_z=16",
    ])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["heldout_scored"] >= 1
    assert 0 < summary["xtrimo-fold/tm_score"] < 1 and 0 < summary["helix/tm_score"] < 1
    assert (out / "head" / "head.safetensors").is_file() and (out / "heldout.csv").is_file()
    from xtrimo.structure import Folder

    assert Folder.from_pretrained(out / "head").fold("MKTAYIAKQR").structure.atom_positions.shape == (10, 37, 3)
