"""The HTTP API (OpenAI's completions format) and the web page, as one FastAPI app.

Routes: POST /v1/completions, POST /v1/detect, GET /v1/models, GET /health, the page at / (static files
under /static) and FastAPI's OpenAPI schema (/openapi.json, /docs). With an API key configured, every
/v1 route wants `Authorization: Bearer KEY`.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from gpt2.model import GPT
from gpt2.sampling import GenerationConfig
from gpt2.scoring import token_ranks
from gpt2.server.jobs import Done, Failed, Job, Piece, QueueFull, SchedulerClosed
from gpt2.server.protocol import CompletionRequest, DetectRequest
from gpt2.server.scheduler import Scheduler

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 2 * 1024 * 1024
# GLTR's rank buckets (1 = the model's first choice): top 10 green, top 100 yellow, top 1000 red, rest purple
BUCKETS: tuple[tuple[str, float], ...] = (("top10", 10), ("top100", 100), ("top1000", 1000),
                                          ("rest", float("inf")))


def bucket(rank: int) -> str:
    """The GLTR bucket of a rank (1 = the most likely token)."""
    return next(name for name, bound in BUCKETS if rank <= bound)


class Detector(Protocol):
    """What /v1/detect needs of a detector: a name and a score per text (higher = more likely machine)."""

    name: str

    def score(self, texts: list[str]) -> Any: ...


class APIError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 type: str = "invalid_request_error", code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.type, self.code = status, message, param, type, code
        self.headers = headers

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413: by Content-Length before reading, or, for a
    chunked body, once it passes the limit (it is read up to the limit and then replayed to the app)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = APIError(413, f"request body over {self.limit} bytes", code="body_too_large").response()
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                await too_large(scope, receive, send)
                return
        elif b"chunked" in headers.get(b"transfer-encoding", b""):
            messages, size = [], 0
            while True:
                message = await receive()
                messages.append(message)
                size += len(message.get("body", b""))
                if size > self.limit:
                    await too_large(scope, receive, send)
                    return
                if message["type"] != "http.request" or not message.get("more_body"):
                    break

            async def replay():
                return messages.pop(0) if messages else await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


def create_app(
    model: GPT,
    tokenizer: Any,
    *,
    model_name: str = "gpt2",
    api_key: str | None = None,
    max_batch: int = 8,
    max_queue: int = 64,
    max_tokens_limit: int = 512,
    detector: Detector | None = None,
) -> FastAPI:
    """The app serving `model`. Its scheduler (app.state.scheduler) runs while the app's lifespan does,
    and starts on the first request otherwise (e.g. under httpx's ASGITransport)."""
    scheduler = Scheduler(model, tokenizer, max_batch=max_batch, max_queue=max_queue)
    server = _Server(model, tokenizer, scheduler, model_name, max_tokens_limit, detector)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler.start()
        yield
        await run_in_threadpool(scheduler.stop)

    app = FastAPI(
        title="GPT-2 server",
        summary="OpenAI-compatible completions, GLTR token ranks and a web page for one GPT-2 model.",
        version="1",
        lifespan=lifespan,
    )
    app.state.scheduler = scheduler
    app.state.server = server
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    _add_error_handlers(app)
    _add_routes(app, server, api_key)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Errors in OpenAI's shape: APIError as raised, request validation as invalid_request_error (422)."""

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            param, message = None, f"the body is not valid JSON ({first.get('ctx', {}).get('error', '')})"
        else:
            loc = [str(p) for p in first.get("loc", ()) if p != "body"]
            param = loc[0] if loc else None
            message = f"{'.'.join(loc) or 'body'}: {first.get('msg', 'invalid request')}"
        body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None},
                "detail": jsonable_encoder(errors, custom_encoder={bytes: lambda b: b.decode("latin-1")})}
        return JSONResponse(body, status_code=422)


