"""Language-modelling tasks of the GPT-2 paper (Table 3): WikiText-2/103, PTB, enwik8, text8, any text file.

The whole test file is one text, scored by `rolling_nll` (every BPE token once, the first one conditioned
on <|endoftext|>). WikiText and PTB are first de-tokenized (`gpt2.evaluation.detokenize`), as in the
paper, but word perplexity is normalised by the ORIGINAL token count so it compares with word-level
models: the usual count, whitespace tokens plus one end-of-sentence per line (WikiText-2 test: 245,569;
PTB test: 82,430). Results also carry token perplexity (per BPE token) and bits per byte (per UTF-8
byte of the text the model read).

Reported:
    word_perplexity   exp(NLL / original words)                     wikitext2, wikitext103, ptb, perplexity
    token_perplexity  exp(NLL / BPE tokens)                          all
    bits_per_byte     NLL / ln 2 / UTF-8 bytes                       all (the paper's enwik8 metric)
    bits_per_character  the same for text8, whose text is ASCII      text8
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from gpt2.errors import DataError
from gpt2.evaluation.detokenize import detokenize_ptb, detokenize_wikitext
from gpt2.evaluation.result import TaskResult, decode_utf8, read_bytes
from gpt2.files import file_sha256
from gpt2.scoring import NLL, rolling_nll

# enwik8 and text8 are 100,000,000-byte files split 90M / 5M / 5M into train / valid / test (Mahoney's
# split, used by every character-level result the paper compares with).
HUTTER_SIZE = 100_000_000
HUTTER_TEST_START = 95_000_000


@dataclass(frozen=True)
class LMTask:
    name: str
    default_path: str | None  # relative to a data directory laid out like ../shared/data
    description: str
    detokenizer: str | None = None  # "wikitext" | "ptb"
    words: str | None = None  # "lines": + one <eos> per line; "whitespace": plain count; None: not reported
    primary: str = "word_perplexity"


LM_TASKS = {
    t.name: t
    for t in [
        LMTask("wikitext2", "wikitext2/wiki.test.tokens",
               "WikiText-2 test (wiki.test.tokens or wiki.test.raw)", "wikitext", "lines"),
        LMTask("wikitext103", "wikitext103/wiki.test.tokens", "WikiText-103 test (wiki.test.tokens)",
               "wikitext", "lines"),
        LMTask("ptb", "ptb/ptb.test.txt", "Penn Treebank test, Mikolov's split (ptb.test.txt)",
               "ptb", "lines"),
        LMTask("perplexity", None, "any UTF-8 text file, scored as it is", None, "whitespace"),
        LMTask("enwik8", "enwik8/enwik8",
               "enwik8 (the 100 MB file: its last 5 MB; any other file: all of it)",
               None, None, "bits_per_byte"),
        LMTask("text8", "text8/text8", "text8 (the 100 MB file: its last 5 MB; any other file: all of it)",
               None, None, "bits_per_character"),
    ]
}


def _lines(text: str) -> list[str]:
    """Lines split on "\\n" only (str.splitlines also splits on U+2028 and friends, which WikiText has)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _first_words(text: str, n: int) -> str:
    parts = text.split(" ")
    seen = 0
    for i, part in enumerate(parts):
        seen += bool(part)
        if seen == n:
            return " ".join(parts[: i + 1])
    return text


def count_words(text: str, eos_per_line: bool = True) -> int:
    """Original-token count: space-separated tokens, plus one end-of-sentence per line when `eos_per_line`
    (the convention of WikiText's and PTB's published counts; a final newline ends the last line)."""
    lines = _lines(text)
    words = sum(sum(1 for tok in line.split(" ") if tok) for line in lines)
    return words + (len(lines) if eos_per_line else 0)


