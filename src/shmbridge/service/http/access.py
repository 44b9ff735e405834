"""The HTTP access log: one INFO line per request on the ``shmbridge.access`` logger.

``client "METHOD /path?query" status bytes time request-id``, written when the answer's last byte went
out (or the app failed: then it says 500). uvicorn's own access log stays off: it has no time and no
request id, and it goes through uvicorn's logging set-up instead of the service's. ``--no-access-log``
(``ServiceConfig.access_log``) leaves this middleware out altogether.

It must never change a request or an answer, or hold a body: it only watches the ``http.response.*``
messages go by.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("shmbridge.access")
#: Longest path and query logged; the rest is cut (a query can carry thousands of custom words).
_MAX_TARGET = 256


def _printable(text: str) -> str:
    """The text as is, or its repr when it holds control characters (no forged log lines)."""
    text = text if len(text) <= _MAX_TARGET else text[:_MAX_TARGET] + "…"
    return text if text.isprintable() else repr(text)


class AccessLogMiddleware:
    """Pure ASGI middleware (no ``BaseHTTPMiddleware``: it would buffer streaming bodies)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent = 0
        request_id = ""

        async def watch(message: Message) -> None:
            nonlocal status, sent, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-request-id":
                        request_id = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            client = scope.get("client")
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope.get("path", "") + (f"?{query}" if query else "")
            log.info(
                '%s "%s %s" %d %dB %.1fms%s',
                f"{client[0]}:{client[1]}" if client else "-",
                scope.get("method", "-"),
                _printable(target),
                status,
                sent,
                (time.perf_counter() - started) * 1e3,
                f" id={_printable(request_id)}" if request_id else "",
            )
