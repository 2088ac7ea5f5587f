"""ESM-2 as the frozen language model of the trainable folding head: ``xtrimo-train experiment=fold
plm.checkpoint=ESM2``, where ESM2 is a folder in transformers' format (e.g. a downloaded
``facebook/esm2_t33_650M_UR50D``) or fair-esm's own file (``esm2_t33_650M_UR50D.pt``, as ``torch.hub`` keeps
it).
fair-esm's file is read with ``torch.load(weights_only=True)`` (tensors, containers and ``argparse.Namespace`` only;
nothing else is unpickled) and its weights renamed into transformers' ``EsmModel`` by the table ``FAIR_ESM_NAMES``.

The head reads the same features from it as from an xTrimoPGLM checkpoint: every layer's hidden states (embedding
first) and every head's attention map over the residues, ``<cls>`` / ``<eos>`` dropped (ESMFold's
``compute_language_model_representations`` reads the same states).
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from xtrimo.checkpoint import CheckpointError


# fair-esm's ESM-2 parameter names -> transformers' EsmModel's (the file's "encoder.sentence_encoder." / "encoder."
# prefixes removed first, as fair-esm's loader does); the LM head is not part of EsmModel, rotary buffers are derived
FAIR_ESM_NAMES = (
    (r"embed_tokens\.", "embeddings.word_embeddings."),
    (r"layers\.(\d+)\.self_attn\.q_proj\.", r"encoder.layer.\1.attention.self.query."),
    (r"layers\.(\d+)\.self_attn\.k_proj\.", r"encoder.layer.\1.attention.self.key."),
    (r"layers\.(\d+)\.self_attn\.v_proj\.", r"encoder.layer.\1.attention.self.value."),
    (r"layers\.(\d+)\.self_attn\.out_proj\.", r"encoder.layer.\1.attention.output.dense."),
    (r"layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layer.\1.attention.LayerNorm."),
    (r"layers\.(\d+)\.fc1\.", r"encoder.layer.\1.intermediate.dense."),
    (r"layers\.(\d+)\.fc2\.", r"encoder.layer.\1.output.dense."),
    (r"layers\.(\d+)\.final_layer_norm\.", r"encoder.layer.\1.LayerNorm."),
    (r"emb_layer_norm_after\.", "encoder.emb_layer_norm_after."),
    (r"contact_head\.", "contact_head."),
)
FAIR_ESM_SKIPPED = re.compile(r"^lm_head\.|\.inv_freq$")
# fair-esm's ESM-1b / ESM-2 alphabet, in id order (transformers' ESM-2 vocab.txt is the same list)
FAIR_ESM_TOKENS = ("<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTIDPKQNFYMHWCXBUZO.-", "<null_1>", "<mask>")


def is_esm_checkpoint(path: str | Path) -> bool:
    """``path`` holds an ESM-2 language model: a transformers folder (``config.json`` with ``model_type: esm``, not
    ESMFold) or a fair-esm ``.pt`` file."""
    if Path(path).is_file():
        return Path(path).suffix == ".pt"
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        values = json.loads(config.read_text())
    except (OSError, ValueError):
        return False
    return values.get("model_type") == "esm" and not values.get("is_folding_model", False)


class EsmLanguageModel(nn.Module):
    """A frozen transformers ``EsmModel`` with its vocabulary; ``config`` names the shape as xtrimo's PLM does."""

    def __init__(self, model: nn.Module, vocab: dict[str, int]) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.vocab = vocab
        c = model.config
        self.config = SimpleNamespace(num_layers=c.num_hidden_layers, hidden_size=c.hidden_size,
                                      num_attention_heads=c.num_attention_heads)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> EsmLanguageModel:
        """Read ``config.json``, the weights and ``vocab.txt`` (local files only).

        Raises:
            CheckpointError: missing files or weights that do not match (one line).
        """
        from transformers import EsmModel, EsmTokenizer

        path = Path(path)
        if path.is_file():
            return cls.from_fair_esm(path)
        try:
            tokenizer = EsmTokenizer.from_pretrained(path, local_files_only=True)
            # eager attention: the head reads the attention maps, which the fused kernels do not return
            model, info = EsmModel.from_pretrained(path, local_files_only=True, add_pooling_layer=False,
                                                   attn_implementation="eager", output_loading_info=True)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: not a readable ESM-2 checkpoint ({str(exc).splitlines()[0]})") from None
        if info.get("missing_keys") or info.get("mismatched_keys"):
            raise CheckpointError(f"{path}: ESM-2 weights do not match config.json: missing "
                                  f"{sorted(info.get('missing_keys', []))[:5]}, mismatched "
                                  f"{sorted(map(str, info.get('mismatched_keys', [])))[:5]}")
        return cls(model, tokenizer.get_vocab())

    @classmethod
    def from_fair_esm(cls, path: str | Path) -> EsmLanguageModel:
        """Read fair-esm's ESM-2 file (``{"model": weights, "cfg": {"model": Namespace}}``) into transformers'
        ``EsmModel``: every weight placed, none left over (the LM head aside).

        Raises:
            CheckpointError: an unreadable file, another model (ESM-1b, MSA Transformer) or weights that do not fit
                the file's own configuration (one line).
        """
        from transformers import EsmConfig, EsmModel

        path = Path(path)
        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                data = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
            raise CheckpointError(f"{path}: not a readable fair-esm file ({str(exc).splitlines()[0]})") from None
        cfg = data.get("cfg", {}).get("model") if isinstance(data, dict) and isinstance(data.get("cfg"), dict) else None
        if not isinstance(cfg, argparse.Namespace) or not isinstance(data.get("model"), dict):
            raise CheckpointError(f"{path}: not a fair-esm ESM-2 file (no 'cfg.model' settings and 'model' weights; "
                                  "ESM-1b and MSA Transformer files are not supported)")
        try:
            width, layers, heads = cfg.encoder_embed_dim, cfg.encoder_layers, cfg.encoder_attention_heads
            config = EsmConfig(vocab_size=len(FAIR_ESM_TOKENS), hidden_size=width, num_hidden_layers=layers,
                               num_attention_heads=heads, intermediate_size=4 * width, max_position_embeddings=1026,
                               position_embedding_type="rotary", token_dropout=bool(cfg.token_dropout),
                               emb_layer_norm_before=False, layer_norm_eps=1e-5, mask_token_id=32, pad_token_id=1,
                               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        except AttributeError as exc:
            raise CheckpointError(f"{path}: fair-esm settings incomplete ({exc})") from None
        config._attn_implementation = "eager"  # the head reads the attention maps
        model = EsmModel(config, add_pooling_layer=False)
        names = {key: re.sub(r"^(encoder\.sentence_encoder\.|encoder\.)", "", key) for key in data["model"]}
        state = {_fair_esm_name(names[k]): v for k, v in data["model"].items() if not FAIR_ESM_SKIPPED.search(names[k])}
        expected = {k for k in model.state_dict() if not k.endswith("inv_freq")}
        missing = sorted(expected - set(state) - {k for k in expected if k.startswith("contact_head.")})
        unexpected = sorted(set(state) - expected)
        if missing or unexpected:
            raise CheckpointError(f"{path}: fair-esm weights do not match its settings: missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]}")
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: fair-esm weights do not match its settings "
                                  f"({str(exc).splitlines()[-1].strip()})") from None
        return cls(model, {token: i for i, token in enumerate(FAIR_ESM_TOKENS)})

    def tokens(self, sequences: list[str]) -> torch.Tensor:
        """``[B, 2 + max length]`` ids: ``<cls>`` residues ``<eos>``, right-padded; unknown letters -> ``<unk>``."""
        v = self.vocab
        rows = [[v["<cls>"], *(v.get(c, v["<unk>"]) for c in s), v["<eos>"]] for s in sequences]
        width = max(len(r) for r in rows)
        return torch.tensor([r + [v["<pad>"]] * (width - len(r)) for r in rows])

    @torch.no_grad()
    def features(self, sequences: list[str], with_attentions: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """states ``[B, N, num_layers + 1, H]``, attentions ``[B, num_layers * heads, N, N]`` (or None) and the
        residue mask ``[B, N]``, N = the longest sequence."""
        device = next(self.model.parameters()).device
        ids = self.tokens(sequences).to(device)
        valid = ids != self.vocab["<pad>"]
        out = self.model(ids, attention_mask=valid.long(), output_hidden_states=True,
                         output_attentions=with_attentions)
        n = max(len(s) for s in sequences)
        states = torch.stack(out.hidden_states, dim=2)[:, 1:1 + n]
        attn = torch.cat(out.attentions, dim=1)[:, :, 1:1 + n, 1:1 + n] if with_attentions else None
        mask = torch.zeros(len(sequences), n, device=device)
        for i, s in enumerate(sequences):
            mask[i, : len(s)] = 1
        return states.float(), None if attn is None else attn.float(), mask


def _fair_esm_name(name: str) -> str:
    """fair-esm's parameter name (prefixes removed) -> transformers' (``FAIR_ESM_NAMES``); unknown names are kept,
    to be reported."""
    for pattern, replacement in FAIR_ESM_NAMES:
        new, hits = re.subn("^" + pattern, replacement, name)
        if hits:
            return new
    return name
