"""`generate`, `generate_text` and `stream`: continue prompts with a `GenerationConfig` on the engine.

`generate` admits every prompt x sample into one `DecodeBatch` and steps until all are done; `stream` does
the same for one sample and yields its text as it settles. Keywords (max_new_tokens=, top_k=, ...) build or
override the config, as in HF's `generate(**kwargs)`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from gpt2.model import GPT
from gpt2.sampling.engine import DecodeBatch, SampleRow
from gpt2.sampling.options import GenerationConfig, SamplingError, check, with_options


@dataclass
class Sample:
    """One continuation. `tokens` leaves out the EOS token but keeps those that completed a stop string;
    `text` (given a tokenizer) ends before the stop string; `finish_reason` is 'eos', 'stop' or 'length'
    (max_new_tokens reached)."""

    prompt_index: int
    sample_index: int
    tokens: list[int]
    text: str | None
    finish_reason: str


def generate(
    model: GPT,
    prompts: Sequence[int] | Sequence[Sequence[int]],
    generation_config: GenerationConfig | None = None,
    *,
    tokenizer: Any | None = None,
    first_sample: int = 0,
    **options: Any,
) -> list[Sample]:
    """Continue each prompt (a list of token ids, or a list of them) `num_return_sequences` times.

    `options` are GenerationConfig fields (num_samples and stop are the old names of num_return_sequences
    and stop_strings) replacing those of `generation_config`. Stop strings need `tokenizer`. An empty
    prompt starts from <|endoftext|> (config.bos_token_id), as GPT-2's unconditional samples do. Prompts
    too long for the context lose their first tokens, with a warning. Returns Samples ordered by prompt,
    then sample. Sample i of a prompt draws from the random stream (seed, i); `first_sample` shifts the
    indices, so samples can be drawn in several calls, each getting the ones a single call would.
    """
    config = with_options(generation_config, options)
    rows = _make_rows(model, prompts, config, tokenizer, first_sample)
    for _ in _decode(model, rows):
        pass
    return [Sample(r.prompt_index, r.sample_index, r.tokens, r.final_text(), r.finish_reason or "length")
            for r in rows]


def generate_text(model: GPT, tokenizer: Any, prompt: str | Sequence[str],
                  generation_config: GenerationConfig | None = None, **options: Any) -> list[Sample]:
    """`generate` for text prompts; the Samples carry text."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    return generate(model, [tokenizer.encode(p) for p in prompts], generation_config, tokenizer=tokenizer,
                    **options)


def stream(
    model: GPT,
    prompt_ids: Sequence[int],
    tokenizer: Any,
    generation_config: GenerationConfig | None = None,
    *,
    sample_index: int = 0,
    **options: Any,
) -> Iterator[str]:
    """Yield one sample's text as it is produced: whole characters only, and nothing that could be the
    start of a stop string. The pieces join to the text of `generate(...)`'s sample `sample_index`."""
    config = with_options(generation_config, options)  # checked here, not at the first next()
    config = replace(config, num_return_sequences=1)  # the one sample `sample_index`
    (row,) = _make_rows(model, [list(prompt_ids)], config, tokenizer, first_sample=sample_index)

    def pieces() -> Iterator[str]:
        emitted = 0
        for _ in _decode(model, [row]):
            text = row.final_text() if row.finish_reason else row.settled_text()
            if len(text) > emitted:
                yield text[emitted:]
                emitted = len(text)

    return pieces()


def _make_rows(model: GPT, prompts, config: GenerationConfig, tokenizer: Any | None,
               first_sample: int = 0) -> list[SampleRow]:
    """Check `config` against the model; a SampleRow per prompt x sample (empty prompts started, long ones
    cut)."""
    n_positions = model.config.n_positions
    check(config.max_new_tokens < n_positions, "max_new_tokens",
          f"an integer in [0, {n_positions - 1}] (the context holds {n_positions} tokens)", config.max_new_tokens)
    check(isinstance(first_sample, int) and first_sample >= 0, "first sample index", "an integer >= 0",
          first_sample)
    if config.stop_strings and tokenizer is None:
        raise SamplingError("stop strings need a tokenizer to turn tokens into text; pass tokenizer=")
    config = config.for_model(model.config)
    samples = range(first_sample, first_sample + config.num_return_sequences)
    return [SampleRow(config, ids, prompt_index=i, sample_index=s, tokenizer=tokenizer)
            for i, ids in enumerate(_prompt_ids(model, prompts, config.max_new_tokens)) for s in samples]


def _prompt_ids(model: GPT, prompts, max_new_tokens: int) -> list[list[int]]:
    """The prompts as lists of token ids, checked against the vocabulary: empty ones start from
    <|endoftext|>, those too long to leave room for `max_new_tokens` lose their first tokens."""
    config = model.config
    if isinstance(prompts, torch.Tensor):
        prompts = prompts.tolist()
    if len(prompts) == 0 or not isinstance(prompts[0], Sequence):
        prompts = [prompts]  # one prompt as a flat list (empty = unconditional)
    limit = config.n_positions - max_new_tokens
    out = []
    for i, prompt in enumerate(prompts):
        ids = [int(t) for t in prompt] or [config.bos_token_id]
        bad = [t for t in ids if not 0 <= t < config.vocab_size]
        if bad:
            raise SamplingError(f"prompt {i}: token ids {bad[:5]} are outside the vocabulary "
                                f"[0, {config.vocab_size - 1}]")
        if len(ids) > limit:
            warnings.warn(f"prompt {i} has {len(ids)} tokens but only {limit} fit before {max_new_tokens} "
                          f"new ones in the {config.n_positions}-token context; dropped the first "
                          f"{len(ids) - limit} tokens", stacklevel=4)
            ids = ids[-limit:]
        out.append(ids)
    return out


def _decode(model: GPT, rows: list[SampleRow]) -> Iterator[None]:
    """Generate into `rows`: admit them all, then step until every one has finished; yield after each
    token."""
    if not rows or rows[0].remaining == 0:
        return
    was_training = model.training
    model.eval()  # dropout off; restored below
    try:
        batch = DecodeBatch(model)
        batch.admit(rows)
        while batch.rows:
            tokens = batch.sample()
            for row, token in zip(batch.rows, tokens.tolist(), strict=True):
                row.add(token)
            yield
            batch.drop_finished()
            if batch.rows:
                batch.step()
    finally:
        model.train(was_training)
