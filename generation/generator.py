"""The user-facing generation API: ``Generator.from_pretrained(dir).generate(...)`` and ``.design(template)``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xtrimo.generation.decode import Decoded, TokenCallback, decode
from xtrimo.generation.sampling import SamplingConfig
from xtrimo.scoring import generation_mode, pseudo_log_likelihoods, sequence_log_likelihoods
from xtrimo.generation.template import design, parse_template
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.progress import Progress
from xtrimo.tokenizer import ResidueTokenizer

log = logging.getLogger("xtrimo")

ScoreFn = Callable[[list[str]], Sequence[float]]
"""Scores a list of sequences; higher is better (a benchmark head, a fold model's pLDDT, ...)."""


@dataclass
class GeneratedSequence:
    """One sample.

    Attributes:
        sequence: the residues, prompt included.
        mean_log_likelihood: mean log-probability per generated token under the model (before temperature and
            filters; the stop token counts when produced). Template designs: the GLM log-likelihood of the whole
            sequence, per token (:func:`generation.scoring.sequence_log_likelihoods`).
        num_tokens: tokens in that mean.
        stopped: the model ended the sequence itself (False: cut at the length limit).
        index: the sample's number; the same seed and index give the same sample whatever the batch size.
        score: the reranking score (``mean_log_likelihood`` unless a ``score_fn`` was given).
    """

    sequence: str
    mean_log_likelihood: float
    num_tokens: int
    stopped: bool
    index: int
    score: float


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` / ``"auto"``: the GPU when there is one, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_count(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def input_major_weights(model: torch.nn.Module, input_major: bool = True) -> None:
    """Store every ``nn.Linear`` weight input-major (``[in, out]`` in memory, the same ``[out, in]`` tensor values).

    A cached decoding step multiplies a few rows by every weight matrix, so it streams all weights from memory once
    per token. On the CPU, BLAS reads the ``[in, out]`` layout about twice as fast for one row as the usual
    ``[out, in]`` (less so for a batch of rows), the layout GPT-2's ``Conv1D`` already uses. Values, parameters and
    saved checkpoints (written contiguous) are unchanged. ``input_major=False`` restores the usual layout (the
    compiled step's dot products read rows of ``[out, in]``).
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                w = m.weight.data
                m.weight.data = w.t().contiguous().t() if input_major else w.contiguous()


class Generator:
    """Samples protein sequences from an :class:`XTrimoPGLM` in its generation layout (GLM or CLM).

    Args:
        model: the backbone (moved to ``device``, put in eval mode; on the CPU its linear weights are re-laid in
            place: input-major for the eager loop, row-major for the compiled step, see :func:`input_major_weights`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... .
        compile: make each token after the prompt with one compiled graph (:mod:`generation.compiled`: an
            AOTInductor package on the CPU, ``torch.compile`` elsewhere): needs a C++ compiler and Python headers on
            the CPU (Triton on the GPU), compiles on first use (once more for a one-row batch, for each new set of
            sampling controls and on the CPU for another thread count), then
            decodes faster than the eager loop (docs/generation.md); samples match the eager loop's
            (log-probabilities to 1e-5, tested).
    """

    def __init__(self, model: XTrimoPGLM, device: str | torch.device | None = "auto", compile: bool = False) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        if self.device.type == "cpu":
            input_major_weights(self.model, input_major=not compile)
        self.compiled = compile
        if compile:
            from xtrimo.generation.compiled import compile_decoding

            compile_decoding(self.model)
        self.tokenizer = ResidueTokenizer()

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device | None = "auto", compile: bool = False
    ) -> Generator:
        """Load a checkpoint directory (model.safetensors + config.yaml); a missing one raises ``CheckpointError``."""
        return cls(XTrimoPGLM.from_pretrained(path), device, compile)

    def generate(
        self,
        num_sequences: int,
        prompt: str = "",
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        min_length: int = 0,
        max_length: int | None = None,
        ban: str = "",
        seed: int = 0,
        batch_size: int = 16,
        num_candidates: int | None = None,
        score_fn: ScoreFn | None = None,
        callback: TokenCallback | None = None,
        allow_nonstandard: bool = False,
        progress: bool = False,
    ) -> list[GeneratedSequence]:
        """Sample ``num_sequences`` sequences that start with ``prompt``, in the checkpoint's generation layout
        (GLM: the prompt is the bidirectional prefix before ``<gmask><sop>``; CLM: after ``<gmask><sop><eos>``).

        Args:
            num_sequences: how many to return (>= 1).
            prompt: residues the sequences start with; may be empty.
            max_new_tokens: residues generated at most after the prompt.
            temperature, top_k, top_p, repetition_penalty, ban, allow_nonstandard: see :class:`SamplingConfig`.
            min_length: no stop token before the sequence (prompt included) has this many residues.
            max_length: the sequence (prompt included) is cut at this many residues.
            seed: random seed; the same seed gives the same samples on any batch size and device.
            batch_size: sequences decoded together.
            num_candidates: sample this many (>= ``num_sequences``) and keep the best ``num_sequences``.
            score_fn: the reranking score (higher is better); default the model's own mean log-likelihood.
            callback: streams ``(index, token)`` as tokens are produced.
            progress: show sequences done and tokens made (:class:`xtrimo.progress.Progress`, on stderr).

        Returns:
            the samples, best score first when reranking, else in index order.

        Raises:
            ValueError: an MLM-only checkpoint (it has no left-to-right objective; use :meth:`design`).
        """
        generation_mode(self.model.config)
        config = SamplingConfig(temperature, top_k, top_p, repetition_penalty, ban, allow_nonstandard)
        prompt_ids = self.tokenizer.encode(prompt, name="prompt")
        budget, min_new = self._budget(len(prompt_ids), max_new_tokens, min_length, max_length)
        total = self._candidates(num_sequences, num_candidates, batch_size)
        decoded = self._decode(prompt_ids, total, batch_size, config, budget, min_new, seed, callback, progress)
        samples = [self._sample(prompt, d) for d in decoded]
        return rerank(samples, num_sequences, score_fn) if total > num_sequences else samples

    def _decode(self, prompt_ids: np.ndarray, total: int, batch_size: int, config: SamplingConfig, budget: int,
                min_new: int, seed: int, callback: TokenCallback | None, progress: bool) -> list[Decoded]:
        """Decode ``total`` continuations of ``prompt_ids`` in batches, counting finished sequences on a bar."""
        decoded: list[Decoded] = []
        with Progress(total, "generate", "seq", enabled=progress) as bar:
            made = [0]

            def tick(index: int, token: str) -> None:
                made[0] += 1
                if len(token) > 1:  # a stop token: that sequence is done
                    bar.update(1, postfix=f"{made[0]:,} tokens")
                if callback is not None:
                    callback(index, token)

            for lo in range(0, total, batch_size):
                idx = list(range(lo, min(lo + batch_size, total)))
                decoded += decode(self.model, [prompt_ids] * len(idx), config, budget, min_new, seed, idx,
                                  tick if progress else callback)
                bar.update(len(decoded) - bar.n, postfix=f"{made[0]:,} tokens")  # rows cut at the length limit
        return decoded

    def design(
        self,
        template: str,
        num_sequences: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        ban: str = "",
        seed: int = 0,
        batch_size: int = 16,
        iterations: int = 0,
        num_candidates: int | None = None,
        score_fn: ScoreFn | None = None,
        allow_nonstandard: bool = False,
        progress: bool = False,
    ) -> list[GeneratedSequence]:
        """Fill the ``?`` of ``template`` (e.g. ``"MKT????GSSG??LE"``); every other residue is kept exactly.

        Uses iterative MLM refinement (:mod:`generation.template`); ``iterations`` 0 picks ``min(10, #?)``.
        The returned ``mean_log_likelihood`` is the left-to-right log-likelihood of the whole design per token
        (``<eos>`` included), or for an MLM-only checkpoint its pseudo-log-likelihood per residue.

        Raises:
            ValueError: a checkpoint not trained with MLM.
        """
        if not self.model.config.can_fill_masks:
            raise ValueError(f"template design fills masked positions: checkpoint {self.model.config.name!r} was "
                             f"not trained with MLM (objectives: {', '.join(self.model.config.objectives)})")
        config = SamplingConfig(temperature, top_k, top_p, 1.0, ban, allow_nonstandard)
        ids, designed = parse_template(template)
        total = self._candidates(num_sequences, num_candidates, batch_size)
        seqs: list[str] = []
        with Progress(total, "design", "seq", enabled=progress) as bar:
            for lo in range(0, total, batch_size):
                idx = list(range(lo, min(lo + batch_size, total)))
                out = design(self.model, ids, designed, config, seed, idx, iterations)
                seqs += [self.tokenizer.decode(row) for row in out]
                bar.update(len(idx))
        score = sequence_log_likelihoods if self.model.config.generation_mode else pseudo_log_likelihoods
        scores = score(self.model, seqs, batch_size=batch_size)
        samples = [
            GeneratedSequence(s, sc.mean_log_likelihood, sc.num_tokens, True, i, sc.mean_log_likelihood)
            for i, (s, sc) in enumerate(zip(seqs, scores))
        ]
        return rerank(samples, num_sequences, score_fn) if total > num_sequences else samples

    def _budget(self, prompt_len: int, max_new: int, min_length: int, max_length: int | None) -> tuple[int, int]:
        """Tokens to generate at most, and before which no stop is allowed, from the length limits."""
        _check_count("max_new_tokens", max_new, 1)
        _check_count("min_length", min_length, 0)
        if max_length is not None:
            if max_length <= prompt_len:
                raise ValueError(f"max_length ({max_length}) leaves no room after the {prompt_len}-residue prompt")
            if min_length > max_length:
                raise ValueError(f"min_length ({min_length}) is larger than max_length ({max_length})")
            max_new = min(max_new, max_length - prompt_len)
        if min_length > prompt_len + max_new:
            raise ValueError(f"min_length ({min_length}) exceeds prompt + max_new_tokens ({prompt_len + max_new})")
        return max_new, max(0, min_length - prompt_len)

    @staticmethod
    def _candidates(num_sequences: int, num_candidates: int | None, batch_size: int) -> int:
        _check_count("number of sequences (-n)", num_sequences, 1)
        _check_count("batch size", batch_size, 1)
        if num_candidates is None:
            return num_sequences
        if num_candidates < num_sequences:
            raise ValueError(f"num_candidates ({num_candidates}) must be >= num_sequences ({num_sequences})")
        return num_candidates

    def _sample(self, prompt: str, d: Decoded) -> GeneratedSequence:
        n = len(d.log_probs)
        mean = float(np.mean(d.log_probs)) if n else float("nan")
        return GeneratedSequence(prompt.upper() + self.tokenizer.decode(d.tokens), mean, n, d.stopped, d.index, mean)


def rerank(samples: list[GeneratedSequence], keep: int, score_fn: ScoreFn | None = None) -> list[GeneratedSequence]:
    """Best ``keep`` samples by ``score_fn`` (higher is better; default their mean log-likelihood), best first.

    Ties keep the lower index first, so the result is deterministic.
    """
    if score_fn is not None:
        scores = [float(s) for s in score_fn([x.sequence for x in samples])]
        if len(scores) != len(samples):
            raise ValueError(f"score_fn returned {len(scores)} scores for {len(samples)} sequences")
        for x, s in zip(samples, scores):
            x.score = s
    order = sorted(range(len(samples)), key=lambda i: (-_finite(samples[i].score), samples[i].index))
    return [samples[i] for i in order[:keep]]


def _finite(x: float) -> float:
    return x if np.isfinite(x) else -np.inf
