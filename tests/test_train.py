import json
from pathlib import Path

import pytest
import torch

from tests.helpers import read_csv, run_cli, tiny_overrides, write_corpus
from xtrimo.model import XTrimoPGLM
from xtrimo.compose import config_dir
from xtrimo.train.cli import compose


def _options(group):
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["model", "objective", "data", "trainer", "strategy", "experiment"])
def test_every_config_composes(group):
    for option in _options(group):
        cfg = compose([f"{group}={option}"])
        assert cfg.model.num_parameters() > 0


def test_quickstart_composes():
    cfg = compose(["experiment=quickstart"])
    assert cfg.model.name == "tiny" and cfg.output_dir == "runs/quickstart"
    assert 2.5e6 < cfg.model.num_parameters() < 3.5e6


def test_trained_objectives_follow_the_schedule():
    from xtrimo.objectives.mixture import ObjectiveConfig

    assert compose(["experiment=quickstart"]).objective.trained_objectives(300) == ("mlm",)
    assert ObjectiveConfig(glm_prob=0.8, stage1_steps=50).trained_objectives(30) == ("mlm",)
    assert ObjectiveConfig(glm_prob=0.8, stage1_steps=50).trained_objectives(51) == ("mlm", "glm")
    assert ObjectiveConfig(glm_prob=1.0).trained_objectives(7) == ("glm",)
    assert ObjectiveConfig(glm_prob=1.0, transition_steps=4).trained_objectives(7) == ("mlm", "glm")  # ramp: MLM
    assert ObjectiveConfig().trained_objectives(0) == ()


def test_strategy_group_sets_trainer_strategy():
    assert compose(["strategy=deepspeed_zero2"]).trainer.strategy == "deepspeed_zero2"
    assert compose(["trainer.strategy=ddp"]).trainer.strategy == "ddp"


@pytest.mark.parametrize("override,match", [
    ("trainer.max_stepz=3", "max_stepz"),
    ("model=hugest", "hugest"),
    ("trainer.strategy=zero9", "trainer.strategy must be one of"),
    ("optim.lr=fast", "optim.lr"),
])
def test_config_errors_are_one_line(override, match):
    with pytest.raises(ValueError, match=match) as err:
        compose([override])
    assert "\n" not in str(err.value)


def test_dry_run_100b():
    res = run_cli(["model=100b", "dry_run=true"])
    assert res.returncode == 0, res.stderr
    assert "100,425,486,464 parameters (100.43B)" in res.stdout


