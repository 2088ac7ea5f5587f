"""Worker for test_deepspeed_zero_on_cpu: trains the debug model a few steps under DeepSpeed ZeRO on the CPU (gloo).

Run by torch.distributed.run; prints one line ``losses <l0> ... <ln>`` from rank 0.
"""

import os
import sys

import deepspeed
import numpy as np
import torch

from xtrimo.config import ModelConfig
from xtrimo.model.layout import collate
from xtrimo.model import XTrimoPGLM
from xtrimo.objectives import ObjectiveConfig, build_sample, lm_loss
from xtrimo.train.config import DeepSpeedConfig
from xtrimo.train.strategies import deepspeed_config

stage = int(sys.argv[1])
deepspeed.init_distributed(dist_backend="gloo")
rank = torch.distributed.get_rank()
torch.manual_seed(0)
model = XTrimoPGLM(ModelConfig(num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=97))
config = deepspeed_config(stage, DeepSpeedConfig(), grad_clip=1.0, precision="32-true")
config["train_micro_batch_size_per_gpu"] = 4
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95))
engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
rng = np.random.default_rng(rank)
fixed = [rng.integers(1, 21, size=int(n)) for n in rng.integers(20, 40, size=4)]
losses = []
for step in range(8):
    batch = collate([build_sample(r, np.random.default_rng(step), ObjectiveConfig(), kind=step % 2) for r in fixed])
    out = engine(batch)
    loss, _ = lm_loss(out["logits"], batch.labels, batch.kinds)
    engine.backward(loss)
    engine.step()
    losses.append(float(loss.detach()))
if rank == 0:
    print("losses " + " ".join(f"{x:.4f}" for x in losses), flush=True)
# leave the process group before exit: without it, gloo's threads were sometimes still joinable when the interpreter
# tore them down ("terminate called without an active exception", SIGABRT in about one run of four)
torch.distributed.barrier()
torch.distributed.destroy_process_group()
# and skip the interpreter's teardown: the abort recurred once more after the above (fresh-ci, stop 10), raised by
# a background thread still joinable at exit; everything this worker reports is printed and flushed by now
sys.stdout.flush()
os._exit(0)
