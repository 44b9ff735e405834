"""The HTTP transports and their pure parts, by the names the client has always imported them under.

``http_base`` holds what both share without I/O (paths, request parts, parsing, errors, retry waits);
``http_transport_async.AsyncHttpTransport`` is written by hand and ``http_transport.HttpTransport`` is
generated from it by ``scripts/unasync.py`` (decision 40). This module only re-exports them: it must never
hold code of its own.
"""

from __future__ import annotations

from .http_base import (
    ENHANCED_METRICS_PATH,
    HEALTH_PATH,
    INFO_PATH,
    OCR_PATH,
    STREAMS_PATH,
    TOKEN_ENV,
    USER_AGENT,
    Failure,
    default_headers,
    httpx_timeout,
    next_wait,
    ocr_request_parts,
    option_params,
    parse_json,
    parse_result,
    pool_limits,
    response_failure,
    stream_path,
    transport_failure,
)
from .http_transport import HttpTransport
from .http_transport_async import AsyncHttpTransport

__all__ = [
    "ENHANCED_METRICS_PATH",
    "HEALTH_PATH",
    "INFO_PATH",
    "OCR_PATH",
    "STREAMS_PATH",
    "TOKEN_ENV",
    "USER_AGENT",
    "AsyncHttpTransport",
    "Failure",
    "HttpTransport",
    "default_headers",
    "httpx_timeout",
    "next_wait",
    "ocr_request_parts",
    "option_params",
    "parse_json",
    "parse_result",
    "pool_limits",
    "response_failure",
    "stream_path",
    "transport_failure",
]
