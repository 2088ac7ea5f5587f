"""Generation speed: xtrimo's KV-cached decoding vs full recomputation vs Hugging Face GPT-2 ``generate()``, eager
and at its documented fast path (``cache_implementation="static"`` with ``torch.compile`` of the forward).

A script, not a test. All numbers are measured in the same run, on the same device and thread count, with random
weights (speed does not depend on them) and the same shape: layers, hidden size and heads, vocabulary 128.
xtrimo runs twice: the eager loop, and ``Generator(compile=True)`` (:mod:`generation.compiled`).
Every sequence is forced to produce exactly ``--new-tokens`` tokens (minimum length = maximum length), with plain
sampling (temperature 1, no top-k / top-p) on both sides.

    python benchmarks/speed/generation_speed.py                 # 6 layers, 320 wide, 5 heads, every core
    OMP_NUM_THREADS=1 python benchmarks/speed/generation_speed.py
    python benchmarks/speed/generation_speed.py --jit-step      # also the torch.compile step on the CPU
    python benchmarks/speed/generation_speed.py --layers 12 --hidden 768 --heads 12 --device cuda
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from xtrimo.config import ModelConfig
from xtrimo.generation import Generator
from xtrimo.model.glm import XTrimoPGLM


def _timed(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median wall time of each function over ``repeats`` rounds, after one warm-up call each.

    The functions take turns within every round, so load from other processes on a shared machine hits them alike.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def xtrimo_runner(gen: Generator, batch: int, new: int, use_cache: bool) -> Callable[[], object]:
    """One call of the user-facing API producing ``batch`` sequences of exactly ``new`` tokens after ``M``; without
    the cache, the same loop recomputing the whole forward pass (context + all generated tokens) at every step,
    through ``torch.compile(model)`` for a compiling generator (so each KV / recompute pair is one implementation)."""
    from xtrimo.generation.decode import decode
    from xtrimo.generation.sampling import SamplingConfig

    prompt = gen.tokenizer.encode("M")
    if use_cache:
        return lambda: gen.generate(batch, "M", new, min_length=new + 1, max_length=new + 1, seed=0, batch_size=batch)
    model = torch.compile(gen.model, dynamic=True) if gen.compiled else gen.model
    return lambda: decode(model, [prompt] * batch, SamplingConfig(), new, new, 0, use_cache=False)


def hf_runner(model: torch.nn.Module, batch: int, new: int, device: torch.device,
              static: bool = False) -> Callable[[], object]:
    """``generate()`` with sampling forced to ``new`` tokens; ``static``: a static cache (the model's forward is
    compiled, :func:`hf_fast_model`)."""
    ids = torch.full((batch, 1), 17, dtype=torch.long, device=device)
    mask = torch.ones_like(ids)
    extra = {"cache_implementation": "static"} if static else {}
    return lambda: model.generate(
        ids, attention_mask=mask, do_sample=True, top_k=0, top_p=1.0, temperature=1.0,
        max_new_tokens=new, min_new_tokens=new, pad_token_id=0, eos_token_id=34, **extra,
    )


def hf_fast_model(gpt2: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``gpt2`` set up as transformers' "LLM inference optimization" guide does: the forward compiled with
    ``fullgraph=True`` (its ``mode="reduce-overhead"`` is CUDA graphs, so the default mode on the CPU); used with
    ``cache_implementation="static"``."""
    fast = copy.deepcopy(gpt2)
    mode = "reduce-overhead" if next(gpt2.parameters()).device.type == "cuda" else None
    fast.forward = torch.compile(fast.forward, mode=mode, fullgraph=True)
    return fast


def bare_forward_ms(
    gen: Generator, gpt2: torch.nn.Module, batch: int, steps: int, device: torch.device, repeats: int
) -> tuple[float, float]:
    """Milliseconds per step of the bare cached forward pass of each model (no sampling, no loop bookkeeping):
    the floor that any decoding loop pays, so ``step time - floor`` is the loop's own overhead. Timed like the
    rest (:func:`_timed`: warm-up, interleaved rounds, median)."""
    from xtrimo.model.layers import KVCache

    model, x = gen.model, torch.full((batch, 1), 17, device=device)
    pos = torch.zeros((batch, 2), dtype=torch.long, device=device)

    def ours() -> None:
        cache = KVCache(model.config, batch, steps + 1, device, next(model.parameters()).dtype)
        for _ in range(steps):
            model.decode_step(x[:, 0], pos, torch.ones((batch, cache.length + 1), dtype=torch.bool, device=device),
                              cache)

    def theirs() -> None:
        past = None
        for _ in range(steps):
            past = gpt2(x, past_key_values=past, use_cache=True).past_key_values

    t = _timed({"ours": ours, "theirs": theirs}, repeats, device)
    return 1000 * t["ours"] / steps, 1000 * t["theirs"] / steps


