"""The Write view's requests: OpenAI's completions (whole, or streamed as server-sent events) and the
token count the page shows as you type (with the tail of a text that fits the context).

A server started with a watermark key (gpt2.sampling.Watermark) watermarks completions unless a request
says `"watermark": false`; the key stays here: responses say only whether a completion was watermarked."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from gpt2.model import GPT
from gpt2.sampling import GenerationConfig, Watermark
from gpt2.server.errors import APIError, busy
from gpt2.server.jobs import Done, Failed, Job, Piece, QueueFull, SchedulerClosed
from gpt2.server.protocol import CompletionRequest, TokenizeRequest
from gpt2.server.scheduler import Scheduler


class Completions:
    """Validation against the model, jobs on the scheduler, and OpenAI's response shapes."""

    def __init__(self, model: GPT, tokenizer: Any, scheduler: Scheduler, model_name: str,
                 max_tokens_limit: int, watermark: Watermark | None = None) -> None:
        self.model, self.tokenizer, self.scheduler = model, tokenizer, scheduler
        self.model_name, self.max_tokens_limit = model_name, max_tokens_limit
        self.context = model.config.n_positions
        self.watermark = watermark  # the key: never in a response, a log line or an error

    async def complete(self, body: CompletionRequest, request: Request):
        prompts, texts = await run_in_threadpool(self._prompts, body.prompt)
        self._check_lengths(prompts, body.max_tokens)
        watermark = self._watermark(body.watermark)
        seed = body.seed if body.seed is not None else secrets.randbits(62)
        config = GenerationConfig(
            temperature=body.temperature, top_k=body.top_k, top_p=body.top_p, max_new_tokens=body.max_tokens,
            num_return_sequences=body.n, seed=seed, stop_strings=body.stops(), watermark=watermark,
        )
        job = Job(prompts, config, logprobs=body.logprobs)
        try:
            self.scheduler.submit(job)
        except (QueueFull, SchedulerClosed) as e:
            raise busy(e, self.scheduler.max_queue) from None
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.model_name, "watermark": watermark is not None}
        offsets = [len(texts[i // body.n]) for i in range(len(prompts) * body.n)]
        if body.stream:
            return StreamingResponse(
                self._sse(job, request, head, offsets), media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await self._whole(job, request, head, offsets, body, seed)

    async def _whole(self, job: Job, request: Request, head: dict, offsets: list[int],
                     body: CompletionRequest, seed: int):
        count = len(offsets)
        choices = [{"text": "", "index": i, "logprobs": _logprobs([], offsets[i]) if body.logprobs is not None
                    else None, "finish_reason": None} for i in range(count)]
        async for event in self._events(job, request, poll_disconnect=True):
            if isinstance(event, Piece):
                choice = choices[event.index]
                choice["text"] += event.text
                choice["finish_reason"] = event.finish_reason or choice["finish_reason"]
                if choice["logprobs"] is not None:
                    _extend(choice["logprobs"], _logprobs(event.tokens, offsets[event.index]))
            elif isinstance(event, Done):
                usage = {"prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
                         "total_tokens": event.prompt_tokens + event.completion_tokens}
                return {**head, "choices": choices, "usage": usage, "seed": seed}
            elif isinstance(event, Failed):
                raise APIError(event.status, event.message, type="server_error")
        return JSONResponse({"error": {"message": "client disconnected"}}, status_code=499)

    def _watermark(self, asked: bool | None) -> Watermark | None:
        """The server's watermark unless the request turned it off; asking for one without a key is a 400."""
        if asked and self.watermark is None:
            raise APIError(400, "watermark: this server has no watermark key (start it with `gpt2 serve "
                           "--watermark --watermark-key-file FILE`); leave the field out or send false",
                           param="watermark", code="watermark_unavailable")
        return self.watermark if asked is not False else None

    def _prompts(self, prompt: str | list) -> tuple[list[list[int]], list[str]]:
        """Token ids and text of each prompt; an empty prompt is <|endoftext|> (unconditional)."""
        if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)):
            prompt = [prompt]
        ids, texts = [], []
        vocab = self.model.config.vocab_size
        for i, p in enumerate(prompt):
            if isinstance(p, str):
                ids.append(self.tokenizer.encode(p))
                texts.append(p)
            else:
                bad = [t for t in p if not 0 <= t < min(vocab, self.tokenizer.vocab_size)]
                if bad:
                    raise APIError(400, f"{_which(i, len(prompt))}: token ids {bad[:5]} are outside the "
                                   f"vocabulary [0, {vocab - 1}]", param="prompt")
                ids.append(list(p))
                texts.append(self.tokenizer.decode(p))
            if not ids[-1]:
                ids[-1] = [self.model.config.bos_token_id]
        return ids, texts

    def _check_lengths(self, prompts: list[list[int]], max_tokens: int) -> None:
        if max_tokens > self.max_tokens_limit:
            raise APIError(400, f"max_tokens asks for {max_tokens} tokens; this server writes at most "
                           f"{self.max_tokens_limit} per request", param="max_tokens", code="max_tokens_limit")
        for i, ids in enumerate(prompts):
            if len(ids) + max_tokens > self.context:
                raise APIError(
                    400, f"{_which(i, len(prompts))} is {len(ids)} tokens long and max_tokens asks for "
                    f"{max_tokens} more, but this model reads at most {self.context} tokens in all: shorten "
                    f"the prompt to {max(0, self.context - max_tokens)} tokens or lower max_tokens",
                    param="prompt", code="context_length_exceeded")

    async def tokenize(self, body: TokenizeRequest) -> dict:
        """The text's token count; with keep_last, also the end of the text that is at most that many
        tokens (for "keep the last N tokens" of a prompt that outgrew the context)."""
        ids = await run_in_threadpool(self.tokenizer.encode, body.text)
        out: dict[str, Any] = {"tokens": len(ids), "context_length": self.context}
        if body.keep_last is not None:
            out["text"] = await run_in_threadpool(self._tail, ids, body.keep_last)
        return out

    def _tail(self, ids: list[int], n: int) -> str:
        """The text of the last `n` tokens, less a character cut at its start; tokenized again it may merge
        differently, so tokens are dropped from the front until it is at most `n` tokens."""
        keep = min(n, len(ids))
        while keep > 0:
            tail = self.tokenizer.decode_bytes(ids[len(ids) - keep:]).decode("utf-8", errors="ignore")
            if len(self.tokenizer.encode(tail)) <= n:
                return tail
            keep -= 1
        return ""

    async def _sse(self, job: Job, request: Request, head: dict, offsets: list[int]) -> AsyncIterator[str]:
        async for event in self._events(job, request, poll_disconnect=False):
            if isinstance(event, Piece):
                logprobs = _logprobs(event.tokens, offsets[event.index]) if job.logprobs is not None \
                    else None
                choice = {"text": event.text, "index": event.index, "logprobs": logprobs,
                          "finish_reason": event.finish_reason}
                yield f"data: {json.dumps({**head, 'choices': [choice]})}\n\n"
            elif isinstance(event, Failed):
                error = {"message": event.message, "type": "server_error", "param": None, "code": None}
                yield f"data: {json.dumps({'error': error})}\n\n"
        yield "data: [DONE]\n\n"

    async def _events(self, job: Job, request: Request, poll_disconnect: bool) -> AsyncIterator[Any]:
        """The job's events until Done or Failed. Leaving early (the client went away, or a streaming
        response was cancelled) cancels the job, so its rows leave the batch."""
        getter: asyncio.Future | None = None
        checked = time.monotonic()
        try:
            while True:
                getter = asyncio.ensure_future(job.events.get())
                while True:
                    done = (await asyncio.wait({getter}, timeout=0.25))[0]
                    if poll_disconnect and time.monotonic() - checked >= 0.25:
                        checked = time.monotonic()
                        if await request.is_disconnected():
                            return
                    if done:
                        break
                event, getter = getter.result(), None
                yield event
                if isinstance(event, Done | Failed):
                    return
        finally:
            if getter is not None:
                getter.cancel()
            self.scheduler.cancel(job)  # a no-op once the job is done


def _which(i: int, count: int) -> str:
    """"the prompt" for a request with one, "prompt 2" (counted from 0, as indices are) among several."""
    return "the prompt" if count == 1 else f"prompt {i}"


def _logprobs(tokens: list, offset: int) -> dict[str, list]:
    """OpenAI's legacy logprobs object; text offsets count from the start of the prompt."""
    return {"tokens": [t.token for t in tokens], "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": [t.top for t in tokens], "text_offset": [offset + t.offset for t in tokens]}


def _extend(into: dict[str, list], more: dict[str, list]) -> None:
    for key, values in more.items():
        into[key].extend(values)
