"""Sampling from a GPT: logit filters, batched generation with a KV cache, stop strings, streaming.

The filters are small pure functions on logits (B, V) and compose in the order HF and openai/gpt-2 use:
temperature -> top-k -> top-p. `generate` decodes every prompt x sample in one left-padded batch over one
KV cache and drops rows as they finish. The server's scheduler, which batches the rows of many requests,
is built from the same pieces: `SampleRow`, `sample_tokens` and `left_pad`.

Randomness is per row: a row's `torch.Generator` is seeded from (seed, sample_index) and draws one uniform
number per step, which picks a token by inverting the cumulative distribution (in float64). A prompt
therefore gets the same tokens whatever else is in the batch: padding changes its logits only by float
rounding, and a token flips only if the uniform lands within that rounding of a CDF boundary.
"""

from __future__ import annotations

import codecs
import hashlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from gpt2.errors import GPT2Error
from gpt2.model import GPT

# Probability mass within this of p counts as reaching it, so that rounding (e.g. float32 log-probabilities
# of a distribution whose head sums to exactly p) does not add a token to the nucleus.
_MASS_TOLERANCE = 1e-6
_FROM_CONFIG: Any = object()  # default for eos_token_id: the model config's
# Top-k sampling looks at k + this many candidates, so that tokens tied at the k-th value (common with
# bfloat16 logits) are all seen and the filter's tie rule can be applied without a full-vocabulary pass.
_TIE_ROOM = 24


class SamplingError(GPT2Error, ValueError):
    """A sampling option is out of range or inconsistent with the model."""


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


# ---- logit filters: (B, V) -> (B, V) with removed tokens set to -inf ----

