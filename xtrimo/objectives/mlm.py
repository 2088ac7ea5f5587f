"""Autoencoding objective (BERT-style MLM), as in the released collator (xTrimoPGLM paper, section 2).

A fraction (15%) of the residues is chosen; 80% of those become ``<mask>``, 10% a random residue, 10% stay.
The input is the MLM layout (:func:`xtrimo.model.layout.mlm_sample`); the loss is taken on the chosen positions
only.
"""

from __future__ import annotations

import numpy as np

from xtrimo.model.layout import Sample, mlm_sample
from xtrimo.objectives.sample import MLM
from xtrimo.tokenizer import FIRST_RESIDUE_ID, LAST_RESIDUE_ID, MASK_ID


def build_mlm_sample(
    residues: np.ndarray,
    rng: np.random.Generator,
    mask_prob: float = 0.15,
    replace_mask: float = 0.8,
    replace_random: float = 0.1,
) -> Sample:
    """Build one MLM sample from residue ids ``[L]`` (no special tokens)."""
    length = len(residues)
    n_pick = max(1, int(mask_prob * length))
    picked = rng.choice(length, size=n_pick, replace=False)
    sample = mlm_sample(residues)
    input_ids, labels = sample.input_ids, sample.labels
    labels[picked] = residues[picked]
    roll = rng.random(n_pick)
    to_mask = picked[roll < replace_mask]
    to_random = picked[(roll >= replace_mask) & (roll < replace_mask + replace_random)]
    input_ids[to_mask] = MASK_ID
    input_ids[to_random] = rng.integers(FIRST_RESIDUE_ID, LAST_RESIDUE_ID + 1, size=len(to_random))
    sample.kind = MLM
    return sample
