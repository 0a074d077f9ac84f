"""Sampling: the logit filters on hand-built distributions, generation against transformers and against
itself (cache vs none, batch vs alone), stopping, streaming, argument errors and the CLI."""

from __future__ import annotations

import io
import json
import math
import re

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from gpt2.checkpoint import save_pretrained
from gpt2.cli import main
from gpt2.config import GPTConfig
from gpt2.errors import GPT2Error
from gpt2.model import GPT
from gpt2.sampling import (
    DecodeBatch,
    GenerationConfig,
    Sample,
    SampleRow,
    SamplingError,
    SamplingOptions,
    apply_temperature,
    filter_logits,
    generate,
    generate_text,
    left_pad,
    sample_from_logits,
    sample_tokens,
    sample_top_k,
    stream,
    top_k_filter,
    top_p_filter,
)

NEG = float("-inf")


def kept(logits: torch.Tensor) -> list[int]:
    return torch.nonzero(logits[0] > NEG).flatten().tolist()


def random_model(seed: int = 0, vocab_size: int = 97, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.from_preset("nano", vocab_size=vocab_size, **overrides)).eval()


@pytest.fixture(scope="module")
def tokenizer():
    from gpt2.tokenizer import Tokenizer

    text = "hello world. the quick brown fox jumps over the lazy dog; hello again, world! " * 20
    return Tokenizer.train([text], vocab_size=300)  # ASCII only: other characters stay single bytes


class ScriptedGPT(GPT):
    """The real model's plumbing (cache, padding, row dropping), but the logits for the token after t are
    `table[t]`: a model whose output we choose. `batch_sizes` records every forward's batch size."""

    def __init__(self, config: GPTConfig, table: torch.Tensor) -> None:
        super().__init__(config)
        self.table = table
        self.batch_sizes: list[int] = []

    def forward(self, idx, targets=None, **kwargs):
        super().forward(idx, **kwargs)  # fills the KV cache and checks lengths, as the real thing
        self.batch_sizes.append(idx.size(0))
        return self.table[idx[:, -1:] if kwargs.get("last_logits_only") else idx], None


def scripted(vocab_size: int, chain: list[int], strength: float = 50.0) -> ScriptedGPT:
    """A model that greedily continues chain[i] with chain[i + 1] (other tokens: uniform next token)."""
    assert len(set(chain[:-1])) == len(chain) - 1, "a token-to-token chain needs distinct tokens"
    table = torch.zeros(vocab_size, vocab_size)
    for a, b in zip(chain, chain[1:], strict=False):
        table[a, b] = strength
    return ScriptedGPT(GPTConfig.from_preset("nano", vocab_size=vocab_size), table).eval()


def text_model(tokenizer, text: str, prompt: str = "the"):
    """A scripted model that answers `prompt` with `text` and then <|endoftext|>."""
    prompt_ids, ids = tokenizer.encode(prompt), tokenizer.encode(text)
    return scripted(tokenizer.vocab_size, [prompt_ids[-1], *ids, tokenizer.eot_token_id]), prompt_ids


# ---- filters ----

def test_top_k_keeps_exactly_k_and_breaks_ties_by_index():
    logits = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0, 0.0]])
    assert kept(top_k_filter(logits, 1)) == [1]
    assert kept(top_k_filter(logits, 2)) == [1, 2]  # three tokens tie at 3.0: the lowest ids win
    assert kept(top_k_filter(logits, 4)) == [1, 2, 3, 4]
    assert kept(top_k_filter(logits, 6)) == kept(top_k_filter(logits, 100)) == [0, 1, 2, 3, 4, 5]
    batch = torch.tensor([[5.0, 4.0, 3.0, 2.0], [2.0, 3.0, 4.0, 5.0]])
    out = top_k_filter(batch, 2)
    assert (out > NEG).tolist() == [[True, True, False, False], [False, False, True, True]]
    torch.testing.assert_close(out[out > NEG], batch[out > NEG])  # kept logits are unchanged


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    probs = torch.tensor([0.125, 0.5, 0.125, 0.25], dtype=torch.float64)  # sorted: ids 1, 3, 0, 2
    logits = probs.log().unsqueeze(0)
    assert kept(top_p_filter(logits, 0.3)) == [1]
    assert kept(top_p_filter(logits, 0.5)) == [1]  # 0.5 reached exactly by the first token
    assert kept(top_p_filter(logits, 0.501)) == [1, 3]
    assert kept(top_p_filter(logits, 0.75)) == [1, 3]  # boundary: 0.5 + 0.25 == 0.75
    assert kept(top_p_filter(logits, 0.76)) == [0, 1, 3]  # ties (0.125, 0.125) go to the lower id
    assert kept(top_p_filter(logits, 1e-9)) == [1]  # always at least one token
    # rounding must not add a token where the mass reaches p exactly (0.7 + 0.2 < 0.9 in floating point)
    assert kept(top_p_filter(logits.float(), 0.75)) == [1, 3]
    for probs, p, expected in (([0.1, 0.7, 0.2], 0.9, [1, 2]), ([0.6, 0.1, 0.3], 0.9, [0, 2])):
        decimal = torch.tensor([probs], dtype=torch.float64).log()
        assert kept(top_p_filter(decimal, p)) == kept(top_p_filter(decimal.float(), p)) == expected
    tail = torch.tensor([[10.0, 0.0, -30.0]])  # the last token has probability ~1e-18
    assert kept(top_p_filter(tail, 1.0)) == [0, 1, 2]
    assert kept(top_p_filter(tail, 0.9999)) == [0]


