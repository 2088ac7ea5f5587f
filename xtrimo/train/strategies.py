"""Parallelism, applied from outside the model: DDP, FSDP2 (ModelParallelStrategy) and DeepSpeed ZeRO 1-3.

This is the only module that imports deepspeed (lazily, when a deepspeed strategy is chosen).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy, Strategy

from xtrimo.model.glm import XTrimoPGLM
from xtrimo.train.config import DeepSpeedConfig, TrainerConfig


def deepspeed_config(stage: int, ds: DeepSpeedConfig, grad_clip: float, precision: str) -> dict[str, Any]:
    """The DeepSpeed JSON config for ZeRO ``stage`` (1, 2 or 3); usable by Lightning or deepspeed.initialize."""
    if stage not in (1, 2, 3):
        raise ValueError(f"ZeRO stage must be 1, 2 or 3, got {stage}")
    zero: dict[str, Any] = {
        "stage": stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "allgather_bucket_size": ds.allgather_bucket_size,
        "reduce_bucket_size": ds.reduce_bucket_size,
    }
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if ds.offload_parameters:
        if stage != 3:
            raise ValueError("deepspeed.offload_parameters needs ZeRO stage 3")
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        "gradient_clipping": grad_clip,
        "bf16": {"enabled": precision.startswith("bf16")},
        "fp16": {"enabled": precision.startswith("16"), "loss_scale": 0, "initial_scale_power": 16,
                 "loss_scale_window": 200, "hysteresis": 2},
        "train_micro_batch_size_per_gpu": 1,
    }


def parallelize(model: XTrimoPGLM, device_mesh: Any) -> XTrimoPGLM:
    """FSDP2: shard each transformer block, then the root (torchtitan's ``parallelize`` pattern)."""
    from torch.distributed.fsdp import fully_shard

    mesh = device_mesh["data_parallel"] if "data_parallel" in (device_mesh.mesh_dim_names or ()) else device_mesh
    for block in model.transformer.encoder.layers:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _ddp(trainer: TrainerConfig, ds: DeepSpeedConfig, grad_clip: float) -> Strategy:
    return DDPStrategy(find_unused_parameters=False)


def _fsdp(trainer: TrainerConfig, ds: DeepSpeedConfig, grad_clip: float) -> Strategy:
    # Lightning's FSDPStrategy refuses the CPU; ModelParallelStrategy with FSDP2 runs on CPU (gloo) and GPU
    return ModelParallelStrategy(data_parallel_size=trainer.devices * trainer.num_nodes, tensor_parallel_size=1)


def _zero(stage: int) -> Callable[[TrainerConfig, DeepSpeedConfig, float], Strategy]:
    def build(trainer: TrainerConfig, ds: DeepSpeedConfig, grad_clip: float) -> Strategy:
        from lightning.pytorch.strategies import DeepSpeedStrategy

        return DeepSpeedStrategy(config=deepspeed_config(stage, ds, grad_clip, trainer.precision))

    return build


# trainer.strategy -> how to build it ("auto": Lightning's choice, single device)
STRATEGIES: dict[str, Callable[[TrainerConfig, DeepSpeedConfig, float], Strategy]] = {
    "ddp": _ddp, "fsdp": _fsdp, **{f"deepspeed_zero{k}": _zero(k) for k in (1, 2, 3)},
}


def build_strategy(trainer: TrainerConfig, ds: DeepSpeedConfig, grad_clip: float) -> Strategy | str:
    """Map ``trainer.strategy`` to a Lightning strategy object (:data:`STRATEGIES`)."""
    if trainer.strategy == "auto":
        return "auto"
    if trainer.strategy not in STRATEGIES:
        raise ValueError(f"unknown trainer.strategy {trainer.strategy!r}; valid: auto, {', '.join(STRATEGIES)}")
    return STRATEGIES[trainer.strategy](trainer, ds, grad_clip)


def full_state_dict(module: torch.nn.Module, strategy: Strategy) -> dict[str, torch.Tensor]:
    """The unsharded model state on CPU (collective under FSDP2 / ZeRO-3; every rank must call it)."""
    from lightning.pytorch.strategies import DeepSpeedStrategy

    if isinstance(strategy, ModelParallelStrategy):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if isinstance(strategy, DeepSpeedStrategy) and getattr(strategy, "zero_stage_3", False):
        import deepspeed

        params = list(module.parameters())
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}
