"""Weight-only int8 quantization for faster batch-1 decoding on CPU.

Decoding one token reads every weight once; int8 weights are a quarter of fp32's bytes, and on CPUs with
AVX-512 the int8 kernel runs a matrix-vector product faster than fp32's. `quantize_int8` stores
each Linear weight (and the tied token embedding / lm_head) as int8 with one scale per output channel
(symmetric, absmax / 127) and multiplies with `torch.ops.aten._weight_int8pack_mm`, the CPU kernel gpt-fast
uses; it takes bfloat16 activations, so the matmul inputs are cast to bfloat16 and its outputs back to the
model's dtype. LayerNorm, attention, the KV cache and biases stay in the model's dtype.

Where bfloat16 is emulated (AVX2-only CPUs: no AVX512-BF16, no AMX) the kernel still wins for a few rows
(a batch-1 decoding step reads a quarter of the bytes), but a bfloat16 GEMM for wide inputs (prefill, a
sampling batch) is an order of magnitude slower than float32's. There, wide inputs go to a float32 copy of
the dequantized weight (`q * scale`, exact in float32), prepacked for oneDNN where it can, made on the first
wide input: `--dtype int8` is then as fast as float32 at any batch and faster at batch 1, and a model that
has run a wide input holds that copy beside its int8 weights (docs/benchmarks.md, int8 on AVX2). Where
bfloat16 is native, wide inputs run a bfloat16 GEMM of the int8 values (exact in bfloat16) times the scales,
through a bfloat16 copy made once (oneDNN-packed where it can): converting the weight on every call made a
batch of 32 slower in int8 than in float32.

For inference only: the int8 weights are buffers, not parameters, and there are no gradients.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2.hardware import cpu, packed_dtypes
from gpt2.model import GPT

# Rows (tokens x batch) above which a matmul dequantizes the weight and runs a bfloat16 GEMM instead of the
# int8 kernel: the kernel is a fast matrix-vector product but slower than oneDNN's GEMM for wide inputs
# (prompt prefill, large batches): where the crossover lay on the machines measured (docs/benchmarks.md).
_KERNEL_MAX_ROWS = 16
# Where bfloat16 is emulated the kernel beats oneDNN's packed float32 GEMM up to 2-4 rows (up to 6 for the
# 50257 x 768 vocabulary projection): measured on an AVX2 EPYC (docs/benchmarks.md, int8 on AVX2).
_KERNEL_MAX_ROWS_EMULATED = 3
_COMPUTE_DTYPE = torch.bfloat16  # what the int8 kernel multiplies in (it is slow for float32 and float16)


@functools.cache
def wide_inputs_in_fp32() -> bool:
    """True where bfloat16 GEMMs are emulated, so wide inputs run a float32 GEMM of the dequantized weight."""
    return not cpu().native_bf16


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
        self._wide: torch.Tensor | None = None  # the weight for wide inputs, made on the first one

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        q, scales = quantize_weight(linear.weight)
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        return cls(q, scales, bias)

    def dequantize(self) -> torch.Tensor:
        """The weight as the kernel sees it (bfloat16 products of the int8 values and scales, in float32)."""
        return self.weight.float() * self.scales.float().unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // self.in_features
        if wide_inputs_in_fp32() and rows > _KERNEL_MAX_ROWS_EMULATED:
            y = self._wide_product(x.reshape(-1, self.in_features).float())
        else:
            x2 = x.reshape(-1, self.in_features).to(_COMPUTE_DTYPE)
            scales = self.scales.to(_COMPUTE_DTYPE)  # a no-op unless the module was cast after quantizing
            if rows <= _KERNEL_MAX_ROWS:
                y = torch.ops.aten._weight_int8pack_mm(x2, self.weight, scales)
            else:
                y = self._wide_product(x2) * scales  # int8 values are exact in bfloat16
        y = y.to(x.dtype).view(*x.shape[:-1], self.out_features)
        return y + self.bias.to(x.dtype) if self.bias is not None else y

    def __getstate__(self):  # copies (copy.deepcopy, pickling) drop the wide copy: a blocked tensor has no storage
        state = super().__getstate__().copy()
        state["_wide"] = None
        return state

    def _wide_product(self, x2: torch.Tensor) -> torch.Tensor:
        """x2 @ W^T for a wide input, in x2's dtype, through a copy of the weight made once (oneDNN-packed
        where it can be): float32 = the dequantized weight; bfloat16 = the int8 values (the caller scales)."""
        wide = self._wide
        if wide is None or wide.device != self.weight.device or wide.dtype != x2.dtype:
            dense = self.dequantize() if x2.dtype == torch.float32 else self.weight.to(x2.dtype)
            packable = dense.device.type == "cpu" and x2.dtype in packed_dtypes()
            self._wide = wide = torch.ops.mkldnn._reorder_linear_weight(dense, 32) if packable else dense
        if wide.layout == torch._mkldnn:
            return torch.ops.mkldnn._linear_pointwise(x2, wide, None, "none", [], "")
        return F.linear(x2, wide)

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