def test_temperature_and_filter_order():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    torch.testing.assert_close(apply_temperature(logits, 2.0), logits / 2)
    assert kept(apply_temperature(torch.tensor([[0.0, 3.0, 3.0]]), 0)) == [1]  # greedy, first max
    # temperature comes before top-p: at T=1 the top two hold 0.88 of the mass, at T=3 only 0.66
    assert kept(filter_logits(logits, temperature=1.0, top_p=0.85)) == [0, 1]
    assert kept(filter_logits(logits, temperature=3.0, top_p=0.85)) == [0, 1, 2]
    # top-k comes before top-p: renormalised over 2 tokens, the first holds 0.73 >= 0.7 (0.64 before)
    assert kept(filter_logits(logits, top_k=2, top_p=0.7)) == [0]
    assert kept(top_k_filter(top_p_filter(logits, 0.7), 2)) == [0, 1]  # the other order differs


def test_inverse_cdf_never_picks_a_filtered_token():
    logits = torch.tensor([[NEG, 0.0, NEG, 0.0, NEG]]).repeat(4, 1)
    u = torch.tensor([0.0, 0.5, 0.5 - 1e-12, 1 - 1e-12], dtype=torch.float64)
    assert sample_from_logits(logits, u).tolist() == [1, 3, 1, 3]


@pytest.mark.parametrize("options", [dict(top_k=3), dict(top_p=0.7), dict(temperature=0.7, top_k=4)])
def test_empirical_distribution_matches_the_filtered_probabilities(options):
    probs = torch.tensor([0.3, 0.05, 0.25, 0.02, 0.15, 0.1, 0.08, 0.05], dtype=torch.float64)
    table = torch.zeros(16, 16)
    table[3, :8] = probs.log().float()
    table[3, 8:] = NEG
    model = ScriptedGPT(GPTConfig.from_preset("nano", vocab_size=16), table).eval()
    n = 4000
    samples = generate(model, [3], max_new_tokens=1, num_samples=n, seed=11, eos_token_id=None, **options)
    counts = torch.bincount(torch.tensor([s.tokens[0] for s in samples]), minlength=16).double()
    expected = filter_logits(table[3:4].double(), **options).softmax(-1)[0]
    assert torch.all(counts[expected == 0] == 0)  # filtered tokens never drawn
    support = expected > 0
    chi2 = (((counts - n * expected) ** 2)[support] / (n * expected[support])).sum().item()
    dof = int(support.sum()) - 1
    assert dof >= 2
    assert chi2 < dof + 5 * math.sqrt(2 * dof), (chi2, dof)  # far below: a wrong distribution gives ~100s


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_top_k_sampler_on_candidates_equals_the_full_vocabulary_path(dtype):
    """`generate` samples top-k from the k (+ a few) candidates only; same tokens as filter_logits +
    sample_from_logits over the whole vocabulary, ties at the k-th value included (common in bfloat16)."""
    g = torch.Generator().manual_seed(0)
    compared = 0
    for trial in range(60):
        V = (1000, 50, 41)[trial % 3]
        logits = (torch.randn(8, V, generator=g) * 3).to(dtype)
        if trial % 4 == 0:
            logits = logits.round()  # many ties
        u = torch.rand(8, generator=g, dtype=torch.float64)
        for options in (dict(temperature=1.0, top_k=40, top_p=None), dict(temperature=0.7, top_k=5, top_p=0.8),
                        dict(temperature=1.3, top_k=1, top_p=None)):
            fast = sample_top_k(logits, u, **options)
            if fast is not None:
                expected = sample_from_logits(filter_logits(logits.double(), **options), u)
                assert fast.tolist() == expected.tolist(), (trial, options)
                compared += 8
    assert compared > 1000
    flat = torch.zeros(2, 100)  # more tokens tie at the k-th value than the candidates hold: full path
    assert sample_top_k(flat, torch.rand(2, dtype=torch.float64), 1.0, 5, None) is None
    nan = torch.randn(2, 100)
    nan[1, 3] = float("nan")
    assert sample_top_k(nan, torch.rand(2, dtype=torch.float64), 1.0, 5, None) is None
    assert sample_top_k(torch.randn(2, 100), torch.rand(2, dtype=torch.float64), 1.0, None, 0.9) is None


