"""The optimizers: AdamW with nanoGPT's weight-decay groups, and Muon for the hidden matrices. (The learning
rate of each step is schedule.py's.)"""

from __future__ import annotations

import inspect
import math
from collections.abc import Collection

import torch

from gpt2 import hardware
from gpt2.errors import ConfigError

OPTIMIZERS = ("adamw", "muon")


def make_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float, betas: tuple[float, float],
                   eps: float, device_type: str, optimizer: str = "adamw") -> torch.optim.Optimizer | Optimizers:
    """`adamw`: AdamW on everything. `muon`: Muon (Jordan et al. 2024: momentum orthogonalised by
    Newton-Schulz iterations) on the transformer blocks' 2-D weights, AdamW on the rest (embeddings, the
    tied vocabulary projection, biases, LayerNorm gains), as Muon's authors prescribe. Muon runs with
    Moonshot's learning-rate scaling (`match_rms_adamw`), so both share one learning rate and schedule."""
    hidden: list[torch.nn.Parameter] = []
    if optimizer == "muon":
        blocks = {id(p) for name, p in model.named_parameters() if ".h." in f".{name}"}
        hidden = [p for p in model.parameters() if p.requires_grad and p.dim() == 2 and id(p) in blocks]
    elif optimizer != "adamw":
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}")
    groups = param_groups(model, weight_decay, exclude=hidden)
    # The fused kernel does the whole update in one pass; PyTorch has it for CUDA and (since 2.4) CPU.
    fused = "fused" in inspect.signature(torch.optim.AdamW).parameters and device_type in ("cuda", "cpu")
    adamw = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **({"fused": True} if fused else {}))
    if not hidden:
        return adamw
    if _TorchMuon is object:
        raise ConfigError(f"--optimizer muon needs torch.optim.Muon (torch >= 2.9); this is torch {torch.__version__}")
    muon = Muon(hidden, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
    return Optimizers(muon, adamw)


def param_groups(model: torch.nn.Module, weight_decay: float,
                 exclude: Collection[torch.nn.Parameter] = ()) -> list[dict]:
    """AdamW's two groups over `model`'s trainable parameters (less `exclude`): matrices and embeddings
    (dim >= 2) decay, biases and LayerNorm gains do not, since they only shift or scale activations and
    shrinking them toward zero is no useful prior (nanoGPT, GPT-3)."""
    skip = {id(p) for p in exclude}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in skip]  # a tied weight once
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


_TorchMuon = getattr(torch.optim, "Muon", object)  # torch >= 2.9; `object` keeps this module importable before


class Muon(_TorchMuon):
    """torch.optim.Muon, except that on a CPU without native bfloat16 (AVX2, AVX-512 without BF16) the
    Newton-Schulz iterations run in float32: torch's run them in bfloat16, which such CPUs emulate about a
    hundred times slower, enough to make the optimizer cost several times the forward and backward passes.
    Where bfloat16 is native (CUDA, AMX, AVX512-BF16) this is torch's optimizer unchanged."""

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"]]
        if not params or params[0].device.type != "cpu" or hardware.cpu().bf16_without_emulation:
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay, momentum = group["lr"], group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - momentum)
                update = p.grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = newton_schulz(update.float(), group["ns_coefficients"], group["ns_steps"], group["eps"])
                p.mul_(1 - lr * decay)
                p.add_(update.to(p.dtype), alpha=-adjusted_lr(lr, group["adjust_lr_fn"], p.shape))
        return loss


def newton_schulz(g: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float) -> torch.Tensor:
    """Muon's quintic Newton-Schulz iteration (Jordan et al. 2024), in `g`'s own dtype: an approximately
    orthogonal matrix with `g`'s singular vectors, as torch.optim.Muon computes it in bfloat16."""
    a, b, c = coefficients
    x = g.T if g.size(0) > g.size(1) else g
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if g.size(0) > g.size(1) else x


def adjusted_lr(lr: float, how: str | None, shape: torch.Size) -> float:
    """Muon's per-matrix learning rate: Keller Jordan's sqrt(max(1, A/B)), or Moonshot's 0.2 sqrt(max(A, B))
    (`match_rms_adamw`: the update's RMS of AdamW's, so AdamW's learning rate carries over)."""
    rows, cols = shape[:2]
    if how == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(rows, cols))
    return lr * math.sqrt(max(1, rows / cols)) if how in (None, "original") else lr


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

