"""Backbones that turn sequences into per-residue features ``[L, H]``.

- ``xtrimo``: an xtrimo checkpoint directory (``XTrimoPGLM.from_pretrained``).
- ``random``: the same architecture, randomly initialised (the control for a checkpoint).
- ``onehot``: 20 standard residues + one "other" column, no learning (the baseline row).
- ``esm2``: a fair-esm checkpoint file given by the user (``esm.pretrained.load_model_and_alphabet_local``).
- ``blosum62``, ``proteinmpnn``: no features; zero-shot variant scorers of the ProteinGym suite (``suite=proteingym``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xtrimo.model.layout import read_batch
from xtrimo.tokenizer import STANDARD_RESIDUES

log = logging.getLogger(__name__)
BACKBONES = ("onehot", "xtrimo", "random", "esm2", "blosum62", "proteinmpnn")


@dataclass
class BackboneConfig:
    """Which backbone and how it is run (Hydra group ``backbone``)."""

    name: str = "onehot"
    checkpoint: str | None = None  # xtrimo / random: checkpoint directory (random uses only its config.yaml)
    esm_file: str | None = None  # esm2: a local fair-esm .pt file
    layer: int = -1  # hidden state to read: 0 = embedding output, i = after block i, -1 = after the final LayerNorm
    layers: list[int] | None = None  # probe: candidate hidden states (overrides layer); the probe keeps the one
    # with the best validation metric, per task and seed, alongside its alpha / C
    seed: int = 0  # random control
    device: str = "cpu"
    batch_tokens: int = 16384  # token budget per forward pass (padding included)
    control: bool = False  # xtrimo: also run the random control of the same size, side by side
    weights: str = "v_48_020"  # proteinmpnn: the package-data checkpoint (v_48_002/010/020/030, soluble/...)
    form: str = "global"  # proteinmpnn: global (ProteinGym's, one pass per mutant) or conditional (one pass)


def _file_digest(path: Path, limit: int = 1 << 24) -> str:
    """SHA-256 of the first 16 MiB plus the size: identifies a weights file without reading 100 GB."""
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(limit))
    return h.hexdigest()[:16]


class OneHotBackbone:
    """One-hot residues: ``[L, 21]`` (20 standard residues, then one column for any other symbol)."""

    name = "onehot"
    cacheable = False
    fingerprint = "onehot-v1"
    dim = len(STANDARD_RESIDUES) + 1
    layers = (-1,)

    def __init__(self) -> None:
        self._lut = np.full(256, len(STANDARD_RESIDUES), dtype=np.int64)
        for i, c in enumerate(STANDARD_RESIDUES):
            self._lut[ord(c)] = self._lut[ord(c.lower())] = i

    def embed(self, seqs: list[str]) -> list[np.ndarray]:
        """One ``[L_i, 21]`` float32 array per sequence."""
        eye = np.eye(self.dim, dtype=np.float32)
        return [eye[self._lut[np.frombuffer(s.encode("latin-1"), dtype=np.uint8)]] for s in seqs]


def _check_layers(layers: list[int], num_states: int) -> list[int]:
    """``layers`` as indices into ``num_states`` hidden states (-1 = the last); one-line ValueError if out of range."""
    for layer in layers:
        if not -num_states <= layer < num_states:
            raise ValueError(f"backbone.layer(s): {layer} is out of range; this model has hidden states "
                             f"0..{num_states - 1} (0 = embedding output, -1 = the final one)")
    return list(layers)


def _layers_tag(layers: list[int]) -> str:
    return "L" + ",".join(map(str, layers))


class XTrimoBackbone:
    """Frozen xtrimo model, read in its own mode (:func:`xtrimo.model.layout.read_batch`: residues + ``<eos>`` for
    MLM checkpoints, the ``<gmask><sop><eos>`` prefix + residues for causal ones); special tokens and padding dropped.

    With several ``layers`` the features are those hidden states side by side, ``[L, len(layers) * H]``.
    """

    cacheable = True

    def __init__(self, model: torch.nn.Module, name: str, fingerprint: str, layers: list[int] | None = None,
                 device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.layers = _check_layers(layers or [-1], model.config.num_layers + 1)
        self.name, self.fingerprint, self.device = name, f"{fingerprint}-{_layers_tag(self.layers)}", device
        self.dim = model.config.hidden_size * len(self.layers)

    @torch.no_grad()
    def embed(self, seqs: list[str]) -> list[np.ndarray]:
        """One ``[L_i, dim]`` float32 array per sequence (the hidden states of ``layers``, concatenated)."""
        inputs, first = read_batch(seqs, self.model.config.read_mode)
        out = self.model(inputs.to(self.device), return_logits=False, output_hidden_states=self.layers != [-1])
        states = torch.cat([out["last_hidden_state"] if k == -1 else out["hidden_states"][k] for k in self.layers], -1)
        states = states.float().cpu().numpy()
        return [states[i, first : first + len(s)] for i, s in enumerate(seqs)]


class ESMBackbone:
    """fair-esm ESM-2 from a local file; BOS / EOS stripped."""

    cacheable = True

    def __init__(self, path: str, layers: list[int] | None = None, device: str = "cpu") -> None:
        import argparse

        import esm

        # fair-esm checkpoints keep their config as an argparse.Namespace, which torch >= 2.6's weights-only
        # unpickler refuses; allow exactly that type (fair-esm's loader calls torch.load without arguments)
        with torch.serialization.safe_globals([argparse.Namespace]):
            self.model, alphabet = esm.pretrained.load_model_and_alphabet_local(path)
        self.model = self.model.to(device).eval()
        self.converter = alphabet.get_batch_converter()
        num_states = self.model.num_layers + 1
        self.layers = [k % num_states for k in _check_layers(layers or [-1], num_states)]
        self.name, self.device = "esm2", device
        self.fingerprint = f"esm2-{_file_digest(Path(path))}-{_layers_tag(self.layers)}"
        self.dim = self.model.embed_dim * len(self.layers)

    @torch.no_grad()
    def embed(self, seqs: list[str]) -> list[np.ndarray]:
        """One ``[L_i, dim]`` float32 array per sequence (representations of ``layers``, concatenated)."""
        _, _, tokens = self.converter([(str(i), s) for i, s in enumerate(seqs)])
        reps = self.model(tokens.to(self.device), repr_layers=self.layers)["representations"]
        reps = torch.cat([reps[k] for k in self.layers], -1).float().cpu().numpy()
        return [reps[i, 1 : len(s) + 1] for i, s in enumerate(seqs)]


def load_xtrimo(checkpoint: str, random_init: bool = False, seed: int = 0) -> tuple[torch.nn.Module, str]:
    """The checkpoint's model (or a randomly initialised one of the same config) and its fingerprint."""
    from xtrimo.config import ModelConfig
    from xtrimo.model.glm import XTrimoPGLM

    path = Path(checkpoint)
    if not path.is_dir():
        raise ValueError(f"backbone.checkpoint: not a checkpoint directory: {checkpoint}")
    if random_init:
        config = ModelConfig.from_checkpoint(path)
        torch.manual_seed(seed)
        digest = hashlib.sha256(str(config.to_dict()).encode()).hexdigest()[:12]
        return XTrimoPGLM(config).eval(), f"random-{digest}-s{seed}"
    return XTrimoPGLM.from_pretrained(path), f"xtrimo-{_file_digest(path / 'model.safetensors')}"


