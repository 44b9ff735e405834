"""One byte budget for every HTTP request body in flight, charged as the bytes arrive.

A body costs memory only once its bytes are here: nothing is reserved on a ``Content-Length`` alone, so a
client that announces 128 MiB and then stalls holds a few bytes, not 128 MiB. Every chunk received is
charged to ``BodyBudget`` before the application sees it, and the request gives its bytes back when its
response is done. A chunk that does not fit ends its request with 503 and ``Retry-After``: the service
stays within ``http_body_bytes`` whatever the number of uploads.

It must never read a body itself or keep a reference to one.
"""

from __future__ import annotations

import math
import threading

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...errors import Busy


class BodyBudget:
    """Bytes of request bodies held now, against ``limit``. Thread-safe; a leaf lock."""

    def __init__(self, limit: int, retry_after: float = 1.0) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.used = 0
        self._lock = threading.Lock()

    def charge(self, nbytes: int) -> None:
        """Count ``nbytes`` more, or raise ``Busy``."""
        with self._lock:
            if self.used + nbytes > self.limit:
                raise Busy(
                    f"request bodies in flight already hold {self.used} of {self.limit} bytes; try again later",
                    retry_after=self.retry_after,
                )
            self.used += nbytes

    def refund(self, nbytes: int) -> None:
        with self._lock:
            self.used -= nbytes


class BodyBudgetExceeded(StarletteHTTPException):
    """Raised from ``receive`` when a chunk does not fit (an ``HTTPException``, so FastAPI's body parsing
    passes it through as it is)."""

    def __init__(self, exc: Busy) -> None:
        super().__init__(503, exc.message, headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))})


class BodyBudgetMiddleware:
    """Charges each request's body chunks to ``budget`` as they arrive; refunds them when it is done."""

    def __init__(self, app: ASGIApp, budget: BodyBudget) -> None:
        self.app = app
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held = 0

        async def charged_receive() -> Message:
            nonlocal held
            message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                if size:
                    try:
                        self.budget.charge(size)
                    except Busy as exc:
                        raise BodyBudgetExceeded(exc) from None
                    held += size
            return message

        try:
            await self.app(scope, charged_receive, send)
        finally:
            if held:
                self.budget.refund(held)
