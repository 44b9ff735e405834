"""Every error shmbridge raises, in one tree, each with a stable code.

The same codes travel in protocol ERROR frames and in HTTP error bodies, so a client in any
language can branch on them. Users catch these and never a dependency's exception: errors from
the OS, httpx and engines are translated at the boundary.

    ShmBridgeError
    ├── TransportError            the path to the service failed
    │   ├── ServiceUnavailable    nothing listens / connection refused / handshake impossible
    │   ├── SessionClosed         the peer closed the connection (EOF) or the session was closed
    │   └── RequestTimeout        no reply within the timeout
    ├── ProtocolError             a frame broke the wire format or the state machine
    ├── InvalidRequest            the request is well-formed but names impossible pixels or options
    │   ├── InvalidStreamName     a stream name that is not 1-64 of [A-Za-z0-9._-]
    │   ├── NotFound              no such route, region or resource (HTTP 404)
    │   ├── AlreadyExists         a region of that name is registered (HTTP 409)
    │   └── UnsupportedMedia      a body type or image format the service does not read (HTTP 415)
    ├── LimitExceeded             a configured limit refused the request
    │   ├── SessionLimitExceeded  too many sessions
    │   ├── MemoryLimitExceeded   bytes per session or in total
    │   ├── FrameTooLarge         pixels or bytes of one frame
    │   ├── SegmentLimitExceeded  segments per session
    │   ├── DescriptorLimitExceeded  the service's file-descriptor budget is spent
    │   ├── StreamLimitExceeded   too many streams for one owner or in total, or a stream's state too large
    │   └── Busy                  admission queue full; carries ``retry_after``
    ├── PeerRejected              the peer's uid/gid is not allowed
    ├── Unauthorized              HTTP without the bearer token the service requires (HTTP 401)
    ├── AccessDenied              the service may not read a file it was pointed at (HTTP 403)
    └── EngineError               the OCR engine failed
        ├── EngineUnavailable     the engine cannot start here (missing extra, model, platform)
        └── EngineTimeout         the engine did not finish in time
    CaptureUnavailable            the screen cannot be captured here (no display, extra or library)

    UsageError (RuntimeError)     the API was misused (closed client, lease returned twice, ...)
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """Stable numeric codes. Never renumber; only append."""

    INTERNAL = 1
    BAD_MAGIC = 10
    BAD_VERSION = 11
    FRAME_TOO_LARGE = 12
    TRUNCATED = 13
    UNEXPECTED_FRAME = 14
    MALFORMED = 15
    UNKNOWN_FRAME_TYPE = 16
    INVALID_REQUEST = 20
    BAD_SLOT = 21
    SLOT_IN_USE = 22
    OUT_OF_BOUNDS = 23
    SHAPE_MISMATCH = 24
    BAD_DIMENSIONS = 25
    UNKNOWN_OPTION = 26
    UNSUPPORTED_MEDIA = 27
    NOT_FOUND = 28
    ALREADY_EXISTS = 29
    SESSION_LIMIT = 30
    MEMORY_LIMIT = 31
    IMAGE_TOO_LARGE = 32
    BUSY = 33
    SEGMENT_LIMIT = 34
    DESCRIPTOR_LIMIT = 35
    PEER_REJECTED = 40
    ACCESS_DENIED = 41
    UNAUTHORIZED = 42
    ENGINE_FAILED = 50
    ENGINE_UNAVAILABLE = 51
    ENGINE_TIMEOUT = 52
    SERVICE_UNAVAILABLE = 60
    SESSION_CLOSED = 61
    TIMEOUT = 62
    SHUTTING_DOWN = 63
    BAD_STREAM_NAME = 70
    STREAM_LIMIT = 71


class ShmBridgeError(Exception):
    """Root of every error shmbridge raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL
    http_status: int = 500

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, object]:
        """The JSON error shape shared by the protocol and HTTP."""
        return {"code": self.code.name, "code_num": int(self.code), "message": self.message}


class TransportError(ShmBridgeError):
    code = ErrorCode.SERVICE_UNAVAILABLE
    http_status = 503


class ServiceUnavailable(TransportError):
    code = ErrorCode.SERVICE_UNAVAILABLE
    http_status = 503


class SessionClosed(TransportError):
    code = ErrorCode.SESSION_CLOSED
    http_status = 503


class RequestTimeout(TransportError):
    code = ErrorCode.TIMEOUT
    http_status = 504


class ProtocolError(ShmBridgeError):
    """A frame broke the wire format. ``request_id`` is set when the frame was read whole and only its
    body was wrong: the session can answer that request and go on. Without it the stream is lost."""

    code = ErrorCode.MALFORMED
    http_status = 400
    request_id: int | None = None


class InvalidRequest(ShmBridgeError):
    code = ErrorCode.INVALID_REQUEST
    http_status = 400


