"""What a run records: `metrics.jsonl` (one line per step), `loss.png`, and the MFU estimate."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from gpt2.config import GPTConfig
from gpt2.errors import GPT2Error
from gpt2.files import atomic_write, atomic_write_text
from gpt2.hardware import peak_flops

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"


def flops_per_token(config: GPTConfig, n_params: int, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the matmuls with the weights (forward 2N, backward 4N; N without
    the position table, which is a lookup) plus 6 * 2 * n_layer * n_embd * seq_len for attention's
    QK^T and AV products (PaLM appendix B; nanoGPT's estimate_mfu). Causal masking's saved half is not
    subtracted, as in those references."""
    n = n_params - config.n_positions * config.n_embd
    return 6 * n + 12 * config.n_layer * config.n_embd * seq_len


def mfu_peak(peak_tflops: float | None, device: torch.device, bf16: bool) -> tuple[float | None, str]:
    """(the peak FLOP/s that MFU divides by, where it comes from): --peak-tflops when given, else the
    device's datasheet or CPU estimate (gpt2.hardware.peak_flops)."""
    if peak_tflops:
        return peak_tflops * 1e12, "--peak-tflops"
    return peak_flops(device, bf16)


class MetricsLog:
    """`metrics.jsonl`: one JSON object per step, appended and flushed as the run goes."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / METRICS_FILE
        self.records: list[dict[str, Any]] = []

    def start(self, resume_step: int | None) -> None:
        """Fresh: start an empty log. Resuming at `resume_step`: keep the lines up to it and drop any that
        a killed run wrote after its last checkpoint, which the resumed run is about to redo."""
        if resume_step is None or not self.path.is_file():
            self.records = []
        else:
            self.records = [r for r in _read_records(self.path) if r.get("step", 0) <= resume_step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def sync(self) -> None:
        """Force the log to disk: called before each checkpoint, so that even after a power loss the log
        is never behind the checkpoint (a kill alone loses nothing: the kernel holds written data)."""
        with open(self.path, "rb") as f:
            os.fsync(f.fileno())


def _read_records(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break  # a kill cut the last line short; the resumed run rewrites that step
            raise GPT2Error(f"{path}:{number}: not valid JSON; the metrics log is damaged") from None
    return records


def plot_losses(records: list[dict[str, Any]], path: Path) -> None:
    """Train and validation loss against tokens seen, written atomically as a PNG."""
    # lazy: matplotlib takes about half a second to import, and only runs that draw need it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # The object API with the Agg canvas: no display, no pyplot global state, safe in servers and CI.
    fig = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    train = [(r["tokens"], r["loss"]) for r in records if "loss" in r]
    val = [(r["tokens"], r["val_loss"]) for r in records if "val_loss" in r]
    if train:
        ax.plot(*zip(*train, strict=True), lw=0.8, alpha=0.8, label="train")
    if val:
        ax.plot(*zip(*val, strict=True), "o-", ms=3, label="validation")
    ax.set_xlabel("tokens")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.subplots_adjust(left=0.1, right=0.97, top=0.97, bottom=0.12)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
