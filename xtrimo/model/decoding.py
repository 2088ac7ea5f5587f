"""Compiled decoding steps: the body of :meth:`XTrimoPGLM.decode_step` through ``torch.compile`` or, on the CPU,
ahead of time through ``torch.export`` and AOTInductor.

Both are called as ``step(model, tokens, positions, key_valid, keys, values, head, *head_args)`` (the arguments of
the model's step body, ``xtrimo.model.glm._one_token``) and give its result.

Why two: at batch 1 a compiled step of a small model costs little more than reading its weights once, and on the
CPU what ``torch.compile`` adds per token (dynamo's guards and frame, a wrapper turning traced sizes into tensors)
is a large part of the rest. An AOTInductor package is one C++ function over the tensors; what guards would check
is checked here instead, from the arguments' shapes (:meth:`ExportedStep._key`), so a package only ever runs on
inputs of the kind it was compiled for. ``torch.compile`` stays the step on other devices (figures:
docs/generation.md).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

StepBody = Callable[..., Any]  # (model, tokens, positions, key_valid, keys, values, head, *head_args) -> Any


class TorchCompiledStep:
    """The step body through ``torch.compile`` (inductor ``options``), batch and lengths traced as symbols, so that a
    process compiles once for a one-row batch and once for larger ones."""

    def __init__(self, body: StepBody, options: dict[str, Any]) -> None:
        self._compiled = torch.compile(body, options=options or None)

    def __call__(self, model: nn.Module, tokens: torch.Tensor, positions: torch.Tensor, key_valid: torch.Tensor,
                 keys: list[torch.Tensor], values: list[torch.Tensor], head: Callable[..., Any] | None,
                 *head_args: Any) -> Any:
        b = tokens.shape[0]
        batched = [t for t in head_args if isinstance(t, torch.Tensor) and t.ndim and t.shape[0] == b]
        for t in (tokens, positions, key_valid, *keys, *values, *batched):
            torch._dynamo.maybe_mark_dynamic(t, 0)
        torch._dynamo.maybe_mark_dynamic(key_valid, 1)
        for t in (*keys, *values):
            torch._dynamo.maybe_mark_dynamic(t, 2)
        return self._compiled(model, tokens, positions, key_valid, keys, values, head, *head_args)


class _Body(nn.Module):
    """The step body over a flat tuple of tensors (what ``torch.export`` traces); the model is the submodule ``m``,
    so the package's constants are named ``m.<parameter name>``."""

    def __init__(self, body: StepBody, model: nn.Module, layers: int, head: Callable[..., Any] | None,
                 head_args: Sequence[Any]) -> None:
        super().__init__()
        self.m, self.body, self.layers, self.head = model, body, layers, head
        self.constants = [None if isinstance(a, torch.Tensor) else a for a in head_args]

    def forward(self, *tensors: torch.Tensor) -> Any:
        n = self.layers
        tokens, positions, key_valid = tensors[:3]
        keys, values, rest = list(tensors[3 : 3 + n]), list(tensors[3 + n : 3 + 2 * n]), iter(tensors[3 + 2 * n :])
        head_args = [next(rest) if c is None else c for c in self.constants]
        return self.body(self.m, tokens, positions, key_valid, keys, values, self.head, *head_args)


class _Package:
    """One AOTInductor package: its runner, and the model tensors it reads in place (user-managed constants)."""

    def __init__(self, loaded: Any, constants: dict[str, torch.Tensor]) -> None:
        loaded.load_constants(constants, check_full_update=True, user_managed=True)
        self.run = loaded.loader.run  # the C++ runner itself: AOTICompiledModel's __call__ adds a pytree pass
        self.constants = constants
        self.pointers = [t.data_ptr() for t in constants.values()]
        self.epoch = _EPOCH[0]

    def reads(self, model: nn.Module) -> bool:
        """Whether the tensors this package reads are still ``model``'s: the same storage (a ``.data`` swap or a
        conversion gives a parameter new storage) and, after any parameter or buffer was assigned anywhere since
        the last look (``load_state_dict(assign=True)``), the same objects."""
        if self.epoch != _EPOCH[0]:
            state = {f"m.{k}": v for k, v in model.state_dict(keep_vars=True).items()}
            if any(name in state and state[name] is not t for name, t in self.constants.items()):
                return False
            self.epoch = _EPOCH[0]
        return self.pointers == [t.data_ptr() for t in self.constants.values()]


