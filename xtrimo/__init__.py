"""xtrimo: an open implementation of xTrimoPGLM, the unified GLM protein language model."""

from xtrimo.config import ModelConfig
from xtrimo.model import KVCache, XTrimoPGLM
from xtrimo.tokenizer import ResidueTokenizer

__all__ = ["KVCache", "ModelConfig", "ResidueTokenizer", "XTrimoPGLM"]
__version__ = "0.1.0"
