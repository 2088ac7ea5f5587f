"""Hugging Face ProteinGLM checkpoints (``biomap-research/proteinglm-*``) into xtrimo checkpoint directories.

    xtrimo-convert SRC DST        # SRC: a downloaded HF folder (config.json + *.safetensors or pytorch_model*.bin)

Module names were chosen equal to upstream's, so the weight map is the identity plus the RoPE frequencies (stored
per layer upstream, once here). The config is translated field by field; every field whose value this model cannot
represent is refused with a :class:`~xtrimo.checkpoint.CheckpointError` naming it, before anything is written.
The mode travels along: ``is_causal`` (causal attention, ``<gmask><sop><eos>`` prefix, 2-D positions
``(0, arange)``) and the objective the weights were trained with (CLM if causal, else MLM).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from xtrimo.checkpoint import CheckpointError
from xtrimo.cli_utils import make_parser, run_command
from xtrimo.config import ModelConfig
from xtrimo.model.glm import ROTARY_KEY, XTrimoPGLM

# HF config.json field -> ModelConfig field, copied as they are
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
    "is_causal": "is_causal",
}

# HF config.json field -> (value this model implements, what a different value would mean); upstream defaults
# apply to absent fields. ``apply_residual_connection_post_layernorm`` is forced on by upstream when deepnorm is.
REQUIRED: dict[str, tuple[Any, str]] = {
    "deepnorm": (True, "post-LN blocks without DeepNorm's residual scale"),
    "post_layer_norm": (True, "no final LayerNorm"),
    "add_bias_linear": (True, "linear layers without biases"),
    "add_qkv_bias": (True, "a QKV projection without bias"),
    "multi_query_attention": (False, "multi-query attention"),
    "moe": (False, "mixture-of-experts MLPs"),
    "num_experts": (0, "mixture-of-experts MLPs"),
    "rmsnorm": (False, "RMSNorm instead of LayerNorm"),
    "glu_activation": ("geglu", "an MLP other than GeGLU"),
    "quantization_bit": (0, "quantized weights (convert a full-precision checkpoint)"),
    "head_num": (1, "several output heads"),
}

# HF weight name -> xtrimo name (None: handled separately)
HF_KEY_MAP: tuple[tuple[str, str | None], ...] = (
    (r"^transformer\.encoder\.layers\.\d+\.self_attention\.rotary_emb\.inv_freq$", None),
    (r"^transformer\.rotary_pos_emb\.inv_freq$", None),
    (r"^(transformer\..*)$", r"\1"),
)


def config_from_hf(values: dict[str, Any], source: str) -> ModelConfig:
    """Translate a ProteinGLM config.json into a :class:`ModelConfig`.

    Raises:
        CheckpointError: one line naming the first field (and value) this model cannot represent.
    """
    if not values.get("deepnorm", True) and not values.get("apply_residual_connection_post_layernorm", True):
        raise CheckpointError(f"{source}: unsupported apply_residual_connection_post_layernorm: false (pre-LN "
                              "residuals)")
    for key, (supported, meaning) in REQUIRED.items():
        if key in values and values[key] != supported:
            raise CheckpointError(f"{source}: unsupported {key}: {json.dumps(values[key])} ({meaning})")
    heads, hidden = values.get("num_attention_heads", 1), values.get("hidden_size", 0)
    if "kv_channels" in values and values["kv_channels"] * heads != hidden:
        raise CheckpointError(f"{source}: unsupported kv_channels: {values['kv_channels']} (this model uses "
                              f"hidden_size / num_attention_heads = {hidden / heads:g})")
    kwargs = {ours: values[theirs] for theirs, ours in HF_CONFIG_MAP.items() if theirs in values}
    kwargs["rope_mode"] = "2d" if values.get("rotary_embedding_2d", False) else "1d"
    kwargs["name"] = values.get("_name_or_path", "proteinglm") or "proteinglm"
    kwargs["objectives"] = ("clm",) if values.get("is_causal", False) else ("mlm",)
    try:
        return ModelConfig(**kwargs)
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from None


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


def state_from_hf(hf_state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Rename the weights; the per-layer RoPE frequencies become one ``rotary.inv_freq`` (they must agree)."""
    state, freqs = {}, []
    for key, tensor in hf_state.items():
        for pattern, repl in HF_KEY_MAP:
            if re.match(pattern, key):
                if repl is None:
                    freqs.append((key, tensor.float()))
                else:
                    state[re.sub(pattern, repl, key)] = tensor.float()
                break
        else:
            state[key] = tensor  # reported as unexpected by the strict load
    for key, f in freqs[1:]:
        if f.shape != freqs[0][1].shape or not torch.equal(f, freqs[0][1]):
            raise CheckpointError(f"{source}: {key} differs from {freqs[0][0]} (one RoPE table is supported)")
    if freqs:
        state[ROTARY_KEY] = freqs[0][1]
    return state


def convert_hf_checkpoint(src: str | Path, dst: str | Path | None = None) -> XTrimoPGLM:
    """Read a Hugging Face ProteinGLM directory into an :class:`XTrimoPGLM` (and save it to ``dst`` if given).

    Raises:
        CheckpointError: a missing config or weights, an unsupported config field, or weights that do not match
            the config (missing / unexpected keys or shapes named); ``dst`` is then left untouched.
    """
    src = Path(src)
    if not (src / "config.json").is_file():
        raise CheckpointError(f"{src}: not a Hugging Face checkpoint (config.json missing)")
    config = config_from_hf(json.loads((src / "config.json").read_text()), str(src / "config.json"))
    state = state_from_hf(_read_hf_state(src), str(src))
    try:
        model = XTrimoPGLM.from_state(config, state, str(src))
    except RuntimeError as exc:  # shape mismatches from load_state_dict: keep the first line
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{src}: weights do not match config.json: {str(exc).splitlines()[-1].strip()}") from None
    if dst is not None:
        model.save_pretrained(dst)
    return model


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``xtrimo-convert``."""
    parser = make_parser("xtrimo-convert", "Convert a Hugging Face ProteinGLM checkpoint into an xtrimo checkpoint.",
                         ["xtrimo-convert proteinglm-1b-mlm/ ckpt/proteinglm-1b-mlm"])
    parser.add_argument("src", help="Hugging Face folder: config.json + *.safetensors (or pytorch_model*.bin)")
    parser.add_argument("dst", help="xtrimo checkpoint directory to write (model.safetensors + config.yaml)")
    args = parser.parse_args(argv)

    def body() -> None:
        if Path(args.dst).exists():
            raise FileExistsError(f"{args.dst} exists; choose a new directory (nothing is overwritten)")
        model = convert_hf_checkpoint(args.src, args.dst)
        c = model.config
        print(f"wrote {args.dst}: {model.num_parameters():,} parameters, {c.num_layers} layers, hidden "
              f"{c.hidden_size}, RoPE {c.rope_mode}, {'causal (CLM)' if c.is_causal else 'bidirectional (MLM)'}")

    return run_command("xtrimo-convert", body)


if __name__ == "__main__":
    sys.exit(main())
