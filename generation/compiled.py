"""Compiled decoding: :meth:`XTrimoPGLM.decode_step` as one compiled graph per generated token (AOTInductor
packages on the CPU, ``torch.compile`` elsewhere: :mod:`xtrimo.model.decoding`).

A cached decoding step of a small model spends most of its time between operators (an eager step of a 6-layer,
320-wide model runs about 440 of them for 7.5M multiply-adds per token); compiled, the model step, the sampling
controls and the seeded draw (:func:`generation.decode.sample_next`) become a few fused loops. The products that
suit inductor on the CPU are options of the layers themselves (:class:`xtrimo.model.layers.Linear`, the one-query
attention of :class:`xtrimo.model.layers.SelfAttention`); this module only chooses inductor's settings and checks
(:func:`xtrimo.toolchain.check_toolchain`) that the C++ toolchain it needs is there.
"""

from __future__ import annotations

from xtrimo.model.glm import XTrimoPGLM
from xtrimo.toolchain import check_toolchain

# Inductor inlines cheap element-wise producers into the reductions that read them. For the GeGLU activation that
# means evaluating erf once per (output, input) pair inside the next layer's dot products; a lower threshold keeps
# it (and the layer norms) computed once per element. A C++ wrapper without size asserts calls the kernels with
# less host work per step.
INDUCTOR_OPTIONS = {"realize_opcount_threshold": 6, "size_asserts": False, "cpp_wrapper": True}


def compile_decoding(model: XTrimoPGLM) -> None:
    """Compile ``model``'s decoding step (on first use; again for a one-row batch, for another
    :class:`SamplingConfig`, whose values are constants of the graph, and on the CPU for another thread count).
    Raises ``RuntimeError`` at once when the C++ toolchain is missing (:func:`check_toolchain`)."""
    check_toolchain()
    on_cpu = next(model.parameters()).device.type == "cpu"
    model.compile_decoding(ahead_of_time=on_cpu, **INDUCTOR_OPTIONS)
