"""The training loop: a `Trainer` holds the model, optimizer, data and run directory of one run.

Its parts are built in setup.py, its learning rates and time budget are schedule.py's, and what it records
is metrics.py's; what is left here is nanoGPT's loop: step, evaluate, log, checkpoint."""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gpt2 import memory
from gpt2.data import BatchLoader, TokenDataset, eval_batches
from gpt2.training import checkpointing, distributed, setup
from gpt2.training.config import TrainConfig
from gpt2.training.metrics import PLOT_FILE, MetricsLog, flops_per_token, mfu_peak, plot_losses
from gpt2.training.optim import make_optimizer
from gpt2.training.schedule import Schedule
from gpt2.training.setup import TrainingError

# Drawing loss.png costs about 0.3 s; at frequent evaluations it is redrawn at most this often (and always
# at the end of `train`).
_PLOT_EVERY_S = 30.0


class Trainer:
    """One training run. `Trainer(config).train()` starts fresh; `Trainer.resume(run_dir).train()`
    continues from the run's checkpoint exactly where it stopped."""

    def __init__(self, config: TrainConfig, *, resume: bool = False, progress: bool = True) -> None:
        self.config, self.run_dir, self.progress = config, Path(config.out), progress
        self.dist = distributed.setup(config.device)
        self.device = self.dist.device
        checkpoint = setup.find_checkpoint(self.run_dir, resume)
        # the data and the model (model_for seeds the initial weights; seed_rngs then the dropout streams)
        self.train_data = TokenDataset(config.data, "train")
        self.tokenizer = setup.tokenizer_for(config, self.train_data, checkpoint)
        self.raw_model = setup.model_for(config, self.train_data, self.tokenizer, checkpoint).to(self.device)
        self.raw_model.train()
        self.seq_len = setup.seq_len_for(config, self.raw_model)
        self.val_data = setup.val_data_for(config, self.seq_len)
        setup.seed_rngs(config.seed, self.dist.rank)
        self.bf16 = setup.use_bf16(config.dtype, self.device)
        # the batch and the schedule
        self.grad_accum = config.grad_accum(self.seq_len, self.dist.world_size)
        self.tokens_per_step = config.batch_size * self.seq_len * self.grad_accum * self.dist.world_size
        self.total_steps = config.total_steps(self.tokens_per_step)
        self.schedule = Schedule(config, self.total_steps, self.dist, self.log)
        # the model as it runs, its optimizer and the batches
        self.compiled = torch.compile(self.raw_model) if config.compile else self.raw_model
        self.model = setup.wrap_ddp(self.compiled, self.dist)
        self.optimizer = make_optimizer(self.raw_model, lr=config.lr, weight_decay=config.weight_decay,
                                        betas=(config.beta1, config.beta2), eps=config.eps,
                                        device_type=self.device.type, optimizer=config.optimizer)
        self.loader = BatchLoader(self.train_data, config.batch_size, self.seq_len, seed=config.seed,
                                  grad_accum=self.grad_accum, rank=self.dist.rank,
                                  world_size=self.dist.world_size)
        # where the run stands: the checkpoint's place when resuming
        at = {"step": 0, "tokens": 0, "val_loss": None} if checkpoint is None else setup.restore(
            checkpoint, self.optimizer, self.loader, self.schedule, self.dist, self.log)
        self.step, self.tokens, self.last_val_loss = at["step"], at["tokens"], at["val_loss"]
        self.resumed_from: int | None = None if checkpoint is None else self.step
        # what it records
        self.metrics = MetricsLog(self.run_dir)
        self.flops_per_token = flops_per_token(self.raw_model.config, self.raw_model.num_parameters(),
                                               self.seq_len)
        self.peak, self.peak_source = mfu_peak(config.peak_tflops, self.device, self.bf16)
        self._started = False
        self._last_plot = -math.inf
        # On CPU, reuse the memory of the last step instead of page-faulting gigabytes back in (memory.py);
        # last, so that a constructor that raises leaves malloc alone.
        self._restore_malloc = memory.retain_freed_memory() if self.device.type == "cpu" else None

    @classmethod
    def resume(cls, run_dir: str | Path, progress: bool = True, **overrides: Any) -> Trainer:
        """Continue the run in `run_dir` from its checkpoint, with its saved settings (some, such as the
        length of the run, may be changed: see `RESUME_OVERRIDABLE`)."""
        config = TrainConfig.load(run_dir).with_resume_overrides({"out": str(run_dir), **overrides})
        return cls(config, resume=True, progress=progress)

    @property
    def decay_steps(self) -> int | None:
        """The step at which the learning rate reaches min_lr (see Schedule)."""
        return self.schedule.decay_steps

    # ---- the loop ----

    def train(self, stop_at_step: int | None = None) -> dict[str, Any]:
        """Train until max_steps / max_tokens / time_budget_s (or `stop_at_step`, which leaves the
        schedule alone: a later resume continues the same run); returns a summary."""
        if not self._started:
            self._start()
        self.schedule.start(self.step)
        bar = self._bar()
        done = self._finished(stop_at_step)
        while not done:
            record = self._train_step()
            self.schedule.calibrate(self.step)
            done = self._finished(stop_at_step)
            evaluating = done or self.step % self.config.eval_interval == 0
            if evaluating:
                record.update(self._evaluate_record())
            self._log_step(record)
            bar.total = self.schedule.decay_steps
            bar.set_postfix_str(self._postfix(record), refresh=False)
            bar.update(1)
            if done or self.step % (self.config.save_interval or self.config.eval_interval) == 0:
                self.save_checkpoint()
            if evaluating and not done:
                self.schedule.refit(self.step)
        bar.close()
        self._plot()
        return {"step": self.step, "tokens": self.tokens, "val_loss": self.last_val_loss,
                "checkpoint": str(self.run_dir / checkpointing.LINK)}

    def _start(self) -> None:
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.config.save(self.run_dir)
            self.metrics.start(self.resumed_from)
        self._announce()
        if self.resumed_from is None:
            self._log_step({"step": 0, "tokens": 0, **self._evaluate_record()})  # the untrained baseline
        self._started = True

    def _finished(self, stop_at_step: int | None) -> bool:
        if self.total_steps is not None and self.step >= self.total_steps:
            return True
        if stop_at_step is not None and self.step >= stop_at_step:
            return True
        return self.schedule.out_of_time()

    def _train_step(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        lr = self.schedule.lr_of(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(self.grad_accum):
            x, y = self._to_device(*self.loader.next_batch())
            # Gradients are all-reduced once per step, on the last micro-batch, not after each one.
            last = micro == self.grad_accum - 1
            with nullcontext() if last or not self.dist.enabled else self.model.no_sync():
                with self._autocast():
                    _, loss = self.model(x, y)
                (loss / self.grad_accum).backward()
            loss_sum += loss.detach()
        loss = self.dist.mean(loss_sum / self.grad_accum).item()
        if not math.isfinite(loss):
            raise TrainingError(f"loss became {loss} at step {self.step + 1}; lower --lr (now {lr:.3g}), "
                                "keep --grad-clip on, or use --dtype fp32")
        max_norm = self.config.grad_clip if self.config.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), max_norm).item()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens += self.tokens_per_step
        dt = time.perf_counter() - t0
        tokens_per_s = self.tokens_per_step / dt
        record = {"step": self.step, "tokens": self.tokens, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                  "tokens_per_s": round(tokens_per_s, 1), "step_time_s": round(dt, 4)}
        if self.peak:
            total_peak = self.peak * self.dist.world_size
            record["mfu"] = round(self.flops_per_token * tokens_per_s / total_peak, 5)
        return record

    def _to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        if self.device.type == "cuda":  # pinned memory lets the copy overlap with compute
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device,
                                                                                         non_blocking=True)
        return x.to(self.device), y.to(self.device)

    def _autocast(self):
        if not self.bf16:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean loss per token over the fixed validation windows (all ranks together); None without a
        validation split."""
        if self.val_data is None:
            return None
        model = self.compiled  # not the DDP wrapper: evaluation needs no gradient hooks
        model.eval()
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        for x, y in eval_batches(self.val_data, self.config.batch_size, self.seq_len, self.config.eval_tokens,
                                 rank=self.dist.rank, world_size=self.dist.world_size):
            x, y = self._to_device(x, y)
            with self._autocast():
                _, loss = model(x, y)
            total[0] += loss.double() * y.numel()
            total[1] += y.numel()
        model.train()
        self.dist.sum(total)
        return (total[0] / total[1]).item() if total[1] else None

    def _evaluate_record(self) -> dict[str, float]:
        self.last_val_loss = self.evaluate()
        return {} if self.last_val_loss is None else {"val_loss": self.last_val_loss}

    # ---- output (rank 0) ----

    def save_checkpoint(self) -> None:
        rng = self.dist.gather(checkpointing.capture_rng())  # collective: every rank takes part
        if self.dist.is_main:
            self.metrics.sync()
            state = {
                "step": self.step, "tokens": self.tokens, "val_loss": self.last_val_loss,
                "optimizer": self.optimizer.state_dict(), "loader": self.loader.state_dict(), "rng": rng,
                "world_size": self.dist.world_size, "train_config": self.config.to_dict(),
                **self.schedule.state_dict(),
            }
            metadata = {"step": self.step, "tokens": self.tokens, "val_loss": self.last_val_loss,
                        "data": str(self.config.data), "init_from": self.config.init_from}
            checkpointing.save_checkpoint(self.run_dir, self.step, self.raw_model, self.tokenizer, state,
                                          metadata)
        self.dist.barrier()  # no rank races ahead (or exits) while rank 0 is still writing

    def _log_step(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        self.metrics.append(record)
        if "val_loss" in record and self.step and time.monotonic() - self._last_plot >= _PLOT_EVERY_S:
            self._plot()

    def _plot(self) -> None:
        if self.dist.is_main:
            plot_losses(self.metrics.records, self.run_dir / PLOT_FILE)
            self._last_plot = time.monotonic()

    def _bar(self) -> tqdm:
        return tqdm(total=self.total_steps, initial=self.step, unit="step", desc="train", file=sys.stderr,
                    disable=not (self.progress and self.dist.is_main), dynamic_ncols=True)

    @staticmethod
    def _postfix(record: dict[str, Any]) -> str:
        parts = [f"loss={record['loss']:.4f}", f"tok/s={record['tokens_per_s']:,.0f}"]
        if "mfu" in record:
            parts.append(f"mfu={record['mfu']:.1%}")
        if "val_loss" in record:
            parts.append(f"val={record['val_loss']:.4f}")
        return " ".join(parts)

    def _announce(self) -> None:
        c = self.config
        m = self.raw_model.config
        what = f"resuming at step {self.resumed_from}" if self.resumed_from is not None else "starting"
        self.log(
            f"{what}: {self.raw_model.num_parameters():,} parameters (n_layer={m.n_layer}, "
            f"n_head={m.n_head}, n_embd={m.n_embd}), {self.tokens_per_step:,} tokens/step = {c.batch_size} "
            f"x {self.seq_len} x {self.grad_accum} accumulation x {self.dist.world_size} processes, "
            f"{self.total_steps or 'time-bounded'} steps, {'bf16' if self.bf16 else 'fp32'} on "
            f"{self.device}, MFU peak: {self.peak_source}"
        )
        if self.val_data is None:
            self.log(f"note: the validation split of {c.data} is empty or shorter than one sequence; "
                     "validation loss is not computed (prepare with a larger --val-fraction)")

    def log(self, message: str) -> None:
        if self.dist.is_main and self.progress:
            tqdm.write(message, file=sys.stderr)

    def close(self) -> None:
        distributed.teardown(self.dist)
        if self._restore_malloc is not None:
            self._restore_malloc()
            self._restore_malloc = None


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run `config` to the end (resuming from its run directory's checkpoint when `resume`)."""
    if resume and checkpointing.latest_checkpoint(Path(config.out)) is not None:
        trainer = Trainer.resume(config.out, progress=progress, **config.to_dict())
    else:
        trainer = Trainer(config, progress=progress)
    try:
        return trainer.train()
    finally:
        trainer.close()
