"""The process group of a `torchrun` launch (or a single process), and the few collectives training uses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from gpt2.hardware import resolve_device


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in the job. A plain `python -m gpt2 train` is rank 0 of 1."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")  # where collectives' tensors live (NCCL needs CUDA)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files and draws the progress bar."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The average of `value` over all processes (in place)."""
        if self.enabled:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.world_size
        return value

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def max(self, value: float) -> float:
        """The largest `value` over all processes."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def any(self, flag: bool) -> bool:
        """True on every process if `flag` is true on any: ranks stop together or not at all."""
        return self.max(1.0 if flag else 0.0) > 0

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj`, on rank 0 (None elsewhere)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out


def setup(device: str | None) -> Distributed:
    """Join the process group that `torchrun` describes in RANK / WORLD_SIZE / LOCAL_RANK (and
    MASTER_ADDR / MASTER_PORT), if any, and pick this process's device: CUDA device LOCAL_RANK when CUDA
    is used, else `device` (default `auto`: see gpt2.hardware.resolve_device)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    chosen = resolve_device(device)
    if world_size <= 1:
        return Distributed(device=chosen)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        # NCCL moves CUDA tensors over NVLink / InfiniBand; gloo is PyTorch's CPU backend.
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return Distributed(rank=rank, local_rank=local_rank, world_size=world_size, device=chosen)


def teardown(d: Distributed) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
