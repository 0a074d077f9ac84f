"""The human side: pieces of a corpus's documents in the same jsonl schema (`webtext.<split>.jsonl`, as in
gpt-2-output-dataset), so that a detector can be trained and tested on both sides alike."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from gpt2.data.documents import expand_inputs, read_documents
from gpt2.errors import DataError
from gpt2.output_dataset.jsonl import write_rows
from gpt2.output_dataset.spec import SPLITS

HUMAN_NAME = "webtext"  # the human side's file prefix, as in gpt-2-output-dataset


def human_chunks(documents: Iterable[str], tokenizer, max_tokens: int, mode: str = "first",
                 min_tokens: int = 1) -> Iterable[tuple[str, int, bool]]:
    """(text, length, ended) pieces of documents, each at most `max_tokens` tokens: the start of every
    document (mode 'first', like OpenAI's webtext files, which hold each document's first 1,024 tokens), or
    every consecutive piece (mode 'all'). `ended`: the piece reaches its document's end."""
    if mode not in ("first", "all"):
        raise DataError(f"human chunk mode must be 'first' or 'all', got {mode!r}")
    for doc in documents:
        ids = tokenizer.encode(doc)
        start = 0
        while start < len(ids):
            end = _utf8_boundary(tokenizer, ids, start, min(start + max_tokens, len(ids)))
            if end - start >= min_tokens:
                yield tokenizer.decode(ids[start:end]), end - start, end == len(ids)
            if mode == "first":
                break
            start = end


def _utf8_boundary(tokenizer, ids: list[int], start: int, end: int) -> int:
    """`end`, moved back (a few tokens at most) so that ids[start:end] does not cut a character."""
    for e in range(end, max(start, end - 4), -1):
        try:
            tokenizer.decode_bytes(ids[start:e]).decode("utf-8")
            return e
        except UnicodeDecodeError:
            continue
    return end


def write_human_side(
    files: Sequence[str | os.PathLike],
    tokenizer,
    splits: dict[str, int],
    out_dir: str | os.PathLike,
    *,
    max_tokens: int,
    mode: str = "first",
    txt_split: str = "file",
    name: str = HUMAN_NAME,
) -> dict[str, int]:
    """`<name>.<split>.jsonl` from a corpus: pieces of documents (see `human_chunks`) in corpus order, the
    first `splits['train']` to train, the next to valid, then test; ids count across splits as on the
    machine side. A corpus too small for every split fills them in order and says so in the counts."""
    paths = expand_inputs(files)
    docs = (d for p in paths for d in read_documents(p, txt_split=txt_split))
    pieces = iter(human_chunks(docs, tokenizer, max_tokens, mode))
    counts: dict[str, int] = {}
    next_id = 0
    for split in SPLITS:
        want = splits.get(split, 0)
        if want == 0:
            continue
        rows = []
        for _, (text, length, ended) in zip(range(want), pieces, strict=False):
            rows.append({"id": next_id, "ended": ended, "length": length, "text": text})
            next_id += 1
        write_rows(Path(out_dir) / f"{name}.{split}.jsonl", rows)
        counts[split] = len(rows)
    return counts
