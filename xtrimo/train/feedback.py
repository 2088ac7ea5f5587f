"""When a run ends and what it shows meanwhile: the time limit, and progress with the true totals.

A run ends at ``trainer.max_steps`` or after ``trainer.max_minutes`` of training, whichever comes first. The time
limit shortens the step budget itself (rather than asking Lightning to stop, which validates once more on the way
out), so the last step is known when it is taken: the final checkpoint is written then, before any validation,
and the whole valid split is validated once afterwards.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import lightning as L

from xtrimo.progress import Progress


class RunLimit(L.Callback):
    """Ends training after ``minutes`` of training time (validation excluded; kept across resume)."""

    def __init__(self, minutes: float) -> None:
        self.budget = minutes * 60.0
        self.done = 0.0  # training seconds of earlier sessions (resume)
        self.t0: float | None = None
        self.paused: float | None = None

    def elapsed(self) -> float:
        """Training seconds so far."""
        now = time.monotonic()
        if self.t0 is None:
            return self.done
        return self.done + (self.paused or now) - self.t0

    def remaining(self) -> float | None:
        return max(0.0, self.budget - self.elapsed()) if self.budget else None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.t0 = time.monotonic()

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.paused = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.paused is not None and self.t0 is not None:
            self.t0 += time.monotonic() - self.paused
        self.paused = None

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        if self.budget and self.elapsed() >= self.budget and trainer.global_step < trainer.max_steps:
            # the step just taken is the last; every rank decides on rank 0's clock
            stop = trainer.strategy.broadcast(True)
            if stop:
                trainer.fit_loop.epoch_loop.max_steps = trainer.global_step

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.elapsed()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done = float(state.get("done", 0.0))


def is_last_step(trainer: L.Trainer) -> bool:
    """The optimizer step just taken ends training (max_steps, or the budget :class:`RunLimit` shortened)."""
    return trainer.global_step >= trainer.max_steps


class TrainProgress(L.Callback):
    """Steps of the true total (the step limit or, sooner, the time limit), the current tokens/s, the loss and the
    time left; a bar on a terminal, a plain line every ``every`` seconds otherwise. Rank 0 only.

    ``count_tokens`` gives a batch's real tokens (None: no tokens/s shown).
    """

    def __init__(self, limit: RunLimit, every: float = 30.0, enabled: bool = True,
                 count_tokens: Callable[[Any], int] | None = lambda batch: int(batch.valid.sum())) -> None:
        self.limit, self.every, self.enabled, self.count_tokens = limit, every, enabled, count_tokens
        self.bar: Progress | None = None
        self.window: deque[tuple[float, int, int]] = deque(maxlen=64)  # (time, step, tokens)
        self.tokens = 0

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.bar = Progress(trainer.max_steps, "train", "steps", self.every, enabled=self.enabled,
                                initial=trainer.global_step)
            self.window.append((time.monotonic(), trainer.global_step, 0))

    def _rates(self, trainer: L.Trainer) -> tuple[float, float]:
        """Steps/s and tokens/s over the last ~30 s."""
        now = time.monotonic()
        while len(self.window) > 2 and now - self.window[0][0] > 30:
            self.window.popleft()
        t0, s0, k0 = self.window[0]
        dt = max(now - t0, 1e-9)
        return (trainer.global_step - s0) / dt, (self.tokens - k0) * trainer.world_size / dt

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.bar is None or trainer.global_step == self.bar.n:
            return  # accumulating, or another rank
        self.tokens += self.count_tokens(batch) if self.count_tokens else 0
        steps_s, tok_s = self._rates(trainer)
        left = trainer.max_steps - trainer.global_step
        eta = left / steps_s if steps_s > 0 else None
        remaining = self.limit.remaining()
        total = trainer.max_steps
        if remaining is not None and steps_s > 0 and remaining < (float("inf") if eta is None else eta):
            eta, total = remaining, min(total, trainer.global_step + int(remaining * steps_s))
        loss = trainer.callback_metrics.get("train/loss")
        postfix = (f"loss {float(loss):.3f}" if loss is not None else "") + (
            f" | {tok_s:,.0f} tok/s" if self.count_tokens else "")
        self.bar.update(trainer.global_step - self.bar.n, postfix, total=total, eta=eta)
        self.window.append((time.monotonic(), trainer.global_step, self.tokens))

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.val_start = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # validation time is not training time (RunLimit excludes it too): rates restart after it
        self.window.clear()
        self.window.append((time.monotonic(), trainer.global_step, self.tokens))
        if trainer.is_global_zero and not trainer.sanity_checking and self.enabled:
            m = trainer.callback_metrics
            ppl = ", ".join(f"{o.upper()} perplexity {float(m[f'val/{o}_ppl']):.2f}" for o in ("mlm", "glm")
                            if float(m.get(f"val/{o}_tokens", 0)) > 0)
            message = f"validation at step {trainer.global_step} ({time.monotonic() - self.val_start:.0f} s): {ppl}"
            if self.bar is not None:
                self.bar.write(message)
            else:
                print(message, file=sys.stderr, flush=True)