def test_tiny_training_run(tmp_path):
    from xtrimo.train.run import train

    train_f, valid_f = write_corpus(tmp_path / "t.fa.gz", 200), write_corpus(tmp_path / "v.fa.gz", 17, seed=1)
    cfg = compose(tiny_overrides(tmp_path, train_f, valid_f))
    metrics = train(cfg)
    run = tmp_path / "run"
    assert metrics["val/mlm_tokens"] > 0 and metrics["val/glm_tokens"] > 0
    assert metrics["val/mlm_ppl"] < 200 and metrics["val/glm_ppl"] < 200  # finite, near uniform after 8 steps
    results = json.loads((run / "results.json").read_text())
    assert results["step"] == 8
    last = run / "checkpoints" / "last"
    assert last.is_symlink() and (run / "checkpoints" / "best").is_symlink()
    assert sorted(p.name for p in last.iterdir()) == ["config.yaml", "model.safetensors", "trainer.ckpt"]
    model = XTrimoPGLM.from_pretrained(last)
    assert model.config.objectives == ("mlm", "glm") and not model.config.is_causal  # objective.glm_prob 0.5
    state = torch.load(last / "trainer.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(state[f"model.{k}"], v) for k, v in model.state_dict().items())
    rows = read_csv(run / "metrics.csv")
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [int(r["step"]) for r in train_rows] == [2, 4, 6, 8]
    assert float(train_rows[-1]["train/loss"]) < float(train_rows[0]["train/loss"])
    assert {"val/mlm_ppl", "val/glm_ppl", "val/mlm_unigram_ppl", "tok/s", "train/padding_fraction"} <= set(rows[0])
    assert (run / "config.yaml").is_file() and any((run / "tensorboard").iterdir())


def _no_broken_checkpoint(run: Path):
    root = run / "checkpoints"
    if not root.exists():
        return
    assert not list(root.glob(".*tmp*"))
    if (root / "last").exists():
        XTrimoPGLM.from_pretrained(root / "last")


@pytest.mark.parametrize("case", ["invalid_residue", "empty", "missing", "typo", "resume_nothing"])
def test_bad_input_one_line_errors(tmp_path, case):
    train_f, valid_f = write_corpus(tmp_path / "t.fa.gz", 60), write_corpus(tmp_path / "v.fa.gz", 5)
    extra, expect = {}, ""
    if case == "invalid_residue":
        bad = tmp_path / "bad.fa"
        bad.write_text(">ok\nMKTAYIAKQR\n>broken\nMKT1AYK\n")
        train_f, expect = bad, r"invalid residue '1' at position 4 of record"
    elif case == "empty":
        train_f = tmp_path / "empty.fa"
        train_f.write_text("")
        expect = "empty"
    elif case == "missing":
        train_f, expect = tmp_path / "nope.fa.gz", "not found"
    elif case == "typo":
        extra, expect = {"trainer.max_stepz": 3}, "max_stepz"
    else:
        extra, expect = {"resume": "true"}, "no checkpoint to resume"
    res = run_cli(tiny_overrides(tmp_path, train_f, valid_f, **extra), timeout=300)
    assert res.returncode == 1
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("xtrimo-train: error:")]
    assert len(err) == 1 and expect.split(r"'")[0].replace("\\", "") in err[0], res.stderr[-2000:]
    if case == "invalid_residue":
        assert "bad.fa:broken" in err[0]
    _no_broken_checkpoint(tmp_path / "run")


def test_warmup_cosine_schedule():
    from xtrimo.train.module import warmup_cosine

    assert warmup_cosine(0, 10, 0.0, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 0.0, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(50, 10, 0.5, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(99, 10, 1.0, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(99, 10, 3.0, 0.1) == pytest.approx(0.1)  # past the budget it stays at the floor


def test_nonfinite_loss_step_is_skipped_and_counted(tmp_path, monkeypatch):
    import xtrimo.train.module as module_mod
    from xtrimo.train.run import train

    real = module_mod.lm_loss
    calls = {"n": 0}

    def flaky(logits, labels, kinds):
        loss, parts = real(logits, labels, kinds)
        calls["n"] += 1
        if torch.is_grad_enabled() and calls["n"] == 3:  # the third training batch blows up
            loss = loss * float("nan")
        return loss, parts

    monkeypatch.setattr(module_mod, "lm_loss", flaky)
    train_f, valid_f = write_corpus(tmp_path / "t.fa.gz", 200), write_corpus(tmp_path / "v.fa.gz", 9, seed=1)
    cfg = compose(tiny_overrides(tmp_path, train_f, valid_f, **{"trainer.max_steps": 5, "trainer.log_every_n_steps": 1,
                                                               "final_full_validation": "false"}))
    train(cfg)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last" / "trainer.ckpt", weights_only=True)
    # the skipped batch still counts as a step (Lightning steps the schedule) but nothing was updated: no gradient
    assert state["global_step"] == 5
    assert state["xtrimo"]["skipped_steps"] == 1 and state["xtrimo"]["batches_seen"] == 5
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert max(float(r["train/skipped_steps"]) for r in rows if r["train/skipped_steps"]) == 1
    assert all(r["train/loss"] == "" or float(r["train/loss"]) == float(r["train/loss"]) for r in rows)  # no NaN logged
