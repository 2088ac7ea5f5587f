"""A training sample as built by an objective (shared by MLM and GLM)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = -100
MLM, GLM = 0, 1
OBJECTIVE_NAMES = ("mlm", "glm")


@dataclass
class Sample:
    """One model input.

    Attributes:
        input_ids: ``[n]`` token ids.
        labels: ``[n]`` target ids, ``IGNORE_INDEX`` where no loss is taken.
        position_ids: ``[2, n]`` (absolute, block) positions.
        division: number of leading positions every query may attend to (``n`` for MLM).
        kind: ``MLM`` or ``GLM``.
    """

    input_ids: np.ndarray
    labels: np.ndarray
    position_ids: np.ndarray
    division: int
    kind: int

    def __len__(self) -> int:
        return len(self.input_ids)
