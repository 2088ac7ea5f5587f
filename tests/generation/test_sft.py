"""The SFT experiment config and the family selection of the SFT demo."""

from __future__ import annotations

import numpy as np
import pytest

from xtrimo.data.fasta import FastaRecord
from xtrimo.generation.sft_demo import _parser, components, kmer_links, select_family
from xtrimo.train.cli import compose


def test_sft_experiment_composes() -> None:
    cfg = compose(["experiment=sft", "init_from=/ckpt", "data.train_files=[fam.fasta]",
                   "data.valid_files=[held.fasta]"])
    assert cfg.init_from == "/ckpt" and cfg.data.train_files == ["fam.fasta"] and cfg.data.valid_files == ["held.fasta"]
    assert cfg.objective.glm_prob == 0.9 and cfg.objective.stage1_steps == 0 and cfg.objective.min_gmask_ratio == 0.8
    default = compose(["experiment=sft"])
    assert default.init_from == "runs/quickstart/checkpoints/last"
    assert default.data.valid_files == ["runs/sft_family/heldout.fasta"]


def _records() -> list[FastaRecord]:
    rng = np.random.default_rng(0)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    base = rng.choice(letters, 90)
    family = []
    for i in range(6):  # six close relatives: about 5% of positions mutated each
        s = base.copy()
        s[rng.choice(90, 5, replace=False)] = rng.choice(letters, 5)
        family.append(FastaRecord(f"fam{i}", f"fam{i}", "".join(s)))
    others = [FastaRecord(f"x{i}", f"x{i}", "".join(rng.choice(letters, 90))) for i in range(10)]
    return others[:5] + family + others[5:]


def test_family_selection_finds_the_relatives() -> None:
    records = _records()
    links = kmer_links(records)
    groups = components(len(records), [p for p, n in links.items() if n >= 10])
    assert [records[i].name for i in groups[0]] == [f"fam{i}" for i in range(6)]
    args = _parser().parse_args(["--base", "x", "--min-members", "5", "--min-length", "50", "--max-length", "100"])
    members, identity = select_family(records, args)
    assert [r.name for r in members] == [f"fam{i}" for i in range(6)] and identity > 0.85


@pytest.mark.slow
def test_sft_demo_end_to_end(tmp_path, checkpoint) -> None:
    """The whole demo on a synthetic corpus: split, fine-tune through xtrimo-train, before/after numbers."""
    from xtrimo.data.fasta import write_fasta
    from xtrimo.generation.sft_demo import main

    records = _records()
    corpus = tmp_path / "corpus.fasta"
    write_fasta([(r.name, r.sequence) for r in records], corpus)
    result = main(["--base", str(checkpoint), "--out", str(tmp_path / "sft"), "--corpus", str(corpus),
                   "--min-members", "5", "--min-length", "50", "--max-length", "100", "--steps", "3",
                   "--samples", "4", "--max-new-tokens", "20", "--device", "cpu",
                   "--train-override", "trainer.val_check_interval=3", "trainer.precision=32-true"])
    assert len(result["family"]) == 6 and len(result["heldout"]) == 1
    assert (tmp_path / "sft" / "results.json").is_file()
    for stage in ("before", "after"):
        assert result[stage]["heldout_mean_log_likelihood"] < 0
        assert 0 <= result[stage]["sample_nearest_identity_mean"] <= 1
