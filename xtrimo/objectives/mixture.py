"""Per-sample mixture of MLM and GLM with the two-stage curriculum (stage 1 MLM only, stage 2 mixed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xtrimo.objectives.glm import build_glm_sample
from xtrimo.objectives.mlm import build_mlm_sample
from xtrimo.objectives.sample import GLM, MLM, Sample


@dataclass
class ObjectiveConfig:
    """How samples are built.

    ``glm_prob`` is the stage-2 share of GLM samples (0.8 in the 100B recipe); before ``stage1_steps`` optimizer
    steps every sample is MLM (the paper's stage 1). ``stage1_steps = 0`` mixes from the start. The paper reports
    loss spikes at the MLM -> GLM switch and calls for a smooth transition: over ``transition_steps`` after stage 1
    the GLM share rises linearly from 0 to ``glm_prob``.
    """

    glm_prob: float = 0.8
    stage1_steps: int = 0
    transition_steps: int = 0
    mask_prob: float = 0.15
    replace_mask: float = 0.8
    replace_random: float = 0.1
    min_gmask_ratio: float = 0.2
    full_span_prob: float = 0.0  # share of GLM samples generated whole from an empty prefix

    def __post_init__(self) -> None:
        for key in ("glm_prob", "mask_prob", "replace_mask", "replace_random", "min_gmask_ratio", "full_span_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"objective.{key} must be in [0, 1], got {getattr(self, key)}")
        if self.replace_mask + self.replace_random > 1.0:
            raise ValueError("objective.replace_mask + objective.replace_random must be at most 1")
        for key in ("stage1_steps", "transition_steps"):
            if getattr(self, key) < 0:
                raise ValueError(f"objective.{key} must be >= 0, got {getattr(self, key)}")

    def glm_share(self, step: int) -> float:
        """Share of GLM samples at optimizer step ``step``."""
        if step < self.stage1_steps:
            return 0.0
        ramp = (step - self.stage1_steps + 1) / self.transition_steps if self.transition_steps else 1.0
        return self.glm_prob * min(1.0, ramp)

    def trained_objectives(self, steps: int) -> tuple[str, ...]:
        """The objectives that get samples in a run of ``steps`` optimizer steps.

        The GLM share never decreases with the step, so the first step tells whether MLM is drawn, the last
        whether GLM is.
        """
        out = []
        if steps > 0 and self.glm_share(0) < 1.0:
            out.append("mlm")
        if steps > 0 and self.glm_share(steps - 1) > 0.0:
            out.append("glm")
        return tuple(out)


def build_sample(residues: np.ndarray, rng: np.random.Generator, cfg: ObjectiveConfig, kind: int) -> Sample:
    if kind == MLM:
        return build_mlm_sample(residues, rng, cfg.mask_prob, cfg.replace_mask, cfg.replace_random)
    if kind == GLM:
        return build_glm_sample(residues, rng, cfg.min_gmask_ratio, cfg.full_span_prob)
    raise ValueError(f"unknown objective kind {kind}")


def draw_kind(rng: np.random.Generator, cfg: ObjectiveConfig, step: int) -> int:
    return GLM if rng.random() < cfg.glm_share(step) else MLM
