"""The learning rate of every step (linear warmup, cosine decay to min_lr, as nanoGPT and GPT-3), and the
time budget: a run bounded only by time has no step count to decay over, so it measures its step rate
and fixes one, then re-fits it as the rate changes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from gpt2.training.config import TrainConfig
from gpt2.training.distributed import Distributed

# The first steps are slow (allocation, compilation) and are not timed; evaluations and checkpoints also
# take time, hence the margin. The step count found is saved with checkpoints, so resuming stays exact.
_CALIBRATION_SKIP, _CALIBRATION_STEPS, _CALIBRATION_MARGIN = 3, 20, 0.9
# That first estimate misses changes of load and the cost of evaluations: on a shared 2-core machine a
# 5-minute run calibrated at 204 steps ran 302, a third of them at min_lr. So the invocation that
# calibrated re-fits the decay at evaluations, from the step rate between evaluations (one evaluation and
# checkpoint included, so their cost is counted), over windows of at least _CALIBRATION_STEPS steps. The
# cosine continues from where it is (lr_at's anchor), so the learning rate stays continuous.
_REPLAN_MARGIN = 0.97


def lr_at(step: int, *, lr: float, min_lr: float, warmup_steps: int, decay_steps: int | None,
          anchor: tuple[int, float] | None = None) -> float:
    """The learning rate for optimizer step `step` (0-based): linear warmup to `lr`, then cosine decay to
    `min_lr` at `decay_steps`, then flat. Without `decay_steps` (a run bounded only by time) it stays at
    `lr` after warmup.

    `anchor` = (step a, progress p) says the cosine had reached progress p (0 = top, 1 = bottom) at step a
    and covers the rest evenly up to `decay_steps`: a run whose time budget is re-fitted mid-run moves
    `decay_steps` and anchors at the current step, so the learning rate stays continuous. The default,
    (warmup_steps, 0), is the plain schedule."""
    if step < warmup_steps:
        return lr * (step + 1) / (warmup_steps + 1)
    if decay_steps is None:
        return lr
    if step >= decay_steps:
        return min_lr
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * cosine_progress(step, warmup_steps, decay_steps,
                                                                     anchor))) * (lr - min_lr)


def cosine_progress(step: int, warmup_steps: int, decay_steps: int,
                    anchor: tuple[int, float] | None = None) -> float:
    """How far down the cosine step `step` is, from 0 (peak) to 1 (min_lr at `decay_steps`)."""
    start, done = anchor if anchor is not None else (warmup_steps, 0.0)
    if step >= decay_steps:
        return 1.0
    return min(1.0, max(0.0, done + (1.0 - done) * (step - start) / max(1, decay_steps - start)))


class Schedule:
    """One run's learning rates and time budget. `start` begins an invocation (the budget is per
    invocation); after each step `calibrate` may fix `decay_steps`, at evaluations `refit` may move it.
    Every rank takes part in the collectives of `out_of_time`, `calibrate` and `refit`, so that all agree."""

    def __init__(self, config: TrainConfig, total_steps: int | None, dist: Distributed,
                 log: Callable[[str], None]) -> None:
        self.lr, self.min_lr = config.lr, config.final_lr
        self.warmup_steps = config.warmup(total_steps)
        self.decay_steps = total_steps  # None until calibrated, for a run bounded only by time
        self.anchor: tuple[int, float] | None = None  # see lr_at; moved by re-fits
        self.time_budget_s = config.time_budget_s
        self.time_bounded = total_steps is None
        self.dist, self.log = dist, log
        self.started_at, self.first_step = 0.0, 0  # of this invocation
        self.refitting = False  # from calibration on
        self._calibration_start = 0.0
        self._window: tuple[float, int] | None = None  # (time, step) where the rate window started

    def lr_of(self, step: int) -> float:
        return lr_at(step, lr=self.lr, min_lr=self.min_lr, warmup_steps=self.warmup_steps,
                     decay_steps=self.decay_steps, anchor=self.anchor)

    def start(self, step: int) -> None:
        self.started_at, self.first_step = time.monotonic(), step

    def out_of_time(self) -> bool:
        budget = self.time_budget_s
        return self.dist.any(budget is not None and time.monotonic() - self.started_at >= budget)

    def calibrate(self, step: int) -> None:
        """Time steps _CALIBRATION_SKIP .. + _CALIBRATION_STEPS of this invocation, then fix the decay to
        the steps the rest of the budget allows."""
        if self.decay_steps is not None or not self.time_budget_s:
            return
        now, steps_here = time.monotonic(), step - self.first_step
        if steps_here == _CALIBRATION_SKIP:
            self._calibration_start = now
        elif steps_here == _CALIBRATION_SKIP + _CALIBRATION_STEPS:
            per_step = self.dist.max((now - self._calibration_start) / _CALIBRATION_STEPS)  # ranks agree
            remaining = self.time_budget_s - (now - self.started_at)
            # Each rank reads its own clock: agree on one step count, or their learning rates would differ.
            self.decay_steps = int(self.dist.max(step + int(_CALIBRATION_MARGIN * remaining / per_step)))
            self.refitting = True
            self.log(f"time budget: about {self.decay_steps} steps at {per_step:.3g} s/step; the learning "
                     "rate decays over them")

    def refit(self, step: int) -> None:
        """At an evaluation step: re-fit the decay to the time left, at the rate since the window began."""
        if not self.refitting:
            return
        now = time.monotonic()
        if self._window is None:  # the first window starts at an evaluation, as all later ones do
            self._window = (now, step)
            return
        mark_time, mark_step = self._window
        if step - mark_step < _CALIBRATION_STEPS:
            return
        self._window = (now, step)
        if step >= self.decay_steps:
            return  # already at min_lr: the cosine does not climb back
        per_step = self.dist.max((now - mark_time) / (step - mark_step))
        remaining = self.time_budget_s - (now - self.started_at)
        end = int(self.dist.max(step + max(1, int(_REPLAN_MARGIN * remaining / per_step))))
        if end == self.decay_steps:
            return
        if step >= self.warmup_steps:
            self.anchor = (step, cosine_progress(step, self.warmup_steps, self.decay_steps, self.anchor))
        if abs(end - self.decay_steps) > 0.05 * self.decay_steps:
            self.log(f"time budget: re-fitted to about {end} steps (was {self.decay_steps}) at "
                     f"{per_step:.3g} s/step")
        self.decay_steps = end

    # ---- checkpoints ----

    def state_dict(self) -> dict[str, Any]:
        return {"decay_steps": self.decay_steps, "schedule_anchor": self.anchor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A run bounded by steps or tokens derives its schedule again; one bounded by time takes the saved."""
        if not self.time_bounded:
            return
        self.decay_steps = state.get("decay_steps")
        anchor = state.get("schedule_anchor")
        self.anchor = (int(anchor[0]), float(anchor[1])) if anchor is not None else None