def test_sample_tokens_draws_one_number_per_row_from_its_own_stream():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))
    config = GenerationConfig(seed=7, eos_token_id=None)
    rows = [SampleRow(config, sample_index=s) for s in range(3)]
    fresh = [SampleRow(config, sample_index=s) for s in range(3)]
    greedy = SamplingOptions(temperature=0)
    assert sample_tokens(logits, rows, greedy).tolist() == logits.argmax(-1).tolist()  # greedy: no draw
    for options in ((0.8, None, 0.9), (1.0, 5, None)):
        u = torch.stack([torch.rand((), generator=r.generator, dtype=torch.float64) for r in fresh])
        expected = sample_from_logits(filter_logits(logits.double(), *options), u)
        assert sample_tokens(logits, rows, SamplingOptions(*options)).tolist() == expected.tolist(), options


def test_sampling_options_have_one_convention_for_off():
    """None is off; 0 for top_k and 1 for top_p (how the CLI and OpenAI's API say it) are stored as None."""
    assert SamplingOptions(1.0, 0, 1.0) == SamplingOptions(1.0, None, None) == SamplingOptions()
    assert hash(SamplingOptions(top_k=0)) == hash(SamplingOptions())
    assert SamplingOptions(0.7, 40, 0.9).top_k == 40
    with pytest.raises(SamplingError, match="top_k must be an integer >= 0"):
        SamplingOptions(top_k=True)


@pytest.mark.parametrize(
    "field, value, expected",
    [("temperature", -1, "a number >= 0"), ("top_p", 2.0, "a number in (0, 1]"),
     ("max_new_tokens", 1.5, "an integer >= 0"), ("num_return_sequences", 0, "an integer >= 1"),
     ("eos_token_id", "eos", "a token id >= 0"), ("stop_strings", ["a", ""], "a list of non-empty strings")],
)
def test_generation_config_rejects_a_bad_value_naming_the_field(field, value, expected):
    message = rf"^{field} must be {re.escape(expected)}.*; got {re.escape(repr(value))}$"
    with pytest.raises(SamplingError, match=message):
        GenerationConfig(**{field: value})


def test_generation_config_fields_and_old_keywords():
    config = GenerationConfig(max_new_tokens=5, stop_strings="x", seed=3)
    assert config.stop_strings == ("x",) and GenerationConfig(stop_strings=None).stop_strings == ()
    assert GenerationConfig(do_sample=False, top_k=40).greedy and GenerationConfig(temperature=0).greedy
    assert GenerationConfig(do_sample=False).sampler == GenerationConfig(temperature=0, top_p=0.5).sampler
    assert SamplingOptions is GenerationConfig  # the old name
    with pytest.raises(TypeError, match="unknown generation options \\['top_n'\\]"):
        generate(random_model(), [1], top_n=3)


def test_generate_with_a_config_equals_generate_with_the_same_keywords(tokenizer):
    model = random_model(seed=4, vocab_size=tokenizer.vocab_size)
    prompts = [tokenizer.encode("hello world"), tokenizer.encode("the")]
    keywords = dict(max_new_tokens=12, temperature=0.9, top_k=30, top_p=0.95, seed=5, num_samples=2,
                    stop=["o w"])
    config = GenerationConfig(max_new_tokens=12, temperature=0.9, top_k=30, top_p=0.95, seed=5,
                              num_return_sequences=2, stop_strings=("o w",))
    expected = generate(model, prompts, tokenizer=tokenizer, **keywords)
    assert generate(model, prompts, config, tokenizer=tokenizer) == expected
    assert generate(model, prompts, generation_config=config, tokenizer=tokenizer) == expected
    assert generate(model, prompts, GenerationConfig(top_k=3), tokenizer=tokenizer, **keywords) == expected
    assert generate_text(model, tokenizer, ["hello world", "the"], config) == expected
    assert "".join(stream(model, prompts[0], tokenizer, config, sample_index=1)) == expected[1].text


