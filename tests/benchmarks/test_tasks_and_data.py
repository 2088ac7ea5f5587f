"""Task YAMLs, config composition, the registry entries and data-file errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from xtrimo.benchmarks import datasets
from xtrimo.benchmarks.cli import bench_config_dir, compose, expand_sweeps
from xtrimo.benchmarks.data import DataFormatError, read_structure, read_table
from xtrimo.benchmarks.tasks import load_task, list_tasks
from xtrimo.data.registry import verify


def test_every_task_file_loads_and_the_18_are_there() -> None:
    specs = [load_task(n) for n in list_tasks()]
    numbers = sorted(s.paper_task for s in specs if s.paper_task)
    assert numbers == list(range(1, 19))
    for s in specs:
        assert s.skip_reason or s.data.dataset in datasets.register_all(), s.name
    skipped = {s.name for s in specs if s.skip_reason}
    assert skipped == {"enzyme_catalytic_efficiency", "peptide_hla_mhc_affinity",
                       "tcr_pmhc_affinity", "cloning_clf", "material_production"}


def test_unknown_task_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid tasks: antibiotic_resistance, .*stability"):
        load_task("fluoresence")
    with pytest.raises(ValueError, match="unknown task 'fluoresence'; valid tasks"):
        compose(["task=fluoresence"])


@pytest.mark.parametrize("group", ["backbone", "protocol", "suite"])
def test_every_config_composes(group: str) -> None:
    for option in sorted(p.stem for p in (bench_config_dir() / group).glob("*.yaml")):
        cfg = compose([f"{group}={option}"])
        assert getattr(cfg, group).name == option
    for name in list_tasks():
        assert compose([f"task={name}"]).task.name == name


def test_typo_in_override_is_an_error() -> None:
    with pytest.raises(ValueError, match="sedes"):
        compose(["protocol.sedes=1"])
    with pytest.raises(ValueError,
                       match=r"unknown backbone 'esm3'; did you mean esm2\? "
                             r"\(valid: blosum62, esm2, onehot, proteinmpnn"):
        compose(["backbone=esm3"])
    with pytest.raises(ValueError, match=r"^unknown key 'protocol.sedes'; did you mean protocol.seeds\?$"):
        compose(["protocol.sedes=1"])


def test_sweep_expansion() -> None:
    combos = expand_sweeps(["task=a,b", "protocol=probe,lora", "backbone.checkpoint=/x"])
    assert len(combos) == 4
    assert ["task=b", "protocol=lora", "backbone.checkpoint=/x"] in combos


def test_registered_checksums_match_shared_copies(shared_data: Path) -> None:
    for name in datasets.register_all():
        if (shared_data / name).is_dir():
            result = verify(name)
            assert result and all(result.values()), name


def test_pfam_structures_have_direct_urls() -> None:
    from xtrimo.data.registry import REGISTRY

    urls = [f.url for f in REGISTRY["structures_pfam_domains"].files if f.name.startswith("pdb/")]
    assert len(urls) == 20 and all(u.startswith("https://raw.githubusercontent.com/Kortemme-Lab/") for u in urls)


def _gz(path: Path, text: str) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    return path


def test_malformed_rows_name_file_and_row(tmp_path: Path) -> None:
    ragged = _gz(tmp_path / "ragged.csv.gz", "sequence,target\nMKV,1.0\nMKV,2.0,extra\n")
    with pytest.raises(DataFormatError, match=r"ragged\.csv\.gz: row 2 \(line 3\) has 3 fields, expected 2"):
        read_table(ragged, ["sequence", "target"])
    empty = _gz(tmp_path / "empty.csv.gz", "sequence,target\nMKV,\n")
    with pytest.raises(DataFormatError, match=r"empty\.csv\.gz: row 1 .*empty 'target'"):
        read_table(empty, ["sequence", "target"])
    with pytest.raises(DataFormatError, match="missing column"):
        read_table(empty, ["sequence", "label"])


def test_bad_values_name_file_and_row(synthetic_dataset: str, tmp_path: Path) -> None:
    from xtrimo.benchmarks.data import load_splits
    from xtrimo.benchmarks.tasks import DataSpec, TaskSpec
    from xtrimo.data.registry import data_dir

    folder = data_dir() / synthetic_dataset
    task = TaskSpec(name="t", data=DataSpec(dataset=synthetic_dataset, train="bad.csv.gz", valid="valid.csv.gz",
                                            test="test.csv.gz"))
    _gz(folder / "bad.csv.gz", "sequence,target\nMKV,1.0\nMKV,abc\n")
    with pytest.raises(DataFormatError, match=r"bad\.csv\.gz: row 2: 'target' is not a number: 'abc'"):
        load_splits(task)
    _gz(folder / "bad.csv.gz", "sequence,target\nMKV,1.0\nMK1V,2.0\n")
    with pytest.raises(DataFormatError, match=r"bad\.csv\.gz: invalid residue '1' at position 3 of record 'row 2'"):
        load_splits(task)


def test_contact_map_from_structure(shared_data: Path) -> None:
    pdb = next((shared_data / "structures_pfam_domains" / "pdb").glob("*.pdb"))
    seq, contacts = read_structure(pdb)
    assert contacts.shape == (len(seq), len(seq))
    assert np.array_equal(contacts, contacts.T) and contacts.diagonal().all()
    assert contacts[np.arange(len(seq) - 1), np.arange(1, len(seq))].all()  # chain neighbours are within 8 A
    sep = np.abs(np.subtract.outer(np.arange(len(seq)), np.arange(len(seq))))
    assert 0 < contacts[sep >= 6].mean() < 0.2
