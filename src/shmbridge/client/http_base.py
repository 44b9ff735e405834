"""What the two HTTP transports share, without I/O: the paths, the request's parts, the answer's parsing.

``POST /api/v1/ocr`` carries raw pixels (``application/octet-stream``, shape in the query) or an encoded file
as its body, never JSON or base64. Requests and answers are built and parsed here, once, by pure functions;
``http_transport_async.AsyncHttpTransport`` and its generated blocking twin ``http_transport.HttpTransport``
only send them and wait.

Retries follow ``RetryPolicy``: only idempotent requests (every request the transports send: OCR and GETs),
only when the service or the path to it is temporarily unavailable (connection refused or lost, 503), within
the call's time budget, honouring ``Retry-After`` (``next_wait``). A read timeout is not retried: the service
may still be working on it. No httpx exception escapes: ``transport_failure`` and ``response_failure`` make
each the ``errors`` type that says what happened. This module must never do I/O, nor decide about fallback or
the session (the shell does).
"""

from __future__ import annotations

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


def httpx_timeout(timeouts: Timeouts, budget: float) -> httpx.Timeout:
    """httpx's timeout for an attempt with ``budget`` seconds left (connecting within ``timeouts.connect``)."""
    return httpx.Timeout(max(budget, 0.001), connect=min(timeouts.connect, max(budget, 0.001)))


def pool_limits() -> httpx.Limits:
    """How many connections a transport's pool keeps."""
    return httpx.Limits(max_connections=64, max_keepalive_connections=16)


def default_headers() -> dict[str, str]:
    """Headers of every request: the user agent, and the bearer token when ``SHMBRIDGE_API_TOKEN`` is set."""
    headers = {"User-Agent": USER_AGENT}
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers
