"""The Generator API: from_pretrained, generate, reranking, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtrimo.checkpoint import CheckpointError
from xtrimo.generation import Generator
from xtrimo.tokenizer import STANDARD_RESIDUES, InvalidResidueError


def test_generate_respects_limits_and_standard_residues(checkpoint: Path) -> None:
    gen = Generator.from_pretrained(checkpoint, device="cpu")
    out = gen.generate(num_sequences=7, prompt="M", max_new_tokens=40, min_length=12, max_length=25, seed=0,
                       batch_size=3, temperature=0.9, top_p=0.9)
    assert [s.index for s in out] == list(range(7))
    for s in out:
        assert s.sequence.startswith("M") and 12 <= len(s.sequence) <= 25
        assert set(s.sequence) <= set(STANDARD_RESIDUES)
        assert s.mean_log_likelihood < 0 and s.num_tokens >= len(s.sequence) - 1


def test_same_seed_same_samples_for_any_batch_size(checkpoint: Path) -> None:
    gen = Generator.from_pretrained(checkpoint, device="cpu")
    a = gen.generate(5, max_new_tokens=20, seed=3, batch_size=5)
    b = gen.generate(5, max_new_tokens=20, seed=3, batch_size=2)
    c = gen.generate(5, max_new_tokens=20, seed=4, batch_size=5)
    assert [s.sequence for s in a] == [s.sequence for s in b]
    assert [s.sequence for s in a] != [s.sequence for s in c]


def test_reranking_keeps_the_best_by_any_score(checkpoint: Path) -> None:
    gen = Generator.from_pretrained(checkpoint, device="cpu")
    pool = gen.generate(8, max_new_tokens=15, seed=1)
    best = gen.generate(3, max_new_tokens=15, seed=1, num_candidates=8)
    expected = sorted(pool, key=lambda s: -s.mean_log_likelihood)[:3]
    assert [s.sequence for s in best] == [s.sequence for s in expected]
    by_g = gen.generate(2, max_new_tokens=15, seed=1, num_candidates=8,
                        score_fn=lambda seqs: [s.count("G") for s in seqs])
    assert [s.sequence.count("G") for s in by_g] == sorted((s.sequence.count("G") for s in pool), reverse=True)[:2]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"num_sequences": 0}, ValueError, r"number of sequences \(-n\) must be >= 1, got 0"),
    ({"num_sequences": 2, "top_p": 0.0}, ValueError, r"top-p must be in \(0, 1\], got 0.0"),
    ({"num_sequences": 2, "top_p": 1.2}, ValueError, r"top-p must be in \(0, 1\]"),
    ({"num_sequences": 2, "prompt": "MK7"}, InvalidResidueError, "'7' at position 3 of record 'prompt'"),
    ({"num_sequences": 2, "prompt": "MKT", "max_length": 3}, ValueError, "leaves no room"),
    ({"num_sequences": 2, "min_length": 9, "max_length": 5}, ValueError, "larger than max_length"),
    ({"num_sequences": 3, "num_candidates": 2}, ValueError, "num_candidates"),
])
def test_bad_input_is_named(checkpoint: Path, kwargs: dict, error: type, message: str) -> None:
    gen = Generator.from_pretrained(checkpoint, device="cpu")
    with pytest.raises(error, match=message):
        gen.generate(**kwargs)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        Generator.from_pretrained(tmp_path / "nope")


@pytest.mark.gpu
def test_gpu_needs_no_code_change_and_draws_like_the_cpu(checkpoint: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = Generator.from_pretrained(checkpoint, device="cpu").generate(8, "M", max_new_tokens=30, seed=5)
    gpu_gen = Generator.from_pretrained(checkpoint, device="cuda")
    gpu = gpu_gen.generate(8, "M", max_new_tokens=30, seed=5)
    assert [s.sequence for s in gpu] == [s.sequence for s in gpu_gen.generate(8, "M", max_new_tokens=30, seed=5)]
    # same counter-based draws on both devices: only a float difference at a CDF boundary could change a sample
    assert sum(a.sequence == b.sequence for a, b in zip(cpu, gpu)) >= 6
    designs = gpu_gen.design("MK??GS?E", 4, seed=1)
    assert all(d.sequence[:2] == "MK" and d.sequence[4:6] == "GS" for d in designs)


def test_input_major_weights_keep_values_outputs_and_checkpoints(model, tmp_path: Path) -> None:
    import torch

    from xtrimo.generation.generator import input_major_weights
    from xtrimo.model.glm import XTrimoPGLM

    ids = torch.randint(4, 24, (3, 11))
    with torch.no_grad():
        before = {k: v.clone() for k, v in model.state_dict().items()}
        logits = model(ids)["logits"]
        input_major_weights(model)
        linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        assert linear.weight.stride() == (1, linear.weight.shape[0])  # [in, out] in memory
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        assert torch.allclose(model(ids)["logits"], logits, atol=1e-5)
    model.save_pretrained(tmp_path / "relaid")
    reloaded = XTrimoPGLM.from_pretrained(tmp_path / "relaid")
    assert all(torch.equal(before[k], v) for k, v in reloaded.state_dict().items())
