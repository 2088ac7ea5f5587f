"""Checkpoint directories (model.safetensors + config.yaml), written atomically, loaded strictly.

Also converts a Hugging Face ProteinGLM checkpoint directory (config.json + weights under the official names).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from xtrimo.config import ModelConfig
from xtrimo.model.glm import XTrimoPGLM

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.yaml"

# HF ProteinGLM key -> xtrimo key. Module names were chosen equal, so the table is the identity on the weights
# and drops the rotary buffers that HF stores (they are recomputed from the config).
HF_KEY_MAP: tuple[tuple[str, str | None], ...] = (
    (r"^transformer\.encoder\.layers\.\d+\.self_attention\.rotary_emb\.inv_freq$", None),
    (r"^transformer\.rotary_pos_emb\.inv_freq$", None),
    (r"^(transformer\..*)$", r"\1"),
)
# HF config.json field -> ModelConfig field
HF_CONFIG_MAP = {
    "num_layers": "num_layers",
    "hidden_size": "hidden_size",
    "num_attention_heads": "num_attention_heads",
    "ffn_hidden_size": "ffn_hidden_size",
    "padded_vocab_size": "padded_vocab_size",
    "seq_length": "seq_length",
    "layernorm_epsilon": "layernorm_epsilon",
    "hidden_dropout": "hidden_dropout",
    "attention_dropout": "attention_dropout",
    "deepnorm": "deepnorm",
}


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, incomplete or does not match the model."""


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``target`` in one rename, on error it is removed.

    A reader never sees a half-written ``target``: it sees the old one or the new one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        if target.is_symlink() or target.is_file():
            target.unlink()
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> XTrimoPGLM:
    """Load a checkpoint directory strictly (missing and unexpected keys are named in the error)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {path}")
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if not (path / name).is_file():
            raise CheckpointError(f"checkpoint {path} lacks {name}")
    config = ModelConfig.from_checkpoint(path)
    state = load_file(str(path / WEIGHTS_NAME), device=str(map_location))
    with torch.device("meta"):
        model = XTrimoPGLM(config)
    check_keys(set(model.state_dict()), set(state), str(path / WEIGHTS_NAME))
    model.load_state_dict(state, strict=True, assign=True)
    model.rotary = type(model.rotary)(config.head_dim, config.rope_mode, config.rope_base).to(map_location)
    return model.eval()


def _read_hf_state(path: Path) -> dict[str, torch.Tensor]:
    files = sorted(path.glob("*.safetensors"))
    if files:
        state: dict[str, torch.Tensor] = {}
        for f in files:
            state.update(load_file(str(f)))
        return state
    files = sorted(path.glob("pytorch_model*.bin"))
    if not files:
        raise CheckpointError(f"{path}: no *.safetensors or pytorch_model*.bin weights")
    state = {}
    for f in files:  # weights_only: never unpickle arbitrary objects
        state.update(torch.load(f, map_location="cpu", weights_only=True))
    return state


def config_from_hf(values: dict, source: str) -> ModelConfig:
    """Translate a ProteinGLM config.json into a :class:`ModelConfig`."""
    if values.get("multi_query_attention"):
        raise CheckpointError(f"{source}: multi-query attention checkpoints are not supported")
    if values.get("glu_activation", "geglu") != "geglu" or values.get("rmsnorm", False):
        raise CheckpointError(f"{source}: only GeGLU + LayerNorm ProteinGLM checkpoints are supported")
    kwargs = {ours: values[theirs] for theirs, ours in HF_CONFIG_MAP.items() if theirs in values}
    kwargs["rope_mode"] = "2d" if values.get("rotary_embedding_2d", False) else "1d"
    kwargs["name"] = values.get("_name_or_path", "proteinglm") or "proteinglm"
    return ModelConfig(**kwargs)


def convert_hf_checkpoint(src: str | Path, dst: str | Path | None = None) -> XTrimoPGLM:
    """Read a Hugging Face ProteinGLM directory into an :class:`XTrimoPGLM` (and save it to ``dst`` if given)."""
    src = Path(src)
    if not (src / "config.json").is_file():
        raise CheckpointError(f"{src}: not a Hugging Face checkpoint (config.json missing)")
    config = config_from_hf(json.loads((src / "config.json").read_text()), str(src / "config.json"))
    state = {}
    for key, tensor in _read_hf_state(src).items():
        for pattern, repl in HF_KEY_MAP:
            if re.match(pattern, key):
                if repl is not None:
                    state[re.sub(pattern, repl, key)] = tensor
                break
        else:
            state[key] = tensor  # reported as unexpected below
    with torch.device("meta"):
        model = XTrimoPGLM(config)
    check_keys(set(model.state_dict()), set(state), str(src))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    model.rotary = type(model.rotary)(config.head_dim, config.rope_mode, config.rope_base)
    if dst is not None:
        save_model(model, dst)
    return model.eval()
