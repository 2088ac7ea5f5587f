"""Autoencoding objective (BERT-style MLM), as in the released collator (xTrimoPGLM paper, section 2).

A fraction (15%) of the residues is chosen; 80% of those become ``<mask>``, 10% a random residue, 10% stay.
The input is residues + ``<eos>``, positions ``(arange, 0)``, attention fully bidirectional; the loss is taken
on the chosen positions only.
"""

from __future__ import annotations

import numpy as np

from xtrimo.objectives.sample import IGNORE_INDEX, MLM, Sample
from xtrimo.tokenizer import EOS_ID, FIRST_RESIDUE_ID, LAST_RESIDUE_ID, MASK_ID


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
    input_ids = np.append(residues, EOS_ID).astype(np.int64)
    labels = np.full(length + 1, IGNORE_INDEX, dtype=np.int64)
    labels[picked] = residues[picked]
    roll = rng.random(n_pick)
    to_mask = picked[roll < replace_mask]
    to_random = picked[(roll >= replace_mask) & (roll < replace_mask + replace_random)]
    input_ids[to_mask] = MASK_ID
    input_ids[to_random] = rng.integers(FIRST_RESIDUE_ID, LAST_RESIDUE_ID + 1, size=len(to_random))
    pos = np.arange(length + 1, dtype=np.int64)
    position_ids = np.stack((pos, np.zeros_like(pos)))
    return Sample(input_ids, labels, position_ids, division=length + 1, kind=MLM)
