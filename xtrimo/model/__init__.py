from xtrimo.model.glm import XTrimoPGLM, default_position_ids
from xtrimo.model.layers import KVCache

__all__ = ["KVCache", "XTrimoPGLM", "default_position_ids"]
