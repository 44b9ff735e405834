"""The HTTP transport: one pooled ``httpx.AsyncClient`` behind ``handle(call)`` (``AsyncHttpTransport``).

``http_transport.py`` is generated from ``http_transport_async.py`` by ``scripts/unasync.py`` (its
``HttpTransport``, over a thread-safe ``httpx.Client``, serves the blocking client), so the two cannot drift:
edit ``http_transport_async.py`` only. Building the request, parsing the answer, translating errors and
choosing when to try again are ``http_base``'s pure functions; this module only sends and waits. No httpx
exception escapes. This module must never decide about fallback or the session (the shell does).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from ..models import OcrResult
from .base import OcrCall
from .http_base import (
    OCR_PATH,
    default_headers,
    httpx_timeout,
    next_wait,
    ocr_request_parts,
    parse_json,
    parse_result,
    pool_limits,
    response_failure,
    transport_failure,
)
from .policy import RetryPolicy, Timeouts


class AsyncHttpTransport:
    """One pooled ``httpx.AsyncClient``: OCR calls (``handle``) and the service's JSON reads (``get_json``)."""

    def __init__(
        self,
        url: str,
        timeouts: Timeouts,
        retry: RetryPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.timeouts = timeouts
        self.retry = retry
        self._client = httpx.AsyncClient(
            base_url=url,
            timeout=httpx_timeout(timeouts, timeouts.request),
            limits=pool_limits(),
            headers=default_headers(),
            transport=transport,
        )

    async def handle(self, call: OcrCall) -> OcrResult:
        params, headers, body = ocr_request_parts(call)
        response = await self.send("POST", OCR_PATH, call.timeout, params=params, headers=headers, content=body)
        return parse_result(response)

    async def get_json(
        self,
        path: str,
        *,
        accept: tuple[int, ...] = (200,),
        timeout: float | None = None,
    ) -> dict[str, Any]:
        return parse_json(await self.send("GET", path, timeout or self.timeouts.request, accept=accept))

    async def send(
        self,
        method: str,
        path: str,
        budget: float,
        *,
        accept: tuple[int, ...] = (200,),
        idempotent: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request within ``budget`` seconds, retried only if ``idempotent`` (OCR and GETs are)."""
        deadline = time.monotonic() + budget
        failures = 0
        while True:
            timeout = httpx_timeout(self.timeouts, deadline - time.monotonic())
            try:
                response = await self._client.request(method, path, timeout=timeout, **kwargs)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                failure = transport_failure(exc, self.url)
            else:
                if response.status_code in accept:
                    return response
                failure = response_failure(response)
            failures += 1
            wait = next_wait(self.retry, failures, failure, deadline) if idempotent else None
            if wait is None:
                raise failure.error from failure.cause
            await asyncio.sleep(wait)

    async def close(self) -> None:
        await self._client.aclose()
