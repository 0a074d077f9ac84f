"""The model against transformers' GPT2LMHeadModel (an independent implementation) and its own invariants."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from gpt2.checkpoint import from_hf_state_dict
from gpt2.config import GPTConfig
from gpt2.errors import ConfigError
from gpt2.model import GPT, KVCache

TOL = dict(atol=1e-5, rtol=1e-5)  # fp32, same weights, different kernels


def tiny_pair(seed: int = 0, **overrides) -> tuple[GPT, GPT2LMHeadModel]:
    """A randomly initialised HF model (eager attention, no dropout) and ours holding the same weights."""
    kw = dict(n_layer=2, n_embd=64, n_head=4, vocab_size=97, n_positions=48,
              resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=96, eos_token_id=96)
    kw.update(overrides)
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(**kw, attn_implementation="eager")).eval()
    # HF initialises biases and LayerNorms to constants; randomise them so the comparison covers them.
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    config = GPTConfig(**{k: kw[k] for k in ("n_layer", "n_embd", "n_head", "vocab_size", "n_positions",
                                             "bos_token_id", "eos_token_id")})
    ours = GPT(config)
    shapes = {k: v.shape for k, v in ours.state_dict().items() if k != "lm_head.weight"}
    ours.load_state_dict(from_hf_state_dict(hf.state_dict(), shapes))
    return ours.eval(), hf


@pytest.mark.parametrize(
    "preset, expected",
    [("124M", 124_439_808), ("355M", 354_823_168), ("774M", 774_030_080), ("1558M", 1_557_611_200)],
)
def test_preset_parameter_counts_match_transformers(preset, expected):
    config = GPTConfig.from_preset(preset)
    with torch.device("meta"):  # shapes only, no memory
        ours = GPT(config).num_parameters()
        hf = GPT2LMHeadModel(GPT2Config(n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd))
        theirs = sum(p.numel() for p in hf.parameters())
    assert ours == theirs == expected


def test_logits_and_loss_match_transformers():
    ours, hf = tiny_pair()
    idx = torch.randint(0, 97, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(idx, labels=idx)  # HF shifts labels inside; ours takes the shifted targets
        logits, loss = ours(idx[:, :-1], targets=idx[:, 1:])
        full, no_loss = ours(idx)
    torch.testing.assert_close(full, expected.logits, **TOL)
    torch.testing.assert_close(logits, expected.logits[:, :-1], **TOL)
    torch.testing.assert_close(loss, expected.loss, **TOL)
    assert no_loss is None
    # ignore_index -100 behaves like HF's
    targets = idx[:, 1:].clone()
    targets[:, :10] = -100
    with torch.no_grad():
        _, masked = ours(idx[:, :-1], targets=targets)
        hf_masked = hf(idx, labels=torch.cat([idx[:, :1], targets], dim=1)).loss
    torch.testing.assert_close(masked, hf_masked, **TOL)
    assert not torch.isclose(masked, loss)


def test_hidden_states_match_transformers_last_hidden_state():
    ours, hf = tiny_pair(seed=8)
    idx = torch.randint(0, 97, (2, 25), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        hidden = ours.hidden_states(idx)
        expected = hf.transformer(idx).last_hidden_state  # after ln_f, as ours
        logits, _ = ours(idx)
    assert hidden.shape == (2, 25, 64)
    torch.testing.assert_close(hidden, expected, **TOL)
    torch.testing.assert_close(ours.lm_head(hidden), logits, **TOL)

def test_kv_cache_decoding_equals_full_forward():
    ours, _ = tiny_pair(seed=2)
    idx = torch.randint(0, 97, (2, 30), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full, _ = ours(idx)
        cache = ours.new_kv_cache(2, 30)
        pieces = [ours(idx[:, :7], kv_cache=cache)[0]]  # a prompt, then one token at a time, then a chunk
        for t in range(7, 20):
            pieces.append(ours(idx[:, t : t + 1], kv_cache=cache)[0])
        pieces.append(ours(idx[:, 20:], kv_cache=cache)[0])
    assert cache.length == 30
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, **TOL)
    with torch.no_grad(), pytest.raises(ValueError, match="KV cache"):
        ours(idx[:, :1], kv_cache=cache)


def test_growing_kv_cache_decodes_as_the_preallocated_one():
    torch.manual_seed(5)
    ours = GPT(GPTConfig(n_layer=2, n_embd=32, n_head=2, vocab_size=97, n_positions=256)).eval()
    idx = torch.randint(0, 97, (2, 200), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        full, _ = ours(idx)
        cache = ours.new_kv_cache(2, 200, reserve=5)
        assert (cache.capacity, cache.max_length) == (64, 200)
        pieces, capacities = [ours(idx[:, :5], kv_cache=cache)[0]], []
        for t in range(5, 200):  # one token at a time: the CPU one-query path reads the whole buffer
            pieces.append(ours(idx[:, t : t + 1], kv_cache=cache)[0])
            capacities.append(cache.capacity)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, **TOL)
    # grows when full, by a quarter and at least 64 positions, in multiples of 64, up to max_length
    assert sorted(set(capacities)) == [64, 128, 192, 200]
    assert capacities.index(128) == 64 - 5 and capacities.index(200) == 192 - 5
    with torch.no_grad(), pytest.raises(ValueError, match="KV cache"):
        ours(idx[:, :1], kv_cache=cache)


def test_kv_cache_drop_front_forgets_positions_and_stays_contiguous():
    config = GPTConfig(n_layer=2, n_embd=32, n_head=2, vocab_size=97, n_positions=256)
    cache = KVCache(config, batch_size=3, max_length=100, reserve=10)
    cache.k.normal_(), cache.v.normal_()
    cache.length = 10
    kept_k, kept_v = cache.k[:, :, :, 4:10].clone(), cache.v[:, :, :, 4:10].clone()
    cache.drop_front(4)
    assert cache.length == 6 and cache.max_length == 96
    assert cache.k.is_contiguous() and cache.v.is_contiguous()
    assert torch.equal(cache.k[:, :, :, :6], kept_k) and torch.equal(cache.v[:, :, :, :6], kept_v)
    with pytest.raises(ValueError, match="can drop 0 to 6 positions; got 7"):
        cache.drop_front(7)


def test_kv_cache_concat_aligns_the_rows_ends_and_pads_the_shorter_in_front():
    config = GPTConfig(n_layer=2, n_embd=32, n_head=2, vocab_size=97, n_positions=256)
    a, b = KVCache(config, batch_size=2, max_length=20), KVCache(config, batch_size=1, max_length=8, reserve=4)
    for cache, length in ((a, 7), (b, 3)):
        cache.k.normal_(), cache.v.normal_()
        cache.length = length
    merged = KVCache.concat([a, b], max_length=30, reserve=8)
    assert (merged.batch_size, merged.length, merged.max_length) == (3, 7, 30) and merged.capacity >= 8
    for name in ("k", "v"):
        m = getattr(merged, name)
        assert torch.equal(m[:, :2, :, :7], getattr(a, name)[:, :, :, :7])
        assert torch.equal(m[:, 2:, :, 4:7], getattr(b, name)[:, :, :, :3])
    assert not merged.k[:, 2:, :, :4].any()  # left padding, hidden by the caller's attention mask


def test_left_padded_rows_equal_the_unpadded_row_with_and_without_cache():
    ours, _ = tiny_pair(seed=4)
    g = torch.Generator().manual_seed(5)
    lengths = [12, 5, 9, 1]
    seqs = [torch.randint(0, 97, (n + 6,), generator=g) for n in lengths]  # prompt + 6 decoded tokens
    width = max(lengths)
    idx = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        idx[i, width - n :] = seqs[i][:n]
        mask[i, width - n :] = 1
    with torch.no_grad():
        batch_logits, _ = ours(idx, attention_mask=mask)
        cache = ours.new_kv_cache(len(seqs), width + 6)
        ours(idx, kv_cache=cache, attention_mask=mask)
        steps = []
        for t in range(6):
            mask = torch.cat([mask, torch.ones(len(seqs), 1, dtype=torch.long)], dim=1)
            new = torch.stack([s[n + t] for s, n in zip(seqs, lengths, strict=True)]).view(-1, 1)
            steps.append(ours(new, kv_cache=cache, attention_mask=mask)[0][:, 0])
        for i, (seq, n) in enumerate(zip(seqs, lengths, strict=True)):
            alone, _ = ours(seq.view(1, -1))
            torch.testing.assert_close(batch_logits[i, width - n :], alone[0, :n], **TOL)
            torch.testing.assert_close(torch.stack([s[i] for s in steps]), alone[0, n:], **TOL)


def test_residual_projection_init_is_scaled_by_depth():
    torch.manual_seed(0)
    config = GPTConfig(n_layer=8, n_embd=256, n_head=4, vocab_size=1000, n_positions=64)
    model = GPT(config)
    scaled = 0.02 / math.sqrt(2 * config.n_layer)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            assert p.std().item() == pytest.approx(scaled, rel=0.05), name
        elif name.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            assert p.std().item() == pytest.approx(0.02, rel=0.05), name
        elif name.endswith("bias") and ".ln_" not in name:
            assert torch.all(p == 0), name
    assert model.lm_head.weight is model.transformer.wte.weight


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(n_embd=64, n_head=5), "n_embd"),
        (dict(n_layer=-1), "n_layer"),
        (dict(n_embd=0), "n_embd"),
        (dict(vocab_size=-5), "vocab_size"),
        (dict(n_positions=2.5), "n_positions"),
        (dict(resid_pdrop=1.5), "resid_pdrop"),
    ],
)
def test_invalid_config_values_raise(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        GPTConfig(**kwargs)


def test_config_json_validation(tmp_path):
    good = GPTConfig.from_preset("nano", vocab_size=97).to_dict()
    assert GPTConfig.from_dict(good) == GPTConfig.from_preset("nano", vocab_size=97)
    path = tmp_path / "config.json"
    path.write_text('{"n_layer": 2, "n_embd": 64, "n_head": 2, "n_experts": 8}')
    with pytest.raises(ConfigError, match=r"config\.json.*unknown field 'n_experts'"):
        GPTConfig.load(path)
    with pytest.raises(ConfigError, match="activation_function.*'relu'"):
        GPTConfig.from_dict({**good, "activation_function": "relu"})
    with pytest.raises(ConfigError, match="model_type"):
        GPTConfig.from_dict({**good, "model_type": "llama"})
    with pytest.raises(ConfigError, match="unknown model size"):
        GPTConfig.from_preset("7B")


# ---- decode path ----

def test_last_logits_only_equals_the_full_forwards_last_position():
    ours, _ = tiny_pair(seed=6)
    ours.requires_grad_(False)  # inference models: F.linear must not broadcast the weight over a strided view
    idx = torch.randint(0, 97, (3, 20), generator=torch.Generator().manual_seed(7))
    mask = torch.ones_like(idx)
    mask[1, :5] = 0
    with torch.no_grad():
        full, _ = ours(idx, attention_mask=mask)
        last, _ = ours(idx, attention_mask=mask, last_logits_only=True)
        cache = ours.new_kv_cache(3, 20)
        cached, _ = ours(idx, kv_cache=cache, attention_mask=mask, last_logits_only=True)
    assert last.shape == cached.shape == (3, 1, 97)
    torch.testing.assert_close(last, full[:, -1:], **TOL)
    torch.testing.assert_close(cached, full[:, -1:], **TOL)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_one_query_attention_matches_sdpa(dtype, tol):
    """The CPU decoding step's attention equals PyTorch's SDPA, with and without a padding mask."""
    from gpt2.model import _one_query_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, n, 8, generator=g).to(dtype) for n in (1, 5, 5))
    mask = torch.ones(3, 1, 1, 5, dtype=torch.bool)
    mask[1, ..., :2] = False  # row 1: two padding keys
    # The cache's buffer holds 3 more positions than are filled; they must not count.
    k_buffer, v_buffer = (torch.cat([t, torch.randn(3, 2, 3, 8, generator=g).to(dtype)], dim=2) for t in (k, v))
    for m in (None, mask):
        expected = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=m)
        torch.testing.assert_close(_one_query_attention(q, k, v, 5, m).float(), expected, atol=tol, rtol=tol)
        torch.testing.assert_close(_one_query_attention(q, k_buffer, v_buffer, 5, m).float(), expected,
                                   atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_cross_entropy_equals_torchs_with_ignored_targets(dtype):
    """The AVX2 path of the training loss (gpt2.cross_entropy) against F.cross_entropy: loss and gradient."""
    from gpt2.cross_entropy import FusedCrossEntropy

    torch.manual_seed(0)
    logits = (3 * torch.randn(64, 1000)).to(dtype).float()
    targets = torch.randint(0, 1000, (64,))
    targets[::7] = -100
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    ours = FusedCrossEntropy.apply(a, targets)
    theirs = torch.nn.functional.cross_entropy(b, targets, ignore_index=-100)
    (2.5 * ours).backward()
    (2.5 * theirs).backward()
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)
    assert a.grad[::7].abs().max() == 0  # ignored rows get no gradient
    assert ours.item() > 1  # peaked random logits: a loss far from zero, so the check is not vacuous


def test_training_loss_takes_the_fused_path_only_where_torchs_is_slow(monkeypatch):
    from gpt2 import cross_entropy as ce

    calls = []
    monkeypatch.setattr(ce.FusedCrossEntropy, "apply", lambda *a: calls.append(1) or torch.tensor(0.0))
    logits, targets = torch.randn(4, 10, requires_grad=True), torch.randint(0, 10, (4,))
    for slow in (True, False):
        monkeypatch.setattr(ce, "_slow_log_softmax_backward", lambda slow=slow: slow)
        ce.cross_entropy(logits, targets)
    ce.cross_entropy(logits.detach(), targets)  # no gradient wanted: torch's (forward only) is fine anywhere
    assert calls == [1]
