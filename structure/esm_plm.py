"""ESM-2 in transformers' format (e.g. a downloaded ``facebook/esm2_t33_650M_UR50D``) as the frozen language model of
the trainable folding head: ``xtrimo-train experiment=fold plm.checkpoint=ESM2_DIR``.

The head reads the same features from it as from an xTrimoPGLM checkpoint: every layer's hidden states (embedding
first) and every head's attention map over the residues, ``<cls>`` / ``<eos>`` dropped (ESMFold's
``compute_language_model_representations`` reads the same states).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from xtrimo.checkpoint import CheckpointError


def is_esm_checkpoint(path: str | Path) -> bool:
    """``path`` holds a transformers ESM language model (``config.json`` with ``model_type: esm``, not ESMFold)."""
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
