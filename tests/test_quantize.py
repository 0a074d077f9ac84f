"""Int8 weights: each product against an independent restatement (the dequantized float32 matmul; the
engine's activation quantization), the quantized model against fp32, with int8 and bfloat16 activations."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from gpt2 import hardware
from gpt2.config import GPTConfig
from gpt2.model import GPT
from gpt2.quantize import Int8Embedding, Int8Linear, quantize_int8, quantize_weight
from gpt2.sampling import generate


def trained_like_model(seed: int = 0) -> GPT:
    """A small model with sharper-than-init weights (x4), so logits spread as in a trained model and greedy
    paths depend on the weights. Biases and LayerNorms randomised so quantizing has them to keep."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(n_layer=2, n_embd=128, n_head=4, vocab_size=503, n_positions=64)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0) if p.dim() == 2 else p.add_(torch.randn_like(p) * 0.1)
    return model


def test_quantize_weight_round_trips_within_half_a_step():
    w = torch.randn(64, 96) * torch.logspace(-3, 1, 64).unsqueeze(1)  # rows of very different scales
    w[3] = 0.0  # an all-zero row must not divide by zero
    q, scales = quantize_weight(w)
    assert q.dtype == torch.int8 and scales.dtype == torch.bfloat16 and q.abs().max() <= 127
    error = (q.float() * scales.float().unsqueeze(1) - w).abs()
    assert torch.all(error <= scales.float().unsqueeze(1) / 2 * (1 + 1e-6))
    assert torch.all(q[3] == 0)


@pytest.mark.parametrize("rows", [1, 3, 8, 20])  # 2 x rows: the int8 kernel (<= 16 rows), the bf16 GEMM path
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bf16_activations_equal_the_dequantized_matmul(rows, dtype):
    torch.manual_seed(rows)
    linear = nn.Linear(96, 200, bias=False)
    q = Int8Linear.from_linear(linear, activations="bf16")
    x = torch.randn(2, rows, 96).to(dtype)
    y = q(x)
    assert y.shape == (2, rows, 200) and y.dtype == dtype
    # Reference: float32 matmul of the same bfloat16 inputs with the dequantized weight. The kernel
    # accumulates in float32 and rounds to bfloat16 (measured: <= 2^-8 relative), the wide-input path
    # rounds twice (after the GEMM and after scaling: 2^-7). Besides, float32 accumulation-order noise is
    # relative to the sum of the products' magnitudes (large where they cancel).
    assert (q._derived is None) == (2 * rows <= 16)  # the bfloat16 copy: made for wide inputs only
    xb = x.to(torch.bfloat16).float()
    dense = q.dequantize()
    reference = xb @ dense.t()
    magnitude = xb.abs() @ dense.abs().t()
    error = (y.float() - reference).abs()
    rtol = 2**-8 if 2 * rows <= 16 else 2**-7
    assert torch.all(error <= rtol * reference.abs() + 1e-5 * magnitude)
    assert error.max() > 0  # bfloat16 rounding is there: the check is not vacuous
    with torch.no_grad():  # and the weight is close to the float32 layer's
        assert (y.float() - linear(x.float())).norm() / linear(x.float()).norm() < 0.01
    copied = copy.deepcopy(q)  # a copy drops the wide copy and remakes it on demand
    assert copied._derived is None
    torch.testing.assert_close(copied(x), y, rtol=0, atol=0)


def engine_quantize(x: torch.Tensor) -> torch.Tensor:
    """fbgemm's dynamic quantization of an input, restated: asymmetric over [min(x, 0), max(x, 0)] of the whole
    tensor, 127 levels (reduce_range), zero point rounded; returns the dequantized values."""
    low, high = x.min().clamp(max=0), x.max().clamp(min=0)
    step = (high - low) / 127
    zero = torch.round(-low / step).clamp(0, 127)
    return (torch.round(x / step) + zero).clamp(0, 127).sub(zero).mul(step)


@pytest.mark.parametrize("rows", [1, 2, 7, 32])
def test_int8_activations_equal_a_restatement_of_per_row_quantization(rows):
    torch.manual_seed(rows)
    linear = nn.Linear(768, 300)
    with torch.no_grad():
        linear.bias.normal_()
    q = Int8Linear.from_linear(linear, activations="int8")
    x = torch.randn(rows, 768) * 3 + 0.5
    x[:, 5] *= 20  # an outlier dimension, as GPT-2's hidden states have
    y = q(x).double()
    if q._derived[0] is None:
        pytest.skip(f"no quantized engine takes per-channel weights in this build ({torch.backends.quantized.engine})")
    w, b = q.dequantize().double(), linear.bias.detach().double()
    if rows == 1:  # the engine quantizes the row as it is
        quantized = engine_quantize(x).double()
    else:  # each row mapped onto [-1, 1] first, so every row gets its own scale
        low, high = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
        center, half = (high + low) / 2, (high - low) / 2
        quantized = engine_quantize((x - center) / half).double() * half.double() + center.double()
    magnitude = x.abs().double() @ w.abs().t()
    # one row: the same values (float32 accumulation noise only); many: rounding at the rows' ends may differ
    # by an ulp, measured <= 1e-3 of the magnitude, 40x below the quantization error itself
    tolerance = 1e-6 if rows == 1 else 3e-3
    restated = quantized @ w.t() + b
    assert torch.all((y - restated).abs() <= tolerance * magnitude)
    exact = x.double() @ w.t() + b
    # not vacuous: the activations were quantized, and the restatement explains that error
    assert (y - restated).norm() < 0.2 * (y - exact).norm()
    assert (y - exact).norm() / exact.norm() < 0.06
    # the row's result does not depend on the rows batched with it (per-row scales), up to the same flips of a
    # rounding at the rows' ends (a per-tensor scale would move it by the quantization error itself)
    if rows > 2:
        assert torch.all((q(x[:2]) - q(x)[:2]).abs() <= tolerance * magnitude[:2].float())


