"""fair-esm's own ESM-2 file as the folding head's language model (structure/esm_plm.py), against fair-esm's model."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from xtrimo.checkpoint import CheckpointError
from xtrimo.structure import Folder
from xtrimo.structure.esm_plm import EsmLanguageModel, is_esm_checkpoint
from xtrimo.structure.folder import load_plm, plm_features

from tests.helpers import tiny_fold_run

esm = pytest.importorskip("esm", reason="fair-esm (the 'peers' extra) is not installed")

SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPVAG"]


def _fair_esm_model(layers: int = 3, width: int = 40, heads: int = 5):
    from esm.model.esm2 import ESM2

    torch.manual_seed(2)
    model = ESM2(num_layers=layers, embed_dim=width, attention_heads=heads,
                 alphabet=esm.data.Alphabet.from_architecture("ESM-1b"), token_dropout=True).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # layer norms and biases off their initial values
    return model


def _save(model, path: Path, **changes) -> Path:
    """As fair-esm's released ESM-2 files hold it: weights under fairseq's prefixes, settings as a Namespace."""
    state = {("encoder." if k.startswith("lm_head.") else "encoder.sentence_encoder.") + k: v
             for k, v in model.state_dict().items()}
    cfg = argparse.Namespace(encoder_layers=model.num_layers, encoder_embed_dim=model.embed_dim,
                             encoder_attention_heads=model.attention_heads, token_dropout=model.token_dropout)
    data = {"model": state, "cfg": {"model": cfg}}
    data.update(changes)
    torch.save(data, path)
    return path


def test_fair_esm_file_gives_fair_esm_features(tmp_path: Path) -> None:
    model = _fair_esm_model()
    path = _save(model, tmp_path / "esm2_t3_40_test.pt")
    assert is_esm_checkpoint(path) and not is_esm_checkpoint(tmp_path / "other.bin")
    plm = load_plm(path)
    assert isinstance(plm, EsmLanguageModel) and plm.config.num_layers == 3
    states, attn, mask = plm_features(plm, SEQS)
    batch = esm.data.Alphabet.from_architecture("ESM-1b").get_batch_converter()
    _, _, tokens = batch([(str(i), s) for i, s in enumerate(SEQS)])
    assert torch.equal(tokens, plm.tokens(SEQS))  # the same ids, <cls> ... <eos> <pad>
    with torch.no_grad():
        out = model(tokens, repr_layers=list(range(4)), need_head_weights=True)
    for i, seq in enumerate(SEQS):
        n = len(seq)
        expected = torch.stack([out["representations"][k][i, 1 : n + 1] for k in range(4)], dim=1)  # [n, 4, 40]
        torch.testing.assert_close(states[i, :n], expected, atol=2e-5, rtol=1e-4)
        expected_attn = out["attentions"][i].flatten(0, 1)[:, 1 : n + 1, 1 : n + 1]  # [layers * heads, n, n]
        torch.testing.assert_close(attn[i, :, :n, :n], expected_attn, atol=2e-5, rtol=1e-4)
        assert mask[i].sum() == n


def test_a_head_trains_on_a_fair_esm_file_and_folds(tmp_path: Path, shared_data: Path) -> None:
    from xtrimo.structure.train import main

    path = _save(_fair_esm_model(layers=2, width=32, heads=4), tmp_path / "esm2_t2_32_test.pt")
    out = tmp_path / "run"
    assert main(["experiment=fold", *tiny_fold_run(path, out, shared_data / "structures_pfam_domains")]) == 0
    result = Folder.from_pretrained(out / "head").fold("MKTAYIAKQR")  # the head's config names the file
    assert result.structure.atom_positions.shape == (10, 37, 3) and np.isfinite(result.plddt).all()


class _Marker:
    """Unpickling this would touch a file: a file that tries to run code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_bad_fair_esm_files_are_one_line_errors(tmp_path: Path) -> None:
    model = _fair_esm_model(layers=2, width=16, heads=2)
    marker = tmp_path / "ran"
    cases = {
        "code": (_save(model, tmp_path / "code.pt", extra=_Marker(marker)), "not a readable fair-esm file"),
        "esm1b": (_save(model, tmp_path / "esm1b.pt", cfg={}), "not a fair-esm ESM-2 file"),
        "garbage": (tmp_path / "garbage.pt", "not a readable fair-esm file"),
    }
    cases["garbage"][0].write_bytes(b"\x80\x04not a checkpoint")
    short = _save(model, tmp_path / "short.pt")
    data = torch.load(short, weights_only=False)
    del data["model"]["encoder.sentence_encoder.layers.1.fc2.weight"]
    torch.save(data, short)
    cases["missing"] = (short, "missing ['encoder.layer.1.output.dense.weight']")
    for name, (path, message) in cases.items():
        with pytest.raises(CheckpointError) as err:
            EsmLanguageModel.from_pretrained(path)
        assert message in str(err.value) and "\n" not in str(err.value), name
    assert not marker.exists()  # the file's code never ran
