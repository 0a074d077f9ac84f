"""Errors in OpenAI's shape ({"error": {"message", "type", "param", "code"}}), the handlers that answer
them, and the request body limit."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gpt2.server.jobs import QueueFull, SchedulerClosed


class APIError(Exception):
    """An error answered in OpenAI's shape. `param` names the request field at fault, so that a client
    (the web page) can mark that field."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 type: str = "invalid_request_error", code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.type, self.code = status, message, param, type, code
        self.headers = headers

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def busy(e: QueueFull | SchedulerClosed, max_queue: int | None = None) -> APIError:
    """429 for a full queue, 503 for a scheduler shutting down, both with Retry-After."""
    if isinstance(e, QueueFull):
        limit = f" (at most {max_queue} requests wait)" if max_queue is not None else ""
        return APIError(429, f"{e}{limit}", type="rate_limit_error", code="queue_full",
                        headers={"Retry-After": str(e.retry_after)})
    return APIError(503, str(e), type="server_error", headers={"Retry-After": "5"})


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


def add_error_handlers(app: FastAPI) -> None:
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
