"""FoldConfig: the folding head's hyper-parameters (a flat dataclass, AlphaFold symbol names)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from xtrimo.io import write_text

FOLD_CONFIG_NAME = "config.yaml"
FOLD_WEIGHTS_NAME = "head.safetensors"


@dataclass
class FoldConfig:
    """Hyper-parameters of the xTrimoPGLM-Fold head (ESMFold's trunk + AlphaFold 2's structure module).

    Defaults are a small CPU-sized head; ESMFold v1 uses ``c_s=1024, c_z=128, num_blocks=48``.

    Attributes:
        plm_checkpoint: directory of the (frozen) PLM checkpoint whose states the head reads.
        plm_num_layers / plm_hidden_size / plm_num_heads: shape of that PLM (checked on load).
        c_s / c_z: trunk single / pair channels.
        num_blocks: folding-trunk blocks (triangular updates + axial attention).
        sequence_head_width / pairwise_head_width: per-head widths of the trunk attentions.
        position_bins: relative-position bins of the pair embedding (each side).
        max_recycles: recycling iterations (besides the first pass) at inference.
        chunk_size: axial-attention chunk; None chooses it from the length (:func:`auto_chunk_size`).
        use_attention_maps: feed the PLM's attention maps into the pair state.
        c_op: width of the single -> pair outer product.
        c_s_sm / c_z_sm / c_ipa / c_resnet: structure-module widths.
        no_heads_ipa / no_qk_points / no_v_points / no_blocks_sm: invariant point attention.
        distogram_bins / lddt_bins / c_lddt: output heads.
        max_length: longest chain (linkers included) accepted by the folder.
    """

    plm_checkpoint: str = ""
    plm_num_layers: int = 2
    plm_hidden_size: int = 64
    plm_num_heads: int = 4
    c_s: int = 64
    c_z: int = 32
    num_blocks: int = 2
    sequence_head_width: int = 16
    pairwise_head_width: int = 16
    position_bins: int = 32
    max_recycles: int = 1
    chunk_size: int | None = None
    use_attention_maps: bool = True
    c_op: int = 16
    c_s_sm: int = 64
    c_z_sm: int = 32
    c_ipa: int = 16
    c_resnet: int = 64
    no_heads_ipa: int = 4
    no_qk_points: int = 4
    no_v_points: int = 8
    no_blocks_sm: int = 4
    distogram_bins: int = 64
    lddt_bins: int = 50
    c_lddt: int = 64
    dropout: float = 0.0
    max_length: int = 2048

    def __post_init__(self) -> None:
        if self.c_s % self.sequence_head_width or self.c_z % self.pairwise_head_width:
            raise ValueError(
                f"c_s ({self.c_s}) and c_z ({self.c_z}) must be multiples of sequence_head_width "
                f"({self.sequence_head_width}) and pairwise_head_width ({self.pairwise_head_width})"
            )
        if self.c_z % 2:
            raise ValueError(f"c_z must be even, got {self.c_z}")
        if self.max_recycles < 0:
            raise ValueError(f"max_recycles must be >= 0, got {self.max_recycles}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"chunk_size must be positive or null, got {self.chunk_size}")
        for name in ("num_blocks", "no_blocks_sm", "no_heads_ipa", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FoldConfig:
        """Build from a mapping; an unknown key is an error (a typo must not be silently ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown FoldConfig key(s): {', '.join(unknown)}")
        return cls(**values)

    def save(self, path: str | Path) -> None:
        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_file(cls, path: str | Path) -> FoldConfig:
        values = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of FoldConfig fields")
        return cls.from_dict(values)


def auto_chunk_size(length: int, c_z: int) -> int | None:
    """Axial-attention chunk for a chain of ``length`` residues.

    Unchunked triangular attention holds ``[N_res, no_heads, N_res, N_res]`` logits; ESMFold users saw silent garbage
    and OOM past ~1,000 residues without chunking (esm #641, #407). On the CPU chunks of 64 rows were also the fastest
    setting measured at L = 128-512 (benchmarks/speed/fold_speed.py), so every chain over 64 residues is chunked, with
    smaller chunks once the logits of a 64-row chunk would pass ~2^26 floats per 16 pair channels.
    """
    if length <= 64:
        return None
    budget = 2 ** 26 // max(1, c_z // 16)
    return max(8, min(64, budget // (length * length)))
