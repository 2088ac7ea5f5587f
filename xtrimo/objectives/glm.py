"""Autoregressive blank-infilling objective with ``[gMASK]`` (GLM; xTrimoPGLM paper, section 2).

A span length ``g`` is drawn uniformly in ``[ceil(min_gmask_ratio * L), L]``; the last ``g`` residues (+ ``<eos>``)
are generated after the bidirectional prefix:

    input  = prefix + <gmask> + <sop> + target[:-1]     target = residues[L-g:] + <eos>
    labels = ignore * (P + 1)    + target

Positions and mask follow the released collator (:func:`xtrimo.model.layout.glm_sample`): bidirectional over
``prefix + [gMASK]``, causal after it.
"""

from __future__ import annotations

import math

import numpy as np

from xtrimo.model.layout import Sample, glm_sample
from xtrimo.objectives.sample import GLM
from xtrimo.tokenizer import EOS_ID


def build_glm_sample(
    residues: np.ndarray, rng: np.random.Generator, min_gmask_ratio: float = 0.2, full_span_prob: float = 0.0
) -> Sample:
    """Build one GLM sample from residue ids ``[L]`` (no special tokens).

    With probability ``full_span_prob`` the whole sequence is generated from an empty prefix (pure causal LM,
    the de novo generation case, which the uniform span draw reaches only with chance ~1/((1-ratio)L)).
    """
    length = len(residues)
    if full_span_prob > 0 and rng.random() < full_span_prob:
        g = length
    else:
        g = int(rng.integers(max(1, math.ceil(min_gmask_ratio * length)), length + 1))
    target = np.append(residues[length - g :], EOS_ID)
    sample = glm_sample(residues[: length - g], target)
    sample.kind = GLM
    return sample