class InvalidStreamName(InvalidRequest):
    code = ErrorCode.BAD_STREAM_NAME
    http_status = 400


class NotFound(InvalidRequest):
    code = ErrorCode.NOT_FOUND
    http_status = 404


class AlreadyExists(InvalidRequest):
    code = ErrorCode.ALREADY_EXISTS
    http_status = 409


class UnsupportedMedia(InvalidRequest):
    code = ErrorCode.UNSUPPORTED_MEDIA
    http_status = 415


class LimitExceeded(ShmBridgeError):
    code = ErrorCode.MEMORY_LIMIT
    http_status = 413


class SessionLimitExceeded(LimitExceeded):
    code = ErrorCode.SESSION_LIMIT
    http_status = 503


class MemoryLimitExceeded(LimitExceeded):
    code = ErrorCode.MEMORY_LIMIT
    http_status = 413


class FrameTooLarge(LimitExceeded):
    code = ErrorCode.IMAGE_TOO_LARGE
    http_status = 413


class SegmentLimitExceeded(LimitExceeded):
    code = ErrorCode.SEGMENT_LIMIT
    http_status = 413


class DescriptorLimitExceeded(LimitExceeded):
    code = ErrorCode.DESCRIPTOR_LIMIT
    http_status = 503


class StreamLimitExceeded(LimitExceeded):
    code = ErrorCode.STREAM_LIMIT
    http_status = 429


class Busy(LimitExceeded):
    code = ErrorCode.BUSY
    http_status = 503

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "retry_after": self.retry_after}


class PeerRejected(ShmBridgeError):
    code = ErrorCode.PEER_REJECTED
    http_status = 403


class AccessDenied(ShmBridgeError):
    code = ErrorCode.ACCESS_DENIED
    http_status = 403


class Unauthorized(ShmBridgeError):
    code = ErrorCode.UNAUTHORIZED
    http_status = 401


class EngineError(ShmBridgeError):
    code = ErrorCode.ENGINE_FAILED
    http_status = 500


class EngineUnavailable(EngineError):
    code = ErrorCode.ENGINE_UNAVAILABLE
    http_status = 503


class EngineTimeout(EngineError):
    code = ErrorCode.ENGINE_TIMEOUT
    http_status = 504


class CaptureUnavailable(ShmBridgeError):
    """Client side only: no X display, no xcffib or libxcb, or a screen format the capture cannot read."""

    code = ErrorCode.ENGINE_UNAVAILABLE
    http_status = 503


class UsageError(RuntimeError):
    """The API was used in a way it does not allow; a bug in the caller, not a runtime condition."""


_BY_CODE: dict[ErrorCode, type[ShmBridgeError]] = {}
for _cls in (
    ProtocolError,
    InvalidRequest,
    NotFound,
    AlreadyExists,
    UnsupportedMedia,
    AccessDenied,
    SessionLimitExceeded,
    MemoryLimitExceeded,
    FrameTooLarge,
    SegmentLimitExceeded,
    DescriptorLimitExceeded,
    Busy,
    InvalidStreamName,
    StreamLimitExceeded,
    PeerRejected,
    Unauthorized,
    EngineError,
    EngineUnavailable,
    EngineTimeout,
    ServiceUnavailable,
    SessionClosed,
    RequestTimeout,
):
    _BY_CODE.setdefault(_cls.code, _cls)
for _code in (
    ErrorCode.BAD_MAGIC,
    ErrorCode.BAD_VERSION,
    ErrorCode.FRAME_TOO_LARGE,
    ErrorCode.TRUNCATED,
    ErrorCode.UNEXPECTED_FRAME,
    ErrorCode.UNKNOWN_FRAME_TYPE,
):
    _BY_CODE[_code] = ProtocolError
for _code in (
    ErrorCode.BAD_SLOT,
    ErrorCode.SLOT_IN_USE,
    ErrorCode.OUT_OF_BOUNDS,
    ErrorCode.SHAPE_MISMATCH,
    ErrorCode.BAD_DIMENSIONS,
    ErrorCode.UNKNOWN_OPTION,
):
    _BY_CODE[_code] = InvalidRequest
_BY_CODE[ErrorCode.SHUTTING_DOWN] = ServiceUnavailable


def error_from_code(code: int | str, message: str, *, retry_after: float | None = None) -> ShmBridgeError:
    """Rebuild the typed error a peer reported (by number or by name)."""
    try:
        error_code = ErrorCode[code] if isinstance(code, str) else ErrorCode(code)
    except (KeyError, ValueError):
        return ShmBridgeError(f"unknown error code {code!r}: {message}")
    cls = _BY_CODE.get(error_code, ShmBridgeError)
    if cls is Busy:
        return Busy(message, retry_after=retry_after if retry_after is not None else 1.0)
    return cls(message, code=error_code)
