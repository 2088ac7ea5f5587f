"""Structured training configuration: the dataclasses are Hydra's schema; YAML files under configs/ pick values."""

from __future__ import annotations

from dataclasses import dataclass, field

from xtrimo.config import ModelConfig
from xtrimo.objectives.mixture import ObjectiveConfig

STRATEGIES = ("auto", "single", "ddp", "fsdp", "deepspeed_zero1", "deepspeed_zero2", "deepspeed_zero3")
# measured to train as the eager blocks do (tests/test_distributed.py); Lightning runs DeepSpeed on CUDA only, so
# compiled blocks inside its engine are not verified here
COMPILE_STRATEGIES = ("auto", "single", "ddp", "fsdp")
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true")


@dataclass
class DataConfig:
    """Files are paths or ``registry:<dataset>/<file>`` (resolved under $XTRIMO_DATA_DIR)."""

    train_files: list[str] = field(default_factory=lambda: ["registry:pretrain_corpus/train.fasta.gz"])
    valid_files: list[str] = field(default_factory=lambda: ["registry:pretrain_corpus/valid.fasta.gz"])
    max_length: int = 512  # tokens per sample (special tokens included); longer sequences are cropped/windowed
    max_tokens: int = 8192  # padded tokens per micro-batch (token budget)
    shuffle_buffer: int = 32768  # sequences held for shuffling (bounds memory)
    bucket_pool: int = 2048  # samples sorted together by length
    num_workers: int = 0
    valid_max_sequences: int = 256  # periodic validation on the first N valid sequences (0: all); the whole split
    # is validated once at the end (final_full_validation)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ValueError(f"data.max_length must be at least 8, got {self.max_length}")
        if self.max_tokens < self.max_length:
            raise ValueError(f"data.max_tokens ({self.max_tokens}) must be >= data.max_length ({self.max_length})")


@dataclass
class OptimConfig:
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at max_steps
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    warmup_steps: int = 100
    grad_clip: float = 1.0  # 0 disables


@dataclass
class StabilityConfig:
    """The paper's loss-spike measures: skip a step whose loss is non-finite or spikes (logged and counted)."""

    skip_nonfinite: bool = True
    spike_factor: float = 0.0  # skip when loss > spike_factor * running mean (0: off)
    spike_warmup_steps: int = 100  # no spike test before this many steps


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # bf16-mixed where the device computes bf16 natively, else 32-true (xtrimo.precision)
    max_steps: int = 1000
    max_minutes: float = 0.0  # stop after this wall time (0: no limit)
    accumulate_grad_batches: int = 1
    val_check_interval: int = 200  # optimizer steps between validations (and checkpoints)
    checkpoint_every_n_steps: int = 200
    log_every_n_steps: int = 10
    progress_bar: bool = True  # a bar on a terminal, a plain line every progress_seconds otherwise; false: neither
    progress_seconds: float = 30.0
    # a batch's token count is rounded up with filler rows, to a step of 1/8 of its power of two and at most this:
    # few distinct matrix shapes, so the CPU's bf16 kernels (oneDNN) are built once and memory stays flat, at
    # under 12.5% filler work (1 disables)
    token_multiple: int = 1024
    # run the transformer blocks through torch.compile (inductor; a C++ compiler is needed on the CPU): the first
    # step compiles, then each step is faster (both timed in docs/training.md); every process of ddp / fsdp compiles
    # its own
    compile: bool = False
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"trainer.strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"trainer.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.compile and self.strategy not in COMPILE_STRATEGIES:
            raise ValueError(f"trainer.compile works with trainer.strategy {' / '.join(COMPILE_STRATEGIES)}, not "
                             f"{self.strategy!r} (compiled blocks inside DeepSpeed's engine are not verified)")


@dataclass
class DeepSpeedConfig:
    offload_optimizer: bool = False
    offload_parameters: bool = False
    allgather_bucket_size: int = 200_000_000
    reduce_bucket_size: int = 200_000_000


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    output_dir: str = "runs/default"
    init_from: str = ""  # start from the weights of this checkpoint directory (fine-tuning)
    resume: bool = False
    dry_run: bool = False
    seed: int = 0
    final_full_validation: bool = True  # validate on the whole valid split at the end and print the table
