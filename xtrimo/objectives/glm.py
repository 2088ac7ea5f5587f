"""Autoregressive blank-infilling objective with ``[gMASK]`` (GLM; xTrimoPGLM paper, section 2).

A span length ``g`` is drawn uniformly in ``[ceil(min_gmask_ratio * L), L]``; the last ``g`` residues (+ ``<eos>``)
are generated after the bidirectional prefix:

    input  = prefix + <gmask> + <sop> + target[:-1]     target = residues[L-g:] + <eos>
    labels = ignore * (P + 1)    + target

Positions follow the released collator: absolute ``0..P-1, P, P, ..., P`` and block ``0 ... 0, 0, 1..g+1``;
the 1-D model uses their sum (a continuous count). Attention is bidirectional over ``prefix + [gMASK]``
(division ``P + 1``) and causal after it.
"""

from __future__ import annotations

import math

import numpy as np

from xtrimo.objectives.sample import GLM, IGNORE_INDEX, Sample
from xtrimo.tokenizer import EOS_ID, GMASK_ID, SOP_ID


def glm_layout(prefix: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Input ids, labels, positions ``[2, n]`` and division for ``prefix`` followed by the generated ``target``.

    ``target`` ends with the stop token; shared by training and by likelihood scoring at inference.
    """
    p, g = len(prefix), len(target) - 1
    input_ids = np.concatenate((prefix, [GMASK_ID, SOP_ID], target[:-1])).astype(np.int64)
    labels = np.concatenate((np.full(p + 1, IGNORE_INDEX), target)).astype(np.int64)
    absolute = np.concatenate((np.arange(p), np.full(g + 2, p))).astype(np.int64)
    block = np.concatenate((np.zeros(p + 1), np.arange(1, g + 2))).astype(np.int64)
    return input_ids, labels, np.stack((absolute, block)), p + 1


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
    input_ids, labels, position_ids, division = glm_layout(residues[: length - g], target)
    return Sample(input_ids, labels, position_ids, division, kind=GLM)