def test_left_pad_aligns_prompts_at_the_right():
    idx, mask = left_pad([[5, 6, 7], [8]])
    assert idx.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


# ---- generation against references ----

def test_greedy_matches_transformers_generate_and_uncached_decoding(tmp_path):
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=97, n_positions=64, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=96, eos_token_id=96)
    hf = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # sharper distributions than the 0.02 init, so greedy paths are not all alike
        for p in hf.parameters():
            p.mul_(8.0)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, 96, (n,), generator=g).tolist() for n in (7, 2, 12)]
    samples = generate(ours, prompts, max_new_tokens=20, temperature=0)

    width = max(map(len, prompts))
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):], mask[i, width - len(p):] = torch.tensor(p), 1
    out = hf.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=20, pad_token_id=96,
                      eos_token_id=96)[:, width:].tolist()
    for sample, theirs, prompt in zip(samples, out, prompts, strict=True):
        assert len(set(sample.tokens)) > 1
        expected = theirs[: theirs.index(96)] if 96 in theirs else theirs
        assert sample.tokens == expected
        assert sample.finish_reason == ("eos" if 96 in theirs else "length")
        seq = list(prompt)  # no cache: the whole sequence every step
        with torch.no_grad():
            for _ in range(len(sample.tokens)):
                seq.append(int(ours(torch.tensor([seq]))[0][0, -1].argmax()))
        assert seq[len(prompt):] == sample.tokens


def test_temperature_near_zero_equals_greedy():
    model = random_model(vocab_size=97, n_layer=2)
    with torch.no_grad():
        model.transformer.wte.weight.mul_(20)  # logit gaps well above float noise / temperature
    greedy = generate(model, [[5, 6, 7], [1]], max_new_tokens=15, temperature=0, eos_token_id=None)
    cold = generate(model, [[5, 6, 7], [1]], max_new_tokens=15, temperature=1e-4, eos_token_id=None, seed=3)
    assert [s.tokens for s in cold] == [s.tokens for s in greedy]
    warm = generate(model, [[5, 6, 7], [1]], max_new_tokens=15, temperature=5, eos_token_id=None, seed=3)
    assert [s.tokens for s in warm] != [s.tokens for s in greedy]


def test_a_prompt_samples_the_same_inside_a_batch_as_alone():
    model = random_model(seed=5, vocab_size=97)
    with torch.no_grad():  # entropy ~3.8 nats instead of ~4.56 (uniform): top-k and top-p both cut
        for p in model.parameters():
            p.mul_(3.0)
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(0, 96, (n,), generator=g).tolist() for n in (9, 1, 23, 4)]
    options = dict(max_new_tokens=30, temperature=1.0, top_k=40, top_p=0.95, seed=7, num_samples=3,
                   eos_token_id=10)
    batch = generate(model, prompts, **options)
    assert {s.finish_reason for s in batch} == {"eos", "length"}  # rows left the batch while others ran
    assert len({tuple(s.tokens) for s in batch}) == len(batch)  # samples differ
    for i, prompt in enumerate(prompts):
        alone = generate(model, prompt, **options)
        assert [s.tokens for s in alone] == [s.tokens for s in batch[3 * i : 3 * i + 3]]
        assert all(s.prompt_index == i for s in batch[3 * i : 3 * i + 3])
    # the padded batch's logits do differ from the lone prompt's in the last bits, so the agreement above
    # is not float identity but the sampler's robustness to it
    mask = torch.tensor([[0] * 22 + [1], [1] * 23])
    with torch.no_grad():
        padded = model(torch.tensor([[0] * 22 + prompts[1], prompts[2]]), attention_mask=mask)[0][0, -1]
        single = model(torch.tensor([prompts[1]]))[0][0, -1]
    assert not torch.equal(padded, single)
    torch.testing.assert_close(padded, single, atol=1e-5, rtol=1e-5)


