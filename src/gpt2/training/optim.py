"""The optimizers (AdamW with nanoGPT's weight-decay groups; Muon for the hidden matrices) and the
learning-rate schedule (linear warmup, cosine decay)."""

from __future__ import annotations

import inspect
import math

import torch

OPTIMIZERS = ("adamw", "muon")


def make_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float, betas: tuple[float, float],
                   eps: float, device_type: str, optimizer: str = "adamw") -> torch.optim.Optimizer | Optimizers:
    """`adamw`: AdamW on everything. `muon`: Muon (Jordan et al. 2024: momentum orthogonalised by
    Newton-Schulz iterations) on the transformer blocks' 2-D weights, AdamW on the rest (embeddings, the
    tied vocabulary projection, biases, LayerNorm gains), as Muon's authors prescribe. Muon runs with
    Moonshot's learning-rate scaling (`match_rms_adamw`), so both share one learning rate and schedule.

    AdamW decays matrices and embeddings (dim >= 2) but not biases and LayerNorm gains, which only shift or
    scale activations; shrinking them toward zero is no useful prior (nanoGPT, GPT-3)."""
    params = [p for p in model.parameters() if p.requires_grad]  # a tied weight appears once
    hidden: list[torch.nn.Parameter] = []
    if optimizer == "muon":
        blocks = {id(p) for name, p in model.named_parameters() if ".h." in f".{name}"}
        hidden = [p for p in params if p.dim() == 2 and id(p) in blocks]
    elif optimizer != "adamw":
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}")
    rest = [p for p in params if all(p is not q for q in hidden)]
    groups = [
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
    ]
    # The fused kernel does the whole update in one pass; PyTorch has it for CUDA and (since 2.4) CPU.
    fused = "fused" in inspect.signature(torch.optim.AdamW).parameters and device_type in ("cuda", "cpu")
    adamw = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **({"fused": True} if fused else {}))
    if not hidden:
        return adamw
    muon = torch.optim.Muon(hidden, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
    return Optimizers(muon, adamw)


class Optimizers:
    """Several optimizers over disjoint parameters that step, zero and checkpoint as one."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        for o, s in zip(self.optimizers, state["optimizers"], strict=True):
            o.load_state_dict(s)


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
