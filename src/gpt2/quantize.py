"""Int8 weights for faster decoding on CPU, with int8 or bfloat16 activations.

Decoding one token reads every weight once; int8 weights are a quarter of fp32's bytes. `quantize_int8`
stores each Linear weight (and the tied token embedding / lm_head) as int8 with one scale per output
channel (symmetric, absmax / 127, the scale rounded to bfloat16) and multiplies in one of two ways:

- `activations="int8"` (dynamic quantization, what CTranslate2's int8 does): an int8 GEMM with int32
  accumulation, PyTorch's quantized engine behind `torch.ops.quantized.linear_dynamic` (fbgemm), which
  quantizes the activations on the fly. Its kernel takes one scale for the whole input, so each row is
  first mapped onto [-1, 1] and the product mapped back (every token gets its own scale, as in
  CTranslate2). The engine quantizes activations to 7 bits (`reduce_range`): on CPUs without VNNI its 8-bit
  products are summed in pairs in 16-bit registers, which 8-bit activations can overflow (measured: 8-bit
  gives garbage on an AVX2 EPYC). Integer products are native on AVX2, so there is no emulated-bfloat16
  trap at batch.
- `activations="bf16"` (weights only): `torch.ops.aten._weight_int8pack_mm`, the CPU kernel gpt-fast uses,
  for a few rows; wide inputs (prefill, a sampling batch) run a bfloat16 GEMM of the int8 values (exact in
  bfloat16) through a oneDNN-packed bfloat16 copy made once, times the scales.

`auto` picks int8 activations where bfloat16 is emulated (AVX2-only CPUs: there the bfloat16 kernel is
3-5x slower than fbgemm for one row and an order of magnitude slower for wide inputs) and bfloat16 where
it is native (AVX512-BF16, AMX: the path measured there). docs/benchmarks.md has the figures per class;
`benchmarks/bench_ctranslate2.py` times both where bf16 is native. Where the build has no quantized engine,
int8 activations fall back to a float32 GEMM of the dequantized weight: correct, no faster than fp32.

For inference only: the int8 weights are buffers, not parameters, and there are no gradients.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2.hardware import int8_activations, packed_dtypes
from gpt2.model import GPT

ACTIVATIONS = ("auto", "int8", "bf16")
# The engine quantizes int8 activations to [0, 127], where its 8-bit products could overflow (see above).
_REDUCE_RANGE = True
# Rows above which the bfloat16 path runs a GEMM instead of the int8 kernel: the kernel is a fast
# matrix-vector product but slower than oneDNN's GEMM for wide inputs (docs/benchmarks.md).
_KERNEL_MAX_ROWS = 16
_COMPUTE_DTYPE = torch.bfloat16  # what the weight-only kernel multiplies in (it is slow for float32 and float16)


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: `weight ≈ q * scales[:, None]`, q in [-127, 127], scales in bfloat16.

    The scale is rounded to bfloat16 before the weights are divided by it, so the bfloat16 kernel's scale is
    exactly the one the int8 values were made with (and fbgemm's, in double, too).
    """
    w = weight.detach().float()
    scales = (w.abs().amax(dim=1) / 127).clamp(min=1e-12).to(_COMPUTE_DTYPE)
    q = torch.round(w / scales.float().unsqueeze(1)).clamp(-127, 127).to(torch.int8)
    return q, scales


