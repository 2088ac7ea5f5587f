"""The xTrimoPGLM backbone with its (untied) language-model head.

Module names equal Hugging Face ProteinGLM's, so its checkpoints load through a key table
(``xtrimo/checkpoint.py``) and LoRA targets match the paper's scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from xtrimo.checkpoint import WEIGHTS_NAME, check_keys, read_checkpoint, save_checkpoint
from xtrimo.config import ModelConfig
from xtrimo.model.decoding import ExportedStep, TorchCompiledStep
from xtrimo.model.layers import (
    AttentionInputs, GLMBlock, KVCache, KVWindow, Linear, TokenLayout, pad_rows, right_padded_lengths, round_rows,
)
from xtrimo.model.layout import ModelInput, attention_mask, from_ids, needs_mask, step_mask
from xtrimo.model.rope import rotary_embedding
from xtrimo.model.span_attention import usable as span_attention_usable


ROTARY_KEY = "rotary.inv_freq"


class _ShrinkGrad(torch.autograd.Function):
    """Identity forward, gradient scaled by alpha (GLM-130B embedding-gradient shrink)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.alpha, None


class Embedding(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.padded_vocab_size, config.hidden_size)


class Encoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(GLMBlock(config, i) for i in range(config.num_layers))
        self.final_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embedding = Embedding(config)
        self.encoder = Encoder(config)
        self.output_layer = Linear(config.hidden_size, config.padded_vocab_size)


