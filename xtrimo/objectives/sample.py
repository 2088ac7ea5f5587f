"""The objectives' names; a sample is laid out by :mod:`xtrimo.model.layout` (shared by MLM and GLM)."""

from __future__ import annotations

from xtrimo.model.layout import IGNORE_INDEX, Sample

MLM, GLM = 0, 1
OBJECTIVE_NAMES = ("mlm", "glm")

__all__ = ["GLM", "IGNORE_INDEX", "MLM", "OBJECTIVE_NAMES", "Sample"]