def test_seed_reproducibility_and_num_samples():
    model = random_model(seed=1)
    run = lambda **kw: [s.tokens for s in generate(model, [4, 5], max_new_tokens=12, eos_token_id=None, **kw)]
    assert run(seed=1) == run(seed=1)
    assert run(seed=1) != run(seed=2)
    torch.manual_seed(9)
    first = run()
    torch.manual_seed(9)
    assert run() == first  # seed=None follows torch.manual_seed
    three = generate(model, [[4, 5], [6]], max_new_tokens=12, num_samples=3, seed=1, eos_token_id=None)
    assert [(s.prompt_index, s.sample_index) for s in three] == [(p, s) for p in range(2) for s in range(3)]
    assert three[0].tokens == run(seed=1)[0]  # sample 0 does not depend on how many samples are drawn
    assert len({tuple(s.tokens) for s in three[:3]}) == 3
    rest = generate(model, [[4, 5], [6]], max_new_tokens=12, num_samples=2, seed=1, eos_token_id=None,
                    first_sample=1)
    assert [(s.prompt_index, s.sample_index, s.tokens) for s in rest] == \
        [(s.prompt_index, s.sample_index, s.tokens) for s in three if s.sample_index > 0]


def test_eos_stops_a_row_and_drops_it_from_the_batch():
    model = scripted(32, [5, 6, 7, 31])  # 5 -> 6 -> 7 -> eos (31, the config's)
    samples = generate(model, [[1, 5], [9, 9, 9]], max_new_tokens=6, temperature=0)
    assert samples[0].tokens == [6, 7] and samples[0].finish_reason == "eos"
    assert len(samples[1].tokens) == 6 and samples[1].finish_reason == "length"
    # prefill (2 rows), two steps with both rows, then the finished row is gone
    assert model.batch_sizes == [2, 2, 2, 1, 1, 1]
    no_eos = generate(model, [1, 5], max_new_tokens=6, temperature=0, eos_token_id=None)[0]
    assert no_eos.tokens[:3] == [6, 7, 31] and no_eos.finish_reason == "length"
    assert generate(model, [1, 5], max_new_tokens=6, temperature=0, eos_token_id=7)[0].tokens == [6]


def test_stop_strings(tokenizer):
    model, prompt = text_model(tokenizer, " quick brown fox jumps")
    run = lambda **kw: generate(model, prompt, max_new_tokens=20, temperature=0, tokenizer=tokenizer, **kw)[0]
    full = run()
    assert full.text == " quick brown fox jumps" and full.finish_reason == "eos"
    cut = run(stop=["fox"])
    assert cut.text == " quick brown " and cut.finish_reason == "stop"
    assert tokenizer.decode(cut.tokens).startswith(" quick brown f")  # generation ended at the stop string
    assert run(stop=["jumps", "own f"]).text == " quick br"  # the earliest occurrence wins
    assert run(stop="z").text == full.text
    with pytest.raises(SamplingError, match="tokenizer"):
        generate(model, prompt, max_new_tokens=5, stop=["x"])


# ---- streaming ----

def test_stream_joins_to_the_generated_text(tokenizer):
    model = random_model(seed=3, vocab_size=tokenizer.vocab_size)
    prompt = tokenizer.encode("hello world")
    for options in (dict(seed=4, top_k=50), dict(seed=5, top_p=0.9, stop=["o", "e "]), dict(temperature=0)):
        pieces = list(stream(model, prompt, tokenizer, max_new_tokens=25, **options))
        sample = generate(model, prompt, max_new_tokens=25, tokenizer=tokenizer, **options)[0]
        assert "".join(pieces) == sample.text
        assert all(pieces)
    assert len(list(stream(model, prompt, tokenizer, max_new_tokens=25, seed=4))) > 5  # incremental
    second = generate(model, prompt, max_new_tokens=10, tokenizer=tokenizer, seed=4, num_samples=2)[1]
    assert "".join(stream(model, prompt, tokenizer, max_new_tokens=10, seed=4, sample_index=1)) == second.text


def test_stream_never_splits_a_character(tokenizer):
    text = " aé€😀b"
    model, prompt = text_model(tokenizer, text)
    assert len(tokenizer.encode(text)) >= 11  # multi-byte characters span several byte tokens
    assert "\ufffd" in tokenizer.decode(tokenizer.encode(text)[2:3])  # one token alone is not a character
    pieces = list(stream(model, prompt, tokenizer, max_new_tokens=20, temperature=0))
    assert "".join(pieces) == text
    assert len(pieces) >= 5 and not any("\ufffd" in p for p in pieces)


