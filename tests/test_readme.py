"""The README is a guide of at most 250 lines whose commands work as written: every CLI it names answers --help,
and its Hydra command lines compose (keys and options exist)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
BIN = Path(sys.executable).parent


def _commands() -> list[list[str]]:
    """Every ``.venv/bin/xtrimo-*`` command line in the README's bash blocks, as argv (env prefixes dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                while words and "=" in words[0] and not words[0].startswith("-"):
                    words = words[1:]  # VAR=value prefixes
                if words and words[0].startswith(".venv/bin/xtrimo-"):
                    out.append([words[0].removeprefix(".venv/bin/"), *words[1:]])
    return out


def test_readme_is_a_guide() -> None:
    assert len(README.splitlines()) <= 250
    for page in re.findall(r"\]\((docs/[^)]+)\)", README):
        assert (REPO / page).is_file(), page


@pytest.mark.parametrize("cli", sorted({c[0] for c in _commands()}))
def test_every_cli_named_answers_help(cli: str) -> None:
    res = subprocess.run([str(BIN / cli), "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "usage" in res.stdout.lower() or cli in res.stdout


def test_hydra_command_lines_compose() -> None:
    from xtrimo.benchmarks.cli import compose as compose_bench
    from xtrimo.structure.train import compose as compose_fold
    from xtrimo.train.cli import compose as compose_train

    checked = 0
    for cli, *args in _commands():
        if "--help" in args:
            continue
        if cli == "xtrimo-train":
            (compose_fold if "experiment=fold" in args else compose_train)(args)
        elif cli == "xtrimo-bench":
            compose_bench(args)
        else:
            continue
        checked += 1
    assert checked >= 5