def build_backbone(cfg: BackboneConfig) -> OneHotBackbone | XTrimoBackbone | ESMBackbone:
    """Instantiate the backbone ``cfg.name``.

    Raises:
        ValueError: unknown name or a missing checkpoint / file (one line).
    """
    if cfg.name == "onehot":
        return OneHotBackbone()
    if cfg.name in ("xtrimo", "random"):
        if not cfg.checkpoint:
            raise ValueError(f"backbone={cfg.name} needs backbone.checkpoint=DIR")
        model, fingerprint = load_xtrimo(cfg.checkpoint, cfg.name == "random", cfg.seed)
        return XTrimoBackbone(model, cfg.name, fingerprint, cfg.layers or [cfg.layer], cfg.device)
    if cfg.name == "esm2":
        if not cfg.esm_file or not Path(cfg.esm_file).is_file():
            raise ValueError(f"backbone=esm2 needs backbone.esm_file=<local fair-esm .pt>, got {cfg.esm_file!r}")
        return ESMBackbone(cfg.esm_file, cfg.layers or [cfg.layer], cfg.device)
    if cfg.name in ("blosum62", "proteinmpnn"):
        raise ValueError(f"backbone={cfg.name} scores variants, it has no features: use it with suite=proteingym "
                         "protocol=zeroshot")
    raise ValueError(f"unknown backbone {cfg.name!r}; valid: {', '.join(BACKBONES)}")