def build_models(
    args: argparse.Namespace, device: torch.device, dtype: torch.dtype
) -> tuple[Generator, Generator, torch.nn.Module]:
    """xtrimo's eager and compiled generators (the same weights) and a GPT-2 of the same shape."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = ModelConfig(name="bench", num_layers=args.layers, hidden_size=args.hidden, num_attention_heads=args.heads,
                      seq_length=max(1024, args.new_tokens + 8))
    model = XTrimoPGLM(cfg).to(dtype)
    gen, compiled = Generator(copy.deepcopy(model), device), Generator(model, device, compile=True)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=128, n_positions=cfg.seq_length, n_embd=args.hidden,
                                      n_layer=args.layers, n_head=args.heads, bos_token_id=0, eos_token_id=34))
    return gen, compiled, gpt2.to(device, dtype).eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--hidden", type=int, default=320)
    p.add_argument("--heads", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--batches", default="1,16")
    p.add_argument("--recompute-batches", default="1", help="batches for the (slow) full-recompute baseline")
    p.add_argument("--repeats", type=int, default=3, help="rounds; each runs every variant once")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="both models")
    p.add_argument("--jit-step", action="store_true",
                   help="also time compile=True with the torch.compile step (what the CPU used before AOTInductor)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    gen, compiled, gpt2 = build_models(args, device, getattr(torch, args.dtype))
    gpt2_fast = hf_fast_model(gpt2)
    jit = None
    if args.jit_step:
        from xtrimo.generation.compiled import INDUCTOR_OPTIONS

        jit = Generator(copy.deepcopy(compiled.model), device, compile=True)
        jit.model.compile_decoding(ahead_of_time=False, **INDUCTOR_OPTIONS)
    n = args.new_tokens
    print(f"device {device} ({torch.get_num_threads()} threads), {args.layers} layers, hidden {args.hidden}, "
          f"{args.heads} heads; xtrimo {gen.model.num_parameters() / 1e6:.2f}M params, "
          f"GPT-2 {sum(q.numel() for q in gpt2.parameters()) / 1e6:.2f}M params; {args.dtype}; "
          f"{n} new tokens per sequence; median of {args.repeats} interleaved rounds "
          "(compilation in the untimed warm-up); HF fast path: cache_implementation='static', "
          "torch.compile(model.forward, fullgraph=True)")
    rows = []
    with torch.inference_mode():
        for b in [int(x) for x in args.batches.split(",")]:
            fns = {"kv": xtrimo_runner(gen, b, n, True), "compiled": xtrimo_runner(compiled, b, n, True),
                   "hf": hf_runner(gpt2, b, n, device), "hf_fast": hf_runner(gpt2_fast, b, n, device, static=True)}
            if jit is not None:
                fns["jit"] = xtrimo_runner(jit, b, n, True)
            if str(b) in args.recompute_batches.split(","):
                fns["full"] = xtrimo_runner(gen, b, n, False)
                fns["compiled_full"] = xtrimo_runner(compiled, b, n, False)
            t = _timed(fns, args.repeats, device)
            tok_s = {k: b * n / v for k, v in t.items()}
            rows.append((b, tok_s, *bare_forward_ms(gen, gpt2, b, n, device, args.repeats)))
    print(f"{'batch':>5} {'xtrimo KV tok/s':>16} {'compiled tok/s':>15} {'ms/step':>8} {'recompute tok/s':>16} "
          f"{'KV/recompute':>13} {'HF GPT-2 tok/s':>15} {'ms/step':>8} {'KV/HF':>6} {'compiled/HF':>12} "
          f"{'HF static+compiled':>19} {'compiled/HF fast':>17} {'bare fwd ms: xtrimo':>20} {'GPT-2':>6}")
    for b, r, bare_x, bare_h in rows:
        full_s = f"{'-':>16} {'-':>13}"
        if "full" in r:
            full_s = (f"{r['full']:7.1f} /{r['compiled_full']:7.1f} "
                      f"{r['kv'] / r['full']:5.1f}x /{r['compiled'] / r['compiled_full']:5.1f}x")
        print(f"{b:>5} {r['kv']:16.1f} {r['compiled']:15.1f} {1000 * b / r['compiled']:8.2f} {full_s} {r['hf']:15.1f} "
              f"{1000 * b / r['hf']:8.2f} {r['kv'] / r['hf']:5.2f}x {r['compiled'] / r['hf']:11.2f}x "
              f"{r['hf_fast']:19.1f} {r['compiled'] / r['hf_fast']:16.2f}x {bare_x:20.2f} {bare_h:6.2f}")
    print("KV: the eager cached loop (Generator()); compiled: Generator(compile=True), one compiled graph per "
          "token; recompute: the same loop without a cache, eager / through torch.compile(model)")
    print("bare fwd: one eager cached forward step without any sampling or bookkeeping, the floor of an eager loop")
    for b, r, _, _ in rows:
        if "jit" in r:
            print(f"batch {b}: the torch.compile step {r['jit']:.1f} tok/s, {1000 * b / r['jit']:.2f} ms/step; "
                  f"compiled (this device's step) / torch.compile step {r['compiled'] / r['jit']:.2f}x")


if __name__ == "__main__":
    main()
