from xtrimo.objectives.glm import build_glm_sample
from xtrimo.objectives.loss import lm_loss
from xtrimo.objectives.mixture import ObjectiveConfig, build_sample, draw_kind
from xtrimo.objectives.mlm import build_mlm_sample
from xtrimo.objectives.sample import GLM, IGNORE_INDEX, MLM, OBJECTIVE_NAMES, Sample

__all__ = [
    "GLM", "IGNORE_INDEX", "MLM", "OBJECTIVE_NAMES", "ObjectiveConfig", "Sample", "build_glm_sample",
    "build_mlm_sample", "build_sample", "draw_kind", "lm_loss",
]
