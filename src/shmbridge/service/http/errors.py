"""The one HTTP error shape, the handlers that produce it, and the body-limit middleware.

Every error the HTTP side sends looks like this, whatever raised it (a ``ShmBridgeError``, FastAPI's
schema validation, Starlette's 404/405, or a bug)::

    {"error": {"code": "BUSY", "code_num": 33, "message": "...", "retry_after": 1.0, "request_id": "..."}}

``code``/``code_num`` are ``errors.ErrorCode`` (the same codes the session protocol uses); ``retry_after``
appears on BUSY only, together with a ``Retry-After`` header; 422 adds ``details`` (the schema errors,
without echoing the input). A client mistake is always 4xx: only a real fault of the service is 500.

The middleware refuses a body over its route's limit from ``Content-Length`` before reading a byte, and
counts bytes of bodies sent without one. It also lets old clients that post JSON without a
``Content-Type`` keep working on the legacy routes.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...errors import Busy, ErrorCode, ShmBridgeError

log = logging.getLogger("shmbridge.http")

_STATUS_CODES = {
    403: ErrorCode.ACCESS_DENIED,
    404: ErrorCode.NOT_FOUND,
    408: ErrorCode.TIMEOUT,
    413: ErrorCode.IMAGE_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA,
    503: ErrorCode.SERVICE_UNAVAILABLE,
    504: ErrorCode.TIMEOUT,
}


def error_body(code: ErrorCode, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code.name, "code_num": int(code), "message": message, **extra}}


def _request_id(request: Request) -> dict[str, str]:
    rid = getattr(request.state, "request_id", None)
    return {"request_id": rid} if rid else {}


def error_response(exc: ShmBridgeError, request_id: str | None = None) -> JSONResponse:
    """The HTTP answer for a typed error: its status, the error shape, ``Retry-After`` on BUSY."""
    body = {**exc.to_dict(), **({"request_id": request_id} if request_id else {})}
    headers = {}
    if request_id and request_id.isascii() and request_id.isprintable():
        headers["X-Request-Id"] = request_id
    if isinstance(exc, Busy):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return JSONResponse({"error": body}, status_code=exc.http_status, headers=headers)


async def _on_shmbridge_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ShmBridgeError)
    if exc.http_status >= 500 and not isinstance(exc, Busy):
        log.warning("%s %s -> %s %s: %s", request.method, request.url.path, exc.http_status, exc.code.name, exc.message)
    return error_response(exc, getattr(request.state, "request_id", None))


def _schema_details(errors: list[Any]) -> list[dict[str, Any]]:
    """Schema errors without ``input`` (it may be a megabyte of base64) or unserialisable ``ctx``."""
    return [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": error.get("type"),
        }
        for error in errors[:20]
    ]


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError | ValidationError)
    details = _schema_details(list(exc.errors()))
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    message = f"{'.'.join(first['loc']) or 'request'}: {first['msg']}"
    return JSONResponse(
        error_body(ErrorCode.INVALID_REQUEST, message, details=details, **_request_id(request)), status_code=422
    )


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _STATUS_CODES.get(status, ErrorCode.INVALID_REQUEST if status < 500 else ErrorCode.INTERNAL)
    message = exc.detail if isinstance(exc.detail, str) else orjson.dumps(exc.detail).decode()
    return JSONResponse(error_body(code, message, **_request_id(request)), status_code=status, headers=exc.headers)


async def _on_disconnect(request: Request, exc: Exception) -> Response:
    # Nobody is listening any more; the status only shows in the access log.
    return JSONResponse(error_body(ErrorCode.INVALID_REQUEST, "client disconnected"), status_code=400)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}", **_request_id(request)),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ShmBridgeError, _on_shmbridge_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(ClientDisconnect, _on_disconnect)
    app.add_exception_handler(Exception, _on_unexpected)


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` when a body without ``Content-Length`` grows past its limit.

    An ``HTTPException`` because FastAPI re-raises those from body parsing (anything else becomes 400).
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds the limit of {limit} bytes")


class BodyTimeout(StarletteHTTPException):
    """Raised from ``receive`` when a body does not arrive within the request timeout (a stalled or
    trickling client must not hold a connection and a reserved buffer for ever)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:g} s")


class BodyLimitMiddleware:
    """Per-route body limits and a deadline for the whole body, enforced as it is read, plus a
    Content-Type shim for old clients.

    ``limit_for(path)`` gives the limit for a path. ``json_paths`` are routes whose bodies are JSON: a
    request to one of them without ``Content-Type`` is treated as ``application/json``, as the old service
    did (recent FastAPI otherwise refuses to parse it).
    """

    def __init__(
        self,
        app: ASGIApp,
        limit_for: Callable[[str], int],
        json_paths: frozenset[str],
        body_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.json_paths = json_paths
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.limit_for(path)
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        declared = next((value for name, value in headers if name == b"content-length"), None)
        if declared is not None:
            if not declared.isdigit():
                await _send_error(send, 400, ErrorCode.INVALID_REQUEST, "bad Content-Length header")
                return
            if int(declared) > limit:
                message = f"a {int(declared)}-byte body exceeds the limit of {limit} bytes for {path}"
                await _send_error(send, 413, ErrorCode.IMAGE_TOO_LARGE, message)
                return
        if path in self.json_paths and not any(name == b"content-type" for name, _ in headers):
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        received = 0
        deadline = asyncio.get_running_loop().time() + self.body_timeout

        body_done = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # later reads only wait for a disconnect: no deadline on those
                return await receive()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.001))
            except TimeoutError:
                raise BodyTimeout(self.body_timeout) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


async def _send_error(send: Send, status: int, code: ErrorCode, message: str) -> None:
    body = orjson.dumps(error_body(code, message))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
