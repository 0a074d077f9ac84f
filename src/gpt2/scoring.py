"""The scoring core below evaluation, detection, the card and the server: what a model says about given
tokens. Log-probabilities of continuations (LAMBADA, CBT, WSC, bias probes), rolling-window NLL (perplexity),
per-text logits and GLTR's token ranks (detectors, the server's /v1/detect), and the batching they share.

Works with this project's `GPT` and with Hugging Face's `GPT2LMHeadModel` (anything whose forward takes
ids `(B, T)` and returns logits first, or an object with `.logits`). Rows of a batch are right-padded:
attention is causal, so a real token never sees the padding after it and needs no attention mask.
Log-softmax runs in float32 whatever the model's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gpt2.errors import DataError


@dataclass
class NLL:
    """A summed negative log-likelihood in nats and the number of tokens it covers."""

    nll: float = 0.0
    tokens: int = 0

    def __add__(self, other: NLL) -> NLL:
        return NLL(self.nll + other.nll, self.tokens + other.tokens)


@dataclass
class ContinuationScore:
    """Per-token scores of a continuation given its context."""

    logprobs: list[float] = field(default_factory=list)  # log p(token_i | context, tokens_<i), nats
    greedy: list[bool] = field(default_factory=list)  # whether token_i is the argmax at its position

    @property
    def logprob(self) -> float:
        return sum(self.logprobs)

    @property
    def all_greedy(self) -> bool:
        return all(self.greedy)


def context_length(model) -> int:
    """The model's context length (n_positions; `GPT` and HF configs both have it)."""
    return int(model.config.n_positions)


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def logits_of(model, idx: torch.Tensor) -> torch.Tensor:
    """Logits `(B, T, V)` for ids `(B, T)` from our `GPT` (returns a tuple) or an HF model (`.logits`)."""
    out = model(idx)
    if isinstance(out, tuple):
        return out[0]
    return out.logits


# ---- batching ----

def _batches(items: Sequence, batch_size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), batch_size):
        yield items[i : i + batch_size]


