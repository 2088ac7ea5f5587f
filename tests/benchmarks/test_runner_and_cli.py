"""Protocols end to end on a small synthetic task, LoRA parameter counts, and CLI smoke runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
import json
from pathlib import Path

import numpy as np
import pytest

from xtrimo.benchmarks.backbones import BackboneConfig
from xtrimo.benchmarks.cli import bench_main, embed_main
from xtrimo.benchmarks.finetune import LORA_TARGETS, apply_lora
from xtrimo.benchmarks.heads import count_parameters
from xtrimo.benchmarks.runner import ProtocolConfig, run_named, run_task
from xtrimo.benchmarks.tasks import TaskSpec
from xtrimo.model.glm import XTrimoPGLM

from tests.helpers import read_csv

MakeTask = Callable[..., TaskSpec]  # the synthetic_task fixture


def test_onehot_probe_learns_composition(synthetic_task: MakeTask) -> None:
    result = run_task(synthetic_task(), BackboneConfig(), ProtocolConfig(seeds=[0]))
    assert result["status"] == "ok" and result["value"] > 0.9
    assert result["n"] == {"train": 120, "valid": 40, "test": 60}


def test_checkpoint_probe_with_cache(synthetic_task: MakeTask, tiny_checkpoint: Path, tmp_path: Path) -> None:
    bcfg = BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint))
    result = run_task(synthetic_task("binary"), bcfg, ProtocolConfig(seeds=[0, 1]), str(tmp_path / "c"))
    assert result["status"] == "ok" and result["seeds"] == [0]  # fixed splits + probe: one deterministic run
    assert 0.0 <= result["value"] <= 1.0 and result["fingerprint"].startswith("xtrimo-")
    assert len(list((tmp_path / "c").glob("*.npy"))) == 1


@pytest.mark.parametrize("problem", ["regression", "binary"])
def test_probe_chooses_the_hidden_state_on_validation(synthetic_task: MakeTask, tiny_checkpoint: Path,
                                                      problem: str) -> None:
    bcfg = BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint))
    proto = ProtocolConfig(seeds=[0])
    single = {k: run_task(synthetic_task(problem), replace(bcfg, layer=k), proto) for k in (0, 1, -1)}
    chosen = run_task(synthetic_task(problem), replace(bcfg, layers=[0, 1, -1]), proto)
    run = chosen["runs"][0]
    best = max(single, key=lambda k: single[k]["runs"][0]["valid_value"])
    assert run["chosen"]["layer"] == best
    assert run["valid_value"] == pytest.approx(single[best]["runs"][0]["valid_value"])
    assert chosen["value"] == pytest.approx(single[best]["value"])
    assert run["per_layer"]["0"]["value"] == pytest.approx(single[0]["value"])
    mlp = run_task(synthetic_task(problem), replace(bcfg, layers=[0, -1]), ProtocolConfig(name="mlp"))
    assert mlp["status"] == "skipped" and "backbone.layers" in mlp["reason"]


@pytest.mark.parametrize("problem", ["regression", "binary"])
def test_mlp_protocol(synthetic_task: MakeTask, problem: str) -> None:
    proto = ProtocolConfig(name="mlp", seeds=[0, 1], epochs=30, lr=3e-3)
    result = run_task(synthetic_task(problem), BackboneConfig(), proto)
    assert result["status"] == "ok" and len(result["values"]) == 2
    assert result["value"] > (0.7 if problem == "regression" else 0.6)


def test_lora_trains_only_adapters_and_head(synthetic_task: MakeTask, tiny_checkpoint: Path) -> None:
    model = apply_lora(XTrimoPGLM.from_pretrained(tiny_checkpoint))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".")[-4] for n in trainable} == set(LORA_TARGETS)  # <module>.lora_A.default.weight
    cfg = model.config
    per_layer = 16 * ((cfg.hidden_size + 3 * cfg.hidden_size) + 2 * cfg.hidden_size
                      + (cfg.hidden_size + 2 * cfg.ffn_hidden_size) + (cfg.ffn_hidden_size + cfg.hidden_size))
    assert count_parameters(model)[0] == cfg.num_layers * per_layer

    bcfg = BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint))
    proto = ProtocolConfig(name="lora", seeds=[0], epochs=1, lr=1e-3, batch_size=16)
    result = run_task(synthetic_task(), bcfg, proto)
    run = result["runs"][0]
    head = (64 * 128 + 128) + (128 * 1 + 1)
    assert run["trainable_params"] == cfg.num_layers * per_layer + head
    assert run["total_params"] == XTrimoPGLM.from_pretrained(tiny_checkpoint).num_parameters() + run["trainable_params"]


def test_finetune_trains_everything(synthetic_task: MakeTask, tiny_checkpoint: Path) -> None:
    bcfg = BackboneConfig(name="xtrimo", checkpoint=str(tiny_checkpoint))
    result = run_task(synthetic_task(), bcfg, ProtocolConfig(name="finetune", seeds=[0], epochs=1))
    run = result["runs"][0]
    assert run["trainable_params"] == run["total_params"] and np.isfinite(result["value"])


def test_unsupported_combinations_are_skipped_with_reason(synthetic_task: MakeTask) -> None:
    result = run_task(synthetic_task(), BackboneConfig(), ProtocolConfig(name="lora"))
    assert result["status"] == "skipped" and "has no weights to adapt" in result["reason"]
    absent = run_named("cloning_clf", BackboneConfig(), ProtocolConfig())
    assert absent["status"] == "skipped" and "not in ../shared/data" in absent["reason"]


def test_flip_gb1_ridge_reproduces_published(shared_data: Path) -> None:
    published_ridge = {"one_vs_rest": 0.28, "two_vs_rest": 0.59, "three_vs_rest": 0.76, "low_vs_high": 0.34,
                       "sampled": 0.82}  # FLIP (Dallago et al. 2021), GB1 table, Ridge row
    for split, published in published_ridge.items():
        result = run_named(f"gb1_{split}", BackboneConfig(), ProtocolConfig())
        assert result["baseline"] == published
        assert abs(result["value"] - published) < 0.05, (split, result["value"])


def test_bench_cli_writes_results(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["-m", "task=gb1_two_vs_rest,cloning_clf", f"output_dir={tmp_path}"]
    assert bench_main(argv) == 0
    run = tmp_path / "onehot-probe"
    record = json.loads((run / "gb1_two_vs_rest.json").read_text())
    assert record["status"] == "ok" and record["config"]["task"]["data"]["dataset"] == "flip_gb1"
    rows = {r["task"]: r for r in read_csv(run / "summary.csv")}
    assert rows["gb1_two_vs_rest"]["baseline"] == "0.59" and rows["cloning_clf"]["status"] == "skipped"
    assert (run / "summary.png").stat().st_size > 0 and "skipped" in (run / "summary.md").read_text()
    assert "published baseline 0.59" in capsys.readouterr().out


def test_bench_cli_bad_input(capsys: pytest.CaptureFixture) -> None:
    assert bench_main(["task=fluoresence"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("xtrimo-bench: error: unknown task 'fluoresence'; valid tasks:") and "\n" not in err
    assert bench_main(["task=stability", "protocol.sedes=3"]) == 1
    assert "sedes" in capsys.readouterr().err


def test_embed_cli(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">a\nMKTAYIAKQRQIS\n>b desc\nMLSEGEWQLVLHVWAKVEA\n>c\nACDEFGHIKLMNPQR\n")
    out = tmp_path / "emb"
    argv = ["--checkpoint", str(tiny_checkpoint), "-i", str(fasta), "-o", str(out), "--pool", "per-residue",
            "--shard-residues", "20"]
    assert embed_main(argv) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["records"] == 3 and index["shards"] == 2 and index["pool"] == "none"
    with np.load(out / "shard_00000.npz") as z:
        assert z["names"].tolist() == ["a", "b"] and z["values"].shape == (32, 64)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert embed_main(argv) == 1  # a finished run's folder is refused, byte for byte unchanged
    assert "is not empty" in capsys.readouterr().err and {p.name: p.read_bytes() for p in out.iterdir()} == before
    bad = tmp_path / "bad.fasta"
    bad.write_text(">x\nMK*1\n")
    assert embed_main(["--checkpoint", str(tiny_checkpoint), "-i", str(bad), "-o", str(tmp_path / "e2")]) == 1
    assert f"{bad}: invalid residue '*' at position 3 of record 'x'" in capsys.readouterr().err


def test_nothing_to_run_or_read_fails_and_leaves_nothing(tmp_path: Path, tiny_checkpoint: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("XTRIMO_DATA_DIR", str(tmp_path / "empty"))
    assert bench_main(["suite=all", f"output_dir={tmp_path / 'results'}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("xtrimo-bench: error: no task ran: 24 skipped or failed") and "XTRIMO_DATA_DIR" in err
    assert not (tmp_path / "results").exists()
    assert embed_main(["--checkpoint", str(tiny_checkpoint), "-i", str(tmp_path / "none.fasta"), "-o",
                       str(tmp_path / "emb")]) == 1
    assert capsys.readouterr().err.strip() == f"xtrimo-embed: error: input FASTA not found: {tmp_path / 'none.fasta'}"
    assert not (tmp_path / "emb").exists()
    bad = tmp_path / "bad.fasta"
    bad.write_text(">a\nMKT\n>x\nMK*1\n")  # fails after the folder was made: it is removed again
    assert embed_main(["--checkpoint", str(tiny_checkpoint), "-i", str(bad), "-o", str(tmp_path / "emb")]) == 1
    assert not (tmp_path / "emb").exists()
    (tmp_path / "emb").mkdir()
    (tmp_path / "emb" / "index.json").write_text("{}")
    assert embed_main(["--checkpoint", str(tiny_checkpoint), "-i", str(bad), "-o", str(tmp_path / "emb")]) == 1
    assert "is not empty" in capsys.readouterr().err and (tmp_path / "emb" / "index.json").read_text() == "{}"


def test_a_result_of_another_configuration_is_kept(tmp_path: Path) -> None:
    from xtrimo.benchmarks import report

    first = {"task": "t", "status": "ok", "value": 0.1, "config_sha": "aaa"}
    assert report.write_task(first, tmp_path) is None
    assert report.write_task({**first, "value": 0.2}, tmp_path) is None  # same configuration: replaced
    kept = report.write_task({**first, "value": 0.3, "config_sha": "bbb"}, tmp_path)
    assert kept == tmp_path / "superseded" / "t.aaa.json" and json.loads(kept.read_text())["value"] == 0.2
    assert json.loads((tmp_path / "t.json").read_text())["value"] == 0.3


def test_summary_shows_control_side_by_side_and_merges_runs(tmp_path: Path) -> None:
    from xtrimo.benchmarks import report

    def record(task: str, value: float, control: float) -> dict:
        return {"task": task, "paper_task": 9, "category": "functionality", "metric": "spearman", "status": "ok",
                "value": value, "std": 0.0, "baseline": 0.14, "n": {"train": 1, "valid": 1, "test": 1},
                "control": {"status": "ok", "value": control}}

    report.write_task(record("fluorescence", 0.5, 0.3), tmp_path)
    chosen = record("stability", 0.1, 0.2)  # backbone.layers: the probed hidden state per seed is named
    chosen["runs"] = [{"chosen": {"layer": 2, "alpha": 1.0}}, {"chosen": {"layer": 3, "alpha": 0.1}}]
    chosen["control"]["runs"] = [{"chosen": {"layer": 0, "alpha": 1.0}}]
    merged = report.collect(tmp_path, [chosen])
    assert {r["task"] for r in merged} == {"fluorescence", "stability"}
    report.write_summary(merged, tmp_path, "t")
    text = (tmp_path / "summary.md").read_text()
    assert "| control |" in text and "| 0.500 | 0.000 | 0.300 | 0.14 |" in text
    assert "beats its randomly initialised control on 1 of 2 tasks" in text
    assert "hidden state chosen on valid: 2/3, control 0." in text


def test_absent_data_is_skipped_not_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTRIMO_DATA_DIR", str(tmp_path / "empty"))
    result = run_named("fluorescence", BackboneConfig(), ProtocolConfig())
    assert result["status"] == "skipped" and result["reason"].startswith("data not found: data set 'tape_fluorescence'")


def test_suite_goes_on_after_a_malformed_file(synthetic_dataset: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    from xtrimo.benchmarks.cli import compose_tasks, run_config
    from xtrimo.data.registry import data_dir

    with gzip.open(data_dir() / synthetic_dataset / "bad.csv.gz", "wt") as fh:
        fh.write("sequence,target\nMKV,1.0\nMKV,2.0,3.0\n")
    folder = tmp_path / "configs" / "bench" / "task"
    folder.mkdir(parents=True)
    for name, train in (("bad", "bad.csv.gz"), ("good", "train.csv.gz")):
        (folder / f"{name}.yaml").write_text(
            f"name: {name}\ndata:\n  dataset: {synthetic_dataset}\n  train: {train}\n"
            "  valid: valid.csv.gz\n  test: test.csv.gz\n")
    from xtrimo.benchmarks import tasks

    monkeypatch.setattr(tasks, "_USER_TASK_FOLDERS", [folder])  # as register_task_folder, undone after the test
    (tmp_path / "configs" / "bench" / "suite").mkdir()
    (tmp_path / "configs" / "bench" / "suite" / "mine.yaml").write_text("name: mine\ntasks: [bad, good]\n")
    cfg, tasks = compose_tasks([f"hydra.searchpath=[file://{tmp_path / 'configs'}]", "suite=mine",
                                f"output_dir={tmp_path / 'out'}", "task.max_length=7"])
    assert [t.name for t in tasks] == ["bad", "good"] and {t.max_length for t in tasks} == {7}
    results = run_config(cfg, tasks)
    assert [r["status"] for r in results] == ["error", "ok"]
    assert "bad.csv.gz: row 2 (line 3) has 3 fields, expected 2" in results[0]["reason"]


def test_task_protocol_overrides(synthetic_task: MakeTask) -> None:
    from xtrimo.benchmarks.runner import _task_protocol

    task = synthetic_task()
    task.protocol_overrides = {"mlp": {"lr": 5e-4, "epochs": 2}}
    assert _task_protocol(task, ProtocolConfig(name="mlp")).epochs == 2
    assert _task_protocol(task, ProtocolConfig(name="probe")) == ProtocolConfig(name="probe")
    task.protocol_overrides = {"mlp": {"learning_rate": 1.0}}
    with pytest.raises(ValueError, match="unknown keys \\['learning_rate'\\]"):
        run_task(task, BackboneConfig(), ProtocolConfig(name="mlp"))


def test_tape_bag_of_residues_rows(shared_data: Path) -> None:
    """The suite's TAPE rows (README): ridge on the PyTorch rewrite's one-hot features (the mean over
    <cls> seq <sep>); TAPE's own One Hot model (0.14 / 0.19) is protocol=tape, tested in test_tape_head.py."""
    for task, ours, published in (("fluorescence", 0.311, 0.14), ("stability", 0.160, 0.19)):
        result = run_named(task, BackboneConfig(), ProtocolConfig())
        assert result["baseline"] == published and result["value"] == pytest.approx(ours, abs=2e-3)
        assert abs(result["value"] - published) < 0.2