def perplexity_metrics(nll: float, tokens: int, words: int | None, n_bytes: int | None) -> dict[str, float]:
    """The LM metrics of a summed NLL (nats) over `tokens` BPE tokens, `words` words, `n_bytes` bytes."""
    metrics = {"token_perplexity": math.exp(nll / tokens) if tokens else float("nan")}
    if words:
        metrics["word_perplexity"] = math.exp(nll / words)
    if n_bytes:
        metrics["bits_per_byte"] = nll / math.log(2) / n_bytes
    return metrics


@dataclass
class LMText:
    """The text a task scores and the counts its metrics are normalised by."""

    text: str  # what the model reads (de-tokenized where the task does that)
    words: int | None  # original words, with one <eos> per line where the task counts that
    n_bytes: int  # UTF-8 bytes of `text`
    n_examples: int  # lines (text8: words)


def load_lm_text(
    task: str, path: str | os.PathLike, limit: int | None = None, detokenize: bool = True
) -> LMText:
    """Read a task's file in its standard format; `limit` keeps the first N lines (text8: N words)."""
    spec = LM_TASKS[task]
    path = Path(path)
    data = read_bytes(path, spec.description)
    if task in ("enwik8", "text8") and len(data) == HUTTER_SIZE:
        data = data[HUTTER_TEST_START:]
        # The split is by bytes and enwik8 holds multi-byte UTF-8: start at the next character boundary.
        while data and 0x80 <= data[0] < 0xC0:
            data = data[1:]
    original = decode_utf8(data, path)
    if task == "text8":
        if limit is not None:
            original = _first_words(original, limit)
        n_examples = len(original.split())
    else:
        if limit is not None:
            lines = _lines(original)
            if len(lines) > limit:
                original = "\n".join(lines[:limit]) + "\n"
        n_examples = len(_lines(original))
    if not original.strip():
        raise DataError(f"{path}: no text to score; expected {spec.description}")

    words = None
    if spec.words == "lines":
        words = count_words(original)
    elif spec.words == "whitespace":
        words = len(original.split())
    text = original
    if detokenize and spec.detokenizer == "wikitext":
        text = detokenize_wikitext(original)
    elif detokenize and spec.detokenizer == "ptb":
        text = detokenize_ptb(original)
    return LMText(text, words, len(text.encode("utf-8")), n_examples)


def evaluate_lm(
    model,
    tokenizer,
    task: str,
    path: str | os.PathLike,
    *,
    limit: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    detokenize: bool = True,
    progress: bool = False,
) -> TaskResult:
    """Run one language-modelling task (a key of `LM_TASKS`) on the file at `path`."""
    if task not in LM_TASKS:
        raise ValueError(f"unknown language-modelling task {task!r}; choose one of {', '.join(LM_TASKS)}")
    start = time.perf_counter()
    lm = load_lm_text(task, path, limit=limit, detokenize=detokenize)
    ids = tokenizer.encode(lm.text)
    n_ctx = int(model.config.n_positions)
    stride = stride or max(1, n_ctx // 2)
    nll: NLL = rolling_nll(model, ids, tokenizer.eot_token_id, n_ctx=n_ctx, stride=stride,
                           batch_size=batch_size, progress=progress, desc=task)
    metrics = perplexity_metrics(nll.nll, nll.tokens, lm.words, lm.n_bytes)
    if task == "text8":
        metrics["bits_per_character"] = metrics["bits_per_byte"]  # text8 is ASCII: one byte per character
    return TaskResult(
        task=task,
        metrics=metrics,
        n_examples=lm.n_examples,
        nll=nll.nll,
        tokens=nll.tokens,
        words=lm.words,
        bytes=lm.n_bytes,
        runtime_s=time.perf_counter() - start,
        data_file=str(path),
        data_sha256=file_sha256(path),
        details={"stride": stride, "n_ctx": n_ctx, "limit": limit, "primary_metric": LM_TASKS[task].primary,
                 "detokenized": bool(detokenize and LM_TASKS[task].detokenizer)},
    )