def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide by the temperature; temperature 0 keeps only the argmax (greedy; first index on ties)."""
    if temperature == 0:
        keep = F.one_hot(logits.argmax(-1), logits.size(-1)).bool()
        return logits.masked_fill(~keep, float("-inf"))
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits per row. Ties at the k-th value go to the lowest token ids, so exactly
    k tokens remain (min(k, V))."""
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    above = logits > kth
    at = logits == kth
    room = k - above.sum(-1, keepdim=True)  # how many of the tied tokens fit
    keep = above | (at & (at.cumsum(-1) <= room))
    return logits.masked_fill(~keep, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability mass reaches p
    (at least one token; p=1 keeps all). Ties in probability are ordered by token id."""
    if p >= 1:
        return logits
    probs, order = torch.sort(logits.double().softmax(-1), dim=-1, descending=True, stable=True)
    mass_before = F.pad(probs.cumsum(-1)[..., :-1], (1, 0))  # mass of the more likely tokens
    keep_sorted = mass_before < p - _MASS_TOLERANCE
    keep_sorted[..., 0] = True
    keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Temperature, then top-k, then top-p (the order of HF's and openai/gpt-2's samplers)."""
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


def sample_from_logits(logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Token per row by inverse CDF: the first token whose cumulative probability exceeds `uniforms` (B,)."""
    cdf = logits.double().softmax(-1).cumsum(-1)
    u = uniforms.to(cdf.device, torch.float64).unsqueeze(-1) * cdf[:, -1:]
    # right=True skips zero-probability tokens (filtered out) even when u is exactly a CDF value.
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp(max=logits.size(-1) - 1)


# ---- generation ----

def generate(
    model: GPT,
    prompts: Sequence[int] | Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    num_samples: int = 1,
    seed: int | None = None,
    eos_token_id: int | None = _FROM_CONFIG,
    stop: str | Sequence[str] | None = None,
    tokenizer: Any | None = None,
    first_sample: int = 0,
) -> list[Sample]:
    """Continue each prompt (a list of token ids, or a list of them) `num_samples` times.

    Temperature 0 is greedy decoding. A sequence ends at `eos_token_id` (default: the config's; None: never),
    at any of the `stop` strings (needs `tokenizer`), or after `max_new_tokens`. An empty prompt starts
    from <|endoftext|> (config.bos_token_id), as GPT-2's unconditional samples do. Prompts too long for
    the context lose their first tokens, with a warning. Returns Samples ordered by prompt, then sample.
    Sample i of a prompt draws from the random stream (seed, i); `first_sample` shifts the indices, so
    samples can be drawn in several calls, each getting the ones a single call would.
    """
    filters = _check_filters(temperature, top_k, top_p)
    prompts, rows = _make_rows(model, prompts, max_new_tokens, num_samples, seed, eos_token_id, stop,
                               tokenizer, first_sample)
    for _ in _decode(model, prompts, rows, max_new_tokens, num_samples, filters):
        pass
    return [Sample(r.prompt_index, r.sample_index, r.tokens, r.final_text(), r.finish_reason or "length")
            for r in rows]


def generate_text(model: GPT, tokenizer: Any, prompt: str | Sequence[str], **options: Any) -> list[Sample]:
    """`generate` for text prompts; the Samples carry text."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    return generate(model, [tokenizer.encode(p) for p in prompts], tokenizer=tokenizer, **options)


def stream(
    model: GPT,
    prompt_ids: Sequence[int],
    tokenizer: Any,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    eos_token_id: int | None = _FROM_CONFIG,
    stop: str | Sequence[str] | None = None,
    sample_index: int = 0,
) -> Iterator[str]:
    """Yield one sample's text as it is produced: whole characters only, and nothing that could be the
    start of a stop string. The pieces join to the text of `generate(...)`'s sample `sample_index`."""
    filters = _check_filters(temperature, top_k, top_p)  # here, not at the first next()
    prompts, (row,) = _make_rows(model, [list(prompt_ids)], max_new_tokens, 1, seed, eos_token_id, stop,
                                 tokenizer, first_sample=sample_index)

    def pieces() -> Iterator[str]:
        emitted = 0
        for _ in _decode(model, prompts, [row], max_new_tokens, 1, filters):
            text = row.final_text() if row.finish_reason else row.settled_text()
            if len(text) > emitted:
                yield text[emitted:]
                emitted = len(text)

    return pieces()


# ---- the pieces: one row's state, one sampling step, left padding ----

class SampleRow:
    """One sequence being generated: its random stream, tokens, decoded text and why it finished.

    The stream is seeded from (seed, sample_index) alone, so a row draws the same numbers whichever batch it
    is in; `sample_tokens` draws one uniform number from it per step. With a tokenizer the row decodes as it
    goes and finishes at the first of its `stop` strings; `eos` (None: never) finishes it too.
    `finish_reason` stays None until then; the caller sets 'length' when it stops feeding tokens.
    """

    def __init__(self, prompt_index: int, sample_index: int, seed: int, eos: int | None,
                 stop: list[str], tokenizer: Any | None) -> None:
        self.prompt_index, self.sample_index = prompt_index, sample_index
        digest = hashlib.sha256(f"{seed}/{sample_index}".encode()).digest()
        self.generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        self.eos, self.stop, self.tokenizer = eos, stop, tokenizer
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tokens: list[int] = []
        self.text = ""  # whole characters decoded so far (with a tokenizer)
        self.finish_reason: str | None = None
        self.stop_at: int | None = None

    def add(self, token: int) -> None:
        """Take the next token: EOS finishes the row (and is not kept); others are kept and decoded."""
        if token == self.eos:
            self.finish_reason = "eos"
            return
        self.tokens.append(token)
        if self.tokenizer is None:
            return
        start = len(self.text)
        self.text += self.decoder.decode(self.tokenizer.decode_bytes([token]))
        hits = [i for s in self.stop if (i := self.text.find(s, max(0, start - len(s) + 1))) >= 0]
        if hits:
            self.finish_reason, self.stop_at = "stop", min(hits)

    def final_text(self) -> str | None:
        """The finished row's text, ending before its stop string (None without a tokenizer)."""
        if self.tokenizer is None:
            return None
        if self.stop_at is not None:
            return self.text[: self.stop_at]
        return self.text + self.decoder.decode(b"", final=True)

    def settled_text(self) -> str:
        """The text so far minus its longest ending that could begin a stop string."""
        held = max((n for s in self.stop for n in range(1, len(s)) if self.text.endswith(s[:n])), default=0)
        return self.text[: len(self.text) - held]


def sample_tokens(logits: torch.Tensor, rows: Sequence[SampleRow], temperature: float, top_k: int | None,
                  top_p: float | None) -> torch.Tensor:
    """One token per row of `logits` (B, V): the argmax at temperature 0 (no random number drawn), else a
    draw through the filters with one uniform number from each row's own stream (`rows`, in batch order)."""
    if temperature == 0:
        return logits.argmax(-1)
    uniforms = torch.stack([torch.rand((), generator=r.generator, dtype=torch.float64) for r in rows])
    tokens = _sample_top_k(logits, uniforms, temperature, top_k, top_p)
    if tokens is None:
        tokens = sample_from_logits(filter_logits(logits.double(), temperature, top_k, top_p), uniforms)
    return tokens


def _sample_top_k(logits: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_k: int | None,
                  top_p: float | None) -> torch.Tensor | None:
    """`sample_from_logits(filter_logits(logits.double(), ...), uniforms)` computed on the top-k tokens only.

    The full-vocabulary path spends most of a batched step's sampling time on float64 passes over
    (B, 50257) logits of which all but k are -inf. Here the one full pass is topk in the logits' own dtype:
    dividing by a temperature in float64 preserves the order of float32/bfloat16 values, so the kept set
    (ties at the k-th value going to the lowest ids) is the same; the kept logits, in token-id order, then
    go through the same float64 temperature, top-p and inverse-CDF steps. The probabilities agree with the
    full path's up to float64 rounding. Returns None where this does not apply (no top-k, greedy, extreme
    temperatures, non-finite logits, more ties at the k-th value than the candidates hold); the caller
    then takes the full path.
    """
    B, V = logits.shape
    if top_k is None or top_k >= V or not 1e-200 <= temperature <= 1e200:
        return None
    n = min(V, top_k + _TIE_ROOM)
    vals, idx = torch.topk(logits, n, dim=-1)  # descending; tied tokens in no particular order
    kth = vals[:, top_k - 1 : top_k]
    if not bool(torch.isfinite(vals[:, :top_k]).all()) or (n < V and bool((vals[:, -1:] == kth).any())):
        return None
    # The filter keeps the tokens above the k-th value and, of those equal to it, the lowest ids.
    above = vals > kth
    room = top_k - above.sum(-1, keepdim=True)
    tied = torch.where(vals == kth, idx, V).sort(dim=-1).values
    tied = tied.masked_fill(torch.arange(n, device=idx.device) >= room, V)
    idx = torch.cat([torch.where(above, idx, V), tied], dim=-1).sort(dim=-1).values[:, :top_k]  # id order
    kept = logits.gather(-1, idx).double() / temperature
    if top_p is not None:
        kept = top_p_filter(kept, top_p)
    return idx.gather(-1, sample_from_logits(kept, uniforms).unsqueeze(-1)).squeeze(-1)


def left_pad(prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts as one (B, T) batch aligned at the right, so that every row's next token goes in the same
    column, and its attention mask (B, T; 1 = token, 0 = padding). CPU tensors."""
    width = max(map(len, prompts))
    idx = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, ids in enumerate(prompts):
        idx[i, width - len(ids):] = torch.tensor(ids)
        mask[i, width - len(ids):] = 1
    return idx, mask


# ---- generate's plumbing ----

def _check(ok: bool, name: str, expected: str, value: Any) -> None:
    if not ok:
        raise SamplingError(f"{name} must be {expected}; got {value!r}")


def _check_filters(temperature: float, top_k: int | None, top_p: float | None) -> dict[str, Any]:
    _check(isinstance(temperature, int | float) and temperature >= 0, "temperature",
           "a number >= 0 (0 = greedy)", temperature)
    _check(top_k is None or (isinstance(top_k, int) and top_k >= 1), "top_k", "an integer >= 1 or None",
           top_k)
    _check(top_p is None or (isinstance(top_p, int | float) and 0 < top_p <= 1), "top_p",
           "a number in (0, 1] or None", top_p)
    return dict(temperature=temperature, top_k=top_k, top_p=top_p)


def _make_rows(model, prompts, max_new_tokens, num_samples, seed, eos_token_id, stop, tokenizer,
               first_sample: int = 0) -> tuple[list[list[int]], list[SampleRow]]:
    """Validate; return the prompts (empty ones started, long ones cut) and a SampleRow per prompt x sample."""
    config = model.config
    _check(isinstance(max_new_tokens, int) and 0 <= max_new_tokens < config.n_positions, "max_new_tokens",
           f"an integer in [0, {config.n_positions - 1}] (the context holds {config.n_positions} tokens)",
           max_new_tokens)
    _check(isinstance(num_samples, int) and num_samples >= 1, "num_samples", "an integer >= 1", num_samples)
    _check(isinstance(first_sample, int) and first_sample >= 0, "first sample index", "an integer >= 0",
           first_sample)
    stop = [stop] if isinstance(stop, str) else list(stop or [])
    _check(all(isinstance(s, str) and s for s in stop), "stop", "a list of non-empty strings", stop)
    if stop and tokenizer is None:
        raise SamplingError("stop strings need a tokenizer to turn tokens into text; pass tokenizer=")
    eos = config.eos_token_id if eos_token_id is _FROM_CONFIG else eos_token_id
    _check(seed is None or isinstance(seed, int), "seed", "an integer or None", seed)
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()).item())  # follows torch.manual_seed

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
                          f"{len(ids) - limit} tokens", stacklevel=3)
            ids = ids[-limit:]
        out.append(ids)
    samples = range(first_sample, first_sample + num_samples)
    rows = [SampleRow(p, s, seed, eos, stop, tokenizer) for p in range(len(out)) for s in samples]
    return out, rows


def _decode(model: GPT, prompts: list[list[int]], rows: list[SampleRow], max_new_tokens: int,
            num_samples: int, filters: dict[str, Any]) -> Iterator[None]:
    """Generate into `rows` (prompt-major, `num_samples` per prompt), yielding after every step."""
    if max_new_tokens == 0:
        return
    was_training = model.training
    model.eval()  # dropout off; restored below
    try:
        batch = _Batch(model, prompts, max_new_tokens)
        logits = batch.prefill(num_samples)
        active = rows
        for step in range(max_new_tokens):
            tokens = sample_tokens(logits, active, **filters)
            for row, token in zip(active, tokens.tolist(), strict=True):
                row.add(token)
                if step == max_new_tokens - 1 and row.finish_reason is None:
                    row.finish_reason = "length"
            yield
            keep = [i for i, row in enumerate(active) if row.finish_reason is None]
            if not keep:
                break
            if len(keep) < len(active):  # drop finished rows: no compute on sequences that have ended
                active = [active[i] for i in keep]
                tokens = tokens[keep]
                batch.select(torch.tensor(keep, device=batch.device))
            logits = batch.step(tokens)
    finally:
        model.train(was_training)


class _Batch:
    """The model side of generation: left-padded prompts, their attention mask and the KV cache."""

    def __init__(self, model: GPT, prompts: list[list[int]], max_new_tokens: int) -> None:
        self.model, self.device = model, model.device
        idx, mask = left_pad(prompts)
        self.idx = idx.to(self.device)
        # no padding: the plain causal path is faster
        self.mask: torch.Tensor | None = None if bool(mask.all()) else mask.to(self.device)
        # room for the prompts now, growing with the samples: decoding steps read the whole buffer
        self.cache = model.new_kv_cache(len(prompts), idx.size(1) + max_new_tokens, reserve=idx.size(1) + 1)

    @torch.inference_mode()
    def prefill(self, num_samples: int) -> torch.Tensor:
        """Run the prompts once; copy each prompt's cache to its `num_samples` rows. Returns last logits."""
        logits, _ = self.model(self.idx, kv_cache=self.cache, attention_mask=self.mask, last_logits_only=True)
        logits = logits[:, -1]
        if num_samples > 1:
            rows = torch.arange(len(self.idx), device=self.device).repeat_interleave(num_samples)
            self.select(rows)
            logits = logits[rows]
        return logits

    @torch.inference_mode()
    def select(self, rows: torch.Tensor) -> None:
        self.cache.select(rows)
        if self.mask is not None:
            self.mask = self.mask[rows]

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one new token per row; return the next logits (B, V)."""
        if self.mask is not None:
            self.mask = F.pad(self.mask, (0, 1), value=1)
        logits, _ = self.model(tokens.view(-1, 1).to(self.device), kv_cache=self.cache,
                               attention_mask=self.mask)
        return logits[:, -1]
