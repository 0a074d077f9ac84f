"""What the scheduler works on: the job that carries a request (prompts and a GenerationConfig), its
choices as rows of the decode batch, and the events a job sends back to the asyncio side (pieces of text,
then Done or Failed)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

# The sampler's row: seeding from (seed, sample_index), stop strings, incremental decoding. A served choice
# is one, decoded by the same engine as generate()'s rows, so it samples exactly as generate() does.
from gpt2.sampling import GenerationConfig, SampleRow


class QueueFull(Exception):
    """More requests are waiting than the queue holds; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy; retry after {retry_after} s")
        self.retry_after = retry_after


class SchedulerClosed(Exception):
    """The server is shutting down."""


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: dict[str, float]
    offset: int  # characters into the completion where the token's text starts


@dataclass
class Piece:
    """New text of one choice; `finish_reason` ('stop' or 'length', as OpenAI names them) marks its last
    piece."""

    index: int
    text: str
    tokens: list[TokenLogprob]
    finish_reason: str | None = None


@dataclass
class Done:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Failed:
    message: str
    status: int = 500  # the HTTP status to answer with: 503 when the server is going away


class Job:
    """A completion request: its prompts x config.num_return_sequences choices, the logprobs it wants
    (alternatives per token; None = none) and the queue its events arrive on."""

    def __init__(self, prompts: list[list[int]], config: GenerationConfig, logprobs: int | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.prompts, self.config, self.logprobs = prompts, config, logprobs
        self.n = config.num_return_sequences
        self.loop = loop or asyncio.get_running_loop()
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled = False
        self.pending: deque[ChoiceRow] = deque()  # choices not yet in the batch
        self.unfinished = len(prompts) * self.n
        self.completion_tokens = 0
        self.submitted = time.monotonic()

    def post(self, event: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop has closed (shutdown): nobody is listening
            pass


class ChoiceRow(SampleRow):
    """One choice of a job (OpenAI's word for a completion of one prompt): a sampler's row that also reports
    its text and logprobs to the job. `config` is the job's, resolved for the model (`for_model`)."""

    def __init__(self, job: Job, config: GenerationConfig, prompt_index: int, sample_index: int,
                 tokenizer: Any) -> None:
        super().__init__(config, job.prompts[prompt_index], prompt_index=prompt_index, sample_index=sample_index,
                         tokenizer=tokenizer)
        self.job, self.index = job, prompt_index * job.n + sample_index
        self.logprobs: list[TokenLogprob] = []
        self.sent_chars = 0
        self.sent_logprobs = 0

    def add(self, token: int, record: TokenLogprob | None = None) -> None:
        if record is not None and token != self.config.eos_token_id:
            self.logprobs.append(record)
        super().add(token)
        self.job.completion_tokens += 1

    def emit(self, finish_reason: str | None = None) -> None:
        """Post the text that is settled now (everything, once finished) and its tokens' logprobs."""
        reason = finish_reason or self.finish_reason
        text = self.final_text() if reason else self.settled_text()
        records = [r for r in self.logprobs[self.sent_logprobs:] if r.offset < len(text)]
        piece = text[self.sent_chars:]
        if piece or records or reason:
            reason = {"eos": "stop"}.get(reason, reason)
            self.job.post(Piece(self.index, piece, records, reason))
            self.sent_chars = len(text)
            self.sent_logprobs += len(records)
