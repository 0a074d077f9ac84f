"""The training loop: a `Trainer` holds the model, optimizer, data and run directory of one run."""

from __future__ import annotations

import dataclasses
import math
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpt2.config import GPTConfig
from gpt2.data import BatchLoader, TokenDataset, eval_batches
from gpt2.errors import GPT2Error
from gpt2.hardware import resolve_dtype
from gpt2.model import GPT
from gpt2.training import checkpointing, distributed, memory
from gpt2.training.config import MODEL_OVERRIDES, TrainConfig
from gpt2.training.metrics import (
    PLOT_FILE,
    MetricsLog,
    flops_per_token,
    peak_flops,
    plot_losses,
)
from gpt2.training.optim import cosine_progress, lr_at, make_optimizer

# A run bounded only by time has no step count to decay the learning rate over, so it times some steps
# and fixes one (saved with checkpoints, so resuming stays exact). The first steps are slow (allocation,
# compilation) and are not timed; evaluations and checkpoints also take time, hence the margin.
_CALIBRATION_SKIP, _CALIBRATION_STEPS, _CALIBRATION_MARGIN = 3, 20, 0.9
# That first estimate misses changes of load and the cost of evaluations: on a shared 2-core machine a
# 5-minute run calibrated at 204 steps ran 302, a third of them at min_lr. So the invocation that
# calibrated re-fits the decay at evaluations, from the step rate between evaluations (one evaluation and
# checkpoint included, so their cost is counted), over windows of at least _CALIBRATION_STEPS steps. The
# cosine continues from where it is (optim.lr_at's anchor), so the learning rate stays continuous.
_REPLAN_MARGIN = 0.97
# Drawing loss.png costs about 0.3 s; at frequent evaluations it is redrawn at most this often (and always
# at the end of `train`).
_PLOT_EVERY_S = 30.0
# Encoded by both tokenizers when fine-tuning: if they disagree here, the data was made with another one.
_TOKENIZER_PROBE = "Hello, world! The quick brown fox: 1234 caf\u00e9 \u65e5\u672c \U0001f600\n\n  end."


class TrainingError(GPT2Error):
    """A run cannot start or continue (run directory state, incompatible data, diverged loss)."""


