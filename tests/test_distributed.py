"""Multi-process and fault-tolerance runs on the CPU (gloo): slow, run by CI."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, read_csv, run_cli, tiny_overrides, write_corpus
from xtrimo.model import XTrimoPGLM

pytestmark = pytest.mark.slow


def _train_rows(run: Path) -> dict[int, float]:
    return {int(r["step"]): float(r["train/loss"]) for r in read_csv(run / "metrics.csv") if r["kind"] == "train"}


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "t.fa.gz", 400), write_corpus(tmp_path / "v.fa.gz", 17, seed=1)


def test_ddp_two_processes_and_fresh_process_load(tmp_path, corpus):
    ddp = {"trainer.devices": 2, "trainer.strategy": "ddp", "trainer.max_steps": 6}
    res = run_cli(tiny_overrides(tmp_path, *corpus, **ddp))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Starting with 2 processes" in res.stdout + res.stderr
    last = tmp_path / "run" / "checkpoints" / "last"
    tokens = torch.randint(1, 28, (3, 17), generator=torch.Generator().manual_seed(1))
    torch.save(tokens, tmp_path / "tokens.pt")
    code = (
        "import sys, torch; from xtrimo import XTrimoPGLM; m = XTrimoPGLM.from_pretrained(sys.argv[1]);"
        "t = torch.load(sys.argv[2], weights_only=True); torch.save(m(t)['logits'], sys.argv[3])"
    )
    subprocess.run([sys.executable, "-c", code, str(last), str(tmp_path / "tokens.pt"), str(tmp_path / "logits.pt")],
                   check=True)
    fresh = torch.load(tmp_path / "logits.pt", weights_only=True)
    trained = torch.load(last / "trainer.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    model = XTrimoPGLM.from_pretrained(last)
    model.load_state_dict({k[len("model."):]: v for k, v in trained.items()})
    assert torch.equal(fresh, model(tokens)["logits"])


def test_kill9_then_resume_continues_the_curve(tmp_path, corpus):
    args = {"trainer.max_steps": 30, "trainer.checkpoint_every_n_steps": 5, "trainer.val_check_interval": 10,
            "trainer.log_every_n_steps": 1, "final_full_validation": "false"}
    ref = run_cli(tiny_overrides(tmp_path / "ref", *corpus, **args))
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = _train_rows(tmp_path / "ref" / "run")

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "xtrimo.train.cli", *tiny_overrides(tmp_path, *corpus, **args)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    last = tmp_path / "run" / "checkpoints" / "last"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if last.is_symlink() and os.readlink(last) >= "step_00000010":
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = int(os.readlink(last).split("_")[1])
    assert 10 <= killed_at < 30
    XTRIMO_last = XTrimoPGLM.from_pretrained(last)  # the last checkpoint is whole
    assert XTRIMO_last.num_parameters() > 0

    res = run_cli(tiny_overrides(tmp_path, *corpus, **{**args, "resume": "true"}))
    assert res.returncode == 0, res.stderr[-3000:]
    resumed = _train_rows(tmp_path / "run")
    assert sorted(resumed) == list(range(1, 31))  # the step counter went on; rows past the checkpoint replaced
    for step in range(killed_at + 1, 31):  # same data position, optimizer, schedule and RNG: the same curve
        assert resumed[step] == pytest.approx(reference[step], rel=1e-4, abs=1e-5), step


# the training CLI in a process that dies (os._exit, as a kill) the moment the checkpoint of step 10 is in place
_DIE_AFTER_CHECKPOINT = """
import os, sys
from xtrimo.train import callbacks, cli
save = callbacks.CheckpointExporter._save
def save_then_die(self, trainer, module):
    name = save(self, trainer, module)
    if trainer.global_step == 10:
        os._exit(9)
    return name
callbacks.CheckpointExporter._save = save_then_die
sys.argv = ["xtrimo-train", *sys.argv[1:]]
cli.main()
"""


def test_killed_right_after_a_checkpoint_keeps_that_steps_metrics_row(tmp_path, corpus):
    """The metrics row of a step is on disk before its checkpoint: a kill just after the checkpoint loses no row."""
    args = {"trainer.max_steps": 14, "trainer.checkpoint_every_n_steps": 5, "trainer.val_check_interval": 100,
            "trainer.log_every_n_steps": 1, "final_full_validation": "false"}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    died = subprocess.run([sys.executable, "-c", _DIE_AFTER_CHECKPOINT, *tiny_overrides(tmp_path, *corpus, **args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert died.returncode == 9, died.stderr[-3000:]
    assert os.readlink(tmp_path / "run" / "checkpoints" / "last") == "step_00000010"
    assert sorted(_train_rows(tmp_path / "run")) == list(range(1, 11))
    res = run_cli(tiny_overrides(tmp_path, *corpus, **{**args, "resume": "true"}))
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(_train_rows(tmp_path / "run")) == list(range(1, 15))


def test_fsdp2_matches_ddp(tmp_path, corpus):
    """ModelParallelStrategy (FSDP2) on 2 CPU processes trains to the same weights as DDP, also with its blocks
    compiled in each process (``trainer.compile``); its export loads."""
    models, losses = {}, {}
    for name, strategy, compiled in (("ddp", "ddp", False), ("fsdp", "fsdp", False), ("fsdp-compiled", "fsdp", True)):
        res = run_cli(tiny_overrides(tmp_path / name, *corpus, **{"trainer.devices": 2, "trainer.strategy": strategy,
                                                                 "trainer.max_steps": 6, "trainer.log_every_n_steps": 1,
                                                                 "trainer.compile": str(compiled).lower()}))
        assert res.returncode == 0, res.stderr[-3000:]
        models[name] = XTrimoPGLM.from_pretrained(tmp_path / name / "run" / "checkpoints" / "last")
        losses[name] = _train_rows(tmp_path / name / "run")
    tokens = torch.randint(1, 28, (2, 15), generator=torch.Generator().manual_seed(2))
    for name in ("fsdp", "fsdp-compiled"):
        logits = models[name](tokens)["logits"]
        torch.testing.assert_close(logits, models["ddp"](tokens)["logits"], rtol=1e-4, atol=1e-4)
        assert sorted(losses[name]) == list(range(1, 7))
        assert losses[name] == pytest.approx(losses["ddp"], abs=1e-4)


def test_deepspeed_zero_stages_on_cpu():
    """The DeepSpeed config of every ZeRO stage trains on 2 CPU processes (gloo) with identical losses."""
    losses = {}
    for stage in (1, 2, 3):
        res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                              "--master_port=29531",
                              str(REPO / "tests" / "ds_worker.py"), str(stage)], capture_output=True, text=True,
                             timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert res.returncode == 0, res.stderr[-3000:]
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("losses ")][-1]
        losses[stage] = [float(x) for x in line.split()[1:]]
    assert losses[1][-1] < losses[1][0]
    assert losses[1] == pytest.approx(losses[2], abs=1e-3) and losses[1] == pytest.approx(losses[3], abs=1e-3)
