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
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.model.rope import RotaryEmbedding

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


def save_model(model: XTrimoPGLM, path: str | Path) -> None:
    """Save ``model`` as ``path/model.safetensors`` + ``path/config.yaml``, atomically."""
    with atomic_directory(path) as tmp:
        write_model_files(model.state_dict(), model.config, tmp)


def check_keys(expected: set[str], found: set[str], source: str) -> None:
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: state dict does not match the model: missing keys {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}"
        )


ROTARY_KEY = "rotary.inv_freq"


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> XTrimoPGLM:
    """Load a checkpoint directory strictly (missing and unexpected keys are named in the error).

    Checkpoints written before the RoPE frequencies were saved with the weights lack ``rotary.inv_freq``; those
    take the frequencies the config defines (what they were trained with).
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
    state = load_file(str(path / WEIGHTS_NAME), device=str(map_location))
    return model_from_state(config, state, str(path / WEIGHTS_NAME), map_location)


def model_from_state(
    config: ModelConfig, state: dict[str, torch.Tensor], source: str, map_location: str | torch.device = "cpu"
) -> XTrimoPGLM:
    """Build the model of ``config`` around ``state`` without a second copy of the weights (strict keys)."""
    with torch.device("meta"):
        model = XTrimoPGLM(config)
    if ROTARY_KEY not in state:
        state = {**state, ROTARY_KEY: RotaryEmbedding(config.head_dim, config.rope_mode, config.rope_base).inv_freq}
    check_keys(set(model.state_dict()), set(state), source)
    model.load_state_dict({k: v.to(map_location) for k, v in state.items()}, strict=True, assign=True)
    return model.eval()
