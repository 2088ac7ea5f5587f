"""FoldConfig: the folding head's hyper-parameters, nested like the modules (OpenFold's config shape)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

import yaml

from xtrimo.io import write_text

FOLD_CONFIG_NAME = "config.yaml"
FOLD_WEIGHTS_NAME = "head.safetensors"


def _positive(obj: object, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(obj, name)}")


@dataclass
class PLMShape:
    """The frozen language model the head reads: its directory and shape (checked on load)."""

    checkpoint: str = ""
    num_layers: int = 2
    hidden_size: int = 64
    num_heads: int = 4


@dataclass
class StructureModuleConfig:
    """AlphaFold 2's structure module (invariant point attention); OpenFold's ``structure_module`` names."""

    c_s: int = 64  # single channels (the trunk's single state is projected to it)
    c_z: int = 32  # pair channels
    c_ipa: int = 16  # IPA hidden channels per head
    c_resnet: int = 64  # angle resnet channels
    no_heads_ipa: int = 4
    no_qk_points: int = 4  # IPA query / key points per head
    no_v_points: int = 8  # IPA value points per head
    no_blocks: int = 4  # IPA iterations (weights shared)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _positive(self, "no_blocks", "no_heads_ipa")


@dataclass
class TrunkConfig:
    """ESMFold's folding trunk (triangular updates + axial attention, recycled) and the structure module after it."""

    c_s: int = 64  # single channels
    c_z: int = 32  # pair channels
    num_blocks: int = 2  # triangular self-attention blocks
    sequence_head_width: int = 16  # per-head width of the single-state attention
    pairwise_head_width: int = 16  # per-head width of the triangle attentions
    position_bins: int = 32  # relative-position bins of the pair embedding (each side)
    max_recycles: int = 1  # recycling iterations (besides the first pass) at inference
    chunk_size: int | None = None  # axial-attention chunk; None chooses it from the length (auto_chunk_size)
    dropout: float = 0.0
    structure_module: StructureModuleConfig = field(default_factory=StructureModuleConfig)

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
        _positive(self, "num_blocks")


@dataclass
class HeadsConfig:
    """Output heads on the pair state (distogram, pTM / PAE) and the structure-module states (pLDDT)."""

    distogram_bins: int = 64
    lddt_bins: int = 50
    c_lddt: int = 64


@dataclass
class FoldConfig:
    """Hyper-parameters of the xTrimoPGLM-Fold head (ESMFold's trunk + AlphaFold 2's structure module), nested
    like the module tree (``plm``, the PLM -> trunk input layers, ``trunk`` with its ``structure_module``,
    ``heads``). Defaults are a small CPU-sized head; ESMFold v1 uses ``trunk.c_s=1024, trunk.c_z=128,
    trunk.num_blocks=48``.

    Attributes:
        use_attention_maps: feed the PLM's attention maps into the pair state.
        c_op: width of the single -> pair outer product.
        max_length: longest chain (linkers included) accepted by the folder.
    """

    plm: PLMShape = field(default_factory=PLMShape)
    use_attention_maps: bool = True
    c_op: int = 16
    trunk: TrunkConfig = field(default_factory=TrunkConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    max_length: int = 2048

    def __post_init__(self) -> None:
        _positive(self, "max_length")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FoldConfig:
        """Build from a (nested) mapping; an unknown key is an error (a typo must not be silently ignored). The
        flat names of configs written before the nesting (``c_s_sm``, ``plm_num_layers``, ...) are read too."""
        if any(k in FLAT_NAMES for k in values):
            values = _nest(values)
        return _build(cls, values, "")

    def save(self, path: str | Path) -> None:
        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_file(cls, path: str | Path) -> FoldConfig:
        values = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of FoldConfig fields")
        return cls.from_dict(values)


def _build(cls: type, values: dict, prefix: str):
    """``cls(**values)`` with nested dataclass fields built from nested mappings; unknown keys named in full."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown FoldConfig key(s): {', '.join(prefix + k for k in unknown)}")
    kwargs = {}
    for name, value in values.items():
        sub = known[name].default_factory if is_dataclass(known[name].default_factory) else None
        kwargs[name] = _build(sub, value, f"{prefix}{name}.") if sub is not None and isinstance(value, dict) else value
    return cls(**kwargs)


# flat name (configs written before the nesting) -> nested path
FLAT_NAMES = {
    **{f"plm_{k}": ("plm", k) for k in ("num_layers", "hidden_size", "num_heads", "checkpoint")},
    **{k: ("trunk", k) for k in ("c_s", "c_z", "num_blocks", "sequence_head_width", "pairwise_head_width",
                                 "position_bins", "max_recycles", "chunk_size")},
    **{f"{k}_sm": ("trunk", "structure_module", k) for k in ("c_s", "c_z", "no_blocks")},
    **{k: ("trunk", "structure_module", k) for k in ("c_ipa", "c_resnet", "no_heads_ipa", "no_qk_points",
                                                     "no_v_points")},
    **{k: ("heads", k) for k in ("distogram_bins", "lddt_bins", "c_lddt")},
}


def _nest(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        if key == "dropout":  # one rate for the trunk and the structure module
            out.setdefault("trunk", {})["dropout"] = value
            out["trunk"].setdefault("structure_module", {})["dropout"] = value
            continue
        *parents, leaf = FLAT_NAMES.get(key, (key,))
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


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
