"""TrainConfig: every setting of a training run, saved as `train_config.json` in the run directory."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt2.errors import ConfigError
from gpt2.files import atomic_write_text
from gpt2.hardware import DTYPE_CHOICES
from gpt2.training.optim import OPTIMIZERS

CONFIG_FILE = "train_config.json"
DTYPES = tuple(name for name in DTYPE_CHOICES if name != "fp16")  # fp16 would need loss scaling, not done here
MODEL_OVERRIDES = ("n_layer", "n_head", "n_embd", "n_positions")
# What `--resume` may change: when and how long to run, where and how to compute. Anything else (model,
# data, batch, optimizer) would make the resumed run a different run, so it must match the saved config.
RESUME_OVERRIDABLE = frozenset({
    "max_steps", "max_tokens", "time_budget_s", "eval_interval", "eval_tokens", "save_interval",
    "device", "compile", "peak_tflops", "data", "out",
})


@dataclass
class TrainConfig:
    """Settings of a run. `None` means "derive it" (see `resolved`); `out` is the run directory."""

    data: str
    out: str
    # model: a fresh one from a preset (+ overrides), or weights to fine-tune
    model_size: str | None = None
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    n_positions: int | None = None
    dropout: float = 0.0
    init_from: str | None = None
    # length: the first limit reached ends the run; max_steps / max_tokens also set the lr schedule
    max_steps: int | None = None
    max_tokens: int | None = None
    time_budget_s: float | None = None
    # batch: batch_size sequences per micro-step per process; accumulation reaches total_batch_tokens
    batch_size: int = 8
    seq_len: int | None = None
    total_batch_tokens: int | None = None
    # the optimizer (AdamW, or Muon for the blocks' matrices + AdamW for the rest) and the schedule (linear
    # warmup, cosine decay to min_lr), as nanoGPT / GPT-3
    optimizer: str = "adamw"
    lr: float = 6e-4
    min_lr: float | None = None
    warmup_steps: int | None = None
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    # compute
    dtype: str = "auto"
    compile: bool = False
    device: str | None = None
    peak_tflops: float | None = None
    # evaluation, checkpoints
    eval_interval: int = 250
    eval_tokens: int = 262_144
    save_interval: int | None = None
    seed: int = 1337

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if (self.model_size is None) == (self.init_from is None):
            raise ConfigError("give exactly one of model_size (a fresh model, e.g. --model-size nano) or "
                              "init_from (a checkpoint to fine-tune)")
        if self.init_from is not None and any(getattr(self, k) is not None for k in MODEL_OVERRIDES):
            raise ConfigError(f"{', '.join(MODEL_OVERRIDES)} change the architecture; they cannot be "
                              "combined with init_from")
        if self.max_steps is None and self.max_tokens is None and self.time_budget_s is None:
            raise ConfigError("give a length for the run: max_steps, max_tokens or time_budget_s")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("max_steps", "max_tokens", "batch_size", "seq_len", "total_batch_tokens",
                     "eval_interval", "eval_tokens", "save_interval", *MODEL_OVERRIDES):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr", "time_budget_s", "eps"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")
        for name in ("min_lr", "weight_decay", "grad_clip", "warmup_steps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must not be negative, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    # ---- derived values ----

    def grad_accum(self, seq_len: int, world_size: int) -> int:
        """Micro-steps per optimizer step so that one step sees `total_batch_tokens` tokens."""
        per_micro = self.batch_size * seq_len * world_size
        if self.total_batch_tokens is None:
            return 1
        if self.total_batch_tokens % per_micro:
            raise ConfigError(
                f"total_batch_tokens ({self.total_batch_tokens}) must be a multiple of batch_size x seq_len "
                f"x processes = {self.batch_size} x {seq_len} x {world_size} = {per_micro}; e.g. "
                f"{max(1, round(self.total_batch_tokens / per_micro)) * per_micro}"
            )
        return self.total_batch_tokens // per_micro

    def total_steps(self, tokens_per_step: int) -> int | None:
        """The step count that max_steps / max_tokens allow (the smaller); None when only time bounds it."""
        limits = []
        if self.max_steps is not None:
            limits.append(self.max_steps)
        if self.max_tokens is not None:
            limits.append(math.ceil(self.max_tokens / tokens_per_step))
        return min(limits) if limits else None

    def warmup(self, total_steps: int | None) -> int:
        if self.warmup_steps is not None:
            return self.warmup_steps
        return 100 if total_steps is None else min(2000, total_steps // 20)

    @property
    def final_lr(self) -> float:
        return self.min_lr if self.min_lr is not None else self.lr / 10

    # ---- JSON ----

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "train config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown fields {unknown}")
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"{source}: {e}") from None

    def save(self, run_dir: str | Path) -> None:
        atomic_write_text(Path(run_dir) / CONFIG_FILE, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainConfig:
        path = Path(run_dir) / CONFIG_FILE
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: not found; is {run_dir} a run directory written by `gpt2 train`?"
                              ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(d, source=str(path))

    def with_resume_overrides(self, overrides: dict[str, Any]) -> TrainConfig:
        """This (saved) config with the settings a resumed run may change replaced; others must match."""
        changed = {}
        for key, value in overrides.items():
            if value is None or value == getattr(self, key):
                continue
            if key not in RESUME_OVERRIDABLE:
                raise ConfigError(
                    f"cannot change {key} when resuming (saved: {getattr(self, key)!r}, given: {value!r}); "
                    f"a resumed run may change only {', '.join(sorted(RESUME_OVERRIDABLE))}"
                )
            changed[key] = value
        return dataclasses.replace(self, **changed)
