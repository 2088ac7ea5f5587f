"""``trainer.compile`` / :meth:`XTrimoPGLM.compile_blocks`: the compiled blocks compute what the eager ones do."""

import copy

import lightning as L
import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from xtrimo.config import ModelConfig
from xtrimo.model import XTrimoPGLM
from xtrimo.model.layout import collate
from xtrimo.objectives import build_mlm_sample
from xtrimo.objectives.glm import build_glm_sample
from xtrimo.toolchain import has_toolchain
from xtrimo.train.cli import compose
from xtrimo.train.config import OptimConfig, StabilityConfig
from xtrimo.train.module import PretrainModule

pytestmark = pytest.mark.skipif(not has_toolchain(), reason="inductor needs a C++ compiler and the Python headers")

CONFIG = ModelConfig(num_layers=3, hidden_size=40, num_attention_heads=5, ffn_hidden_size=57, seq_length=96,
                     objectives=("mlm", "glm"))


def _batch(rng: np.random.Generator, n: int, lo: int, hi: int, glm: bool = False):
    seqs = [rng.integers(1, 21, rng.integers(lo, hi)) for _ in range(n)]
    return collate([(build_glm_sample if glm and i % 2 else build_mlm_sample)(s + 4, rng) for i, s in enumerate(seqs)])


def test_compiled_blocks_equal_eager_and_compile_once():
    """MLM and GLM batches of new shapes (padding, span masks), forward and backward: one graph for every block and
    batch shape per mask mode (a mask or none); the heavily padded batch takes the eager per-sequence attention. The
    weights' names do not change."""
    rng = np.random.default_rng(3)
    eager = XTrimoPGLM(CONFIG).train()
    compiled = copy.deepcopy(eager)
    compiled.compile_blocks()
    assert list(compiled.state_dict()) == list(eager.state_dict())
    batches = [_batch(rng, 3, 11, 19), _batch(rng, 4, 20, 31, glm=True), _batch(rng, 5, 7, 13, glm=True),
               _batch(rng, 2, 60, 61), collate([build_mlm_sample(rng.integers(5, 25, n), rng) for n in (5, 6, 70)])]
    counters.clear()
    for batch in batches:
        outs = []
        for model in (eager, compiled):
            model.zero_grad(set_to_none=True)
            out = model(batch, output_hidden_states=True)
            (out["logits"].square().mean() + out["hidden_states"][1].sum() * 1e-3).backward()
            outs.append((out["logits"].detach(), [p.grad for p in model.parameters()]))
        (la, ga), (lb, gb) = outs
        torch.testing.assert_close(lb, la, atol=2e-5, rtol=1e-4)
        for a, b in zip(ga, gb):
            torch.testing.assert_close(b, a, atol=2e-6, rtol=1e-4)
    assert counters["stats"]["unique_graphs"] == 2  # with and without an attention mask
    with torch.no_grad():
        torch.testing.assert_close(compiled.eval()(batches[1])["logits"], eager.eval()(batches[1])["logits"],
                                   atol=2e-5, rtol=1e-4)


def _losses(compile: bool, batches: list, precision: str) -> list[float]:
    class Record(L.Callback):
        def __init__(self) -> None:
            self.losses: list[float] = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            self.losses.append(float(outputs["loss"]))

    torch.manual_seed(0)
    module = PretrainModule(CONFIG, OptimConfig(warmup_steps=1, lr=3e-3), StabilityConfig(), max_steps=len(batches),
                            compile=compile, token_multiple=64)
    record = Record()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=len(batches), logger=False, precision=precision,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, callbacks=[record], num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda x: x))
    return record.losses


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_compiled_training_follows_the_eager_one(precision):
    """The training step of ``trainer.compile=true`` (Lightning, AdamW, clipping) against the eager step: the same
    losses over 5 steps (bf16: within its rounding)."""
    rng = np.random.default_rng(0)
    batches = [_batch(rng, 4, 15, 40, glm=bool(i % 2)) for i in range(5)]
    eager, compiled = _losses(False, batches, precision), _losses(True, batches, precision)
    tol = 1e-4 if precision == "32-true" else 3e-2
    np.testing.assert_allclose(compiled, eager, atol=tol, rtol=0)
    assert eager[-1] < eager[0]


@pytest.mark.parametrize("strategy", ["deepspeed_zero1", "deepspeed_zero3"])
def test_compile_with_deepspeed_is_refused(strategy):
    with pytest.raises(ValueError, match=f"trainer.compile works with .* not '{strategy}'") as err:
        compose(["trainer.compile=true", f"strategy={strategy}"])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("overrides", [["strategy=fsdp"], ["trainer.strategy=ddp", "trainer.devices=2"]])
def test_compile_in_several_processes_is_accepted(overrides):
    """Each process compiles its own blocks (trained as the eager ones: tests/test_distributed.py)."""
    assert compose(["trainer.compile=true", *overrides]).trainer.compile
