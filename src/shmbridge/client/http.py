"""The HTTP transport, blocking and asyncio: one pooled httpx client each, retries, errors translated.

``POST /api/v1/ocr`` carries raw pixels (``application/octet-stream``, shape in the query) or an encoded file
as its body, never JSON or base64. Requests and answers are built and parsed by the pure functions at the
top, which both transports share; the two classes differ only in how they wait.

Retries follow ``RetryPolicy``: only idempotent requests (every request this module sends: OCR and GETs),
only when the service or the path to it is temporarily unavailable (connection refused or lost, 503), within
the call's time budget, honouring ``Retry-After``. A read timeout is not retried: the service may still be
working on it. No httpx exception escapes: each becomes the ``errors`` type that says what happened. This
module must never decide about fallback or the session (the shell does).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from ..errors import (
    ErrorCode,
    FrameTooLarge,
    InvalidRequest,
    ProtocolError,
    RequestTimeout,
    ServiceUnavailable,
    ShmBridgeError,
    UsageError,
    error_from_code,
)
from ..models import OcrOptions, OcrResult
from ..streams.registry import check_name
from ..wire import FALLBACK_HEADER, roi_text
from .base import OcrCall, retry_after_seconds
from .inputs import http_body
from .policy import RetryPolicy, Timeouts

OCR_PATH = "/api/v1/ocr"
#: The bearer token a service may require (``Authorization: Bearer``); the service reads the same variable.
TOKEN_ENV = "SHMBRIDGE_API_TOKEN"
INFO_PATH = "/api/v1/bridge/info"
HEALTH_PATH = "/health"
ENHANCED_METRICS_PATH = "/metrics/enhanced"
STREAMS_PATH = "/api/v1/streams"
USER_AGENT = "shmbridge-python"


# -- pure parts -----------------------------------------------------------------------------------------


def option_params(options: OcrOptions) -> dict[str, str]:
    """OCR options as ``/api/v1/ocr`` query parameters; defaults are left out."""
    given = options.model_dump(exclude_defaults=True)
    params: dict[str, str] = {}
    if "recognition_level" in given:
        params["recognition_level"] = options.recognition_level
    if "languages" in given:
        params["languages"] = ",".join(options.languages)
    if "custom_words" in given:
        params["custom_words"] = ",".join(options.custom_words)
    if "minimum_text_height" in given:
        params["minimum_text_height"] = repr(options.minimum_text_height)
    if options.roi is not None:
        params["roi"] = roi_text(options.roi)
    if options.stream is not None:
        params["stream"] = options.stream
    if options.keyframe:
        params["keyframe"] = "true"
    if options.delta:
        params["delta"] = "true"
    return params


def stream_path(name: str) -> str:
    """The path of one of this client's streams on the service (the name is checked: no escaping needed)."""
    return f"{STREAMS_PATH}/{check_name(name)}"


def ocr_request_parts(call: OcrCall) -> tuple[dict[str, str], dict[str, str], bytes]:
    """Query, headers and body of the OCR request for ``call``."""
    body, media_type, params = http_body(call.image)
    params.update(option_params(call.options))
    if call.request_id:
        params["request_id"] = call.request_id
    headers = {"Content-Type": media_type}
    if call.fallback:
        headers[FALLBACK_HEADER] = "1"
    return params, headers, body


@dataclass(slots=True)
class Failure:
    """One failed attempt: the typed error, whether trying again may help, and the service's hint."""

    error: ShmBridgeError | UsageError
    retryable: bool
    retry_after: float | None = None
    cause: BaseException | None = None


_STATUS_ERRORS: dict[int, type[ShmBridgeError]] = {413: FrameTooLarge, 503: ServiceUnavailable, 504: RequestTimeout}


def response_failure(response: httpx.Response) -> Failure:
    """The typed error an error response carries (the service's one JSON error shape)."""
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    info = body.get("error") if isinstance(body, dict) else None
    if isinstance(info, dict) and ("code" in info or "code_num" in info):
        hint = info.get("retry_after")
        retry_after = float(hint) if isinstance(hint, int | float) else retry_after
        error = error_from_code(info.get("code") or info.get("code_num"), str(info.get("message", "")),
                                retry_after=retry_after)  # fmt: skip
    else:
        status = response.status_code
        cls = _STATUS_ERRORS.get(status, InvalidRequest if status < 500 else ShmBridgeError)
        error = cls(f"HTTP {status} from {response.request.url.path}: {response.text[:200]}")
    return Failure(error, response.status_code == 503, retry_after)


