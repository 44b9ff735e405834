"""The optional bearer token of the HTTP door (``SHMBRIDGE_API_TOKEN``).

With a token configured every HTTP request must carry ``Authorization: Bearer <token>``, except the
health probes (``/health`` and ``/health/...``, which orchestrators call without credentials), the API's
own description (``/docs``, its assets and ``/openapi.json``: they hold no data, and a browser cannot
send the header to load them) and ``/metrics`` (and ``/metrics/...``) unless ``metrics_auth`` is set.
Anything else gets 401 with ``WWW-Authenticate: Bearer`` before a byte of its body is read.
The comparison takes constant time.

The socket door does not use the token: the kernel tells it the peer's uid and gid. This module must
never log or echo the token.
"""

from __future__ import annotations

import hmac

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from ...errors import ErrorCode
from .errors import error_body

#: Routes open without the token, and the prefixes under which every path is.
_OPEN = frozenset({"/health", "/docs", "/openapi.json"})
_OPEN_PREFIXES = ("/health/", "/docs/")


def _exempt(path: str, metrics_open: bool) -> bool:
    if path in _OPEN or path.startswith(_OPEN_PREFIXES):
        return True
    return metrics_open and (path == "/metrics" or path.startswith("/metrics/"))


class BearerTokenMiddleware:
    """Refuses requests without the configured bearer token (401)."""

    def __init__(self, app: ASGIApp, token: str, protect_metrics: bool = False) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self.protect_metrics = protect_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _exempt(scope["path"], not self.protect_metrics):
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        message = (
            "this service requires a bearer token: send 'Authorization: Bearer <token>' (the client reads it "
            "from SHMBRIDGE_API_TOKEN)"
            if not given
            else "the bearer token is wrong"
        )
        body = orjson.dumps(error_body(ErrorCode.UNAUTHORIZED, message))
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="shmbridge"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
