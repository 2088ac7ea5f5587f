from xtrimo.model.glm import XTrimoPGLM
from xtrimo.model.layers import KVCache
from xtrimo.model.layout import ModelInput, read_batch

__all__ = ["KVCache", "ModelInput", "XTrimoPGLM", "read_batch"]