def test_stream_holds_back_a_possible_stop_string(tokenizer):
    model, prompt = text_model(tokenizer, " quick brown fox jumps")
    pieces = list(stream(model, prompt, tokenizer, max_new_tokens=20, temperature=0, stop=["fox"]))
    assert "".join(pieces) == " quick brown "  # "f", "fo" were held back, then dropped
    pieces = list(stream(model, prompt, tokenizer, max_new_tokens=20, temperature=0, stop=["fox!"]))
    assert "".join(pieces) == " quick brown fox jumps"  # held back, then released
    assert any(p.startswith("fox") for p in pieces)


# ---- prompts and arguments ----

def test_long_prompt_is_cut_from_the_left_with_a_warning():
    model = random_model(seed=2)  # 128 positions
    prompt = list(range(1, 96)) + list(range(1, 31))  # 125 tokens
    with pytest.warns(UserWarning, match="dropped the first 7 tokens"):
        cut = generate(model, prompt, max_new_tokens=10, seed=1, eos_token_id=None)
    assert cut == generate(model, prompt[7:], max_new_tokens=10, seed=1, eos_token_id=None)


def test_empty_prompt_starts_from_endoftext_and_zero_tokens_is_fine():
    model = random_model(seed=2)
    assert generate(model, [], max_new_tokens=5, seed=1) == generate(model, [96], max_new_tokens=5, seed=1)
    assert generate(model, [[], [3]], max_new_tokens=0) == [Sample(0, 0, [], None, "length"),
                                                           Sample(1, 0, [], None, "length")]


def test_training_mode_is_restored_and_dropout_is_off_while_sampling():
    model = random_model(seed=2, resid_pdrop=0.5, embd_pdrop=0.5)
    expected = generate(model, [1, 2], max_new_tokens=8, seed=3)
    model.train()
    assert generate(model, [1, 2], max_new_tokens=8, seed=3) == expected
    assert model.training


def test_bf16_generation_runs():
    model = random_model(seed=2).to(torch.bfloat16)
    samples = generate(model, [[1, 2], [3]], max_new_tokens=8, seed=3, top_k=5, eos_token_id=None)
    assert all(len(s.tokens) == 8 and all(0 <= t < 97 for t in s.tokens) for s in samples)


@pytest.mark.parametrize(
    "options, name",
    [
        (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(top_p=float("nan")), "top_p"),
        (dict(top_k=-3), "top_k"), (dict(top_k=2.5), "top_k"),
        (dict(temperature=-0.1), "temperature"),
        (dict(max_new_tokens=-1), "max_new_tokens"), (dict(max_new_tokens=128), "max_new_tokens"),
        (dict(num_samples=0), "num_return_sequences"), (dict(stop=[""]), "stop_strings"),
        (dict(seed="1"), "seed"), (dict(do_sample=1), "do_sample"), (dict(eos_token_id=-1), "eos_token_id"),
        (dict(first_sample=-1), "first sample index"),
    ],
)
def test_invalid_arguments_raise_naming_the_argument(options, name):
    model = random_model()
    with pytest.raises(SamplingError, match=rf"^{name} must be .*; got") as info:
        generate(model, [1, 2], **{"max_new_tokens": 5, **options})
    assert isinstance(info.value, ValueError) and isinstance(info.value, GPT2Error)


def test_token_ids_outside_the_vocabulary_raise():
    with pytest.raises(SamplingError, match=r"prompt 1: token ids \[97\] are outside the vocabulary \[0, 96"):
        generate(random_model(), [[1], [2, 97]], max_new_tokens=5)


def test_generate_text(tokenizer):
    model, _ = text_model(tokenizer, " quick brown fox jumps")
    samples = generate_text(model, tokenizer, ["the", "dog"], max_new_tokens=4, temperature=0)
    assert samples[0].text == " quick brown fox jumps"[: len(samples[0].text)] and len(samples) == 2
    assert samples[0].tokens == tokenizer.encode(" quick brown fox jumps")[:4]


# ---- CLI ----

@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory, tokenizer):
    directory = tmp_path_factory.mktemp("ckpt")
    save_pretrained(random_model(seed=8, vocab_size=tokenizer.vocab_size), directory, tokenizer=tokenizer,
                    metadata={"step": 42})
    return directory


