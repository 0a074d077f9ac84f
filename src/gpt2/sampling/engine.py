"""The decoding engine: `SampleRow` (one sequence being generated) and `DecodeBatch` (rows decoding together
over one KV cache), behind `generate`, `stream` and the server's scheduler.

A batch's life is four verbs: `admit` rows (prefill, then a merge into the running batch), `sample` one
token per row, `drop` the rows that finished (or were cancelled), `step` the others one token on. Rows
that arrive while others decode get the tokens they would get alone: padding moves their logits only by
float rounding, and each row draws from its own random stream.

Randomness is per row: a row's `torch.Generator` is seeded from (seed, sample_index) and draws one uniform
number per step, which picks a token by inverting the cumulative distribution (in float64). A prompt
therefore gets the same tokens whatever else is in the batch: a token flips only if the uniform lands
within float rounding of a CDF boundary.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from gpt2.model import GPT, KVCache
from gpt2.sampling.filters import filter_logits, sample_from_logits, sample_top_k
from gpt2.sampling.options import MODEL_EOS, GenerationConfig, SamplingError


class SampleRow:
    """One sequence being generated: its prompt, config, random stream, tokens, decoded text and why it
    finished.

    `config` is resolved (`GenerationConfig.for_model`: a seed and an EOS id or None). The stream is seeded
    from (config.seed, sample_index) alone, so a row draws the same numbers whichever batch it is in. With
    a tokenizer the row decodes as it goes and finishes at the first of the config's stop strings; its EOS
    token finishes it too ('eos'), and so does its `max_new_tokens`-th token ('length'). `finish_reason`
    stays None until then.
    """

    def __init__(self, config: GenerationConfig, prompt: Sequence[int] = (), *, prompt_index: int = 0,
                 sample_index: int = 0, tokenizer: Any | None = None) -> None:
        if config.seed is None or config.eos_token_id == MODEL_EOS:
            raise SamplingError("a row needs a config with its seed and EOS token: use config.for_model()")
        self.config, self.prompt = config, list(prompt)
        self.prompt_index, self.sample_index, self.tokenizer = prompt_index, sample_index, tokenizer
        digest = hashlib.sha256(f"{config.seed}/{sample_index}".encode()).digest()
        self.generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tokens: list[int] = []
        self.drawn = 0  # tokens taken, EOS included
        self.text = ""  # whole characters decoded so far (with a tokenizer)
        self.finish_reason: str | None = None
        self.stop_at: int | None = None

    @property
    def remaining(self) -> int:
        """Tokens this row may still take."""
        return self.config.max_new_tokens - self.drawn

    def add(self, token: int) -> None:
        """Take the next token: EOS finishes the row (and is not kept); others are kept and decoded."""
        self.drawn += 1
        if token == self.config.eos_token_id:
            self.finish_reason = "eos"
            return
        self.tokens.append(token)
        if self.tokenizer is not None:
            start = len(self.text)
            self.text += self.decoder.decode(self.tokenizer.decode_bytes([token]))
            stops = self.config.stop_strings
            hits = [i for s in stops if (i := self.text.find(s, max(0, start - len(s) + 1))) >= 0]
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
        stops = self.config.stop_strings
        held = max((n for s in stops for n in range(1, len(s)) if self.text.endswith(s[:n])), default=0)
        return self.text[: len(self.text) - held]


def sample_tokens(logits: torch.Tensor, rows: Sequence[SampleRow], config: GenerationConfig) -> torch.Tensor:
    """One token per row of `logits` (B, V), every row picked by `config`'s sampler: the argmax when greedy
    (no random number drawn), else a draw through the filters with one uniform number from each row's own
    stream (`rows`, in batch order). `config.watermark` biases every row's green list first (each row's
    own context)."""
    watermark = config.watermark
    if config.greedy:
        if watermark is not None:
            logits = watermark.apply(logits.float(), [_context(r, watermark.context_width) for r in rows])
        return logits.argmax(-1)
    uniforms = torch.stack([torch.rand((), generator=r.generator, dtype=torch.float64) for r in rows])
    t, k, p = config.sampler
    if watermark is not None:
        # The green-list bias goes after the temperature and before top-k / top-p. After the temperature,
        # so that delta means what it does in the paper (the green tokens' odds in the distribution drawn
        # from are e^delta times the model's, at any temperature), not delta / T. Before the filters, so
        # that they see the watermarked distribution: a green token lifted into the top k (or the nucleus)
        # can be drawn, and a red one pushed out of it cannot, as when the bias is a logits processor
        # ahead of HF's top-k/top-p warpers (the authors' setup). The filters then run at temperature 1.
        contexts = [_context(r, watermark.context_width) for r in rows]
        logits, t = watermark.apply(logits.double() / t, contexts), 1.0
    tokens = sample_top_k(logits, uniforms, t, k, p)
    if tokens is None:
        tokens = sample_from_logits(filter_logits(logits.double(), t, k, p), uniforms)
    return tokens


def _context(row: SampleRow, width: int) -> list[int]:
    """The row's last `width` ids, prompt included: what seeds its next green list."""
    return (row.prompt[-width:] + row.tokens[-width:])[-width:]