# Counts parameter and buffer assignments on any module (nn.Module's global registration hooks, installed with the
# first ExportedStep): a cheap sign that a package's tensors may no longer be the model's.
_EPOCH = [0]
_HOOKED: list[bool] = []


def _count_assignment(*_: object) -> None:
    _EPOCH[0] += 1


class ExportedStep:
    """The step body exported and compiled ahead of time by AOTInductor, one package per kind of input.

    A kind (:meth:`_key`) fixes everything a package specialises on: the head and its non-tensor arguments (the
    sampling controls are constants of the graph), every tensor's dtype, device and rank, every size but the
    traced ones (the batch when it is above 1, the attended keys, the cache's length) and the thread count (inductor's
    C++ loops are built for it, and the model lays out its products by it). The model's weights are not copied into
    a package: it reads the parameters in place, so changes made in place (``load_state_dict``, an optimizer step)
    are seen, and a parameter given new storage (``load_state_dict(assign=True)``, ``.to`` another dtype) makes the
    package compile again. A call the packages cannot take (a cache filled to its last slot) runs the body eagerly.
    """

    def __init__(self, body: StepBody, options: dict[str, Any], batch_splits: Sequence[int] = ()) -> None:
        self.body = body
        # batches above 1 are traced in ranges split after these sizes (the model's code branches there)
        self.batch_splits = tuple(sorted(batch_splits))
        self.options = {k: v for k, v in options.items() if k != "cpp_wrapper"}  # AOTInductor's wrapper is C++
        self._packages: dict[tuple, _Package] = {}
        if not _HOOKED:
            nn.modules.module.register_module_parameter_registration_hook(_count_assignment)
            nn.modules.module.register_module_buffer_registration_hook(_count_assignment)
            _HOOKED.append(True)

    def __call__(self, model: nn.Module, tokens: torch.Tensor, positions: torch.Tensor, key_valid: torch.Tensor,
                 keys: list[torch.Tensor], values: list[torch.Tensor], head: Callable[..., Any] | None,
                 *head_args: Any) -> Any:
        given = [tokens, positions, key_valid, *[a for a in head_args if isinstance(a, torch.Tensor)]]
        key = self._key(given, keys, values, head, head_args)
        if key is None:
            return self.body(model, tokens, positions, key_valid, keys, values, head, *head_args)
        tensors = [_dense(t) for t in (tokens, positions, key_valid, *keys, *values, *given[3:])]
        package = self._packages.get(key)
        if package is None or not package.reads(model):
            package = self._packages[key] = self._compile(model, tensors, len(keys), head, head_args, key[1])
        out = package.run(tensors)
        return out[0] if len(out) == 1 else tuple(out)

    def _batches(self, b: int) -> tuple[int, int | None]:
        """The range of batch sizes (inclusive; None: unbounded) a package for batch ``b`` > 1 serves; (1, 1) for
        one row (traced as a constant)."""
        if b == 1:
            return 1, 1
        low = 2
        for split in self.batch_splits:
            if b <= split:
                return low, split
            low = split + 1
        return low, None

    def _key(self, given: list[torch.Tensor], keys: list[torch.Tensor], values: list[torch.Tensor],
             head: Callable[..., Any] | None, head_args: Sequence[Any]) -> tuple | None:
        """What a package is specialised on, with the traced sizes left out (:func:`_traced_dims`); None for a call
        no package takes: a cache filled to its last slot, or layers' caches of different shapes or kinds.

        ``given``: tokens, positions, key_valid, then the head's tensors. Kept cheap, it runs every token.
        """
        kv, cache = given[2], keys[0]
        if kv.shape[1] < 2 or kv.shape[1] >= cache.shape[2]:
            return None
        if any(t.shape != cache.shape or t.dtype != cache.dtype or t.device != cache.device for t in (*keys, *values)):
            return None
        b = given[0].shape[0]
        batched = b > 1
        shapes = tuple((t.dtype, t.device, t.shape[1:] if batched and t.ndim and t.shape[0] == b else t.shape)
                       for t in (given[0], given[1], *given[3:]))
        constants = tuple(a for a in head_args if not isinstance(a, torch.Tensor))
        # the thread count also fixes how the model lays out its products (XTrimoPGLM._lay_products)
        return (head, self._batches(b), constants, torch.get_num_threads(), shapes, kv.dtype, kv.shape[0] == b,
                len(keys), cache.dtype, cache.device, cache.shape[0] == b, cache.shape[1], cache.shape[3])

    def _compile(self, model: nn.Module, tensors: list[torch.Tensor], layers: int, head: Callable[..., Any] | None,
                 head_args: Sequence[Any], batches: tuple[int, int | None]) -> _Package:
        from torch.export import Dim

        wrapper = _Body(self.body, model, layers, head, head_args)
        low, high = batches
        batch = Dim("batch", min=low) if high is None else Dim("batch", min=low, max=max(high, low + 1))
        names = {0: batch, 1: Dim("keys", min=2), 2: Dim("cache", min=3)}  # batch: unused for one row
        traced = _traced_dims(tensors, layers)
        static = torch.export.Dim.STATIC
        dynamic = tuple({d: names[_role(i, d)] if d in traced[i] else static for d in range(t.ndim)}
                        for i, t in enumerate(tensors))
        # fresh examples: a one-row view keeps its buffer's strides, which export would specialise on
        examples = tuple(t.clone(memory_format=torch.contiguous_format) for t in tensors)
        options = {**self.options, "aot_inductor.package_constants_in_so": False}
        with tempfile.TemporaryDirectory(prefix="xtrimo-step-") as tmp, warnings.catch_warnings():
            # torch's own compiler copies its graphs through a deprecated pytree check; nothing a user can act on
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            exported = torch.export.export(wrapper, examples, dynamic_shapes=(dynamic,), strict=False)
            path = torch._inductor.aoti_compile_and_package(exported, package_path=str(Path(tmp) / "step.pt2"),
                                                            inductor_configs=options)
            loaded = torch._inductor.aoti_load_package(path)
        state = {**exported.state_dict, **exported.constants}
        return _Package(loaded, {name: state[name] for name in loaded.get_constant_fqns()})


def _traced_dims(tensors: list[torch.Tensor], layers: int) -> list[set[int]]:
    """Per tensor, the dimensions traced as symbols: dim 0 of the step's batched tensors when the batch is above 1
    (tokens, positions, key_valid, the cache, and head tensors as long as the batch), dim 1 of key_valid (the
    attended keys), dim 2 of the cache (its length)."""
    b = tensors[0].shape[0]
    dims: list[set[int]] = []
    for i, t in enumerate(tensors):
        own = {1} if i == 2 else {2} if 3 <= i < 3 + 2 * layers else set()
        if b > 1 and t.ndim and t.shape[0] == b:
            own.add(0)
        dims.append(own)
    return dims


def _role(index: int, dim: int) -> int:
    """Which traced size dimension ``dim`` of tensor ``index`` is: 0 the batch, 1 the keys, 2 the cache length."""
    return 0 if dim == 0 else 1 if index == 2 else 2


def _dense(t: torch.Tensor) -> torch.Tensor:
    """``t`` with the strides of a new tensor of its shape: a package reads its inputs as laid out when it was
    compiled (views of a wider buffer, such as a batch's columns, are copied)."""
    return t if t.is_contiguous() else t.clone(memory_format=torch.contiguous_format)  # size-1 dims: any stride