def transport_failure(exc: httpx.HTTPError | httpx.InvalidURL, url: str) -> Failure:
    """An httpx exception as the typed error it means."""
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return Failure(UsageError(f"bad service URL {url!r}: {exc}"), False, cause=exc)
    if isinstance(exc, httpx.ConnectTimeout):
        return Failure(ServiceUnavailable(f"no connection to {url} within the timeout"), True, cause=exc)
    if isinstance(exc, httpx.TimeoutException):
        return Failure(RequestTimeout(f"no answer from {url} within the timeout"), False, cause=exc)
    if isinstance(exc, httpx.ConnectError):
        return Failure(ServiceUnavailable(f"cannot connect to {url}: {exc}"), True, cause=exc)
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        return Failure(ServiceUnavailable(f"the connection to {url} was lost: {exc}"), True, cause=exc)
    return Failure(ShmBridgeError(f"HTTP request to {url} failed: {exc!r}"), False, cause=exc)


def next_wait(policy: RetryPolicy, failures: int, failure: Failure, deadline: float) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` to give up now."""
    if not failure.retryable or failures >= policy.attempts:
        return None
    wait = policy.delay(failures, failure.retry_after)
    return wait if time.monotonic() + wait < deadline else None


def parse_result(response: httpx.Response) -> OcrResult:
    try:
        return OcrResult.model_validate_json(response.content)
    except ValidationError as exc:
        raise ProtocolError(f"the service answered with an unexpected OCR result: {exc}",
                            code=ErrorCode.MALFORMED) from None  # fmt: skip


def parse_json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise ProtocolError(f"{response.request.url.path} did not answer JSON", code=ErrorCode.MALFORMED) from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{response.request.url.path} answered a JSON {type(value).__name__}")
    return value


def _httpx_timeout(timeouts: Timeouts, budget: float) -> httpx.Timeout:
    return httpx.Timeout(max(budget, 0.001), connect=min(timeouts.connect, max(budget, 0.001)))


def _limits() -> httpx.Limits:
    return httpx.Limits(max_connections=64, max_keepalive_connections=16)


# -- the transports -------------------------------------------------------------------------------------


def default_headers() -> dict[str, str]:
    """Headers of every request: the user agent, and the bearer token when ``SHMBRIDGE_API_TOKEN`` is set."""
    headers = {"User-Agent": USER_AGENT}
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


class HttpTransport:
    """Blocking HTTP: one pooled ``httpx.Client``, thread-safe."""

    def __init__(
        self, url: str, timeouts: Timeouts, retry: RetryPolicy, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url
        self.timeouts = timeouts
        self.retry = retry
        self._client = httpx.Client(base_url=url, timeout=_httpx_timeout(timeouts, timeouts.request),
                                    limits=_limits(), headers=default_headers(),
                                    transport=transport)  # fmt: skip

    def handle(self, call: OcrCall) -> OcrResult:
        params, headers, body = ocr_request_parts(call)
        return parse_result(self.send("POST", OCR_PATH, call.timeout, params=params, headers=headers, content=body))

    def get_json(self, path: str, *, accept: tuple[int, ...] = (200,), timeout: float | None = None) -> dict[str, Any]:
        return parse_json(self.send("GET", path, timeout or self.timeouts.request, accept=accept))

    def send(self, method: str, path: str, budget: float, *, accept: tuple[int, ...] = (200,),
             idempotent: bool = True, **kwargs: Any) -> httpx.Response:  # fmt: skip
        """One request within ``budget`` seconds, retried only if ``idempotent`` (OCR and GETs are)."""
        deadline = time.monotonic() + budget
        failures = 0
        while True:
            timeout = _httpx_timeout(self.timeouts, deadline - time.monotonic())
            try:
                response = self._client.request(method, path, timeout=timeout, **kwargs)
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
            time.sleep(wait)

    def close(self) -> None:
        self._client.close()


class AsyncHttpTransport:
    """asyncio HTTP: one pooled ``httpx.AsyncClient``."""

    def __init__(
        self, url: str, timeouts: Timeouts, retry: RetryPolicy, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url = url
        self.timeouts = timeouts
        self.retry = retry
        self._client = httpx.AsyncClient(base_url=url, timeout=_httpx_timeout(timeouts, timeouts.request),
                                         limits=_limits(), headers=default_headers(),
                                         transport=transport)  # fmt: skip

    async def handle(self, call: OcrCall) -> OcrResult:
        params, headers, body = ocr_request_parts(call)
        response = await self.send("POST", OCR_PATH, call.timeout, params=params, headers=headers, content=body)
        return parse_result(response)

    async def get_json(
        self, path: str, *, accept: tuple[int, ...] = (200,), timeout: float | None = None
    ) -> dict[str, Any]:
        return parse_json(await self.send("GET", path, timeout or self.timeouts.request, accept=accept))

    async def send(self, method: str, path: str, budget: float, *, accept: tuple[int, ...] = (200,),
                   idempotent: bool = True, **kwargs: Any) -> httpx.Response:  # fmt: skip
        deadline = time.monotonic() + budget
        failures = 0
        while True:
            timeout = _httpx_timeout(self.timeouts, deadline - time.monotonic())
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