def test_cli_generate(checkpoint_dir, tokenizer, capsys, monkeypatch):
    args = ["generate", "--model", str(checkpoint_dir), "-n", "12", "--seed", "3", "--num-samples", "2"]
    assert main([*args, "--dtype", "fp32", "hello world"]) == 0  # as the float32 reference below
    out = capsys.readouterr().out
    model = GPT.from_pretrained(checkpoint_dir)
    samples = generate_text(model, tokenizer, "hello world", max_new_tokens=12, seed=3, top_k=40,
                            num_samples=2)
    assert out == "".join(f"{'=' * 40} SAMPLE {i + 1} {'=' * 40}\n{s.text}\n" for i, s in enumerate(samples))
    assert main([*args, "--dtype", "fp32", "--stream", "hello world"]) == 0
    assert capsys.readouterr().out == out
    monkeypatch.setattr("sys.stdin", io.StringIO("hello world"))
    assert main([*args, "--dtype", "fp32", "-"]) == 0
    assert capsys.readouterr().out == out
    assert main([*args, "--dtype", "bf16", "--top-k", "0", "--top-p", "0.9", "-t", "0.8", "hi"]) == 0
    assert capsys.readouterr().out.count("SAMPLE") == 2


@pytest.mark.parametrize(
    "extra, message",
    [(["--top-p", "1.5"], "top_p must be"), (["--temperature", "-1"], "temperature must be"),
     (["--num-samples", "0", "--stream"], "num_samples must be")],
)
def test_cli_generate_errors(checkpoint_dir, capsys, extra, message):
    assert main(["generate", "--model", str(checkpoint_dir), "x", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpt2 generate: error:") and message in err and "Traceback" not in err


def test_cli_generate_missing_model(tmp_path, capsys):
    assert main(["generate", "--model", str(tmp_path / "none"), "x"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_info(checkpoint_dir, tokenizer, capsys):
    n = GPT.from_pretrained(checkpoint_dir).num_parameters()
    assert main(["info", str(checkpoint_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == n
    assert info["config"]["n_layer"] == 2 and info["config"]["vocab_size"] == tokenizer.vocab_size
    assert info["dtypes"] == ["F32"]
    assert info["tokenizer"]["vocab_size"] == tokenizer.vocab_size
    assert info["files"]["model.safetensors"] == (checkpoint_dir / "model.safetensors").stat().st_size
    assert info["metadata"] == {"step": 42}
    assert main(["info", str(checkpoint_dir)]) == 0
    out = capsys.readouterr().out
    assert f"{n:,}" in out and "model.safetensors" in out and "step" in out and "F32" in out


def test_rows_admitted_while_others_decode_sample_as_generate_alone():
    """The engine's merge: rows that join a batch mid-decoding (shorter and longer prompts, other configs)
    get the tokens generate() gives each of them alone (the server relies on this)."""
    model = random_model(seed=11)
    config = lambda seed, n, *picking: GenerationConfig(*picking, max_new_tokens=n, seed=seed, eos_token_id=None)
    first = [SampleRow(config(5, 9, 1.0, 10), [3, 4, 5, 6], sample_index=s) for s in range(2)]
    later = [SampleRow(config(6, 6, 0.8, None, 0.9), [7], prompt_index=1),
             SampleRow(config(7, 4, 0), list(range(10, 22)), prompt_index=2)]
    batch = DecodeBatch(model)
    batch.admit(first)
    for step in range(9):
        if step == 3:
            batch.admit(later)
        tokens = batch.sample()
        for row, token in zip(batch.rows, tokens.tolist(), strict=True):
            row.add(token)
        batch.drop_finished()
        if batch.rows:
            batch.step()
    assert not batch.rows and batch.cache is None
    for row in first + later:
        (alone,) = generate(model, row.prompt, row.config, first_sample=row.sample_index)
        assert row.tokens == alone.tokens and row.finish_reason == "length", row.prompt_index


def test_step_wants_the_tokens_of_sample():
    batch = DecodeBatch(random_model())
    batch.admit([SampleRow(GenerationConfig(seed=1, eos_token_id=None), [1, 2])])
    with pytest.raises(RuntimeError, match="sample"):
        batch.step()
    batch.sample()
    batch.step()
    with pytest.raises(SamplingError, match="for_model"):
        SampleRow(GenerationConfig(), [1])  # no seed, EOS not resolved
