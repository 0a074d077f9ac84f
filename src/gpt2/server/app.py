"""The HTTP API (OpenAI's completions format) and the web page, as one FastAPI app.

Routes: POST /v1/completions, POST /v1/tokenize (the page's live token count), POST /v1/detect, GET
/v1/models, GET /health, the page at / (static files under /static, with /favicon.ico), GET /examples
(texts to check) and FastAPI's OpenAPI schema (/openapi.json, /docs). With an API key configured, every
/v1 route wants `Authorization: Bearer KEY`. The request handling lives per view: completions.py (Write)
and check.py (Check text).

With a watermark (`watermark=`, gpt2.sampling.Watermark) completions are watermarked by default (the
request field `watermark`), /v1/detect adds the checked text's z-test, and /health shows the public
settings (gamma, delta, context width, seeding); the key itself is in no response.
"""

from __future__ import annotations

import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from gpt2.model import GPT
from gpt2.sampling import Watermark, score_ids
from gpt2.server.about import human_examples
from gpt2.server.check import BUCKETS, DETECTOR_MIN_TOKENS, MAX_CHECK_TOKENS, Checker, Detector, bucket
from gpt2.server.completions import Completions
from gpt2.server.errors import APIError, BodyLimit, add_error_handlers
from gpt2.server.protocol import CompletionRequest, DetectRequest, TokenizeRequest
from gpt2.server.scheduler import Scheduler

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 2 * 1024 * 1024

__all__ = ["BUCKETS", "APIError", "Detector", "bucket", "create_app"]


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
    detector_about: dict | None = None,
    detector_min_tokens: int = DETECTOR_MIN_TOKENS,
    max_check_tokens: int = MAX_CHECK_TOKENS,
    watermark: Watermark | None = None,
) -> FastAPI:
    """The app serving `model`. Its scheduler (app.state.scheduler) runs while the app's lifespan does,
    and starts on the first request otherwise (e.g. under httpx's ASGITransport). `detector_about`
    (gpt2.server.about.describe_detector) is what the page says the detector was trained on and how
    accurate it measured; its score shows only for texts of `detector_min_tokens` or more. `watermark`
    (with its key) watermarks completions unless a request sends `"watermark": false`."""
    scheduler = Scheduler(model, tokenizer, max_batch=max_batch, max_queue=max_queue)
    completions = Completions(model, tokenizer, scheduler, model_name, max_tokens_limit, watermark)
    checker = Checker(model, tokenizer, scheduler, model_name, detector, detector_about,
                      min_tokens=detector_min_tokens, max_tokens=max_check_tokens)

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
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    add_error_handlers(app)
    _add_api(app, completions, checker, api_key)
    _add_page(app)
    return app


def _add_api(app: FastAPI, completions: Completions, checker: Checker, api_key: str | None) -> None:
    """The API under /v1 (behind the key, if any) and /health."""

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            raise APIError(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    v1 = [Depends(authorize)]
    started = int(time.time())

    @app.post("/v1/completions", dependencies=v1, tags=["api"])
    async def complete(body: CompletionRequest, request: Request):
        """OpenAI's completions: text in, continuations out (all at once, or as server-sent events)."""
        return await completions.complete(body, request)

    @app.post("/v1/tokenize", dependencies=v1, tags=["api"])
    async def tokenize(body: TokenizeRequest) -> dict:
        """The text's token count under the model's tokenizer (and, with keep_last, the text of its last
        tokens): the page's count as you type and its "keep the last N tokens"."""
        return await completions.tokenize(body)

    @app.post("/v1/detect", dependencies=v1, tags=["api"])
    async def detect(body: DetectRequest) -> dict:
        """GLTR: each token's rank (1 = the model's first choice) and probability, the share of tokens
        in each rank bucket, and the configured detector's score (P(machine)) if any. Texts longer than
        the context are scored in rolling windows (`window` says how). On a server with a watermark key,
        `watermark` is the text's z-test (null otherwise)."""
        result = await checker.detect(body)
        result["watermark"] = None if completions.watermark is None else \
            await run_in_threadpool(_watermark_test, completions, body.text)
        return result

    @app.get("/v1/models", dependencies=v1, tags=["api"])
    async def models() -> dict:
        return {"object": "list", "data": [{"id": completions.model_name, "object": "model",
                                            "created": started, "owned_by": "gpt2"}]}

    @app.get("/health", tags=["server"])
    async def health() -> dict:
        """Liveness, the model's limits (the web page reads them) and the scheduler's counters."""
        scheduler, detector = completions.scheduler, checker.detector
        return {
            "status": "ok", "model": completions.model_name, "context_length": completions.context,
            "max_tokens_limit": completions.max_tokens_limit, "auth_required": api_key is not None,
            "detector": detector.name if detector is not None else None,
            "watermark": completions.watermark.describe() if completions.watermark is not None else None,
            "detector_min_tokens": checker.min_tokens, "max_check_tokens": checker.max_tokens,
            "running": scheduler.running, "waiting": scheduler.waiting,
            "max_batch": scheduler.max_batch, "max_queue": scheduler.max_queue, "stats": scheduler.stats.snapshot(),
        }


def _watermark_test(completions: Completions, text: str) -> dict:
    """The green-list z-test of `text` under the server's key (repeated n-grams counted once); z > 4 is
    the paper's threshold."""
    ids = completions.tokenizer.encode(text)
    score = score_ids(ids, completions.watermark, completions.model.config.vocab_size).to_json()
    return {**score, "watermarked": score["z"] > 4.0}


def _add_page(app: FastAPI) -> None:
    """The page, its files, its icon and its example texts (public text: no key needed)."""
    examples: list[dict] = []

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/examples", tags=["server"])
    async def example_texts() -> dict:
        """Human-written texts to check (excerpts of Python's documentation); the page asks the model
        itself for a model-written one."""
        if not examples:
            examples.extend(await run_in_threadpool(human_examples))
        return {"human": examples}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
