"""De novo sequence generation with the GLM objective: sampling, KV-cached decoding, the Generator API."""

from xtrimo.generation.generator import GeneratedSequence, Generator
from xtrimo.generation.sampling import SamplingConfig

__all__ = ["GeneratedSequence", "Generator", "SamplingConfig"]