def test_int8_activations_without_a_quantized_engine_fall_back_to_the_dequantized_weight(monkeypatch):
    def no_engine(*args):
        raise RuntimeError("Didn't find engine for operation quantized::linear_prepack NoQEngine")
    monkeypatch.setattr(torch.ops.quantized, "linear_prepack", no_engine)
    torch.manual_seed(0)
    q = Int8Linear.from_linear(nn.Linear(64, 32), activations="int8")
    x = torch.randn(3, 64)
    torch.testing.assert_close(q(x), x @ q.dequantize().t() + q.bias, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("activations", ["int8", "bf16"])
def test_int8_linear_adds_the_bias_in_the_input_dtype(activations):
    torch.manual_seed(0)
    linear = nn.Linear(32, 48)
    with torch.no_grad():
        linear.bias.normal_()
    q = Int8Linear.from_linear(linear, activations)
    no_bias = Int8Linear(q.weight, q.scales, None, activations)
    for rows in (1, 5):
        x = torch.randn(rows, 32)
        # bf16: added after the product, exactly; int8: inside the engine's float32 epilogue
        tolerance = 0 if activations == "bf16" else 1e-5
        torch.testing.assert_close(q(x), no_bias(x) + linear.bias, rtol=tolerance, atol=tolerance)
    assert q(x.bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("activations", ["int8", "bf16"])
def test_quantized_model_is_close_to_fp32(activations):
    model = trained_like_model()
    quantized = quantize_int8(copy.deepcopy(model), activations)
    idx = torch.randint(0, 503, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, loss = model(idx[:, :-1], targets=idx[:, 1:])
        logits, q_loss = quantized(idx[:, :-1], targets=idx[:, 1:])
    assert logits.dtype == torch.float32
    # int8 weights (absmax/127 per row) and bfloat16 matmul inputs: measured 1.7% relative error of the
    # logits, loss within 0.02%, 98% same argmax; 7-bit activations per row instead: 3.2%, 0.016%, 97%
    relative = ((logits - expected).norm() / expected.norm()).item()
    assert relative < (0.03 if activations == "bf16" else 0.045), relative
    assert abs(q_loss.item() - loss.item()) / loss.item() < 0.005
    assert (logits.argmax(-1) == expected.argmax(-1)).float().mean() > 0.95


@pytest.mark.parametrize("activations", ["int8", "bf16"])
def test_quantized_greedy_decoding_mostly_agrees_with_fp32(activations):
    model = trained_like_model(seed=3)
    quantized = quantize_int8(copy.deepcopy(model), activations)
    prompts = torch.randint(0, 503, (4, 8), generator=torch.Generator().manual_seed(2)).tolist()
    fp32 = generate(model, prompts, max_new_tokens=24, temperature=0, eos_token_id=None)
    int8 = generate(quantized, prompts, max_new_tokens=24, temperature=0, eos_token_id=None)
    # Greedy paths agree until a near-tie flips, then diverge; compare the first 8 tokens of each row.
    same = sum(a == b for s, t in zip(fp32, int8, strict=True)
               for a, b in zip(s.tokens[:8], t.tokens[:8], strict=True))
    assert same >= 0.9 * 4 * 8, same


def test_quantize_keeps_names_ties_and_dtype():
    model = trained_like_model()
    names = {name for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    n_parameters = sum(p.numel() for p in model.parameters())
    quantized = quantize_int8(model)
    assert quantized.num_parameters() == n_parameters
    assert quantized is model and not quantized.training
    assert {name for name, m in quantized.named_modules() if isinstance(m, Int8Linear)} == names
    assert isinstance(quantized.transformer.wte, Int8Embedding)
    assert quantized.transformer.wte.weight is quantized.lm_head.weight  # still one copy of the vocabulary
    assert quantized.dtype == torch.float32 and quantized.new_kv_cache(1, 8).k.dtype == torch.float32
    assert quantized.transformer.h[0].attn.c_attn.weight.dtype == torch.int8
    # auto: int8 activations where bfloat16 is emulated (fbgemm's integer products), bfloat16 where native
    expected = "bf16" if hardware.cpu().native_bf16 else "int8"
    assert quantized.lm_head.activations == expected == hardware.int8_activations()
    with pytest.raises(ValueError, match="activations must be one of auto, int8, bf16; got 'fp8'"):
        quantize_int8(trained_like_model(), activations="fp8")
    bf16 = quantize_int8(trained_like_model().to(torch.bfloat16))
    assert bf16.dtype == torch.bfloat16
    with torch.no_grad():
        assert bf16(torch.tensor([[1, 2, 3]]))[0].dtype == torch.bfloat16


def test_int8_embedding_dequantizes_rows():
    model = trained_like_model()
    wte = model.transformer.wte.weight.detach().clone()
    quantized = quantize_int8(model)
    idx = torch.tensor([[0, 5, 502]])
    rows = quantized.transformer.wte(idx)
    assert rows.shape == (1, 3, 128) and rows.dtype == torch.float32
    torch.testing.assert_close(rows[0], quantized.lm_head.dequantize()[idx[0]])
    assert ((rows[0] - wte[idx[0]]).norm() / wte[idx[0]].norm()) < 0.01
