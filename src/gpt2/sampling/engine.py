"""Sampling from a GPT: logit filters, batched generation with a KV cache, stop strings, streaming.

The filters are small pure functions on logits (B, V) and compose in the order HF and openai/gpt-2 use:
temperature -> top-k -> top-p. One engine decodes: `DecodeBatch` admits rows (prefill, then a merge into
the running batch), samples one token per row, and drops rows as they finish. `generate` admits every
prompt x sample at once and steps until all are done; the server's scheduler admits requests' rows as they
arrive, so a served request gets the tokens `generate` gives it by construction.

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
from gpt2.model import GPT, KVCache

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


# ---- options ----

@dataclass(frozen=True)
class SamplingOptions:
    """How each next token is picked: temperature (0 = greedy), then top-k, then top-p.

    A filter that is off is None. `top_k=0` and `top_p=1` also mean off (the CLI and OpenAI's API spell it
    so) and are stored as None, so that options compare, hash and group equal however a caller wrote them."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        t, k, p = self.temperature, self.top_k, self.top_p
        _check(isinstance(t, int | float) and not isinstance(t, bool) and t >= 0, "temperature",
               "a number >= 0 (0 = greedy)", t)
        _check(k is None or (isinstance(k, int) and not isinstance(k, bool) and k >= 0), "top_k",
               "an integer >= 0 (0 = no limit) or None", k)
        _check(p is None or (isinstance(p, int | float) and not isinstance(p, bool) and 0 < p <= 1), "top_p",
               "a number in (0, 1] (1 = off) or None", p)
        object.__setattr__(self, "top_k", k or None)
        object.__setattr__(self, "top_p", p if p is not None and p < 1 else None)


