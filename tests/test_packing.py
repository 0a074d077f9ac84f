"""Prepacked (oneDNN blocked layout) weights: the packed model against the same model unpacked."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from gpt2.checkpoint import save_pretrained
from gpt2.hardware import cpu, packed_dtypes
from gpt2.model import GPT
from gpt2.packing import PackedLinear, PackingError, can_pack, is_packed, pack_for_cpu, pack_if_possible
from gpt2.sampling import generate
from test_quantize import trained_like_model

pytestmark = pytest.mark.skipif(not can_pack(trained_like_model()), reason="this PyTorch has no oneDNN")
# oneDNN has a bf16 layout only where the CPU has AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT
BF16 = pytest.param(torch.bfloat16, marks=pytest.mark.skipif(
    torch.bfloat16 not in packed_dtypes(), reason=f"oneDNN packs no bf16 weights on this CPU: {cpu().describe()}"))


def packed_pair(dtype: torch.dtype, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    model = trained_like_model(seed).to(dtype)
    return model, pack_for_cpu(copy.deepcopy(model))


@pytest.mark.parametrize("dtype", [torch.float32, BF16])
@pytest.mark.parametrize("rows", [1, 7, 64])
def test_packed_linear_equals_linear(rows, dtype):
    torch.manual_seed(rows)
    linear = nn.Linear(96, 200).to(dtype)
    x = torch.randn(2, rows, 96).to(dtype)
    with torch.no_grad():
        if dtype == torch.float32:  # MKL's GEMM against oneDNN's, rounding differently
            torch.testing.assert_close(PackedLinear(linear)(x), linear(x), rtol=1e-5, atol=1e-5)
        else:  # the same oneDNN kernel on the same values, bit for bit
            assert torch.equal(PackedLinear(linear)(x), linear(x))


@pytest.mark.parametrize("dtype", [torch.float32, BF16])
def test_packed_gelu_is_gelu_of_the_product_rounded_once(dtype):
    torch.manual_seed(0)
    linear = nn.Linear(64, 256).to(dtype)
    x = torch.randn(9, 64).to(dtype)
    with torch.no_grad():
        exact = nn.functional.gelu(nn.functional.linear(x.double(), linear.weight.double(),
                                                        linear.bias.double()), approximate="tanh")
        fused = PackedLinear(linear, gelu="tanh")(x)
    assert fused.dtype == dtype
    # one rounding to the output dtype, after the GELU of a float32 accumulator (bfloat16: 2^-8 relative)
    rtol = 2**-8 if dtype == torch.bfloat16 else 1e-5
    assert torch.all((fused.double() - exact).abs() <= rtol * exact.abs() + 1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, BF16])
def test_packed_model_logits_and_loss_match(dtype):
    model, packed = packed_pair(dtype)
    idx = torch.randint(0, 503, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, loss = model(idx[:, :-1], targets=idx[:, 1:])
        logits, packed_loss = packed(idx[:, :-1], targets=idx[:, 1:])
    assert logits.dtype == dtype
    # float32: products rounded differently (1e-6 relative); bfloat16: the GELU rounded once instead of
    # twice, a difference of up to one bfloat16 step that the next layers carry (measured 0.7% of the norm)
    tol = 1e-5 if dtype == torch.float32 else 0.02
    assert ((logits.float() - expected.float()).norm() / expected.float().norm()).item() < tol
    assert abs(packed_loss.item() - loss.item()) < tol * loss.item()


def test_packed_sampling_matches_the_unpacked_model():
    # float32 logits differ by ~1e-6 relative (MKL vs oneDNN); a top-k draw can flip only where a uniform
    # number falls that close to a boundary of the cumulative distribution, which these seeds do not hit
    model, packed = packed_pair(torch.float32, seed=3)
    prompts = torch.randint(0, 503, (4, 8), generator=torch.Generator().manual_seed(2)).tolist()
    kwargs = dict(max_new_tokens=24, top_k=40, seed=7, eos_token_id=None)
    assert [s.tokens for s in generate(packed, prompts, **kwargs)] == \
        [s.tokens for s in generate(model, prompts, **kwargs)]


def test_pack_replaces_every_linear_and_keeps_the_embedding():
    model = trained_like_model()
    names = {name for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    packed = pack_for_cpu(model)
    assert packed is model and not packed.training and is_packed(packed)
    assert {name for name, m in packed.named_modules() if isinstance(m, PackedLinear)} == names
    assert not any(isinstance(m, nn.Linear) for m in packed.modules())
    assert all(isinstance(b.mlp.act, nn.Identity) and b.mlp.c_fc.gelu == "tanh" for b in packed.transformer.h)
    assert isinstance(packed.transformer.wte, nn.Embedding)  # lookups keep the plain weight
    assert packed.num_parameters() == sum(v.numel() for k, v in state.items() if k != "lm_head.weight")
    assert not any(p.requires_grad for p in packed.parameters())
    # state_dict gives the plain layout back: the same keys and values as before packing
    after = packed.state_dict()
    assert after.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(after[key], value), key


def test_packed_model_saves_an_ordinary_checkpoint(tmp_path):
    model, packed = packed_pair(torch.float32)
    save_pretrained(packed, tmp_path / "ckpt")
    loaded = GPT.from_pretrained(tmp_path / "ckpt")
    assert not is_packed(loaded)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_packed_model_loads_state_dicts_and_deep_copies():
    model, packed = packed_pair(torch.float32)
    other = trained_like_model(seed=5)
    idx = torch.randint(0, 503, (2, 12), generator=torch.Generator().manual_seed(3))
    copied = copy.deepcopy(packed)
    assert is_packed(copied)
    packed.load_state_dict(other.state_dict())  # ordinary weights in, packed
    assert is_packed(packed)
    with torch.no_grad():
        torch.testing.assert_close(packed(idx)[0], other(idx)[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(copied(idx)[0], model(idx)[0], rtol=1e-5, atol=1e-5)  # the copy kept its own
    with pytest.raises(RuntimeError, match="size mismatch for lm_head.weight"):
        bad = other.state_dict()
        bad["lm_head.weight"] = bad["lm_head.weight"][:-1]
        packed.load_state_dict(bad)


def test_packed_layer_refuses_inputs_that_need_gradients():
    layer = PackedLinear(nn.Linear(8, 4))
    x = torch.randn(2, 8, requires_grad=True)
    with pytest.raises(PackingError, match="no gradients"):
        layer(x)
    with torch.no_grad():
        assert layer(x).shape == (2, 4)


def test_packed_layer_names_the_dtype_it_was_packed_for():
    packed = pack_for_cpu(trained_like_model())
    with pytest.raises(PackingError, match="packed for torch.float32 on the CPU; got torch.bfloat16"):
        packed.lm_head(torch.zeros(1, 128, dtype=torch.bfloat16))


def test_pack_refuses_what_it_cannot_pack():
    model = trained_like_model().to(torch.float16)
    assert not can_pack(model)
    with pytest.raises(PackingError, match="float32 or bfloat16 model on a CPU"):
        pack_for_cpu(model)


def test_a_dtype_without_a_packed_layout_falls_back_to_the_plain_one(monkeypatch):
    """An AVX2-only CPU has no bf16 layout: pack_if_possible keeps the plain model, which still samples."""
    monkeypatch.setattr("gpt2.packing.packed_dtypes", lambda: frozenset({torch.float32}))
    model = trained_like_model().to(torch.bfloat16)
    assert not can_pack(model)
    assert pack_if_possible(model) is model and not is_packed(model)
    with pytest.raises(PackingError, match="this machine packs"):
        pack_for_cpu(model)
    assert len(generate(model, [[1, 2, 3]], max_new_tokens=4, top_k=40, seed=0)[0].tokens) == 4
