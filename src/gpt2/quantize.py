"""Weight-only int8 quantization for faster batch-1 decoding on CPU.

Decoding one token reads every weight once; int8 weights are a quarter of fp32's bytes, and on CPUs with
AVX-512 the int8 kernel runs a matrix-vector product faster than fp32's. `quantize_int8` stores
each Linear weight (and the tied token embedding / lm_head) as int8 with one scale per output channel
(symmetric, absmax / 127) and multiplies with `torch.ops.aten._weight_int8pack_mm`, the CPU kernel gpt-fast
uses; it takes bfloat16 activations, so the matmul inputs are cast to bfloat16 and its outputs back to the
model's dtype. LayerNorm, attention, the KV cache and biases stay in the model's dtype.

For inference only: the int8 weights are buffers, not parameters, and there are no gradients.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2.model import GPT

# Rows (tokens x batch) above which a matmul dequantizes the weight and runs a bfloat16 GEMM instead of the
# int8 kernel: the kernel is a fast matrix-vector product but slower than oneDNN's GEMM for wide inputs
# (prompt prefill, large batches): where the crossover lay on the machines measured (docs/benchmarks.md).
_KERNEL_MAX_ROWS = 16
_COMPUTE_DTYPE = torch.bfloat16  # what the int8 kernel multiplies in (it is slow for float32 and float16)


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: `weight ≈ q * scales[:, None]`, q in [-127, 127], scales in bfloat16.

    The scale is rounded to bfloat16 before the weights are divided by it, so the kernel's bfloat16 scale
    is exactly the one the int8 values were made with.
    """
    w = weight.detach().float()
    scales = (w.abs().amax(dim=1) / 127).clamp(min=1e-12).to(_COMPUTE_DTYPE)
    q = torch.round(w / scales.float().unsqueeze(1)).clamp(-127, 127).to(torch.int8)
    return q, scales


class Int8Linear(nn.Module):
    """`nn.Linear` with an int8 weight (out_features, in_features) and per-output-channel scales."""

    def __init__(self, weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight)
        self.register_buffer("scales", scales)
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        q, scales = quantize_weight(linear.weight)
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        return cls(q, scales, bias)

    def dequantize(self) -> torch.Tensor:
        """The weight as the kernel sees it (bfloat16 products of the int8 values and scales, in float32)."""
        return self.weight.float() * self.scales.float().unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).to(_COMPUTE_DTYPE)
        scales = self.scales.to(_COMPUTE_DTYPE)  # a no-op unless the module was cast after quantizing
        if x2.size(0) <= _KERNEL_MAX_ROWS:
            y = torch.ops.aten._weight_int8pack_mm(x2, self.weight, scales)
        else:
            y = F.linear(x2, self.weight.to(_COMPUTE_DTYPE)) * scales  # int8 values are exact in bfloat16
        y = y.to(x.dtype).view(*x.shape[:-1], self.out_features)
        return y + self.bias.to(x.dtype) if self.bias is not None else y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}, int8 per-channel"


class Int8Embedding(nn.Module):
    """Token embedding that looks up rows of an Int8Linear's weight (GPT-2 ties wte and lm_head)."""

    def __init__(self, linear: Int8Linear, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight, self.scales, self.dtype = linear.weight, linear.scales, dtype  # shared, not copied

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return (self.weight[idx].to(self.dtype) * self.scales[idx].to(self.dtype).unsqueeze(-1))


def quantize_int8(model: GPT) -> GPT:
    """Replace every nn.Linear (attention, MLP, lm_head) by an Int8Linear under the same name, in place;
    the tied token embedding becomes an Int8Embedding over lm_head's int8 weight. Returns the model, in
    eval mode. Activations, LayerNorms, biases and the KV cache keep the model's dtype (fp32 or bf16)."""
    dtype = model.transformer.ln_f.weight.dtype
    tied = model.lm_head.weight is model.transformer.wte.weight
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear.from_linear(child))
    if tied:
        model.transformer.wte = Int8Embedding(model.lm_head, dtype)
    return model.eval().requires_grad_(False)