class Trainer:
    """One training run. `Trainer(config).train()` starts fresh; `Trainer.resume(run_dir).train()`
    continues from the run's checkpoint exactly where it stopped."""

    def __init__(self, config: TrainConfig, *, resume: bool = False, progress: bool = True) -> None:
        self.config = config
        self.run_dir = Path(config.out)
        self.progress = progress
        self.dist = distributed.setup(config.device)
        self.device = self.dist.device
        checkpoint = checkpointing.latest_checkpoint(self.run_dir)
        if resume and checkpoint is None:
            raise TrainingError(f"{self.run_dir}: no checkpoint to resume from")
        if not resume and checkpoint is not None:
            raise TrainingError(f"{self.run_dir} already holds a checkpoint; pass --resume to continue that "
                                "run, or choose another --out")
        self.train_data = TokenDataset(config.data, "train")
        self.tokenizer = self._tokenizer(checkpoint)
        self.raw_model = self._model(checkpoint).to(self.device).train()
        self.seq_len = config.seq_len or self.raw_model.config.n_positions
        if self.seq_len > self.raw_model.config.n_positions:
            raise TrainingError(f"seq_len {self.seq_len} exceeds the model's context length "
                                f"{self.raw_model.config.n_positions} (n_positions)")
        self.val_data = self._val_data()
        self._seed_rngs()
        self.bf16 = self._use_bf16()
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls on TF32 tensor cores, as nanoGPT
        self.grad_accum = config.grad_accum(self.seq_len, self.dist.world_size)
        self.tokens_per_step = config.batch_size * self.seq_len * self.grad_accum * self.dist.world_size
        self.total_steps = config.total_steps(self.tokens_per_step)
        self.warmup_steps = config.warmup(self.total_steps)
        self.decay_steps = self.total_steps  # set by calibration for a run bounded only by time
        self.schedule_anchor: tuple[int, float] | None = None  # see optim.lr_at; moved by re-fits
        self._replan_mark: tuple[float, int] | None = None  # (time, step) where the rate window started
        self._replanning = False
        self.compiled = torch.compile(self.raw_model) if config.compile else self.raw_model
        self.model = self._wrap_ddp(self.compiled)
        self.optimizer = make_optimizer(self.raw_model, lr=config.lr, weight_decay=config.weight_decay,
                                        betas=(config.beta1, config.beta2), eps=config.eps,
                                        device_type=self.device.type, optimizer=config.optimizer)
        self.loader = BatchLoader(self.train_data, config.batch_size, self.seq_len, seed=config.seed,
                                  grad_accum=self.grad_accum, rank=self.dist.rank,
                                  world_size=self.dist.world_size)
        self.step = 0
        self.tokens = 0
        self.last_val_loss: float | None = None
        self.resumed_from: int | None = None  # the checkpoint's step when resuming
        self._started = False
        self._last_plot = -math.inf
        self.metrics = MetricsLog(self.run_dir)
        if checkpoint is not None:
            self._restore(checkpoint)
        n_params = self.raw_model.num_parameters()
        self.flops_per_token = flops_per_token(self.raw_model.config, n_params, self.seq_len)
        self.peak, self.peak_source = self._peak()
        # On CPU, reuse the memory of the last step instead of page-faulting gigabytes back in (memory.py);
        # last, so that a constructor that raises leaves malloc alone.
        self._restore_malloc = memory.retain_freed_memory() if self.device.type == "cpu" else None

    @classmethod
    def resume(cls, run_dir: str | Path, progress: bool = True, **overrides: Any) -> Trainer:
        """Continue the run in `run_dir` from its checkpoint, with its saved settings (some, such as the
        length of the run, may be changed: see `RESUME_OVERRIDABLE`)."""
        config = TrainConfig.load(run_dir).with_resume_overrides({"out": str(run_dir), **overrides})
        return cls(config, resume=True, progress=progress)

    # ---- construction ----

    def _val_data(self) -> TokenDataset | None:
        val = TokenDataset(self.config.data, "val")
        return val if len(val) > self.seq_len else None  # at least one window of seq_len + 1 tokens

    def _tokenizer(self, checkpoint: Path | None):
        from gpt2.checkpoint import load_tokenizer
        from gpt2.tokenizer import Tokenizer

        data_tok = Tokenizer.from_pretrained(self.train_data.tokenizer_dir)
        if checkpoint is None and self.config.init_from is None:
            return data_tok
        source = checkpoint or self.config.init_from  # fine-tuning keeps the checkpoint's tokenizer
        tok = load_tokenizer(source)
        if tok.encode(_TOKENIZER_PROBE) != data_tok.encode(_TOKENIZER_PROBE) or \
                tok.eot_token_id != data_tok.eot_token_id:
            raise TrainingError(
                f"{self.config.data} was tokenized with {self.train_data.manifest['tokenizer']['name']}, "
                f"which encodes text differently from the tokenizer of {source}; prepare the data again "
                f"with `gpt2 prepare ... --tokenizer {source}`"
            )
        return tok

    def _model(self, checkpoint: Path | None) -> GPT:
        from gpt2.model import GPT

        c = self.config
        if checkpoint is not None or c.init_from is not None:
            model = GPT.from_pretrained(checkpoint or c.init_from, dtype=torch.float32)
            _set_dropout(model, c.dropout)
            data_vocab = self.train_data.manifest["tokenizer"]["vocab_size"]
            if model.config.vocab_size < data_vocab:
                raise TrainingError(f"{checkpoint or c.init_from}: vocab_size {model.config.vocab_size} is "
                                    "smaller than "
                                    f"the data's tokenizer's {data_vocab}")
            return model
        overrides = {k: getattr(c, k) for k in MODEL_OVERRIDES if getattr(c, k) is not None}
        eot = self.tokenizer.eot_token_id
        config = GPTConfig.from_preset(
            c.model_size, **overrides, vocab_size=self.tokenizer.vocab_size, bos_token_id=eot,
            eos_token_id=eot, resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout,
        )
        torch.manual_seed(c.seed)  # the same initial weights on every rank and every rerun
        return GPT(config)

    def _seed_rngs(self) -> None:
        # Different dropout masks per rank; everything else draws from seeded generators of its own.
        seed = self.config.seed + self.dist.rank
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)

    def _use_bf16(self) -> bool:
        """bf16 autocast where asked, or with `auto` where this device multiplies bf16 natively."""
        return resolve_dtype(self.config.dtype, self.device) == torch.bfloat16

    def _wrap_ddp(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.dist.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def _peak(self) -> tuple[float | None, str]:
        if self.config.peak_tflops:
            return self.config.peak_tflops * 1e12, "--peak-tflops"
        return peak_flops(self.device, self.bf16)

    def _restore(self, checkpoint: Path) -> None:
        state = checkpointing.load_state(checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        self.loader.load_state_dict(state["loader"])
        self.step, self.tokens = state["step"], state["tokens"]
        self.resumed_from = self.step
        self.last_val_loss = state.get("val_loss")
        if self.total_steps is None:
            self.decay_steps = state.get("decay_steps")
            anchor = state.get("schedule_anchor")
            self.schedule_anchor = (int(anchor[0]), float(anchor[1])) if anchor is not None else None
        rng = state["rng"]
        if len(rng) == self.dist.world_size:
            checkpointing.restore_rng(rng[self.dist.rank])
        else:
            self.log(f"note: checkpoint was written by {len(rng)} processes, now {self.dist.world_size}; "
                     "random streams (dropout) restart from the seed")

    # ---- the loop ----

    def train(self, stop_at_step: int | None = None) -> dict[str, Any]:
        """Train until max_steps / max_tokens / time_budget_s (or `stop_at_step`, which leaves the
        schedule alone: a later resume continues the same run); returns a summary."""
        if not self._started:
            self._start()
        start, first_step = time.monotonic(), self.step
        bar = self._bar()
        done = self._finished(start, stop_at_step)
        while not done:
            record = self._train_step()
            if self.decay_steps is None and self.config.time_budget_s:
                self._calibrate(self.step - first_step, start, bar)
            done = self._finished(start, stop_at_step)
            if done or self.step % self.config.eval_interval == 0:
                record.update(self._evaluate_record())
            self._log_step(record)
            bar.set_postfix_str(self._postfix(record), refresh=False)
            bar.update(1)
            if done or self.step % (self.config.save_interval or self.config.eval_interval) == 0:
                self.save_checkpoint()
            if self._replanning and not done and self.step % self.config.eval_interval == 0:
                self._replan(start, bar)
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

    def _calibrate(self, steps_here: int, start: float, bar) -> None:
        now = time.monotonic()
        if steps_here == _CALIBRATION_SKIP:
            self._calibration_start = now
        elif steps_here == _CALIBRATION_SKIP + _CALIBRATION_STEPS:
            per_step = self.dist.max((now - self._calibration_start) / _CALIBRATION_STEPS)  # ranks agree
            remaining = self.config.time_budget_s - (now - start)
            # Each rank reads its own clock: agree on one step count, or their learning rates would differ.
            self.decay_steps = int(self.dist.max(self.step + int(_CALIBRATION_MARGIN * remaining / per_step)))
            self._replanning = True
            bar.total = self.decay_steps
            self.log(f"time budget: about {self.decay_steps} steps at {per_step:.3g} s/step; the learning "
                     "rate decays over them")

    def _replan(self, start: float, bar) -> None:
        """At an evaluation step: re-fit the decay to the time left, at the rate since the window began."""
        now = time.monotonic()
        if self._replan_mark is None:  # the first window starts at an evaluation, as all later ones do
            self._replan_mark = (now, self.step)
            return
        mark_time, mark_step = self._replan_mark
        if self.step - mark_step < _CALIBRATION_STEPS:
            return
        self._replan_mark = (now, self.step)
        if self.step >= self.decay_steps:
            return  # already at min_lr: the cosine does not climb back
        per_step = self.dist.max((now - mark_time) / (self.step - mark_step))
        remaining = self.config.time_budget_s - (now - start)
        end = int(self.dist.max(self.step + max(1, int(_REPLAN_MARGIN * remaining / per_step))))
        if end == self.decay_steps:
            return
        if self.step >= self.warmup_steps:
            progress = cosine_progress(self.step, self.warmup_steps, self.decay_steps, self.schedule_anchor)
            self.schedule_anchor = (self.step, progress)
        if abs(end - self.decay_steps) > 0.05 * self.decay_steps:
            self.log(f"time budget: re-fitted to about {end} steps (was {self.decay_steps}) at "
                     f"{per_step:.3g} s/step")
        self.decay_steps = end
        bar.total = end

    def _finished(self, start: float, stop_at_step: int | None) -> bool:
        if self.total_steps is not None and self.step >= self.total_steps:
            return True
        if stop_at_step is not None and self.step >= stop_at_step:
            return True
        budget = self.config.time_budget_s
        return self.dist.any(budget is not None and time.monotonic() - start >= budget)

    def _train_step(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        lr = lr_at(self.step, lr=self.config.lr, min_lr=self.config.final_lr,
                   warmup_steps=self.warmup_steps, decay_steps=self.decay_steps, anchor=self.schedule_anchor)
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
                "decay_steps": self.decay_steps, "schedule_anchor": self.schedule_anchor,
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

    def _bar(self):
        from tqdm import tqdm

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
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)

    def close(self) -> None:
        distributed.teardown(self.dist)
        if self._restore_malloc is not None:
            self._restore_malloc()
            self._restore_malloc = None


def _set_dropout(model: GPT, p: float) -> None:
    """Apply `p` to a loaded model (its config.json's dropout is the pretraining run's, not this one's)."""
    model.config = dataclasses.replace(model.config, resid_pdrop=p, embd_pdrop=p, attn_pdrop=p)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        if hasattr(module, "attn_dropout"):
            module.attn_dropout = p


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
