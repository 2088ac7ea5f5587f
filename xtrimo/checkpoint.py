"""Checkpoint directories (model.safetensors + config.yaml), written atomically, loaded strictly.

Hugging Face ProteinGLM checkpoints convert into this format with :mod:`xtrimo.convert`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from xtrimo.config import ModelConfig
from xtrimo.io import atomic_directory

log = logging.getLogger(__name__)
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.yaml"


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, incomplete or does not match the model."""


def point_link(link: str | Path, target_name: str) -> None:
    """Atomically make ``link`` a symlink to the sibling ``target_name`` (os.replace of a fresh link)."""
    link = Path(link)
    tmp = link.with_name(f".{link.name}.lnk-{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target_name, tmp)
    os.replace(tmp, link)


def write_model_files(state: dict[str, torch.Tensor], config: ModelConfig, directory: Path) -> None:
    """Write the weights and config into an existing (temporary) directory."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt", "xtrimo": "1"})
    config.save(directory / CONFIG_NAME)


def check_keys(expected: set[str], found: set[str], source: str) -> None:
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: state dict does not match the model: missing keys {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}"
        )


def read_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """The config and weights of a checkpoint directory.

    Raises:
        CheckpointError: a missing directory or file, or an invalid config.yaml (one line).
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {path}")
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if not (path / name).is_file():
            raise CheckpointError(f"checkpoint {path} lacks {name}")
    try:
        config = ModelConfig.from_checkpoint(path)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    if not config.objectives:
        log.warning("checkpoint %s does not record the objectives it was trained with (written before xtrimo "
                    "recorded them): products assume MLM + GLM; set `objectives` in its config.yaml", path)
    return config, load_file(str(path / WEIGHTS_NAME), device=str(map_location))


def save_checkpoint(state: dict[str, torch.Tensor], config: ModelConfig, path: str | Path) -> None:
    """Save ``path/model.safetensors`` + ``path/config.yaml``, atomically."""
    with atomic_directory(path) as tmp:
        write_model_files(state, config, tmp)
