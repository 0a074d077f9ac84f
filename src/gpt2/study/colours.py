"""GLTR's colours for the GLTR arm, computed once when the study is made (never while raters wait, so no
response time depends on an item's source): each token's rank under a model, as `gpt2.scoring.token_ranks`
gives it, turned into text pieces that join back to exactly the item's text."""

from __future__ import annotations

from typing import Any

from gpt2.scoring import token_ranks

BOUNDS = (10, 100, 1000)  # rank <= 10: bucket 0 (green), <= 100: 1 (yellow), <= 1000: 2 (red), else 3 (purple)


def bucket(rank: int) -> int:
    return next((b for b, bound in enumerate(BOUNDS) if rank <= bound), len(BOUNDS))


def segments(model, tokenizer, text: str) -> list[list[Any]]:
    """[[piece, bucket], ...] joining to `text`. Tokens that split a character are merged into one piece
    (with the worst bucket of the tokens in it); text past the model's context is one uncoloured piece
    (bucket None), so the pieces always cover the whole text."""
    ranks = token_ranks(model, tokenizer, text, top_k=0)
    out: list[list[Any]] = []
    pending, worst, at = b"", 0, 0
    for token in ranks:
        pending += tokenizer.decode_bytes([token["id"]])
        worst = max(worst, bucket(token["rank"]))
        try:
            piece = pending.decode("utf-8")
        except UnicodeDecodeError:
            continue  # a character cut between tokens: wait for the rest of its bytes
        out.append([piece, worst])
        at += len(piece)
        pending, worst = b"", 0
    if "".join(p for p, _ in out) != text[:at]:  # a tokenizer that does not round-trip this text
        return [[text, None]]
    if at < len(text):
        out.append([text[at:], None])
    return out


def colourer(model, tokenizer):
    """`text -> segments` for build_study(colour=...)."""
    return lambda text: segments(model, tokenizer, text)
