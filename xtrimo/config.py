"""Model configuration: a flat dataclass validated on construction (no omegaconf import here)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

RopeMode = Literal["1d", "2d"]  # the forms of xtrimo.model.rope.ROTARY
ROPE_MODES: tuple[str, ...] = get_args(RopeMode)
OBJECTIVES = ("mlm", "glm", "clm")


@dataclass
class ModelConfig:
    """Architecture of an xTrimoPGLM backbone (GLM-130B style, Hugging Face field names).

    ``ffn_hidden_size`` is the GeGLU inner width: ``dense_h_to_4h`` outputs ``2 * ffn_hidden_size``.
    """

    name: str = "custom"
    num_layers: int = 2
    hidden_size: int = 64
    num_attention_heads: int = 4
    ffn_hidden_size: int = 0  # 0: round(8/3 * hidden_size), as the released 7B/1B configs
    padded_vocab_size: int = 128
    seq_length: int = 1024
    # a RopeMode (str: OmegaConf has no Literal); "2d": half the rotary dims follow the absolute position, half the span
    rope_mode: str = "1d"
    rope_base: float = 10000.0
    layernorm_epsilon: float = 1e-5
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    init_method_std: float = 0.0  # 0: sqrt(2 / (5 * hidden_size)), GLM-130B's small init
    deepnorm: bool = True
    embedding_grad_shrink: float = 1.0  # 0.1 in the 100B recipe; 1.0 disables the shrink
    # what the weights are: the upstream causal checkpoints read <gmask><sop><eos> + residues with a causal mask
    is_causal: bool = False
    objectives: tuple[str, ...] = ()  # trained with ("mlm", "glm", "clm"); empty: not recorded (older checkpoints)

    def __post_init__(self) -> None:
        if self.ffn_hidden_size == 0:
            self.ffn_hidden_size = int(round(8 * self.hidden_size / 3))
        if self.init_method_std == 0.0:
            self.init_method_std = math.sqrt(2.0 / (5 * self.hidden_size))
        for key in ("num_layers", "hidden_size", "num_attention_heads", "ffn_hidden_size", "seq_length"):
            if getattr(self, key) <= 0:
                raise ValueError(f"ModelConfig.{key} must be positive, got {getattr(self, key)}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"ModelConfig.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.head_dim % (4 if self.rope_mode == "2d" else 2):
            raise ValueError(f"ModelConfig.head_dim ({self.head_dim}) must be divisible by 4 for 2-D RoPE, 2 for 1-D")
        if self.rope_mode not in ROPE_MODES:
            raise ValueError(f"ModelConfig.rope_mode must be one of {ROPE_MODES}, got {self.rope_mode!r}")
        if self.padded_vocab_size < 36:
            raise ValueError(
                f"ModelConfig.padded_vocab_size must hold the 36 ProteinGLM tokens, got {self.padded_vocab_size}")
        self.objectives = tuple(self.objectives)
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown:
            raise ValueError(f"ModelConfig.objectives: unknown {unknown}; valid: {', '.join(OBJECTIVES)}")
        if not 0.0 < self.embedding_grad_shrink <= 1.0:
            raise ValueError(f"ModelConfig.embedding_grad_shrink must be in (0, 1], got {self.embedding_grad_shrink}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def read_mode(self) -> str:
        """How the checkpoint reads a sequence: ``"clm"`` for causal checkpoints, else ``"mlm"``
        (:mod:`xtrimo.model.layout`)."""
        return "clm" if self.is_causal else "mlm"

    @property
    def generation_mode(self) -> str | None:
        """The layout to generate and score sequences in: ``"clm"`` (causal checkpoints), ``"glm"`` (GLM-trained,
        or not recorded), None for an MLM-only checkpoint, which has no autoregressive objective."""
        if self.is_causal:
            return "clm"
        return "glm" if not self.objectives or "glm" in self.objectives else None

    @property
    def can_fill_masks(self) -> bool:
        """Trained with MLM (masked marginals, template design), or not recorded."""
        return not self.objectives or "mlm" in self.objectives

    @property
    def deepnorm_alpha(self) -> float:
        """Residual scale alpha = sqrt(2N) of DeepNorm (GLM-130B, N = number of layers)."""
        return math.sqrt(2 * self.num_layers) if self.deepnorm else 1.0

    @property
    def deepnorm_beta(self) -> float:
        """Init gain beta = (2N)^-1/2 for the FFN, value and attention-output projections."""
        return (2 * self.num_layers) ** -0.5 if self.deepnorm else 1.0

    def num_parameters(self) -> int:
        """Exact parameter count, computed from the shapes (no allocation)."""
        h, f, v = self.hidden_size, self.ffn_hidden_size, self.padded_vocab_size
        per_layer = (h * 3 * h + 3 * h) + (h * h + h) + (h * 2 * f + 2 * f) + (f * h + h) + 4 * h
        return v * h + self.num_layers * per_layer + 2 * h + (h * v + v)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["objectives"] = list(self.objectives)  # YAML has lists, not tuples
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> ModelConfig:
        """Build from a mapping; unknown keys are an error naming them and ``source``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{source}: unknown ModelConfig keys {unknown}")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> ModelConfig:
        """Read a YAML file (a preset under configs/model/ or a checkpoint's config.yaml)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model config not found: {path}")
        values = yaml.safe_load(path.read_text()) or {}
        values = values.get("model", values)
        return cls.from_dict(values, source=str(path))

    @classmethod
    def from_checkpoint(cls, directory: str | Path) -> ModelConfig:
        return cls.from_file(Path(directory) / "config.yaml")

    def save(self, path: str | Path) -> None:
        from xtrimo.io import write_text

        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
