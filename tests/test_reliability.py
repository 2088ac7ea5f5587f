"""No run lost, no silent nonsense: finished runs are never overwritten, the last checkpoint comes before the final
validation, progress shows true totals in a pipe and on a terminal, typos name the nearest key."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli, tiny_overrides, write_corpus
from xtrimo.model import XTrimoPGLM
from xtrimo.train.cli import compose


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    return write_corpus(tmp_path / "t.fa.gz", 120), write_corpus(tmp_path / "v.fa.gz", 9, seed=1)


def test_rerun_into_a_finished_run_changes_nothing(tmp_path: Path, corpus: tuple[Path, Path]) -> None:
    """A second run into the folder is refused in one line (every file hashed before and after); resume=true
    continues it."""
    args = tiny_overrides(tmp_path, *corpus, **{"trainer.max_steps": 4})
    assert run_cli(args).returncode == 0
    run = tmp_path / "run"
    before = _hashes(run)
    res = run_cli(tiny_overrides(tmp_path, *corpus, **{"trainer.max_steps": 2}))
    assert res.returncode == 1
    err = res.stderr.strip().splitlines()[-1]
    assert err.startswith("xtrimo-train: error: output_dir") and "resume=true" in err
    assert "its last checkpoint is step_00000004" in err
    assert _hashes(run) == before
    res = run_cli(tiny_overrides(tmp_path, *corpus, **{"trainer.max_steps": 6, "resume": "true"}))
    assert res.returncode == 0, res.stderr
    assert (run / "checkpoints" / "last").resolve().name == "step_00000006"


def test_kill_during_final_validation_leaves_the_last_checkpoint(tmp_path: Path) -> None:
    """The checkpoint of the last step is written before the final validation: SIGKILL as that validation
    starts, and ``last`` loads, at the last step."""
    train_f = write_corpus(tmp_path / "t.fa.gz", 120)
    valid_f = write_corpus(tmp_path / "v.fa.gz", 3000, seed=1)  # a long final validation
    args = tiny_overrides(tmp_path, train_f, valid_f, **{"trainer.max_steps": 5, "trainer.val_check_interval": 100,
                                                         "trainer.checkpoint_every_n_steps": 100,
                                                         "data.valid_max_sequences": 5})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "xtrimo.train.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO)
    try:
        for line in proc.stdout:
            if line.startswith("validating the whole valid split"):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    last = tmp_path / "run" / "checkpoints" / "last"
    assert last.resolve().name == "step_00000005"
    XTrimoPGLM.from_pretrained(last)
    assert not (tmp_path / "run" / "results.json").exists()


def _progress_lines(text: str) -> list[str]:
    return [ln for ln in text.replace("\r", "\n").splitlines() if "train" in ln and "/8" in ln]


def test_progress_with_true_totals_in_a_pipe_and_on_a_terminal(tmp_path: Path, corpus: tuple[Path, Path]) -> None:
    args = tiny_overrides(tmp_path, *corpus, **{"trainer.progress_bar": "true", "trainer.progress_seconds": 0.0})
    res = run_cli(args)  # a plain pipe: lines, not a bar
    assert res.returncode == 0, res.stderr
    lines = _progress_lines(res.stderr)
    assert lines and lines[-1].startswith("train: 8/8 steps (100%)") and "tok/s" in lines[0]
    assert "training 8 steps (512 tokens a step)" in res.stdout
    if shutil.which("script") is None:
        pytest.skip("no `script` command to give the run a terminal")
    shutil.rmtree(tmp_path / "run")
    cmd = " ".join([sys.executable, "-m", "xtrimo.train.cli", *args])
    tty = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=600, cwd=REPO,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert tty.returncode == 0, tty.stdout[-2000:]
    assert _progress_lines(tty.stdout), tty.stdout[-2000:]  # tqdm's bar, total 8


def test_typo_names_the_nearest_key(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match=r"^unknown key 'trainer.max_stepz'; did you mean trainer.max_steps\?$"):
        compose(["trainer.max_stepz=3"])
    with pytest.raises(ValueError, match="did you mean trainer.max_steps"):
        compose(["+trainer.max_stepz=3"])
    with pytest.raises(ValueError, match=r"unknown model 'tinny'; did you mean tiny\? \(valid: 100b"):
        compose(["model=tinny"])
    from xtrimo.train.cli import main

    assert main(["trainer.max_stepz=3"]) == 1
    assert capsys.readouterr().err.strip() == (
        "xtrimo-train: error: unknown key 'trainer.max_stepz'; did you mean trainer.max_steps?")


def test_user_config_folder_through_the_search_path(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text(
        "name: mine\nnum_layers: 3\nhidden_size: 96\nnum_attention_heads: 3\n")
    cfg = compose([f"hydra.searchpath=[file://{tmp_path}]", "model=mine"])
    assert (cfg.model.name, cfg.model.num_layers, cfg.model.hidden_size) == ("mine", 3, 96)


def test_console_shows_each_line_once_and_no_advertisement(tmp_path: Path, corpus: tuple[Path, Path]) -> None:
    res = run_cli(tiny_overrides(tmp_path, *corpus))
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == len(set(lines)), [ln for ln in lines if lines.count(ln) > 1]
    assert "litlogger" not in text and "LitLogger" not in text and "LeafSpec" not in text


def test_a_writer_killed_midway_leaves_the_old_file(tmp_path: Path) -> None:
    """Every file the project writes goes through xtrimo.io (temp file, then one rename): SIGKILL a writer halfway
    through a summary.csv and the previous one is still there, whole."""
    target = tmp_path / "summary.csv"
    target.write_text("id,status\nold,ok\n")
    script = (f"import time, sys\nfrom xtrimo.io import atomic_write\n"
              f"with atomic_write({str(target)!r}, newline='') as fh:\n"
              f"    fh.write('id,status\\n' + 'new,ok\\n' * 1000); fh.flush(); print('half', flush=True); "
              f"time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline().strip() == "half"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert target.read_text() == "id,status\nold,ok\n"
    from xtrimo.io import write_csv

    write_csv(target, [{"id": "new", "status": "ok"}], ["id", "status"])
    assert target.read_text() == "id,status\nnew,ok\n" and oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
