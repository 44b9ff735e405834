"""A session's frames in the service's terms: a request's options as the shared model, and the answers.

Owns the one translation of an OCR_REQUEST's options dict and region struct into ``OcrOptions`` (an
unknown key is an error, never ignored; a region of interest travels only in the struct) and the
encoding of RESULT and ERROR frames. Pure functions: it must never touch a socket or a session's state.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ... import protocol as p
from ...errors import ErrorCode, InvalidRequest, ShmBridgeError
from ...models import DEFAULT_OPTIONS, OcrOptions, OcrResult, Roi


def result_frame(request_id: int, result: OcrResult) -> bytes:
    """A RESULT frame, the result serialised once by pydantic's own JSON serialiser."""
    return p.encode_result_json(request_id, result.model_dump_json().encode())


def error_frame(request_id: int, exc: ShmBridgeError) -> bytes:
    return p.encode(p.Error(request_id, exc.code, exc.message, getattr(exc, "retry_after", None)))


def request_options(event: p.OcrRequest) -> OcrOptions:
    """Request options as the shared model; unknown keys are an error, never ignored."""
    if not event.options and event.roi is None:
        return DEFAULT_OPTIONS
    fields: dict[str, Any] = dict(event.options)
    if "roi" in fields:
        raise InvalidRequest("the region of interest travels in the request struct, not in options",
                             code=ErrorCode.UNKNOWN_OPTION)  # fmt: skip
    try:
        if event.roi is not None:
            x, y, w, h = event.roi
            fields["roi"] = Roi(x=x, y=y, width=w, height=h)
        return OcrOptions(**fields)
    except ValidationError as exc:
        unknown = [".".join(map(str, e["loc"])) for e in exc.errors() if e["type"] == "extra_forbidden"]
        if unknown:
            raise InvalidRequest(f"unknown option(s): {', '.join(unknown)}", code=ErrorCode.UNKNOWN_OPTION) from None
        raise InvalidRequest(f"invalid options: {exc.errors()[0]['msg']}") from None
