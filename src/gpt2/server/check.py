"""The Check view's request: GLTR's token ranks over a text of any length (rolling windows of the
model's context) and the configured detector's score, over windows of what it reads at once."""

from __future__ import annotations

import asyncio
import codecs
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool

from gpt2.model import GPT
from gpt2.scoring import rolling_windows, token_ranks
from gpt2.server.errors import APIError, busy
from gpt2.server.jobs import QueueFull, SchedulerClosed
from gpt2.server.protocol import DetectRequest
from gpt2.server.scheduler import Scheduler

# GLTR's rank buckets (1 = the model's first choice): top 10 green, top 100 yellow, top 1000 red, rest purple
BUCKETS: tuple[tuple[str, float], ...] = (("top10", 10), ("top100", 100), ("top1000", 1000),
                                          ("rest", float("inf")))
# OpenAI's detector demo: its answers "start to get reliable after around 50 tokens".
DETECTOR_MIN_TOKENS = 50
MAX_CHECK_TOKENS = 16384  # a text's tokens checked at once: bounds the work and the answer (~200 B a token)


def bucket(rank: int) -> str:
    """The GLTR bucket of a rank (1 = the most likely token)."""
    return next(name for name, bound in BUCKETS if rank <= bound)


class Detector(Protocol):
    """What /v1/detect needs of a detector: a name and a score per text (higher = more likely machine)."""

    name: str

    def score(self, texts: list[str]) -> Any: ...


class Checker:
    """/v1/detect: ranks on the scheduler's thread (it owns the model), then the detector's score."""

    def __init__(self, model: GPT, tokenizer: Any, scheduler: Scheduler, model_name: str,
                 detector: Detector | None, about: dict | None = None,
                 min_tokens: int = DETECTOR_MIN_TOKENS, max_tokens: int = MAX_CHECK_TOKENS) -> None:
        self.model, self.tokenizer, self.scheduler = model, tokenizer, scheduler
        self.model_name, self.detector, self.about = model_name, detector, about or {}
        self.min_tokens, self.max_tokens = min_tokens, max_tokens
        self.context = model.config.n_positions
        # Half the context, as rolling_nll's default: past the first window each token sees n_ctx/2 before it.
        self.stride = max(1, self.context // 2)
        limit = getattr(detector, "max_tokens", None)
        self.detector_window = limit if isinstance(limit, int) and limit > 0 else self.context

    async def detect(self, body: DetectRequest) -> dict:
        ids = await run_in_threadpool(self.tokenizer.encode, body.text)
        if len(ids) > self.max_tokens:
            raise APIError(400, f"the text is {len(ids)} tokens long; this server checks at most "
                           f"{self.max_tokens} tokens at once: check a part of it", param="text",
                           code="text_too_long")
        try:
            ranks = await asyncio.wrap_future(self.scheduler.call(
                lambda: token_ranks(self.model, self.tokenizer, body.text, top_k=body.alternatives,
                                    stride=self.stride)))
            tokens = self._tokens(ranks)
            detector = None
            if self.detector is not None:
                detector = await self._detector(tokens)
        except (QueueFull, SchedulerClosed) as e:
            raise busy(e) from None
        counts = {name: 0 for name, _ in BUCKETS}
        for t in tokens:
            counts[t["bucket"]] += 1
        fractions = {name: n / len(tokens) for name, n in counts.items()}
        windows = rolling_windows(len(tokens), self.context, self.stride)
        return {"model": self.model_name, "tokens": tokens, "counts": counts, "fractions": fractions,
                "window": {"context": self.context, "stride": self.stride, "windows": len(windows)},
                "detector": detector}

    def _tokens(self, ranks: list[dict]) -> list[dict]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        tokens = []
        for i, r in enumerate(ranks):
            # `text` pieces join to the input exactly: a character split over tokens goes with its last one
            text = decoder.decode(self.tokenizer.decode_bytes([r["id"]]), final=i == len(ranks) - 1)
            tokens.append({"id": r["id"], "token": r["token"], "text": text, "rank": r["rank"],
                           "prob": r["prob"], "bucket": bucket(r["rank"]), "top": r["top_k"]})
        return tokens

    async def _detector(self, tokens: list[dict]) -> dict:
        """The detector's P(machine): of the whole text when it fits the detector's window, else the mean
        over windows of that many tokens (the last one ending with the text, so none is short)."""
        n, size = len(tokens), self.detector_window
        starts = [0] if n <= size else [*range(0, n - size, size), n - size]
        spans = [(a, min(n, a + size)) for a in starts]
        texts = ["".join(t["text"] for t in tokens[a:b]) for a, b in spans]
        detector = self.detector
        scores = await asyncio.wrap_future(
            self.scheduler.call(lambda: [float(s) for s in detector.score(texts)]))
        return {"name": detector.name, "score": sum(scores) / len(scores),
                "windows": [{"start": a, "end": b, "score": s} for (a, b), s in zip(spans, scores, strict=True)],
                "window_tokens": size, "min_tokens": self.min_tokens, "shown": n >= self.min_tokens,
                "trained_on": self.about.get("trained_on"), "accuracy": self._accuracy(n)}

    def _accuracy(self, n: int) -> dict | None:
        """The detector's measured accuracy (from its report), at this text's length where the report
        has it by length; None when it was never measured."""
        about = self.about
        for row in about.get("by_length") or ():
            low, _, high = str(row.get("bucket", "")).rstrip("+").partition("-")
            if low.isdigit() and int(low) <= n and (not high or n < int(high)):
                return {"value": row["accuracy"], "texts": row.get("n"), "on": about.get("accuracy_on"),
                        "length": f"{row['bucket']} tokens"}
        if about.get("accuracy") is None:
            return None
        return {"value": about["accuracy"], "texts": about.get("accuracy_texts"), "on": about.get("accuracy_on"),
                "length": None}
