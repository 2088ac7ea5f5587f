import pytest
import torch
from safetensors.torch import save_file

from xtrimo.checkpoint import CheckpointError
from xtrimo.io import atomic_directory
from xtrimo.model import XTrimoPGLM


def test_roundtrip_identical_logits(tiny_config, tmp_path):
    model = XTrimoPGLM(tiny_config).eval()
    model.save_pretrained(tmp_path / "ckpt")
    loaded = XTrimoPGLM.from_pretrained(tmp_path / "ckpt")
    tokens = torch.randint(1, 28, (2, 13))
    assert torch.equal(model(tokens)["logits"], loaded(tokens)["logits"])
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.yaml", "model.safetensors"]


def test_strict_loading_names_keys(tiny_config, tmp_path):
    model = XTrimoPGLM(tiny_config)
    model.save_pretrained(tmp_path / "c")
    state = model.state_dict()
    state.pop("transformer.output_layer.bias")
    state["extra.weight"] = torch.zeros(1)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "c" / "model.safetensors"))
    with pytest.raises(CheckpointError,
                       match=r"missing keys \['transformer.output_layer.bias'\].*unexpected keys \['extra.weight'\]"):
        XTrimoPGLM.from_pretrained(tmp_path / "c")
    with pytest.raises(CheckpointError, match="not found"):
        XTrimoPGLM.from_pretrained(tmp_path / "absent")


def test_atomic_directory_keeps_old_on_failure(tiny_config, tmp_path):
    XTrimoPGLM(tiny_config).save_pretrained(tmp_path / "c")
    before = (tmp_path / "c" / "model.safetensors").read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "c") as tmp:
            (tmp / "model.safetensors").write_bytes(b"partial")
            raise RuntimeError("killed")
    assert (tmp_path / "c" / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_checkpoints_without_stored_rope_frequencies_load(tiny_config, tmp_path):
    """Checkpoints written before rotary.inv_freq was saved take the config's frequencies (what they used)."""
    model = XTrimoPGLM(tiny_config).eval()
    model.save_pretrained(tmp_path / "c")
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "rotary.inv_freq"}
    save_file(state, str(tmp_path / "c" / "model.safetensors"))
    tokens = torch.randint(1, 28, (2, 9))
    assert torch.equal(XTrimoPGLM.from_pretrained(tmp_path / "c")(tokens)["logits"], model(tokens)["logits"])