class DecodeBatch:
    """Rows decoding together over one KV cache.

    `admit` runs new rows' prompts (each distinct prompt once) and adds the rows to the batch, left-padding
    whichever is shorter, the running batch or the new rows, so that every row's next token goes in the same
    column. `sample` draws one token per row, each with its own sampler and random stream. The caller hands
    each row its token (`SampleRow.add`), `drop_finished` takes out the rows that ended, and `step` feeds
    the others their tokens in one forward pass.
    """

    def __init__(self, model: GPT) -> None:
        self.model = model
        self.rows: list[SampleRow] = []
        self.logits: torch.Tensor | None = None  # (B, V): each row's next-token logits
        self.tokens: torch.Tensor | None = None  # (B,): what `sample` drew, until `step` feeds it
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
        self.rows, self.cache, self.logits, self.tokens = self.rows + rows, cache, logits, None
        self.mask = None if bool(mask.all()) else mask

    def sample(self) -> torch.Tensor:
        """One token per row (B,), each row drawn with its own sampler from its own random stream; `step`
        feeds them to the model."""
        groups: dict[tuple, list[int]] = {}
        for i, row in enumerate(self.rows):
            groups.setdefault((row.config.sampler, row.config.watermark), []).append(i)
        if len(groups) == 1:
            self.tokens = sample_tokens(self.logits, self.rows, self.rows[0].config)
            return self.tokens
        tokens = torch.empty(len(self.rows), dtype=torch.long, device=self.logits.device)
        for members in groups.values():
            index = torch.tensor(members, device=self.logits.device)
            rows = [self.rows[i] for i in members]
            tokens[index] = sample_tokens(self.logits[index], rows, rows[0].config)
        self.tokens = tokens
        return tokens

    def drop_finished(self) -> list[SampleRow]:
        """Take out the rows whose `finish_reason` is set; return them."""
        return self.drop([i for i, r in enumerate(self.rows) if r.finish_reason is not None])

    def drop(self, indices: Sequence[int]) -> list[SampleRow]:
        """Take out these rows (finished or cancelled) and trim padding no remaining row needs; return them."""
        gone = set(indices)
        if not gone:
            return []
        removed = [self.rows[i] for i in sorted(gone)]
        keep = [i for i in range(len(self.rows)) if i not in gone]
        if not keep:
            self.rows, self.logits, self.tokens, self.cache, self.mask = [], None, None, None, None
            return removed
        index = torch.tensor(keep, device=self.logits.device)
        self.rows = [self.rows[i] for i in keep]
        self.logits = self.logits[index]
        if self.tokens is not None:
            self.tokens = self.tokens[index]
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

    @torch.inference_mode()
    def step(self) -> None:
        """Feed every row the token `sample` drew for it, in one forward pass; the next logits replace
        `logits`."""
        if self.tokens is None or len(self.tokens) != len(self.rows):
            raise RuntimeError("step() feeds the tokens of sample(): sample after admitting rows")
        if self.mask is not None:
            self.mask = F.pad(self.mask, (0, 1), value=1)
        logits, _ = self.model(self.tokens.view(-1, 1).to(self.model.device), kv_cache=self.cache,
                               attention_mask=self.mask)
        self.logits, self.tokens = logits[:, -1], None

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