class Int8Linear(nn.Module):
    """`nn.Linear` with an int8 weight (out_features, in_features) and per-output-channel scales;
    `activations` is `int8` or `bf16` (see the module's docstring)."""

    def __init__(self, weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None,
                 activations: str = "int8") -> None:
        super().__init__()
        if activations not in ACTIVATIONS[1:]:
            raise ValueError(f"activations must be 'int8' or 'bf16'; got {activations!r}")
        self.out_features, self.in_features = weight.shape
        self.activations = activations
        self.register_buffer("weight", weight)
        self.register_buffer("scales", scales)
        self.register_buffer("bias", bias)
        self._derived: tuple | None = None  # what the products read besides the buffers, made on the first call

    @classmethod
    def from_linear(cls, linear: nn.Linear, activations: str = "int8") -> Int8Linear:
        q, scales = quantize_weight(linear.weight)
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        return cls(q, scales, bias, activations)

    def dequantize(self) -> torch.Tensor:
        """The weight the products use: int8 values times their row's scale, in float32."""
        return self.weight.float() * self.scales.float().unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        if self.activations == "int8":
            y = self._int8_product(x2.float()).to(x.dtype)  # the bias added inside, in float32
        else:
            y = self._bf16_product(x2).to(x.dtype)
            y = y + self.bias.to(x.dtype) if self.bias is not None else y
        return y.view(*x.shape[:-1], self.out_features)

    def _int8_product(self, x2: torch.Tensor) -> torch.Tensor:
        """x2 @ W^T + b in float32 with int8 activations (fbgemm)."""
        if self._derived is None:
            self._derived = self._pack_for_engine()
        with_bias, without_bias, row_sums, bias = self._derived
        if with_bias is None:  # no quantized engine in this build: `without_bias` is the dequantized weight
            return F.linear(x2, without_bias, bias)
        if x2.size(0) == 1:  # one row (a decoding step at batch 1): the engine's one scale is the row's
            return torch.ops.quantized.linear_dynamic(x2, with_bias, _REDUCE_RANGE)
        # Each row mapped onto [-1, 1] (x = center + half * u), so the engine's one scale is every row's own:
        # x @ W^T + b = half * (u @ W^T) + (center * (the sums of W's rows) + b).
        low, high = x2.amin(dim=1, keepdim=True), x2.amax(dim=1, keepdim=True)  # aminmax is 5-10x slower
        center, half = (high + low).mul_(0.5), (high - low).mul_(0.5).clamp_(min=1e-30)
        u = (x2 - center).div_(half)
        offset = torch.addmm(bias, center, row_sums) if bias is not None else center @ row_sums
        return offset.addcmul_(torch.ops.quantized.linear_dynamic(u, without_bias, _REDUCE_RANGE), half)

    def _pack_for_engine(self) -> tuple:
        """(prepacked weight with the bias, without it, the weight's row sums (1, out), the bias in float32):
        the engine's copies of the int8 values and scales, unchanged; (None, dequantized weight, None, bias)
        where the build has no quantized engine."""
        bias = self.bias.float() if self.bias is not None else None
        try:
            with warnings.catch_warnings():  # quantized dtypes are deprecated in torch 2.13; if they go, we fall back
                warnings.filterwarnings("ignore", message=".*quantized tensor creation functions", category=UserWarning)
                qweight = torch._make_per_channel_quantized_tensor(
                    self.weight.cpu(), self.scales.double().cpu(), torch.zeros(self.out_features, dtype=torch.long), 0)
            prepack = torch.ops.quantized.linear_prepack
            return prepack(qweight, bias), prepack(qweight, None), self.dequantize().sum(dim=1, keepdim=True).t(), bias
        except (RuntimeError, AttributeError):  # no engine (or none that takes per-channel scales)
            return None, self.dequantize(), None, bias

    def _bf16_product(self, x2: torch.Tensor) -> torch.Tensor:
        """x2 @ W^T with bfloat16 activations: the int8 kernel for a few rows, else a bfloat16 GEMM."""
        x2 = x2.to(_COMPUTE_DTYPE)
        scales = self.scales.to(_COMPUTE_DTYPE)  # a no-op unless the module was cast after quantizing
        if x2.size(0) <= _KERNEL_MAX_ROWS:
            return torch.ops.aten._weight_int8pack_mm(x2, self.weight, scales)
        if self._derived is None:
            dense = self.weight.to(_COMPUTE_DTYPE)  # int8 values are exact in bfloat16
            packable = dense.device.type == "cpu" and _COMPUTE_DTYPE in packed_dtypes()
            self._derived = (torch.ops.mkldnn._reorder_linear_weight(dense, 32) if packable else dense,)
        wide = self._derived[0]
        if wide.layout == torch._mkldnn:
            return torch.ops.mkldnn._linear_pointwise(x2, wide, None, "none", [], "") * scales
        return F.linear(x2, wide) * scales

    def __getstate__(self):  # copies (copy.deepcopy, pickling) drop the derived copies and remake them on demand
        state = super().__getstate__().copy()
        state["_derived"] = None
        return state

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}, int8 per-channel, {self.activations} activations"


class Int8Embedding(nn.Module):
    """Token embedding that looks up rows of an Int8Linear's weight (GPT-2 ties wte and lm_head)."""

    def __init__(self, linear: Int8Linear, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight, self.scales, self.dtype = linear.weight, linear.scales, dtype  # shared, not copied

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return (self.weight[idx].float() * self.scales[idx].float().unsqueeze(-1)).to(self.dtype)


def quantize_int8(model: GPT, activations: str = "auto") -> GPT:
    """Replace every nn.Linear (attention, MLP, lm_head) by an Int8Linear under the same name, in place;
    the tied token embedding becomes an Int8Embedding over lm_head's int8 weight. Returns the model, in
    eval mode. LayerNorms, biases, the attention and the KV cache keep the model's dtype (fp32 or bf16).
    activations: `int8`, `bf16` or `auto` (see the module's docstring)."""
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {', '.join(ACTIVATIONS)}; got {activations!r}")
    if model.device.type != "cpu":
        raise ValueError(f"int8 products run on the CPU only; this model is on {model.device}")
    activations = int8_activations() if activations == "auto" else activations
    dtype = model.transformer.ln_f.weight.dtype
    tied = model.lm_head.weight is model.transformer.wte.weight
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear.from_linear(child, activations))
    if tied:
        model.transformer.wte = Int8Embedding(model.lm_head, dtype)
    return model.eval().requires_grad_(False)