class XTrimoPGLM(nn.Module):
    """GLM protein language model (xTrimoPGLM, Chen et al.).

    Args:
        config: the architecture.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = Transformer(config)
        self.rotary = rotary_embedding(config.rope_mode, config.head_dim, config.rope_base)  # state key ROTARY_KEY
        self._compiled_step: Callable[..., Any] | None = None
        self._compiled_block: Callable[..., Any] | None = None
        # the flat token count is rounded up to a multiple of this (see TokenLayout); the trainer sets it
        self.token_multiple = 1
        # "auto": bf16 passes on CPUs with AVX512_BF16 run attention through xtrimo.model.span_attention; "sdpa":
        # always scaled_dot_product_attention
        self.attention_kernel: Literal["auto", "sdpa"] = "auto"
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GLM-130B init: normal(std) everywhere, DeepNorm's xavier-normal gain beta on V, attention output and FFN."""
        cfg, beta = self.config, self.config.deepnorm_beta
        for name, p in self.named_parameters():
            if p.device.type == "meta":
                continue
            if "layernorm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            elif name.endswith(("dense.weight", "dense_h_to_4h.weight", "dense_4h_to_h.weight")):
                nn.init.xavier_normal_(p, gain=beta)
            else:
                p.normal_(0.0, cfg.init_method_std)
        for block in self.transformer.encoder.layers:
            w = block.self_attention.query_key_value.weight
            if w.device.type == "meta":
                continue
            v_rows = w.view(cfg.num_attention_heads, 3, cfg.head_dim, cfg.hidden_size)[:, 2]
            std = beta * (2.0 / (2 * cfg.hidden_size)) ** 0.5  # xavier-normal of the [H, H] value map
            v_rows.normal_(0.0, std)

    def forward(
        self,
        inputs: ModelInput | torch.Tensor,
        cache: KVCache | None = None,
        key_valid: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        return_logits: bool = True,
        logits_at: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Run the model.

        Args:
            inputs: a :class:`~xtrimo.model.layout.ModelInput` (built by :mod:`xtrimo.model.layout`), or bare ids
                ``[B, L]``, read in the checkpoint's own mode (``config.read_mode``: MLM, or CLM for causal
                checkpoints) with ``<pad>`` as padding.
            cache: a :class:`KVCache` for incremental decoding; the inputs follow its ``length`` filled positions,
                and the model advances it by ``L``.
            key_valid: with a cache, ``[B, cache.length + L]`` False on padding keys (default: all cached keys).
            output_hidden_states: also return every layer's states (embedding output first), ``[B, L, H]`` each.
            output_attentions: also return attention maps ``[B, nh, L, L_keys]`` per layer.
            return_logits: False skips the output head (embedding extraction).
            logits_at: ``[B, L]`` bool: the output head only at these positions, ``logits`` ``[K, V]`` in row-major
                order (training: the labelled ~15% under MLM; inside the forward, so sharded strategies see it).

        Returns:
            dict with ``logits`` ``[B, L, V]``, ``last_hidden_state`` ``[B, L, H]`` (after the final LayerNorm)
            and, on request, ``hidden_states`` and ``attentions``.
        """
        start = cache.length if cache is not None else 0
        if not isinstance(inputs, ModelInput):
            inputs = from_ids(inputs, self.config.read_mode, offset=start)
        tokens = inputs.input_ids
        b, length = tokens.shape
        if key_valid is None:
            key_valid = inputs.valid if start == 0 else torch.cat((inputs.valid.new_ones(b, start), inputs.valid), 1)
        layout = TokenLayout.from_valid(inputs.valid if cache is None else None, b, length, self.token_multiple)
        spans = None if cache is not None or output_attentions else self._spans(inputs)
        varlen = (
            spans is None and layout.index is not None and tokens.device.type == "cpu" and not output_attentions
            and layout.use_varlen(inputs.valid, inputs.division)
        )
        mask = None
        if spans is None and not varlen and needs_mask(inputs.division, key_valid):
            mask = attention_mask(inputs.division, key_valid, start)
        window = cache.window(length) if cache is not None else None
        attend = AttentionInputs(layout, self.rotary(inputs.position_ids), mask, window, output_attentions, spans)

        x = self.transformer.embedding.word_embeddings(layout.to_flat(tokens[..., None]).squeeze(-1))
        if self.config.embedding_grad_shrink < 1.0 and self.training:
            x = _ShrinkGrad.apply(x, self.config.embedding_grad_shrink)
        hidden, attentions = [], []
        # the compiled block serves whole-sequence passes in the padded layout; the per-sequence loop of varlen
        # attention, cached decoding and attention maps run eagerly (their Python-side sizes would recompile)
        run = _block
        if self._compiled_block is not None and cache is None and not varlen and not output_attentions:
            run = self._compiled_block
        for block in self.transformer.encoder.layers:
            if output_hidden_states:
                hidden.append(x)
            x, probs = run(block, x, attend)
            if output_attentions:
                attentions.append(probs)
        x = self.transformer.encoder.final_layernorm(x)
        if cache is not None:
            cache.advance(length)
        out: dict[str, Any] = {"last_hidden_state": layout.to_padded(x)}
        if logits_at is not None:
            # the head's row count rounded up like the token count (token_multiple): in bf16 on the CPU a new
            # count every step grew the training process by about 7 MB a step (docs/training.md)
            rows = out["last_hidden_state"][logits_at]  # [K, H]
            k = rows.shape[0]
            head = self.transformer.output_layer(pad_rows(rows, round_rows(k, self.token_multiple) - k))
            out["logits"] = head[:k]
        elif return_logits:
            out["logits"] = layout.to_padded(self.transformer.output_layer(x))
        if output_hidden_states:
            out["hidden_states"] = [layout.to_padded(h) for h in hidden] + [out["last_hidden_state"]]
        if output_attentions:
            out["attentions"] = attentions
        return out

    def _spans(self, inputs: ModelInput) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(lengths, divisions)`` for the bf16 span kernel where this pass can use it: on the CPU, computing in
        bf16 (autocast or bf16 weights), no attention dropout in training, right-padded rows, a head width the
        kernel takes, and ``attention_kernel`` "auto"."""
        device = inputs.input_ids.device
        bf16 = (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16) or (
            self.transformer.output_layer.weight.dtype == torch.bfloat16)
        if (self.attention_kernel != "auto" or device.type != "cpu" or not bf16
                or (self.training and self.config.attention_dropout > 0)
                or not span_attention_usable(self.config.head_dim)):
            return None
        lengths = right_padded_lengths(inputs.valid)
        if lengths is None:
            return None
        return lengths.to(torch.int32), inputs.division.clamp(max=inputs.valid.shape[1]).to(torch.int32)

    def decode_step(
        self, tokens: torch.Tensor, positions: torch.Tensor, key_valid: torch.Tensor, cache: KVCache,
        head: Callable[..., Any] | None = None, *head_args: Any,
    ) -> Any:
        """One new token per row after ``cache.length`` cached positions (incremental decoding).

        Args:
            tokens: ``[B]`` ids; positions: ``[B, 2]`` (absolute, block).
            key_valid: ``[B, cache.length + 1]`` False on padding keys (the new token is the last key).
            cache: advanced by one position.
            head: applied to the logits in the same (compiled) graph, as ``head(logits, *head_args)``: the
                sampler of :mod:`xtrimo.generation` draws the next token there.

        Returns:
            the logits ``[B, V]`` (fp32), or what ``head`` returns.
        """
        if key_valid.shape[1] != cache.length + 1:
            raise ValueError(f"key_valid covers {key_valid.shape[1]} keys; the cache holds {cache.length} + 1 new")
        if cache.length >= cache.max_len:
            raise ValueError(f"KV cache overflow: {cache.length + 1} positions > max_len {cache.max_len}")
        step = self._compiled_step or _one_token
        if self._compiled_step is not None:
            self._lay_products(tokens.device.type == "cpu" and torch.get_num_threads() > 1)
        out = step(self, tokens, positions, key_valid, cache.keys, cache.values, head, *head_args)
        cache.advance(1)
        return out

    def _lay_products(self, weight_left: bool) -> None:
        """How the compiled step multiplies several rows (:class:`~xtrimo.model.layers.Linear`); a change of this
        setting recompiles the step once."""
        if self.transformer.output_layer.weight_left != weight_left:
            for m in self.modules():
                if isinstance(m, Linear):
                    m.weight_left = weight_left

    def compile_decoding(self, ahead_of_time: bool = False, **options: Any) -> None:
        """Run :meth:`decode_step` compiled with inductor ``options``: through ``torch.compile``, or with
        ``ahead_of_time`` (CPU) as AOTInductor packages (:mod:`xtrimo.model.decoding`); either compiles once for a
        one-row batch and once for larger ones, batch and lengths traced as symbols."""
        if ahead_of_time:  # Linear's products change at decode_rows rows
            self._compiled_step = ExportedStep(_one_token, options, batch_splits=[Linear.decode_rows])
        else:
            self._compiled_step = TorchCompiledStep(_one_token, options)

    def compile_blocks(self, **options: Any) -> None:
        """Run each transformer block of whole-sequence passes (the trainer's ``trainer.compile``) through
        ``torch.compile`` (inductor ``options``): one graph for every block, with the token count and the batch
        shape traced as symbols. The norms, RoPE, layout changes and residuals around the products fuse into a few
        loops, and attention's mask enters the graph once (what it gains on the training step: docs/training.md).
        Each process compiles once per mode (training, no-grad)."""
        self._compiled_block = torch.compile(_block, dynamic=True, options=options or None)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu") -> XTrimoPGLM:
        """Load a checkpoint directory (model.safetensors + config.yaml) with strict key checking.

        Checkpoints written before the RoPE frequencies were saved with the weights lack ``rotary.inv_freq``;
        those take the frequencies the config defines (what they were trained with).

        Raises:
            CheckpointError: a missing or incomplete directory, or weights that do not match the config.
        """
        config, state = read_checkpoint(path, map_location)
        return cls.from_state(config, state, str(Path(path) / WEIGHTS_NAME), map_location)

    @classmethod
    def from_state(cls, config: ModelConfig, state: dict[str, torch.Tensor], source: str = "state dict",
                   map_location: str | torch.device = "cpu") -> XTrimoPGLM:
        """The model of ``config`` around ``state``, without a second copy of the weights (missing and unexpected
        keys named in a ``CheckpointError``)."""
        with torch.device("meta"):
            model = cls(config)
        if ROTARY_KEY not in state:
            rotary = rotary_embedding(config.rope_mode, config.head_dim, config.rope_base)
            state = {**state, ROTARY_KEY: rotary.inv_freq}
        check_keys(set(model.state_dict()), set(state), source)
        model.load_state_dict({k: v.to(map_location) for k, v in state.items()}, strict=True, assign=True)
        return model.eval()

    def save_pretrained(self, path: str | Path) -> None:
        """Write model.safetensors + config.yaml atomically into ``path``."""
        save_checkpoint(self.state_dict(), self.config, path)


def _block(block: nn.Module, x: torch.Tensor, attend: AttentionInputs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One transformer block, ``x`` ``[T, H]`` (what :meth:`XTrimoPGLM.compile_blocks` compiles)."""
    return block(x, attend)


def _one_token(
    model: XTrimoPGLM, tokens: torch.Tensor, positions: torch.Tensor, key_valid: torch.Tensor,
    keys: list[torch.Tensor], values: list[torch.Tensor], head: Callable[..., Any] | None, *head_args: Any,
) -> Any:
    """The body of :meth:`XTrimoPGLM.decode_step`: the model's own blocks on ``[B, H]``, keys written at
    ``key_valid.shape[1] - 1`` (a size, so that it stays a traced symbol when compiled)."""
    b = tokens.shape[0]
    x = model.transformer.embedding.word_embeddings(tokens)
    window = KVWindow(keys, values, key_valid.shape[1])
    attend = AttentionInputs(TokenLayout(b, 1), model.rotary(positions[:, :, None]), step_mask(key_valid), window)
    for block in model.transformer.encoder.layers:
        x, _ = block(x, attend)
    logits = model.transformer.output_layer(model.transformer.encoder.final_layernorm(x)).float()
    return logits if head is None else head(logits, *head_args)