def _add_routes(app: FastAPI, server: _Server, api_key: str | None) -> None:
    """The API under /v1 (behind the key, if any), /health, and the web page."""

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            raise APIError(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    v1 = [Depends(authorize)]

    @app.post("/v1/completions", dependencies=v1, tags=["api"])
    async def completions(body: CompletionRequest, request: Request):
        """OpenAI's completions: text in, continuations out (all at once, or as server-sent events)."""
        return await server.complete(body, request)

    @app.post("/v1/detect", dependencies=v1, tags=["api"])
    async def detect(body: DetectRequest) -> dict:
        """GLTR: each token's rank (1 = the model's first choice) and probability, the share of tokens
        in each rank bucket, and the configured detector's score (P(machine)) if any."""
        return await server.detect(body)

    @app.get("/v1/models", dependencies=v1, tags=["api"])
    async def models() -> dict:
        return {"object": "list", "data": [{"id": server.model_name, "object": "model",
                                            "created": server.started, "owned_by": "gpt2"}]}

    @app.get("/health", tags=["server"])
    async def health() -> dict:
        """Liveness, the model's limits (the web page reads them) and the scheduler's counters."""
        scheduler, detector = server.scheduler, server.detector
        return {
            "status": "ok", "model": server.model_name, "context_length": server.context,
            "max_tokens_limit": server.max_tokens_limit, "auth_required": api_key is not None,
            "detector": detector.name if detector is not None else None,
            "running": scheduler.running, "waiting": scheduler.waiting,
            "max_batch": scheduler.max_batch, "max_queue": scheduler.max_queue, "stats": scheduler.stats.snapshot(),
        }

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


class _Server:
    """The request handling behind the routes: validation against the model, jobs, responses."""

    def __init__(self, model: GPT, tokenizer: Any, scheduler: Scheduler, model_name: str,
                 max_tokens_limit: int, detector: Detector | None) -> None:
        self.model, self.tokenizer, self.scheduler = model, tokenizer, scheduler
        self.model_name, self.max_tokens_limit, self.detector = model_name, max_tokens_limit, detector
        self.context = model.config.n_positions
        self.started = int(time.time())

    # ---- completions ----

    async def complete(self, body: CompletionRequest, request: Request):
        prompts, texts = await run_in_threadpool(self._prompts, body.prompt)
        self._check_lengths(prompts, body.max_tokens)
        seed = body.seed if body.seed is not None else secrets.randbits(62)
        config = GenerationConfig(
            temperature=body.temperature, top_k=body.top_k, top_p=body.top_p, max_new_tokens=body.max_tokens,
            num_return_sequences=body.n, seed=seed, stop_strings=body.stops(),
        )
        job = Job(prompts, config, logprobs=body.logprobs)
        try:
            self.scheduler.submit(job)
        except QueueFull as e:
            raise APIError(429, f"{e} (at most {self.scheduler.max_queue} requests wait)",
                           type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": str(e.retry_after)}) from None
        except SchedulerClosed as e:
            raise APIError(503, str(e), type="server_error", headers={"Retry-After": "5"}) from None
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.model_name}
        offsets = [len(texts[i // body.n]) for i in range(len(prompts) * body.n)]
        if body.stream:
            return StreamingResponse(
                self._sse(job, request, head, offsets), media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        count = len(prompts) * body.n
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
                    raise APIError(400, f"prompt {i}: token ids {bad[:5]} are outside the vocabulary "
                                   f"[0, {vocab - 1}]", param="prompt")
                ids.append(list(p))
                texts.append(self.tokenizer.decode(p))
            if not ids[-1]:
                ids[-1] = [self.model.config.bos_token_id]
        return ids, texts

    def _check_lengths(self, prompts: list[list[int]], max_tokens: int) -> None:
        if max_tokens > self.max_tokens_limit:
            raise APIError(400, f"max_tokens is {max_tokens}; this server allows at most "
                           f"{self.max_tokens_limit} per request", param="max_tokens",
                           code="max_tokens_limit")
        for i, ids in enumerate(prompts):
            if len(ids) + max_tokens > self.context:
                raise APIError(
                    400, f"prompt {i} has {len(ids)} tokens and max_tokens is {max_tokens}: "
                    f"{len(ids) + max_tokens} in all, beyond the model's context of {self.context} tokens; "
                    "shorten the prompt or lower max_tokens", param="prompt", code="context_length_exceeded")

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

    # ---- detection ----

    async def detect(self, body: DetectRequest) -> dict:
        ids = await run_in_threadpool(self.tokenizer.encode, body.text)
        if len(ids) > self.context:
            raise APIError(400, f"the text has {len(ids)} tokens; this model reads at most {self.context} "
                           "at once; check a shorter text", param="text", code="context_length_exceeded")
        try:
            ranks = await asyncio.wrap_future(self.scheduler.call(
                lambda: token_ranks(self.model, self.tokenizer, body.text, top_k=body.alternatives)))
            score = None
            if self.detector is not None:
                detector = self.detector
                score = await asyncio.wrap_future(
                    self.scheduler.call(lambda: float(list(detector.score([body.text]))[0])))
        except QueueFull as e:
            raise APIError(429, str(e), type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": str(e.retry_after)}) from None
        except SchedulerClosed as e:
            raise APIError(503, str(e), type="server_error") from None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        tokens = []
        for i, r in enumerate(ranks):
            # `text` pieces join to the input exactly: a character split over tokens goes with its last one
            text = decoder.decode(self.tokenizer.decode_bytes([r["id"]]), final=i == len(ranks) - 1)
            tokens.append({"id": r["id"], "token": r["token"], "text": text, "rank": r["rank"],
                           "prob": r["prob"], "bucket": bucket(r["rank"]), "top": r["top_k"]})
        counts = {name: 0 for name, _ in BUCKETS}
        for t in tokens:
            counts[t["bucket"]] += 1
        fractions = {name: n / len(tokens) for name, n in counts.items()}
        detector = None if self.detector is None else {"name": self.detector.name, "score": score}
        return {"model": self.model_name, "tokens": tokens, "counts": counts, "fractions": fractions,
                "detector": detector}


def _logprobs(tokens: list, offset: int) -> dict[str, list]:
    """OpenAI's legacy logprobs object; text offsets count from the start of the prompt."""
    return {"tokens": [t.token for t in tokens], "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": [t.top for t in tokens], "text_offset": [offset + t.offset for t in tokens]}


def _extend(into: dict[str, list], more: dict[str, list]) -> None:
    for key, values in more.items():
        into[key].extend(values)