def batches_within(lengths: Sequence[int], batch_tokens: int) -> Iterator[list[int]]:
    """Indices grouped longest first, each group's padded size within `batch_tokens` (at least one row)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        if batch and lengths[batch[0]] * (len(batch) + 1) > batch_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _to_cpu(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    sizes = [len(a) for a, _ in rows]
    logprobs = torch.cat([a for a, _ in rows]).double().cpu().split(sizes)
    greedy = torch.cat([b for _, b in rows]).cpu().split(sizes)
    return list(zip(logprobs, greedy, strict=True))


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")


# ---- continuations ----

@torch.inference_mode()
def score_continuations(
    model,
    requests: Sequence[tuple[Sequence[int], Sequence[int]]],
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "scoring",
) -> list[ContinuationScore]:
    """Score each `(context_ids, continuation_ids)`: log p of every continuation token and whether it is
    the greedy (argmax) choice. The context must hold at least one token (pass `[eot]` for none); when
    context + continuation exceed the context length, the context is cut from the left.
    Results come back in request order."""
    _check_batch_size(batch_size)
    n_ctx = context_length(model)
    prepared: list[tuple[list[int], int]] = []  # (input ids, number of continuation tokens)
    for i, (context, continuation) in enumerate(requests):
        context, continuation = list(context), list(continuation)
        if not context:
            raise ValueError(f"request {i}: empty context; pass [eot_token_id] to score from the start")
        if not continuation:
            raise ValueError(f"request {i}: empty continuation")
        if len(continuation) > n_ctx:
            raise ValueError(f"request {i}: continuation of {len(continuation)} tokens exceeds n_ctx {n_ctx}")
        ids = (context + continuation)[:-1][-n_ctx:]  # the last token is only ever a target
        prepared.append((ids, len(continuation)))
    targets = [list(c) for _, c in requests]

    # Longest first: a batch pads to its first row, and memory trouble shows up at once.
    order = sorted(range(len(prepared)), key=lambda i: -len(prepared[i][0]))
    results: list[ContinuationScore | None] = [None] * len(prepared)
    device = model_device(model)
    bar = tqdm(total=len(order), desc=desc, disable=not progress, unit="ex")
    for batch in _batches(order, batch_size):
        width = len(prepared[batch[0]][0])
        idx = torch.zeros(len(batch), width, dtype=torch.long)
        for row, i in enumerate(batch):
            ids = prepared[i][0]
            idx[row, : len(ids)] = torch.tensor(ids)
        # Position p predicts token p + 1: the continuation's n tokens are predicted by the last n inputs.
        spans = [(len(prepared[i][0]) - prepared[i][1], len(prepared[i][0])) for i in batch]
        scored = torch.cat(list(_logits_at(model, idx.to(device), spans)))
        rows = []
        for i, logits in zip(batch, scored.split([b - a for a, b in spans]), strict=True):
            logp = F.log_softmax(logits.float(), dim=-1)
            tgt = torch.tensor(targets[i], device=logp.device)
            rows.append((logp.gather(1, tgt[:, None])[:, 0], logp.argmax(-1) == tgt))
        for i, (logprobs, greedy) in zip(batch, _to_cpu(rows), strict=True):  # one device sync per batch
            results[i] = ContinuationScore(logprobs=logprobs.tolist(), greedy=greedy.tolist())
        bar.update(len(batch))
    bar.close()
    return results  # type: ignore[return-value]


def total_nll(scores: Sequence[ContinuationScore]) -> NLL:
    """The summed NLL of every scored continuation token and their number (a task's `nll` and `tokens`)."""
    return NLL(-sum(s.logprob for s in scores), sum(len(s.logprobs) for s in scores))


def best_candidates(scores: Sequence[ContinuationScore], counts: Iterable[int]) -> list[int]:
    """Multiple choice: `scores` holds each example's candidates one after another, `counts` how many each
    example has; returns every example's most probable candidate (the first of equals)."""
    best, start = [], 0
    for n in counts:
        values = [s.logprob for s in scores[start : start + n]]
        best.append(max(range(n), key=values.__getitem__))
        start += n
    if start != len(scores):
        raise ValueError(f"the counts add up to {start} candidates but there are {len(scores)} scores")
    return best


# ---- rolling windows ----

# Rows of logits made (and upcast to float32) at a time: a bounded buffer (200 MB for GPT-2's vocabulary)
# instead of a batch's whole (B, n_ctx, vocab) logits.
SCORED_ROWS = 1024


def _logits_at(model, idx: torch.Tensor, spans: list[tuple[int, int]]) -> Iterable[torch.Tensor]:
    """Logits at positions `start:stop` of each row of `idx` (`spans`, one per row), rows concatenated, in
    chunks of SCORED_ROWS. The vocabulary projection runs only on those positions, where the model exposes
    its final hidden states and head (ours: `hidden_states`/`lm_head`, transformers: `base_model` and
    `get_output_embeddings()`): rolling windows score half their positions at the default stride."""
    if callable(getattr(model, "hidden_states", None)):
        hidden, head = model.hidden_states(idx), model.lm_head
    elif hasattr(model, "base_model") and callable(getattr(model, "get_output_embeddings", None)):
        hidden, head = model.base_model(idx).last_hidden_state, model.get_output_embeddings()
    else:
        logits = logits_of(model, idx)
        return torch.cat([logits[row, a:b] for row, (a, b) in enumerate(spans)]).split(SCORED_ROWS)
    scored = torch.cat([hidden[row, a:b] for row, (a, b) in enumerate(spans)])
    return (head(h) for h in scored.split(SCORED_ROWS))


def rolling_windows(n_targets: int, n_ctx: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows `(begin, end, n_scored)` over a sequence `s` of `n_targets + 1` tokens (s[0] is the
    conditioning token, <|endoftext|>): the model reads `s[begin:end]` (at most `n_ctx` tokens), which
    predicts `s[begin+1 : end+1]`, and only the last `n_scored` of those predictions count.

    The first window scores all its predictions; each next window ends `stride` tokens later (the last one
    possibly fewer), reads the `n_ctx` tokens before that end, and scores only the new ones. Every target
    is scored exactly once, and after the first window with at least `n_ctx - stride` tokens of context.
    """
    if n_ctx < 1:
        raise ValueError(f"n_ctx must be positive, got {n_ctx}")
    if not 1 <= stride <= n_ctx:
        raise ValueError(f"stride must be between 1 and n_ctx ({n_ctx}), got {stride}")
    if n_targets <= 0:
        return []
    end = min(n_ctx, n_targets)
    windows = [(0, end, end)]
    while end < n_targets:
        new_end = min(end + stride, n_targets)
        windows.append((max(0, new_end - n_ctx), new_end, new_end - end))
        end = new_end
    return windows


@torch.inference_mode()
def rolling_nll(
    model,
    ids: Sequence[int],
    bos_token_id: int,
    n_ctx: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "windows",
) -> NLL:
    """Summed NLL (nats) of every token of `ids`, each scored exactly once by `rolling_windows`.

    The first token is conditioned on `bos_token_id` (<|endoftext|> for GPT-2, which saw it between
    documents in training), so the count of scored tokens is `len(ids)`: nothing is left unscored.
    `n_ctx` defaults to the model's context length, `stride` to half of it (each scored token after
    the first window has at least n_ctx/2 tokens of context; stride = n_ctx is twice as fast and
    scores the start of each window with less context).
    """
    _check_batch_size(batch_size)
    n_ctx = n_ctx or context_length(model)
    if n_ctx > context_length(model):
        raise ValueError(f"n_ctx {n_ctx} exceeds the model's context length {context_length(model)}")
    stride = stride or max(1, n_ctx // 2)
    seq = torch.tensor([bos_token_id, *ids], dtype=torch.long)
    windows = rolling_windows(len(ids), n_ctx, stride)
    device = model_device(model)
    total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no sync per row
    bar = tqdm(total=len(windows), desc=desc, disable=not progress, unit="win")
    for batch in _batches(windows, batch_size):
        width = max(end - begin for begin, end, _ in batch)
        idx = torch.zeros(len(batch), width, dtype=torch.long)
        for row, (begin, end, _) in enumerate(batch):
            idx[row, : end - begin] = seq[begin:end]
        spans = [(end - begin - n, end - begin) for begin, end, n in batch]  # the scored positions of each row
        targets = torch.cat([seq[end - n + 1 : end + 1] for _, end, n in batch]).to(device)
        for logits, tgt in zip(_logits_at(model, idx.to(device), spans), targets.split(SCORED_ROWS), strict=True):
            total += F.cross_entropy(logits.float(), tgt, reduction="sum").double()
        bar.update(len(batch))
    bar.close()
    return NLL(float(total.item()), len(ids))


# ---- whole texts: per-position logits, and GLTR's ranks ----

POSITION_CHUNK = 256  # positions whose full-vocabulary statistics are computed at once (bounds memory)


def encode_texts(tokenizer, texts: Sequence[str], n_ctx: int, max_tokens: int | None = None
                 ) -> list[list[int]]:
    """Token ids of each text, cut to `max_tokens` and to the context; empty texts are an error."""
    limit = min(n_ctx, max_tokens or n_ctx)
    out = []
    for i, ids in enumerate(tokenizer.encode_batch(list(texts))):
        if not ids:
            raise DataError(f"text {i} is empty; scoring needs at least one token")
        out.append(ids[:limit])
    return out


@torch.inference_mode()
def row_logits(models: Sequence, ids: Sequence[list[int]], bos: int | None, batch_tokens: int = 2048
               ) -> Iterator[tuple[int, list[torch.Tensor]]]:
    """(text index, [logits (T, V) under each model]) for every text. With `bos` (<|endoftext|>), the text
    is read as GPT-2 reads a document, conditioned on it: position t predicts ids[t], so every token is
    scored. With `bos=None`, the text is read as it is (as Hugging Face code feeds a tokenized text):
    position t predicts ids[t + 1], and the last position predicts what would follow the text."""
    for batch in batches_within([len(x) for x in ids], batch_tokens):
        width = len(ids[batch[0]])
        idx = torch.zeros(len(batch), width, dtype=torch.long)
        for r, i in enumerate(batch):
            seq = ids[i] if bos is None else [bos, *ids[i][:-1]]
            idx[r, : len(seq)] = torch.tensor(seq)
        logits = [logits_of(m, idx.to(model_device(m))) for m in models]
        for r, i in enumerate(batch):
            yield i, [lg[r, : len(ids[i])] for lg in logits]


@torch.inference_mode()
def token_ranks(model, tokenizer, text: str, *, top_k: int = 5, max_tokens: int | None = None,
                stride: int | None = None) -> list[dict]:
    """Each token of `text` with its rank and probability under `model` and the `top_k` most likely
    tokens at its position (GLTR, Gehrmann et al. 2019): [{token, id, rank, prob, top_k: [{token, id,
    prob}]}]. `token` is the token's text (a cut UTF-8 character shows as U+FFFD).

    Without `stride` the text is cut to the model's context. With it, a text of any length is scored in
    `rolling_windows` of the context, each ending `stride` tokens after the last: every token is scored
    once, and past the first window with at least `n_ctx - stride` tokens before it."""
    n_ctx = context_length(model)
    # Every token is at least one byte and a character at most four, so 4 * len(text) + 1 cuts nothing.
    (ids,) = encode_texts(tokenizer, [text], n_ctx if stride is None else 4 * len(text) + 1, max_tokens)
    seq = torch.tensor([tokenizer.eot_token_id, *ids], dtype=torch.long)
    device = model_device(model)
    out = []
    for begin, end, n in rolling_windows(len(ids), n_ctx, stride or n_ctx):
        # The window reads seq[begin:end], which predicts ids[begin:end]; its last n predictions count.
        spans = [(end - begin - n, end - begin)]
        logits = torch.cat(list(_logits_at(model, seq[begin:end][None].to(device), spans)))
        for a in range(0, n, POSITION_CHUNK):
            logp = F.log_softmax(logits[a : a + POSITION_CHUNK].float(), dim=-1)
            tgt = torch.tensor(ids[end - n + a : min(end, end - n + a + POSITION_CHUNK)], device=logp.device)[:, None]
            lp = logp.gather(1, tgt)
            ranks = ((logp > lp).sum(-1) + 1).tolist()
            top = logp.topk(min(top_k, logp.size(-1)), dim=-1) if top_k > 0 else None
            for t, token_id in enumerate(tgt[:, 0].tolist()):
                alts = [] if top is None else [
                    {"token": tokenizer.id_to_token_str(j), "id": j, "prob": float(math.exp(v))}
                    for v, j in zip(top.values[t].tolist(), top.indices[t].tolist(), strict=True)]
                out.append({"token": tokenizer.id_to_token_str(token_id), "id": token_id, "rank": ranks[t],
                            "prob": float(math.exp(lp[t, 0].item())), "top_k": alts})
    return out
