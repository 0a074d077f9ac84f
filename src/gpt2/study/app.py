"""The raters' web app: the rating page, its JSON API, and the admin's progress view, as one FastAPI app.

Tokens travel in `Authorization: Bearer` headers, never in URLs: the page reads its token from the link's
#fragment, which browsers do not send to servers, so no access log, proxy or Referer ever holds one.
What a rater receives is built by `Item.public` (id, text, colours in the GLTR arm) and served from memory,
the same work for every item, so neither the bodies nor the response times carry an item's source.

Routes: GET / (rating page), GET /admin (progress page), GET /api/state (the rater's next item and
progress), GET /api/items/{id} (one of the rater's own items), POST /api/answers, GET /api/progress (admin).
Errors are {"error": {"field", "message"}}: 401 without a token, 403 with a forged one, another rater's
item or the wrong role, 409 for a second, different answer, 422 naming the field of a bad answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from gpt2.study.answers import AnswerError, parse_answer
from gpt2.study.spec import Study
from gpt2.study.store import Rater, Store

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 64 * 1024
HEADERS = {
    "Cache-Control": "no-store",  # answers and items are per rater; nothing should sit in a shared cache
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
}


class HTTPError(Exception):
    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def create_app(study: Study, store: Store) -> FastAPI:
    # no OpenAPI pages: raters need none, and a smaller surface is a smaller leak
    app = FastAPI(title=study.title, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    @app.exception_handler(HTTPError)
    async def http_error(request: Request, e: HTTPError) -> JSONResponse:
        return JSONResponse({"error": {"field": e.field, "message": e.message}}, status_code=e.status)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "rate.html")

    @app.get("/admin", include_in_schema=False)
    def admin_page() -> FileResponse:
        return FileResponse(STATIC / "admin.html")

    @app.get("/api/state")
    def state(request: Request) -> dict[str, Any]:
        return rater_state(study, store, authorise(store, request, "rater"))

    @app.get("/api/items/{item_id}")
    def item(item_id: str, request: Request) -> dict[str, Any]:
        rater = authorise(store, request, "rater")
        if item_id not in store.assignment(rater.id):
            raise HTTPError(403, "item", "this item is not one of yours")
        return study.items[item_id].public(colours=rater.arm == "gltr")

    @app.post("/api/answers")
    async def answer(request: Request) -> JSONResponse:
        rater = await run_in_threadpool(authorise, store, request, "rater")
        body = await read_json(request)
        try:
            parsed = parse_answer(body, study.questions)
        except AnswerError as e:
            raise HTTPError(422, e.field, str(e)) from None
        outcome = await run_in_threadpool(store.submit, rater.id, parsed)
        return answer_response(outcome, parsed.item)

    @app.get("/api/progress")
    def progress(request: Request) -> dict[str, Any]:
        authorise(store, request, "admin")
        raters = store.progress()
        return {"title": study.title, "simulated": any(r["simulated"] for r in raters), "raters": raters,
                "answered": sum(r["answered"] for r in raters), "assigned": sum(r["assigned"] for r in raters)}

    return app


def authorise(store: Store, request: Request, role: str) -> Rater:
    """The rater (or admin) whose token the request carries: 401 without one, 403 for any other."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPError(401, "authorization", "expected the header 'Authorization: Bearer TOKEN' (open your "
                        "invitation link)")
    rater = store.rater(token.strip())
    if rater is None or rater.role != role:
        raise HTTPError(403, "authorization", "this token is not valid here")
    return rater


def rater_state(study: Study, store: Store, rater: Rater) -> dict[str, Any]:
    """The questions, progress and the first item not yet answered (None when all are): what the page
    needs after a reload to carry on where the rater was."""
    items = store.assignment(rater.id)
    done = store.answered(rater.id)
    upcoming = next((i for i in items if i not in done), None)
    return {
        "title": study.title, "questions": study.questions, "colours": rater.arm == "gltr",
        "total": len(items), "answered": len(done), "position": len(done) + (upcoming is not None),
        "item": None if upcoming is None else study.items[upcoming].public(colours=rater.arm == "gltr"),
    }


async def read_json(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPError(413, "body", f"expected at most {MAX_BODY_BYTES} bytes, got {len(body)}")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HTTPError(422, "body", f"expected a JSON object ({e})") from None


def answer_response(outcome: str, item: str) -> JSONResponse:
    if outcome == "recorded":
        return JSONResponse({"status": "recorded", "item": item}, status_code=201)
    if outcome == "same":  # a retry of an answer already stored: acknowledged again, stored once
        return JSONResponse({"status": "already recorded", "item": item}, status_code=200)
    if outcome == "conflict":
        raise HTTPError(409, "item", "this item is already answered; a second, different answer is refused "
                        "(the first one stands)")
    raise HTTPError(403, "item", "this item is not one of yours")