def _check(ok: bool, name: str, expected: str, value: Any) -> None:
    if not ok:
        raise SamplingError(f"{name} must be {expected}; got {value!r}")


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

    Temperature 0 is greedy decoding; top_k / top_p None (or 0 / 1) are off. A sequence ends at
    `eos_token_id` (default: the config's; None: never), at any of the `stop` strings (needs `tokenizer`), or
    after `max_new_tokens`. An empty prompt starts from <|endoftext|> (config.bos_token_id), as GPT-2's
    unconditional samples do. Prompts too long for the context lose their first tokens, with a warning.
    Returns Samples ordered by prompt, then sample. Sample i of a prompt draws from the random stream
    (seed, i); `first_sample` shifts the indices, so samples can be drawn in several calls, each getting
    the ones a single call would.
    """
    options = SamplingOptions(temperature, top_k, top_p)
    rows = _make_rows(model, prompts, options, max_new_tokens, num_samples, seed, eos_token_id, stop, tokenizer,
                      first_sample)
    for _ in _decode(model, rows):
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
    options = SamplingOptions(temperature, top_k, top_p)  # checked here, not at the first next()
    (row,) = _make_rows(model, [list(prompt_ids)], options, max_new_tokens, 1, seed, eos_token_id, stop,
                        tokenizer, first_sample=sample_index)

    def pieces() -> Iterator[str]:
        emitted = 0
        for _ in _decode(model, [row]):
            text = row.final_text() if row.finish_reason else row.settled_text()
            if len(text) > emitted:
                yield text[emitted:]
                emitted = len(text)

    return pieces()


def _make_rows(model, prompts, options: SamplingOptions, max_new_tokens, num_samples, seed, eos_token_id,
               stop, tokenizer, first_sample: int = 0) -> list[SampleRow]:
    """Validate; a SampleRow per prompt x sample (empty prompts started, long ones cut)."""
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
    rows = []
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
        rows += [SampleRow(i, s, seed, eos, stop, tokenizer, prompt=ids, options=options,
                           max_new_tokens=max_new_tokens) for s in range(first_sample, first_sample + num_samples)]
    return rows


def _decode(model: GPT, rows: list[SampleRow]) -> Iterator[None]:
    """Generate into `rows`: admit them all, then step until every one has finished; yield after each step."""
    if not rows or rows[0].remaining == 0:
        return
    was_training = model.training
    model.eval()  # dropout off; restored below
    try:
        batch = DecodeBatch(model)
        batch.admit(rows)
        while batch.rows:
            tokens = batch.next_tokens()
            for row, token in zip(batch.rows, tokens.tolist(), strict=True):
                row.add(token)
            yield
            batch.advance(tokens)
    finally:
        model.train(was_training)


# ---- the engine: one row's state, one sampling step, a batch of rows decoding together ----

class SampleRow:
    """One sequence being generated: its prompt, options, random stream, tokens, decoded text and why it
    finished.

    The stream is seeded from (seed, sample_index) alone, so a row draws the same numbers whichever batch it
    is in; `sample_tokens` draws one uniform number from it per step. With a tokenizer the row decodes as it
    goes and finishes at the first of its `stop` strings; `eos` (None: never) finishes it too, and so does
    its `max_new_tokens`-th token ('length'). `finish_reason` stays None until then.
    """

    def __init__(self, prompt_index: int, sample_index: int, seed: int, eos: int | None,
                 stop: list[str], tokenizer: Any | None, *, prompt: Sequence[int] = (),
                 options: SamplingOptions = SamplingOptions(), max_new_tokens: int | None = None) -> None:
        self.prompt_index, self.sample_index = prompt_index, sample_index
        self.prompt, self.options, self.max_new_tokens = list(prompt), options, max_new_tokens
        digest = hashlib.sha256(f"{seed}/{sample_index}".encode()).digest()
        self.generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        self.eos, self.stop, self.tokenizer = eos, stop, tokenizer
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tokens: list[int] = []
        self.drawn = 0  # tokens taken, EOS included
        self.text = ""  # whole characters decoded so far (with a tokenizer)
        self.finish_reason: str | None = None
        self.stop_at: int | None = None

    @property
    def remaining(self) -> int:
        """Tokens this row may still take (a large number without `max_new_tokens`)."""
        return (self.max_new_tokens if self.max_new_tokens is not None else 1 << 30) - self.drawn

    def add(self, token: int) -> None:
        """Take the next token: EOS finishes the row (and is not kept); others are kept and decoded."""
        self.drawn += 1
        if token == self.eos:
            self.finish_reason = "eos"
            return
        self.tokens.append(token)
        if self.tokenizer is not None:
            start = len(self.text)
            self.text += self.decoder.decode(self.tokenizer.decode_bytes([token]))
            hits = [i for s in self.stop if (i := self.text.find(s, max(0, start - len(s) + 1))) >= 0]
            if hits:
                self.finish_reason, self.stop_at = "stop", min(hits)
        if self.finish_reason is None and self.remaining == 0:
            self.finish_reason = "length"

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


def sample_tokens(logits: torch.Tensor, rows: Sequence[SampleRow], options: SamplingOptions) -> torch.Tensor:
    """One token per row of `logits` (B, V): the argmax at temperature 0 (no random number drawn), else a
    draw through the filters with one uniform number from each row's own stream (`rows`, in batch order)."""
    if options.temperature == 0:
        return logits.argmax(-1)
    uniforms = torch.stack([torch.rand((), generator=r.generator, dtype=torch.float64) for r in rows])
    t, k, p = options.temperature, options.top_k, options.top_p
    tokens = _sample_top_k(logits, uniforms, t, k, p)
    if tokens is None:
        tokens = sample_from_logits(filter_logits(logits.double(), t, k, p), uniforms)
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


class DecodeBatch:
    """Rows decoding together over one KV cache: the engine behind `generate`, `stream` and the server.

    `admit` runs new rows' prompts (each distinct prompt once) and adds the rows to the batch, left-padding
    whichever is shorter, the running batch or the new rows, so that every row's next token goes in the same
    column. `next_tokens` draws one token per row, each with its own options and random stream. The caller
    hands each row its token (`SampleRow.add`), then `advance` drops the rows that finished, trims padding
    that no remaining row needs, and feeds the others their tokens in one forward pass.
    """

    def __init__(self, model: GPT) -> None:
        self.model = model
        self.rows: list[SampleRow] = []
        self.logits: torch.Tensor | None = None  # (B, V): each row's next-token logits
        self.cache: KVCache | None = None
        self.mask: torch.Tensor | None = None  # (B, length): 1 = token, 0 = padding; None = no padding

    @property
    def length(self) -> int:
        """Positions in the cache (the longest row, padding included)."""
        return self.cache.length if self.cache is not None else 0

    @torch.inference_mode()
    def admit(self, rows: Sequence[SampleRow]) -> None:
        """Run the rows' prompts (each distinct one once) and add the rows to the batch."""
        rows = list(rows)
        if not rows:
            return
        prompts = list(dict.fromkeys(tuple(r.prompt) for r in rows))
        position = {p: i for i, p in enumerate(prompts)}
        idx, mask = left_pad(prompts)
        device, width, context = self.model.device, idx.size(1), self.model.config.n_positions
        need = max(r.remaining for r in self.rows + rows)
        length = max(self.length, width)
        if self.rows:  # exactly the prompts' size: merged into a new cache below
            cache = self.model.new_kv_cache(len(prompts), width)
        else:  # the batch's own cache: room for the prompts now, growing as the rows decode
            cache = self.model.new_kv_cache(len(prompts), min(width + need, context), reserve=width + 1)
        mask = mask.to(device)
        logits, _ = self.model(idx.to(device), kv_cache=cache, attention_mask=None if bool(mask.all()) else mask,
                               last_logits_only=True)
        index = torch.tensor([position[tuple(r.prompt)] for r in rows], device=device)
        cache.select(index)
        logits, mask = logits[index, -1], mask[index]
        if self.rows:
            cache = KVCache.concat([self.cache, cache], max_length=min(length + need, context),
                                   reserve=length + 1)
            mask = torch.cat([_pad_left(self._full_mask(), length), _pad_left(mask, length)])
            logits = torch.cat([self.logits, logits])
        self.rows, self.cache, self.logits = self.rows + rows, cache, logits
        self.mask = None if bool(mask.all()) else mask

    def next_tokens(self) -> torch.Tensor:
        """One token per row (B,), each row drawn with its own options from its own random stream."""
        groups: dict[SamplingOptions, list[int]] = {}
        for i, row in enumerate(self.rows):
            groups.setdefault(row.options, []).append(i)
        if len(groups) == 1:
            return sample_tokens(self.logits, self.rows, next(iter(groups)))
        tokens = torch.empty(len(self.rows), dtype=torch.long, device=self.logits.device)
        for options, members in groups.items():
            index = torch.tensor(members, device=self.logits.device)
            tokens[index] = sample_tokens(self.logits[index], [self.rows[i] for i in members], options)
        return tokens

    def advance(self, tokens: torch.Tensor) -> list[SampleRow]:
        """`retire`, then `step` the rows that remain; returns the finished rows."""
        finished, tokens = self.retire(tokens)
        if self.rows:
            self.step(tokens)
        return finished

    def retire(self, tokens: torch.Tensor) -> tuple[list[SampleRow], torch.Tensor]:
        """Drop the rows that have finished; returns them and the `tokens` (one per row of the batch before
        the drop) of the rows that remain."""
        keep = [i for i, r in enumerate(self.rows) if r.finish_reason is None]
        finished = self.drop([i for i, r in enumerate(self.rows) if r.finish_reason is not None])
        return finished, (tokens[keep] if finished else tokens)

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor) -> None:
        """Feed every row its next token (B,) in one forward pass; the next logits replace `logits`."""
        if self.mask is not None:
            self.mask = F.pad(self.mask, (0, 1), value=1)
        logits, _ = self.model(tokens.view(-1, 1).to(self.model.device), kv_cache=self.cache,
                               attention_mask=self.mask)
        self.logits = logits[:, -1]

    def drop(self, indices: Sequence[int]) -> list[SampleRow]:
        """Remove these rows (finished or cancelled) and trim padding no remaining row needs; return them."""
        gone = set(indices)
        if not gone:
            return []
        removed = [self.rows[i] for i in sorted(gone)]
        keep = [i for i in range(len(self.rows)) if i not in gone]
        if not keep:
            self.rows, self.logits, self.cache, self.mask = [], None, None, None
            return removed
        index = torch.tensor(keep, device=self.logits.device)
        self.rows = [self.rows[i] for i in keep]
        self.logits = self.logits[index]
        self.cache.select(index)
        if self.mask is not None:
            self.mask = self.mask[index]
            lead = int(self.mask.any(0).long().argmax())  # leading columns that are padding in every row
            if lead:
                self.cache.drop_front(lead)
                self.mask = self.mask[:, lead:]
            if bool(self.mask.all()):
                self.mask = None
        return removed

    def _full_mask(self) -> torch.Tensor:
        if self.mask is not None:
            return self.mask
        return torch.ones(len(self.rows), self.length, dtype=torch.long, device=self.logits.device)


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


def _pad_left(mask: torch.Tensor, length: int) -> torch.Tensor:
    return F.pad(mask, (length - mask.size(1), 0), value=0)
